"""SyntheticSource: a simulated saccade camera recording still digits, paced like a replay; GestureSource:
random synthetic gestures one after another."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Iterable, Sequence

import numpy as np

from ..errors import ConfigError
from ..events import EventBatch
from ._pacing import Pacer
from .base import SourceBase, check_playback
from .files import time_chunks


class SyntheticSource(SourceBase):
    """One 34x34 N-MNIST-like sample per still image, made by `streamsnn.synth.SaccadeCamera`.

    - `images`: an (n, 28, 28) array or a sequence of 2-D grey images (0..255, bright digit on dark),
      with `labels` (same length) or None; or a sequence of `streamsnn.synth.images.Digit`; or None
      for endless font-rendered digits with random pose (no dataset needed).
    - Each batch is a whole sample: `sample` is "synth-<n>" (or the digit's own name, e.g.
      "mnist-101"), `label` set when known, `meta["end_of_sample"] = True`, plus `pass` and `index`.
      Timestamps start at 0 in every sample, as in N-MNIST files.
    - Pacing as ReplaySource: `speed=1.0` real time (one sample per recording length, ~312 ms),
      `speed=k` k times faster, `speed=0` as fast as the simulator goes. `loop` repeats the images
      forever; `limit` caps the number of samples. `seed` fixes the sensor and every recording.
    - `chunk_us`: deliver each sample in chunks of that much sensor time, as a live camera would
      (the last chunk carries end_of_sample), on one running clock: sample k's events are shifted
      to start k recording lengths after the first (a camera's clock does not restart per digit).
    """

    def __init__(self, images=None, labels: Sequence[int] | None = None, *, speed: float = 1.0,
                 loop: bool = False, limit: int | None = None, seed: int = 0, params=None,
                 chunk_us: int | None = None, progress=None) -> None:
        super().__init__(progress=progress)
        from ..synth import SaccadeCamera, SaccadeParams
        from ..synth.images import Digit

        check_playback("synthetic camera", speed, limit, chunk_us)
        self.chunk_us = chunk_us
        self.camera = SaccadeCamera(params or SaccadeParams(), seed)
        self.speed, self.loop, self.limit, self.seed = speed, loop, limit, seed
        self.pacer = Pacer(speed)
        self.name = "synthetic"
        self.digits: list[Digit] | None = None  # None: font-rendered digits
        if images is not None:
            self.digits = _as_digits(images, labels)
            if not self.digits:
                raise ConfigError("synthetic camera got no images; give at least one, or None for font digits")

    @classmethod
    def from_path(cls, path=None, *, first: int = 101, count: int | None = None, **kw) -> SyntheticSource:
        """The camera fed from a folder of MNIST idx files (test split, images `first`.. on; 101 skips
        the sources of the real N-MNIST test samples), a folder of PNG digits, or, with no path (or
        "font"), font-rendered digits; "gestures": random synthetic gestures (`GestureSource`). Other keywords
        go to the constructor."""
        from pathlib import Path

        from ..errors import InputError
        from ..synth.images import mnist_digits, png_digits

        if path is None or str(path) in ("", "font"):
            return cls(None, **kw)
        if str(path) == "gestures":
            return GestureSource(**kw)
        folder = Path(path)
        if not folder.is_dir():
            raise InputError(f"synthetic camera input {folder} is not a folder; "
                             "give a folder of MNIST idx files or PNG digits, or 'font'")
        if any(folder.glob("t10k-images-idx3-ubyte*")):
            return cls(mnist_digits(folder, "test", first, count), **kw)
        if any(folder.glob("train-images-idx3-ubyte*")):
            return cls(mnist_digits(folder, "train", first, count), **kw)
        digits = png_digits(folder)
        return cls(digits[:count] if count else digits, **kw)

    @property
    def sensor_size(self) -> tuple[int, int]:
        return (self.camera.params.width, self.camera.params.height)

    def _stream(self) -> Iterable[tuple[object, int]]:
        """(digit, pass) in emission order, endless for font digits or with loop."""
        from ..synth.images import font_digits

        if self.digits is None:
            for d in font_digits(self.limit if self.limit is not None else 1 << 62, seed=self.seed + 1):
                yield d, 0
            return
        passes = 0
        while True:
            for d in self.digits:
                yield d, passes
            passes += 1
            if not self.loop:
                return

    def _record(self, digit, n: int) -> EventBatch:
        name = digit.name if digit.name else f"synth-{n + 1}"
        return self.camera.record(digit.image, sample=name, label=digit.label, source="synthetic")

    def _length_us(self, batch: EventBatch) -> int:
        """How much sensor time a recording covers (the same for every digit)."""
        return int(self.camera.params.length * 1000)

    async def _batches(self) -> AsyncIterator[EventBatch]:
        items = iter(self._stream())
        emitted = clock = 0  # samples sent; where the next one starts on the pacing clock (us)
        pending: asyncio.Task | None = None

        def start(n):
            nxt = next(items, None)
            if nxt is None:
                return None
            return asyncio.create_task(asyncio.to_thread(self._record, nxt[0], n)), nxt[1]

        try:
            job = start(0)
            while job is not None and (self.limit is None or emitted < self.limit):
                pending, passes = job
                batch = await pending
                pending = None
                index = emitted if self.digits is None else emitted % len(self.digits)
                job = start(emitted + 1) if self.limit is None or emitted + 1 < self.limit else None
                meta = {**batch.meta, "pass": passes, "index": index}
                length_us = self._length_us(batch)
                if self.chunk_us:
                    t0 = clock + (batch.t_start or 0)  # where the sample starts on the pacing clock
                    if emitted:  # one running clock, as a camera's
                        ev = batch.events.copy()
                        ev["t"] += clock
                        batch = EventBatch(ev, batch.width, batch.height, sample=batch.sample, label=batch.label,
                                           source=batch.source, meta=batch.meta)
                    chunks = list(time_chunks(batch, self.chunk_us))
                    for k, (chunk, end) in enumerate(chunks):
                        await self.pacer.wait(t0 + end)
                        yield chunk.with_meta(meta={**meta, "end_of_sample": k == len(chunks) - 1})
                else:
                    await self.pacer.wait(clock + length_us)
                    yield batch.with_meta(meta={**meta, "end_of_sample": True})
                emitted += 1
                clock += length_us
        finally:
            if pending is not None:
                pending.cancel()
            if job is not None:
                job[0].cancel()


class GestureSource(SyntheticSource):
    """An endless stream of gestures (`streamsnn.synth.gestures`), each of a class drawn at random.

    Each batch is one gesture: `sample` "gesture-<n>", `label` its index in `gestures.CLASSES`,
    `meta["label_name"]` the gesture's name. Pacing, `limit`, `chunk_us` (one running clock) and
    `speed` as SyntheticSource; a gesture lasts its own length (motion plus rest, 0.4-1.6 s by
    default). `seed` fixes the sensor and every gesture; `loop` changes nothing (the stream is endless).
    """

    def __init__(self, *, speed: float = 1.0, loop: bool = True, limit: int | None = None, seed: int = 0,
                 params=None, chunk_us: int | None = None, progress=None) -> None:
        from ..synth.gestures import GestureCamera

        SourceBase.__init__(self, progress=progress)
        check_playback("synthetic gestures", speed, limit, chunk_us)
        self.chunk_us = chunk_us
        self.camera = GestureCamera(params, seed)
        self.speed, self.loop, self.limit, self.seed = speed, loop, limit, seed
        self.pacer = Pacer(speed)
        self.name = "synthetic"
        self.digits = None

    def _stream(self) -> Iterable[tuple[object, int]]:
        from ..synth.gestures import CLASSES

        rng = np.random.default_rng([self.seed, 3])
        n = 0
        while self.limit is None or n < self.limit:
            yield CLASSES[int(rng.integers(len(CLASSES)))], 0
            n += 1

    def _record(self, gesture, n: int) -> EventBatch:
        from ..synth.gestures import CLASSES, draw, sample_rng

        rng = sample_rng(self.seed, 2, CLASSES.index(gesture), n)
        spec = draw(self.camera.params, gesture, rng)
        return self.camera.record(spec, rng, sample=f"gesture-{n + 1}", source="synthetic")

    def _length_us(self, batch: EventBatch) -> int:
        return int(batch.meta["length_us"])


def _as_digits(images, labels) -> list:
    from ..synth.images import Digit

    if len(images) and isinstance(images[0], Digit):
        return list(images)
    if labels is not None and len(labels) != len(images):
        raise ConfigError(f"synthetic camera got {len(images)} images but {len(labels)} labels")
    out = []
    for n, img in enumerate(images):
        a = np.asarray(img)
        if a.ndim != 2:
            raise ConfigError(f"synthetic camera image {n} has shape {a.shape}; expected a 2-D grey image")
        out.append(Digit(a, None if labels is None else int(labels[n]), f"synth-{n + 1}"))
    return out
