"""Synthetic gestures: a bright shape moved along a trajectory in front of the saccade camera's pixels.

Ten classes that differ by motion only (the same shapes, sizes, places, speeds and noise in every
class): swipes in four directions, a circle clockwise and counter-clockwise, a horizontal wave, a
vertical nod, and an L traced down-then-right or (the same path backwards) left-then-up. Four pairs
cover the same pixels and differ only in the order of the motion: swipe_left / swipe_right,
swipe_up / swipe_down, circle_cw / circle_ccw, corner_down_right / corner_left_up. Strokes run in from
beyond one edge and out past another, so every pixel sees the shape arrive (ON) and leave (OFF) either
way: summed over a whole sample a pair's per-pixel (and per-polarity) event counts are nearly equal;
only when the events happened tells them apart.

The sensor is `camera.Pixels` (log-intensity contrast thresholds with per-pixel mismatch, refractory
period, background noise), the same pixel model as the saccade camera's, on a 64x64 sensor by
default. Every sample is drawn from its own seeded generator, so a dataset is reproducible and
sample k of a class does not depend on how many samples are made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..events import EventBatch
from .camera import PixelParams, Pixels, _blur

#: The gesture classes, in label order.
CLASSES = ("swipe_left", "swipe_right", "swipe_up", "swipe_down", "circle_cw", "circle_ccw",
           "wave", "nod", "corner_down_right", "corner_left_up")
#: The shapes a gesture may move (drawn per sample, the same for every class).
SHAPES = ("disc", "square", "diamond", "ring", "blob")
#: Classes that are another class played backwards: the same pixels, the opposite order.
REVERSED = {"swipe_left": "swipe_right", "swipe_up": "swipe_down", "circle_ccw": "circle_cw",
            "corner_left_up": "corner_down_right"}


@dataclass(frozen=True)
class GestureParams(PixelParams):
    """Sensor and variation of the gesture set; (low, high) pairs are drawn uniformly per sample. The pixel
    model's parameters are `PixelParams`' (the saccade camera's), on a 64x64 sensor."""

    width: int = 64
    height: int = 64
    #: How long the motion lasts (ms), and the still time before and after it (noise only).
    duration_ms: tuple[float, float] = (300.0, 1500.0)
    rest_ms: float = 50.0
    #: Shape radius (pixels) and brightness (linear intensity against a black background, 0..1).
    radius: tuple[float, float] = (3.0, 7.0)
    brightness: tuple[float, float] = (0.5, 1.0)
    #: Radius of a circle, half-width of a wave or nod, half the side of an L, as a fraction of the
    #: shorter sensor side (swipes and the L's strokes run in from beyond one edge and out past another).
    extent: tuple[float, float] = (0.22, 0.32)
    #: How far the gesture's centre may lie from the sensor's centre, as a fraction of each side.
    offset: float = 0.08
    #: Background shot noise: events per pixel per second (drawn per sample) and the ON fraction.
    noise_hz: tuple[float, float] = (0.1, 1.0)
    noise_on_fraction: float = 0.6

    def check(self) -> None:
        """Raise ConfigError naming the first parameter that cannot work."""
        if not (8 <= self.width <= 1024 and 8 <= self.height <= 1024):
            raise ConfigError(f"gesture sensor must be 8..1024 pixels a side, got {self.width}x{self.height}")
        for name in ("duration_ms", "radius", "brightness", "extent", "noise_hz"):
            lo, hi = _pair(getattr(self, name), name)
            if lo <= 0 and name != "noise_hz" or lo < 0 or hi < lo:
                raise ConfigError(f"gesture {name} must be a (low, high) pair with 0 < low <= high, got "
                                  f"{getattr(self, name)}")
        if self.brightness[1] > 1 or self.extent[1] > 0.45 or not 0 <= self.offset <= 0.2:
            raise ConfigError("gesture brightness must be <= 1, extent <= 0.45 and offset 0..0.2 (the gesture "
                              "stays on the sensor)")
        if min(self.threshold_on, self.threshold_off) <= 0 or not 0 < self.background < 1:
            raise ConfigError("gesture thresholds must be positive and background in (0, 1)")
        if self.step_us <= 0 or self.rest_ms < 0 or self.refractory_us < 0 or not 0 <= self.noise_on_fraction <= 1:
            raise ConfigError("gesture step_us must be positive; rest_ms, refractory_us >= 0; noise_on_fraction "
                              "0..1")


def _pair(v, name: str) -> tuple[float, float]:
    if not (isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v)):
        raise ConfigError(f"gesture {name} must be a (low, high) pair of numbers, e.g. [0.3, 1.5], got {v!r}")
    return float(v[0]), float(v[1])


@dataclass(frozen=True)
class GestureSpec:
    """Everything one sample's motion and look depend on (drawn by `draw`, or given)."""

    gesture: str
    shape: str = "disc"
    radius: float = 5.0
    brightness: float = 1.0
    duration_ms: float = 800.0
    centre: tuple[float, float] = (32.0, 32.0)
    extent: float = 16.0
    phase: float = 0.0
    noise_hz: float = 0.5
    rest_ms: float = 50.0
    sensor: tuple[int, int] = (64, 64)

    @property
    def length_ms(self) -> float:
        return self.duration_ms + 2 * self.rest_ms


def draw(params: GestureParams, gesture: str, rng: np.random.Generator) -> GestureSpec:
    """A random sample of `gesture`: shape, size, brightness, speed, place, start phase and noise."""
    if gesture not in CLASSES:
        raise ConfigError(f"unknown gesture {gesture!r}; one of {', '.join(CLASSES)}")
    u = lambda pair: float(rng.uniform(*pair))  # noqa: E731
    w, h = params.width, params.height
    extent = u(params.extent) * min(w, h)
    cx = w / 2 - 0.5 + rng.uniform(-1, 1) * params.offset * w
    cy = h / 2 - 0.5 + rng.uniform(-1, 1) * params.offset * h
    return GestureSpec(gesture, SHAPES[int(rng.integers(len(SHAPES)))], u(params.radius), u(params.brightness),
                       u(params.duration_ms), (float(cx), float(cy)), extent, float(rng.uniform(0, 2 * np.pi)),
                       u(params.noise_hz), params.rest_ms, (w, h))


def _ease(s: np.ndarray) -> np.ndarray:
    """Progress 0..1 with a raised-cosine velocity (starts and stops smoothly); ease(1 - s) = 1 - ease(s)."""
    return s - np.sin(2 * np.pi * s) / (2 * np.pi)


def path(spec: GestureSpec, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The shape centre (x, y) at motion progress s (0..1; image coordinates, y down)."""
    s = np.clip(np.asarray(s, np.float64), 0.0, 1.0)
    if spec.gesture in REVERSED:  # the same path played backwards
        return path(GestureSpec(REVERSED[spec.gesture], radius=spec.radius, centre=spec.centre, extent=spec.extent,
                                phase=spec.phase, sensor=spec.sensor), 1.0 - s)
    (cx, cy), a = spec.centre, spec.extent
    # Strokes start and end this far beyond the sensor's edges, so that every pixel they cross sees the
    # shape arrive (ON) and leave (OFF) whichever way it moves.
    out = spec.radius + 4
    w, h = spec.sensor
    zero = np.zeros_like(s)
    g = spec.gesture
    if g == "swipe_right":
        return -out + (w - 1 + 2 * out) * _ease(s), cy + zero
    if g == "swipe_down":
        return cx + zero, -out + (h - 1 + 2 * out) * _ease(s)
    if g == "circle_cw":  # angle grows: clockwise on screen, where y points down
        th = spec.phase + 2 * np.pi * _ease(s)
        return cx + a * np.cos(th), cy + a * np.sin(th)
    if g in ("wave", "nod"):  # two back-and-forth cycles from a random start phase
        d = a * np.sin(spec.phase + 4 * np.pi * s)
        return (cx + d, cy + zero) if g == "wave" else (cx + zero, cy + d)
    # corner_down_right: in from above the top edge, down to the corner, stop, then right and out
    first = s < 0.5
    e = np.where(first, _ease(np.minimum(2 * s, 1.0)), _ease(np.maximum(2 * s - 1, 0.0)))
    x0, y1 = cx - a, cy + a
    x = np.where(first, x0, x0 + (w - 1 + out - x0) * e)
    y = np.where(first, -out + (y1 + out) * e, y1)
    return x, y


def shape_image(spec: GestureSpec, blur: float) -> tuple[np.ndarray, float]:
    """(image, c): the shape in linear intensity on black, its centre at image point (c, c)."""
    r = spec.radius
    half = int(math.ceil(r + 3 * blur + 2))
    n = 2 * half + 1
    sub = 4  # supersampling per pixel side: smooth edges
    q = (np.arange(n * sub) + 0.5) / sub - 0.5 - half
    dx, dy = np.meshgrid(q, q)
    rr = np.hypot(dx, dy)
    inside = {"disc": rr <= r, "square": np.maximum(abs(dx), abs(dy)) <= 0.85 * r,
              "diamond": abs(dx) + abs(dy) <= 1.2 * r, "ring": (rr <= r) & (rr >= 0.5 * r)}
    if spec.shape == "blob":
        fine = np.exp(-0.5 * (rr / (0.55 * r)) ** 2)
    elif spec.shape in inside:
        fine = inside[spec.shape].astype(np.float64)
    else:
        raise ConfigError(f"unknown gesture shape {spec.shape!r}; one of {', '.join(SHAPES)}")
    img = fine.reshape(n, sub, n, sub).mean(axis=(1, 3)) * spec.brightness
    return _blur(img, blur), float(half)


class GestureCamera:
    """The gesture sensor: `Pixels` with a fixed threshold pattern drawn from `seed`; `record` films one sample.

    Per-sample randomness (pixel reference phases, noise) comes from the `rng` given to `events`
    and `record`, so every sample can have its own seed.
    """

    def __init__(self, params: GestureParams | None = None, seed: int = 0) -> None:
        self.params = params or GestureParams()
        self.params.check()
        self.pixels = Pixels(self.params, np.random.default_rng(seed))

    def events(self, spec: GestureSpec, rng: np.random.Generator) -> np.ndarray:
        """The events (EVENT_DTYPE, time order, times from 0) of one sample."""
        p = self.params
        length_us = int(round(spec.length_ms * 1000))
        t = np.arange(0, length_us + 1, p.step_us, dtype=np.float64)
        s = (t - spec.rest_ms * 1000) / (spec.duration_ms * 1000)
        x, y = path(spec, s)
        img, c = shape_image(spec, p.blur)
        return self.pixels.view(img, t, x - c, y - c, 1.0, length_us / 1000, noise_hz=spec.noise_hz, rng=rng)

    def record(self, spec: GestureSpec, rng: np.random.Generator, *, sample: str | None = None,
               source: str | None = "synthetic-gestures") -> EventBatch:
        """One sample as an EventBatch: label = the class index in CLASSES, meta label_name = its name."""
        return EventBatch(self.events(spec, rng), self.params.width, self.params.height, sample=sample,
                          label=CLASSES.index(spec.gesture), source=source,
                          meta={"label_name": spec.gesture, "length_us": int(round(spec.length_ms * 1000))})


def sample_rng(seed: int, split: int, cls: int, k: int) -> np.random.Generator:
    """The generator of sample k of class `cls` in split `split` (0 train, 1 test, 2 the live stream)."""
    return np.random.default_rng([int(seed), split, cls, k])
