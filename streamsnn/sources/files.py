"""ReplaySource: replay one event file or a whole dataset folder, paced by sensor time."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import AsyncIterator, Iterator

import numpy as np

from ..errors import ConfigError, InputError
from ..events import EventBatch, time_cuts
from ..textsafe import printable
from ._pacing import Pacer
from .base import SourceBase, check_playback

log = logging.getLogger("streamsnn.sources")

#: Default chunk length for one long recording (10 ms of sensor time).
CHUNK_US = 10_000


def time_chunks(batch: EventBatch, chunk_us: int) -> Iterator[tuple[EventBatch, int]]:
    """Consecutive `chunk_us` windows of a recording as (chunk, end offset in us from its first event).

    The end offset is when the window closes in sensor time (the last one closes at the last event),
    i.e. when a live camera would have delivered it. Empty windows are skipped; an empty batch gives
    one empty chunk so that a sample is never lost.
    """
    if not len(batch):
        yield batch, 0
        return
    t = batch.events["t"]
    span = int(t[-1] - t[0])
    starts, k = time_cuts(t, chunk_us)
    stops = np.append(starts[1:], len(t))
    for a, b, n in zip(starts.tolist(), stops.tolist(), k.tolist()):
        yield batch.slice_count(a, b), min((n + 1) * chunk_us, span)


class ReplaySource(SourceBase):
    """Events from a file (any format `streamsnn.io.read_events` reads) or a dataset (`open_dataset`).

    - Dataset, any layout: a folder or `tonic:<Class>:<folder>` (optionally one `split`): one batch
      per sample, whole, with `sample`, `label` (class index), `meta["label_name"]` (class name)
      and `meta["end_of_sample"] = True` (with `chunk_us` set, samples come in chunks instead and the
      last chunk carries end_of_sample). Samples that fail to load are logged, counted in
      `counters["bad_samples"]` and skipped. `shuffle` reorders each pass (reproducibly, from `seed`).
    - One file: consecutive `chunk_us` chunks (default 10 ms); the last one has end_of_sample. With
      `loop`, later passes are shifted in time so timestamps keep increasing. `open()` checks only
      its header; a file whose events cannot be decoded ends the iteration with its InputError.
    - A folder of unlabelled recordings (e.g. the DVS128 .aedat files of one camera): each file in
      name order, as above, on one timeline (each file is shifted to start a chunk after the
      previous one ends); with `split="all"` it plays per sample as a dataset instead. `open()`
      checks headers only. Files that fail to read (bad header, corrupt or empty data, a decoder
      past its deadline) or come from a sensor of another size are logged, counted in
      `counters["bad_samples"]` and skipped; the next file plays.
    - Decoding runs in a worker thread (native decoders in a worker process); closing or cancelling
      the replay abandons a decode in progress within ~50 ms (a file, a labelled recording being
      cut into samples), so a stuck file never blocks a stop.
    - Pacing by sensor time: `speed=1.0` real time, `speed=k` k times faster, `speed=0` unpaced.
      Each batch goes out when its sensor time has elapsed (a sample when it ends), on fixed
      wall-clock deadlines, so the replay does not drift. A reader that falls behind gets the overdue
      batches at once; those over 10 ms late are counted in `counters["late"]`.
    - `loop` repeats forever; `limit` caps the number of samples (a file counts as one per pass).
    `meta` also holds `pass` (0-based repeat count) and `index` (sample number within the pass).
    """

    def __init__(self, path, *, speed: float = 1.0, split: str | None = None, loop: bool = False,
                 limit: int | None = None, shuffle: bool = False, seed: int = 0,
                 chunk_us: int | None = None, progress=None) -> None:
        super().__init__(progress=progress)
        check_playback("replay", speed, limit, chunk_us)
        self.path = Path(path)
        self.name = str(path) if str(path).startswith("tonic:") else str(self.path)
        self.speed, self.split, self.loop, self.limit = speed, split, loop, limit
        self.shuffle, self.seed, self.chunk_us = shuffle, seed, chunk_us
        self.pacer = Pacer(speed)
        self.counters["bad_samples"] = 0
        self.counters["late"] = 0  # batches that went out over 10 ms behind their paced time (see _paced)
        self.dataset = None  # set by open() for a folder
        self.recording: EventBatch | None = None  # the first recording decoded (one file or a folder)
        self.files: list[Path] = []  # set by open() for one file or a folder of recordings
        self._sensor: tuple[int, int] | None = None  # of the files: from the first readable header
        self._skip: set[Path] = set()  # files refused by open(), already counted
        self._opened = False

    # -- opening ---------------------------------------------------------------------------------
    def _open(self) -> None:
        from ..io import open_dataset, probe
        from ..io.tonicdata import is_spec

        if is_spec(self.name) or self.path.is_dir():
            ds = open_dataset(self.name if is_spec(self.name) else self.path)
            if ds.layout == "recordings" and not self.split:
                # unlabelled recordings: one timeline, file after file (see the class docstring)
                self.files = [s.path for s in ds.samples]
                log.info("replay: %s holds no labels (no label lists, class folders or <name>_labels.csv); "
                         "playing its %d recordings one after another, unlabelled", self.path, len(self.files))
                for path in self.files:  # the first file with a sound header sets the sensor size
                    try:
                        self._sensor = probe(path)[1]
                        return
                    except InputError as exc:
                        self._skip.add(path)
                        self._bad("recording", exc)
                raise InputError(f"{self.path}: none of its {len(self.files)} recordings has a readable "
                                 "header; see the lines above")
            if self.split:
                ds = ds.split(self.split)
            if not len(ds):
                where = f" in split {self.split!r}" if self.split else ""
                raise InputError(f"{self.path}: dataset has no samples{where}")
            self.dataset = ds
        else:
            if self.split:
                raise ConfigError(f"replay split {self.split!r} applies to dataset folders, but {self.path} is a file")
            self._sensor = probe(self.path)[1]  # the header only: decoding happens while replaying
            self.files = [self.path]

    async def open(self) -> None:
        """Open the dataset or check the file's header (in a worker thread); raises InputError if it cannot."""
        if not self._opened:
            await asyncio.to_thread(self._open)
            self._opened = True

    async def __aenter__(self) -> ReplaySource:
        await self.open()
        return self

    @property
    def sensor_size(self) -> tuple[int, int] | None:
        if self.dataset is not None:
            return self.dataset.sensor_size
        return self._sensor

    def _bad(self, what: str, exc: Exception) -> None:
        self.counters["bad_samples"] += 1
        log.warning("replay: skipped a %s: %s", what, printable(str(exc)))

    async def _read(self, load, *args) -> EventBatch:
        """`load(*args, cancel=event)` in a worker thread; cancelling the caller abandons the decode."""
        cancel = threading.Event()
        try:
            return await asyncio.to_thread(load, *args, cancel=cancel)
        except asyncio.CancelledError:
            cancel.set()  # the thread's decoder worker is killed and the thread ends within ~50 ms
            raise

    # -- replay ----------------------------------------------------------------------------------
    async def _paced(self, offset_us: float) -> None:
        """Wait until the item at `offset_us` is due. An item already over 10 ms overdue (the reader, e.g.
        an overloaded pipeline, fell behind the pace) is counted in `counters["late"]`: a paced replay
        that is late does not drop, it falls behind, and this says so."""
        await self.pacer.wait(offset_us)
        self.counters["late"] = self.pacer.late

    def _order(self, n: int, rng: np.random.Generator) -> list[int]:
        return list(rng.permutation(n)) if self.shuffle else list(range(n))

    async def _batches(self) -> AsyncIterator[EventBatch]:
        await self.open()
        gen = self._dataset_batches() if self.dataset is not None else self._file_batches()
        try:
            async for batch in gen:
                yield batch
        finally:
            await gen.aclose()

    async def _file_batches(self) -> AsyncIterator[EventBatch]:
        chunk_us = self.chunk_us or CHUNK_US
        at = 0  # where the next recording starts on the replay's timeline, in us after the first event
        emitted, passes = 0, 0
        while True:
            emitted_before = emitted
            for index, path in enumerate(self.files):
                if self.limit is not None and emitted >= self.limit:
                    return
                if path in self._skip and passes == 0:
                    continue  # refused by open(), counted there
                rec = await self._read_file(path)
                if rec is None:
                    continue
                first = self.recording
                shift = first.t_start + at - rec.t_start if len(rec) and len(first) else 0
                chunks = list(time_chunks(rec, chunk_us))
                for k, (chunk, end) in enumerate(chunks):
                    await self._paced(at + end)
                    if shift:  # chunk by chunk: no copy of the whole recording (a pause) at each pass
                        chunk = chunk.with_events(_shift(chunk.events, shift))
                    yield chunk.with_meta(meta={"pass": passes, "index": index,
                                               "end_of_sample": k == len(chunks) - 1})
                at += rec.duration_us + chunk_us  # a chunk's gap before the next recording
                emitted += 1
            passes += 1
            # an empty recording is sent once, not forever; unreadable files do not spin
            if not self.loop or self.recording is None or not len(self.recording) or emitted == emitted_before:
                return

    async def _read_file(self, path: Path) -> EventBatch | None:
        """Decode one file; in a folder, None (logged, counted) when it cannot be used.

        One file alone: its InputError ends the replay. Its events are kept for later passes.
        """
        from ..io import read_events

        if len(self.files) == 1 and self.recording is not None:
            return self.recording
        try:
            rec = await self._read(read_events, path)
        except InputError as exc:
            if len(self.files) == 1 and not self.path.is_dir():
                raise
            self._bad("recording", exc)
            return None
        if self._sensor is None or not self.path.is_dir():
            self._sensor = rec.sensor_size  # a Prophesee header without geometry: the first events decide
        if rec.sensor_size != self._sensor:
            self._bad("recording", InputError(f"{path}: its {rec.width}x{rec.height} sensor differs from the "
                                              f"{self._sensor[0]}x{self._sensor[1]} of the folder's first recording"))
            return None
        if self.recording is None:
            self.recording = rec  # the timeline starts at the first recording played
        return rec

    async def _dataset_batches(self) -> AsyncIterator[EventBatch]:
        samples = self.dataset.samples
        rng = np.random.default_rng(self.seed)
        offset, emitted, passes = 0, 0, 0
        pending: asyncio.Task | None = None
        try:
            while True:
                order = self._order(len(samples), rng)
                if not order:
                    return
                pending = asyncio.create_task(self._read(samples[order[0]].load))
                emitted_before = emitted
                for pos, i in enumerate(order):
                    if self.limit is not None and emitted >= self.limit:
                        return
                    try:
                        batch = await pending
                    except InputError as exc:
                        self._bad("sample", exc)
                        batch = None
                    pending = (asyncio.create_task(self._read(samples[order[pos + 1]].load))
                               if pos + 1 < len(order) else None)
                    if batch is None:
                        continue
                    meta = {"pass": passes, "index": pos, "split": samples[i].split,
                            "label_name": samples[i].label_name}
                    if self.chunk_us:
                        chunks = list(time_chunks(batch, self.chunk_us))
                        for k, (chunk, end) in enumerate(chunks):
                            await self._paced(offset + end)
                            yield chunk.with_meta(meta={**meta, "end_of_sample": k == len(chunks) - 1})
                    else:
                        await self._paced(offset + batch.duration_us)
                        yield batch.with_meta(meta={**batch.meta, **meta, "end_of_sample": True})
                    offset += batch.duration_us
                    emitted += 1
                passes += 1
                if not self.loop or emitted == emitted_before:  # stop rather than spin on unreadable data
                    return
        finally:
            if pending is not None:
                pending.cancel()


def _shift(events: np.ndarray, dt: int) -> np.ndarray:
    out = events.copy()
    out["t"] += dt
    return out
