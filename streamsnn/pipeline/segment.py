"""Cutting a stream of EventBatch into the windows the network classifies: whole samples or sliding time windows."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, InputError
from ..events import EventBatch
from ..textsafe import shown
from .evbuffer import EventBuffer

log = logging.getLogger(__name__)

#: Default bounds on one window or sample (see Segmenter): events, and sensor time of a sample.
MAX_EVENTS = 1_000_000
MAX_SAMPLE_US = 60_000_000
#: How overlapping stream windows reach the network (Segmenter's `overlap`; config segment.overlap).
#: "auto": "chunks" when window_us is a multiple of hop_us, else "inflight".
OVERLAPS = ("auto", "repeat", "inflight", "chunks")


def resolve_overlap(overlap: str, window_us: int, hop_us: int) -> str:
    """The overlap mode `overlap` means for these windows ("auto" made concrete)."""
    if overlap == "auto":
        return "chunks" if hop_us > 0 and window_us % hop_us == 0 else "inflight"
    return overlap


@dataclass(frozen=True)
class Piece:
    """One accepted stream batch, handed to the network as it arrives (overlap "inflight"/"chunks"): `epoch`
    names the window grid, `origin` is a window start on it (the windows start at origin + k * hop_us)."""

    batch: EventBatch
    epoch: int
    origin: int
    window_us: int
    hop_us: int
    chunks: bool


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
    learned: bool = False  # the network learned from this window (its label, or one feedback message)
    predicted: int | None = None  # the label published for this window (scored when feedback arrives)
    fresh: EventBatch | None = None  # continuous segmenter: stream events not handed on before (see Segmenter)
    key: tuple[int, int] | None = None  # overlap "inflight"/"chunks": (stream epoch, start) of its state in flight
    chunk_us: int = 0  # overlap "chunks": the window is scored as chunks of this much time (the hop)
    stream: int | None = None  # window mode: which stream of the segmenter (a new one at each restart); None: a sample

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

    Bad input never corrupts the state (the windows it makes are always valid EventBatches):

    - A stream batch that starts more than one window before the last event received, or comes from
      another sensor, starts a new stream (what was buffered is flushed); one that starts less than
      that before the last event (a duplicated or late packet) is refused with InputError, and the
      state is left as it was. A sample that changes sensor, or whose next batch starts before the
      sample's first event, is closed and begun anew; a batch that starts inside what the sample
      already holds is refused the same way.
    - No window holds more than `max_events` events, and no sample spans more than `max_sample_us`
      (0: no limit): a sample that reaches either bound is classified with what it has and the rest
      continues as a new window of the same sample id; a stream window that would overflow is
      classified early with the events it holds and the window grid restarts at the next event.
    `counters` counts `restarts` (new streams or samples begun anew) and `cut` (windows closed at a bound). Each
    stream window names its stream (`Window.stream`, a new number after each restart, a flush or a reset; not after
    a cut): a temporal network starts afresh there, and smoothing too.

    `continuous` (window mode, for a network that carries its state across windows, see
    `decide.temporal`): each stream window also carries in `fresh` the stream events not handed on with
    an earlier window (those since the previous window's end, plus those of windows skipped for
    `min_events`), so a network fed only `fresh` gets every event exactly once. The windows are the
    same as without it. Events waiting for a window are bounded by `max_events` (an idle sensor
    that never fills a window): beyond it the oldest are dropped, counted as `unfed`.

    `label_windows` (window mode): when the stream's batches belong to labelled samples (a simulated
    camera filming known digits, a replay played as one stream), each window takes the sample id,
    label and class name (`meta["label_name"]`) of the sample covering most of it (ties: the later one), as
    stream evaluation scores it.

    `overlap` (window mode; `OVERLAPS`): "repeat" hands the network each window whole when it closes.
    "inflight" (the default, `defaults.OVERLAP`) and "chunks" also hand on each accepted stream batch as a
    `Piece` (`take_pieces()` after each `feed`, to be fed before the windows that `feed` returned are
    decided; see `inflight.InFlight`) and key
    each window by (stream epoch, start): "inflight" feeds every window's own state while its events
    arrive (the same decisions as "repeat"), "chunks" feeds each hop-long chunk once and scores a window
    as the sum of its chunks (`window_us` must be a multiple of `hop_us`). The epoch changes whenever the
    window grid starts over (a new stream, a cut, a reset), so a state never meets another grid's window.
    """

    def __init__(self, mode: str = "auto", window_us: int = 100_000, hop_us: int = 50_000, min_events: int = 1, *,
                 max_events: int = MAX_EVENTS, max_sample_us: int = MAX_SAMPLE_US, label_windows: bool = False,
                 continuous: bool = False, overlap: str = "repeat"):
        if max_events < 1 or max_sample_us < 0:
            raise ValueError("max_events must be positive and max_sample_us >= 0")
        if overlap not in OVERLAPS:
            raise ConfigError(f"segment.overlap must be one of {', '.join(OVERLAPS)}, got {shown(overlap)}")
        overlap = resolve_overlap(overlap, window_us, hop_us)
        if overlap == "chunks" and window_us % hop_us:
            raise ConfigError(f"segment.overlap = \"chunks\" needs window_us a multiple of hop_us, got {window_us} "
                              f"and {hop_us}; change one, or use overlap = \"inflight\"")
        self.overlap = overlap
        self._epoch = 0
        self.mode, self.window_us, self.hop_us, self.min_events = mode, window_us, hop_us, min_events
        self.label_windows, self.continuous = label_windows, continuous
        self.max_events, self.max_sample_us = max_events, max_sample_us
        self.counters = {"restarts": 0, "cut": 0}
        self._stream_cuts = 0  # of `cut`, the stream windows (logged, `_say_cut`)
        self.reset()

    def reset(self) -> None:
        """Forget every open sample and window (the counters stay)."""
        self._parts: list[EventBatch] = []        # pieces of the current sample
        self._part_events = 0
        self._span: tuple[int, int] | None = None  # first and last timestamp of the current sample
        self._buf = EventBuffer()                 # stream events not yet behind the window start
        self._start: int | None = None            # start of the next sliding window (None: at the next event)
        self._proto: EventBatch | None = None     # sensor size and source of the stream (None: no stream)
        self._last: int | None = None             # last stream timestamp received
        self._spans: list[list] = []              # label_windows: [sample, label, first t, last t + 1, class name]
        self._unfed = EventBuffer()               # continuous: stream events not yet handed on as a window's `fresh`
        self._pieces: list[Piece] = []            # overlap: accepted stream batches not yet taken
        self._epoch = getattr(self, "_epoch", 0) + 1  # a new window grid: states of the old one never match
        self._stream = getattr(self, "_stream", 0) + 1  # a new stream: a temporal network's state must not carry

    def take_pieces(self) -> list[Piece]:
        """The stream batches the last `feed` accepted (overlap "inflight"/"chunks"; else none)."""
        pieces, self._pieces = self._pieces, []
        return pieces

    def feed(self, batch: EventBatch) -> list[Window]:
        """The windows this batch completes; InputError (state unchanged) for a duplicated or late batch."""
        self._pieces = []  # only this call's: never more than one batch waits to be taken
        if len(batch) > self.max_events:  # keep every window within the bound
            pieces = batch.split_count(self.max_events)
            end = bool(batch.meta.get("end_of_sample"))
            out: list[Window] = []
            for i, piece in enumerate(pieces):
                last = i == len(pieces) - 1
                out += self._feed_one(piece.with_meta(meta={**batch.meta, "end_of_sample": end and last}))
            return out
        return self._feed_one(batch)

    def _feed_one(self, batch: EventBatch) -> list[Window]:
        per_sample = self.mode == "sample" or (
            self.mode == "auto" and batch.sample is not None)
        if per_sample:
            return self._feed_sample(batch)
        return self._feed_stream(batch)

    def flush(self) -> list[Window]:
        """Windows still open when the source ends (a partial sample, the last partial time window)."""
        return self._close_sample() + self._flush_stream()

    # -- per sample -------------------------------------------------------------------------------
    def _feed_sample(self, batch: EventBatch) -> list[Window]:
        out = []
        if self._parts:
            current = self._parts[0]
            if current.sample != batch.sample:
                out += self._close_sample()
            elif batch.sensor_size != current.sensor_size or (
                    len(batch) and self._span is not None and batch.t_start < self._span[0]):
                self.counters["restarts"] += 1  # another sensor, or the sample from its start again
                out += self._close_sample()
            elif len(batch) and self._span is not None and batch.t_start < self._span[1]:
                raise InputError(
                    f"batch of sample {shown(batch.sample)} starts at {batch.t_start} us, inside what the sample "
                    f"already holds ({self._span[0]}..{self._span[1]} us): a duplicated or late packet, skipped")
        if self._parts and self._part_events + len(batch) > self.max_events:
            self.counters["cut"] += 1  # the sample would grow past the bound: classify what it has
            out += self._close_sample()
        self._parts.append(batch)
        self._part_events += len(batch)
        if len(batch):
            self._span = (batch.t_start if self._span is None else self._span[0], batch.t_end)
        if batch.meta.get("end_of_sample", False) or self.mode == "sample" and batch.sample is None:
            out += self._close_sample()
        elif self._part_events >= self.max_events or (
                self.max_sample_us and self._span is not None and self._span[1] - self._span[0] >= self.max_sample_us):
            self.counters["cut"] += 1
            out += self._close_sample()
        return out

    def _close_sample(self) -> list[Window]:
        if not self._parts:
            return []
        whole = EventBatch.concatenate(self._parts) if len(self._parts) > 1 else self._parts[0]
        self._parts, self._part_events, self._span = [], 0, None
        if len(whole) < self.min_events:
            return []
        return [Window(whole, whole.t_start, whole.t_end, whole.sample, whole.label, whole.source)]

    # -- sliding windows ------------------------------------------------------------------------
    def _feed_stream(self, batch: EventBatch) -> list[Window]:
        if not len(batch):
            return self._close_sample()
        t0 = batch.t_start
        restart = False
        if self._proto is not None:
            if batch.sensor_size != self._proto.sensor_size or t0 < self._last - self.window_us:
                restart = True  # another sensor, or the clock went back (a looping recording): start over
            elif t0 < self._last:
                raise InputError(
                    f"stream batch starts at {t0} us, before the last event already received ({self._last} us): "
                    "a duplicated or late packet, skipped")
        out = self._close_sample()
        if restart:
            self.counters["restarts"] += 1
            out += self._flush_stream()
        if len(self._buf) + len(batch) > self.max_events:  # the window would hold too much: classify it now
            self.counters["cut"] += 1
            self._say_cut()
            if len(self._buf) >= self.min_events:
                out.append(self._window(self._buf.copy(), self._start, self._last + 1))
            self._buf.clear()
            self._start = None
            self._epoch += 1
        if self._proto is None:
            self._proto = batch
        if self._start is None:
            self._start = t0
        if self.label_windows and batch.sample is not None and batch.label is not None:
            if self._spans and self._spans[-1][0] == batch.sample:
                self._spans[-1][3] = batch.t_end + 1
            else:
                self._spans.append([batch.sample, int(batch.label), t0, batch.t_end + 1, batch.meta.get("label_name")])
        self._last = batch.t_end
        self._buf.append(batch.events)
        if self.continuous:
            self._hold(batch.events)
        if self.overlap != "repeat":
            self._pieces.append(Piece(batch, self._epoch, self._start, self.window_us, self.hop_us,
                                      self.overlap == "chunks"))
        W, H = self.window_us, self.hop_us
        while len(self._buf) and int((t := self._buf.t)[-1]) >= self._start + W:
            if int(t[0]) >= self._start + W:  # nothing in this window: jump ahead to the next event
                self._start += ((int(t[0]) - self._start - W) // H + 1) * H
                continue
            hi = int(np.searchsorted(t, self._start + W, side="left"))
            if hi >= self.min_events:
                out.append(self._window(self._buf.copy(0, hi), self._start, self._start + W))
            self._start += H
            self._buf.drop(int(np.searchsorted(t, self._start, side="left")))
        while len(self._spans) > 1 and self._spans[0][3] <= self._start:  # behind every window to come
            self._spans.pop(0)
        return out

    def _say_cut(self) -> None:
        """Log a stream window cut at the bound: the 1st, 10th, 100th, ... (every one is counted)."""
        self._stream_cuts = n = self._stream_cuts + 1
        if n != 10 ** (len(str(n)) - 1):
            return
        span = self._last - self._start + 1  # both set: the buffer holds this window's events
        rate = f"about {len(self._buf) / span:.1f} M events/s"
        log.warning("stream window cut at segment.max_events (%d events; %d stream windows cut so far) after %.1f ms "
                    "of its %.1f ms: the sensor gives %s, so decisions come less often than every hop; raise "
                    "segment.max_events or shorten segment.window_us (counted in the metrics: segment.cut)",
                    self.max_events, n, span / 1e3, self.window_us / 1e3, rate)

    def _flush_stream(self) -> list[Window]:
        out = []
        if self._start is not None and len(self._buf) >= self.min_events:
            out.append(self._window(self._buf.copy(), self._start, self._start + self.window_us))
        self._buf.clear()
        self._unfed.clear()
        self._start = self._proto = self._last = None
        self._spans = []
        self._epoch += 1
        self._stream += 1
        return out

    def _hold(self, events: np.ndarray) -> None:
        """Keep stream events until a window hands them on (continuous), at most `max_events` of them."""
        held = self._unfed
        held.append(events)
        if len(held) > self.max_events:
            self.counters["unfed"] = self.counters.get("unfed", 0) + len(held) - self.max_events
            held.drop(len(held) - self.max_events)

    def _take_fresh(self, t_end: int) -> np.ndarray:
        """The held events before `t_end`, no longer held (continuous)."""
        k = int(np.searchsorted(self._unfed.t, t_end, side="left"))
        fresh = self._unfed.copy(0, k)
        self._unfed.drop(k)
        return fresh

    def _window(self, events: np.ndarray, t_start: int, t_end: int) -> Window:
        p = self._proto
        sample = label = class_name = None
        best = 0
        for name, lab, a, b, cls in self._spans:  # the labelled sample covering most of the window
            overlap = min(b, t_end) - max(a, t_start)
            if overlap > 0 and overlap >= best:
                sample, label, class_name, best = name, lab, cls, overlap
        # the events of accepted batches of one sensor, in time order: valid without checking them again (a
        # read-only copy, evbuffer.EventBuffer.copy); the class name kept (a model's classes in another order)
        meta = {} if class_name is None else {"label_name": class_name}
        batch = p._trusted(events, sample=sample, label=label, meta=meta)
        fresh = None
        if self.continuous:
            fresh = p._trusted(self._take_fresh(t_end), sample=None, label=None, meta={})
        key = (self._epoch, int(t_start)) if self.overlap != "repeat" else None
        return Window(batch, t_start, t_end, sample=sample, label=label, source=p.source, fresh=fresh, key=key,
                      chunk_us=self.hop_us if self.overlap == "chunks" else 0, stream=self._stream)
