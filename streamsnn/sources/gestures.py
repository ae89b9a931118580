"""GestureSource: random synthetic gestures one after another, on one running clock, paced like the synthetic camera."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ..events import EventBatch
from ._pacing import Pacer
from .base import SourceBase, check_playback
from .synthetic import SyntheticSource


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
