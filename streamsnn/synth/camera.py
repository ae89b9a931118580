"""Synthetic saccade camera: still digit images -> DVS events the way N-MNIST was recorded.

N-MNIST (Orchard et al. 2015) was recorded by an ATIS sensor on a pan-tilt unit looking at an LCD
showing each MNIST digit; the unit made three ~100 ms saccades tracing a triangle, and the motion
made the recorded field 34x34. Here the image moves (bilinear, subpixel) along the same triangle in
front of a simulated 34x34 sensor whose pixels emit ON/OFF events when their log intensity moves a
contrast threshold away from the pixel's reference (per-pixel threshold mismatch, refractory period,
and ON-biased background shot noise as in the ATIS recordings). Defaults are tuned so that event
count, polarity balance, duration and spatial spread match real N-MNIST test samples
(see tests/test_synth_stats.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..events import EVENT_DTYPE, EventBatch


@dataclass(frozen=True)
class PixelParams:
    """The simulated pixels' parameters (`Pixels`), shared by the saccade camera and the gesture set."""

    width: int = 34
    height: int = 34
    #: Simulation step in microseconds; event times are interpolated within a step.
    step_us: int = 1000
    #: ON / OFF contrast thresholds (log intensity) and the Gaussian sigma of their per-pixel mismatch.
    threshold_on: float = 0.28
    threshold_off: float = 0.28
    threshold_sigma: float = 0.03
    #: Events of one pixel closer than this (microseconds) are lost.
    refractory_us: int = 1500
    #: Black level relative to white (the LCD's for the saccade camera).
    background: float = 0.1
    #: Gaussian blur of the optics, in image pixels (0 = none).
    blur: float = 0.7


@dataclass(frozen=True)
class SaccadeParams(PixelParams):
    """Sensor, motion and noise parameters of the synthetic camera (times in ms unless noted); the pixel model's
    are `PixelParams`'."""

    #: Where the image's top-left corner lands on the sensor before the first saccade (x, y pixels).
    origin: tuple[float, float] = (0.4, 0.5)
    #: Sensor pixels per image pixel (how large the screen's digit appears).
    scale: float = 1.0
    #: Image offsets at the triangle's corners (pixels); the path runs A -> B -> C -> A.
    corners: tuple[tuple[float, float], ...] = ((0.0, 0.0), (1.8, 5.2), (5.4, 0.2))
    #: (start, duration) of each saccade on the pan (x) and tilt (y) axes, which move independently
    #: (N-MNIST's motion shows this); each axis follows a raised-cosine velocity profile.
    pan: tuple[tuple[float, float], ...] = ((45.0, 50.0), (88.0, 125.0), (210.0, 95.0))
    tilt: tuple[tuple[float, float], ...] = ((0.0, 80.0), (108.0, 85.0), (210.0, 95.0))
    #: Length of the recording (noise events fill it).
    length: float = 312.0
    #: The display gamma applied to the 0..255 grey levels.
    gamma: float = 2.2
    #: Show the digit dark on a bright screen. Real N-MNIST looks like this: OFF events lead the
    #: motion and ON events trail it.
    negative: bool = True
    #: Background shot noise: events per pixel per second, and the fraction of them that are ON.
    noise_hz: float = 0.22
    noise_on_fraction: float = 0.99

    def check(self) -> None:
        """Raise ConfigError naming the first parameter that cannot work."""
        if self.width <= 0 or self.height <= 0:
            raise ConfigError(f"synthetic sensor size must be positive, got {self.width}x{self.height}")
        if not len(self.corners) == len(self.pan) == len(self.tilt) >= 1:
            raise ConfigError("synthetic camera needs one saccade (pan, tilt) per triangle corner")
        if min(self.threshold_on, self.threshold_off) <= 0:
            raise ConfigError("synthetic camera thresholds must be positive")
        if not 0 < self.background < 1:
            raise ConfigError(f"synthetic camera background must lie in (0, 1), got {self.background}")
        if self.scale <= 0:
            raise ConfigError(f"synthetic camera scale must be positive, got {self.scale}")
        if self.step_us <= 0 or self.length <= 0:
            raise ConfigError("synthetic camera step_us and length must be positive")
        if self.noise_hz < 0 or not 0 <= self.noise_on_fraction <= 1 or self.refractory_us < 0:
            raise ConfigError("synthetic camera noise_hz, noise_on_fraction and refractory_us must be >= 0 "
                              "(noise_on_fraction <= 1)")


#: Margin (image pixels) of screen background added around each image.
_PAD = 12


def saccade_path(params: SaccadeParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample times (us) and the image offset (x, y) at each, following the saccade triangle."""
    t = np.arange(0, int(params.length * 1000) + 1, params.step_us, dtype=np.float64)
    corners = np.asarray(params.corners, dtype=np.float64)
    n = len(corners)
    out = []
    for axis, timing in ((0, params.pan), (1, params.tilt)):
        pos = np.full(t.size, corners[0, axis])
        for i, (start, dur) in enumerate(timing):
            step = corners[(i + 1) % n, axis] - corners[i, axis]
            s = np.clip((t - start * 1000) / (dur * 1000), 0.0, 1.0)
            pos += step * (s - np.sin(2 * np.pi * s) / (2 * np.pi))  # raised-cosine velocity
        out.append(pos + params.origin[axis])
    return t, out[0], out[1]


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (edges extended)."""
    if sigma <= 0:
        return img
    r = max(1, int(np.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    h, w = img.shape
    p = np.pad(img, r, mode="edge")
    rows = sum(k[i] * p[:, i:i + w] for i in range(2 * r + 1))
    return sum(k[i] * rows[i:i + h, :] for i in range(2 * r + 1))


class Pixels:
    """The simulated sensor's pixels, shared by the saccade camera and the gesture set (`gestures.py`).

    `params` needs `PixelParams` (width, height, thresholds, refractory period, background, blur)
    plus noise_hz and noise_on_fraction (as SaccadeParams has them). The per-pixel thresholds
    are drawn from `rng` once (the sensor's fixed pattern); every `view` then draws the pixels'
    reference phases and the background noise from the same generator.
    """

    def __init__(self, params, rng: np.random.Generator) -> None:
        self.params, self.rng = params, rng
        p = params
        shape = (p.height, p.width)
        self.c_on = np.maximum(p.threshold_on + p.threshold_sigma * rng.standard_normal(shape), 0.01)
        self.c_off = np.maximum(p.threshold_off + p.threshold_sigma * rng.standard_normal(shape), 0.01)
        self._cap = 1 << 14

    def view(self, img: np.ndarray, t_us: np.ndarray, ox: np.ndarray, oy: np.ndarray, scale: float,
             length_ms: float, noise_hz: float | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
        """The events (EVENT_DTYPE, time order) of the pixels watching `img` (linear intensity 0..1, black
        outside it) move: at time t_us[k] the image's top-left corner is at sensor point (ox[k], oy[k]),
        `scale` sensor pixels per image pixel; plus background noise over `length_ms` (at `noise_hz`
        per pixel, default the params' rate). Phases and noise come from `rng` (default: the sensor's)."""
        from .kernels import saccade_events

        p = self.params
        rng = self.rng if rng is None else rng
        phase = rng.uniform(-0.5, 0.5, (p.height, p.width))
        while True:
            out_t = np.empty(self._cap, np.int64)
            out_x = np.empty(self._cap, np.uint16)
            out_y = np.empty(self._cap, np.uint16)
            out_p = np.empty(self._cap, np.uint8)
            n = saccade_events(img, ox, oy, scale, t_us, self.c_on, self.c_off, phase, float(p.refractory_us),
                               p.background, out_t, out_x, out_y, out_p)
            if n >= 0:
                break
            self._cap *= 2
        rate = p.noise_hz if noise_hz is None else noise_hz
        ev = np.empty(n + int(rng.poisson(rate * p.width * p.height * length_ms / 1000.0)), EVENT_DTYPE)
        ev["t"][:n], ev["x"][:n], ev["y"][:n], ev["p"][:n] = out_t[:n], out_x[:n], out_y[:n], out_p[:n]
        noise = ev[n:]
        k = noise.shape[0]
        noise["t"] = rng.integers(0, int(length_ms * 1000), k)
        noise["x"] = rng.integers(0, p.width, k)
        noise["y"] = rng.integers(0, p.height, k)
        noise["p"] = rng.random(k) < p.noise_on_fraction
        return ev[np.argsort(ev["t"], kind="stable")]


@dataclass
class SaccadeCamera:
    """A simulated sensor with its fixed threshold pattern; `record(image)` makes one sample.

    `image` is a 2-D array of grey levels 0..255 (bright digit on a dark background, like MNIST).
    The per-pixel threshold mismatch is drawn once from `seed` (a sensor's fixed pattern); the
    reference phases and the noise differ per sample, from the same seeded generator.
    """

    params: SaccadeParams = field(default_factory=SaccadeParams)
    seed: int = 0

    def __post_init__(self) -> None:
        self.params.check()
        self.rng = np.random.default_rng(self.seed)
        self.pixels = Pixels(self.params, self.rng)
        self.c_on, self.c_off = self.pixels.c_on, self.pixels.c_off
        self.t_us, self.ox, self.oy = saccade_path(self.params)

    def events(self, image: np.ndarray) -> np.ndarray:
        """The events (EVENT_DTYPE, time order) of one recording of `image`."""
        p = self.params
        img = np.asarray(image, dtype=np.float64)
        if img.ndim != 2:
            raise ConfigError(f"synthetic camera needs a 2-D grey image, got shape {img.shape}")
        img = np.clip(img, 0, 255) / 255.0
        if p.negative:
            img = 1.0 - img
        # The screen around the image shows its background: pad it beyond what the sensor can see.
        img = np.pad(img, _PAD, constant_values=1.0 if p.negative else 0.0)
        img = _blur(img ** p.gamma, p.blur)
        return self.pixels.view(img, self.t_us, self.ox - _PAD * p.scale, self.oy - _PAD * p.scale, p.scale,
                                p.length)

    def record(self, image: np.ndarray, *, sample: str | None = None, label: int | None = None,
               source: str | None = "synthetic") -> EventBatch:
        """One sample as an EventBatch on the simulated sensor."""
        return EventBatch(self.events(image), self.params.width, self.params.height,
                          sample=sample, label=label, source=source)
