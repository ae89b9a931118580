"""Cutting a stream of EventBatch into the windows the network classifies: whole samples or sliding time windows."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .events import EVENT_DTYPE, EventBatch


@dataclass
class Window:
    """The events of one decision: a whole sample (sample id, maybe a label) or a time window of a stream."""

    batch: EventBatch
    t_start_us: int
    t_end_us: int
    sample: str | None = None
    label: int | None = None
    source: str | None = None
    ready: float = field(default_factory=time.monotonic)  # when the window was complete (for latency)

    @property
    def events(self) -> int:
        return len(self.batch)


class Segmenter:
    """Turns batches into windows.

    mode "sample": batches of one sample id are joined until `meta["end_of_sample"]` (or until the
    sample id changes) and become one window. mode "window": sliding windows of `window_us`, one
    every `hop_us`, over the event timestamps; windows with fewer than `min_events` are skipped.
    mode "auto": a batch with a sample id (dataset replay, labelled packets) is segmented per sample,
    any other batch (a camera, a stream, one long recording) by sliding windows.
    """

    def __init__(self, mode: str = "auto", window_us: int = 100_000, hop_us: int = 50_000, min_events: int = 1):
        self.mode, self.window_us, self.hop_us, self.min_events = mode, window_us, hop_us, min_events
        self._parts: list[EventBatch] = []        # pieces of the current sample
        self._buf = np.empty(0, EVENT_DTYPE)      # stream events not yet behind the window start
        self._start: int | None = None            # start of the next sliding window
        self._proto: EventBatch | None = None     # sensor size and source of the stream

    def feed(self, batch: EventBatch) -> list[Window]:
        per_sample = self.mode == "sample" or (
            self.mode == "auto" and batch.sample is not None)
        if per_sample:
            return self._feed_sample(batch)
        return self._feed_stream(batch)

    def flush(self) -> list[Window]:
        """Windows still open when the source ends (a partial sample, the last partial time window)."""
        out = self._close_sample()
        if self._start is not None and len(self._buf) >= self.min_events:
            out.append(self._window(self._buf, self._start, self._start + self.window_us))
        self._buf = np.empty(0, EVENT_DTYPE)
        self._start = None
        return out

    # -- per sample -------------------------------------------------------------------------------
    def _feed_sample(self, batch: EventBatch) -> list[Window]:
        out = []
        if self._parts and self._parts[0].sample != batch.sample:
            out += self._close_sample()
        self._parts.append(batch)
        if batch.meta.get("end_of_sample", False) or self.mode == "sample" and batch.sample is None:
            out += self._close_sample()
        return out

    def _close_sample(self) -> list[Window]:
        if not self._parts:
            return []
        whole = EventBatch.concatenate(self._parts) if len(self._parts) > 1 else self._parts[0]
        self._parts = []
        if len(whole) < self.min_events:
            return []
        return [Window(whole, whole.t_start, whole.t_end, whole.sample, whole.label, whole.source)]

    # -- sliding windows ------------------------------------------------------------------------
    def _feed_stream(self, batch: EventBatch) -> list[Window]:
        out = self._close_sample()
        if not len(batch):
            return out
        t0 = int(batch.events["t"][0])
        if self._start is not None and (batch.sensor_size != self._proto.sensor_size
                                        or t0 < self._start - self.window_us):
            out += self.flush()  # another sensor, or the clock went back (a looping recording): start over
        if self._start is None:
            self._proto, self._start = batch, t0
        self._buf = np.concatenate([self._buf, batch.events]) if len(self._buf) else batch.events
        W, H = self.window_us, self.hop_us
        while len(self._buf) and int(self._buf["t"][-1]) >= self._start + W:
            t = self._buf["t"]
            if int(t[0]) >= self._start + W:  # nothing in this window: jump ahead to the next event
                self._start += ((int(t[0]) - self._start - W) // H + 1) * H
                continue
            hi = int(np.searchsorted(t, self._start + W, side="left"))
            if hi >= self.min_events:
                out.append(self._window(self._buf[:hi], self._start, self._start + W))
            self._start += H
            self._buf = self._buf[int(np.searchsorted(t, self._start, side="left")):]
        return out

    def _window(self, events: np.ndarray, t_start: int, t_end: int) -> Window:
        p = self._proto
        return Window(EventBatch(events.copy(), p.width, p.height, source=p.source), t_start, t_end, source=p.source)
