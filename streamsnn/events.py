"""EventBatch: a validated block of DVS events (NumPy structured array) with its sensor size."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable

import numpy as np

from .errors import InputError

#: One DVS event: timestamp in microseconds, pixel column and row, polarity (1 = ON, 0 = OFF).
EVENT_DTYPE = np.dtype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])

def join_events(parts: Iterable[np.ndarray]) -> np.ndarray:
    """Event arrays joined in order: `np.concatenate` done on their bytes (the same result; numpy copies a
    structured array field by field, many times slower, which matters per packet)."""
    joined = np.concatenate([np.ascontiguousarray(p, EVENT_DTYPE).view(np.uint8) for p in parts])
    return joined.view(EVENT_DTYPE)


#: Largest sensor side (pixels) streamsnn accepts anywhere: files, streams, packets, cameras.
#: Real event cameras stay far below it (1280 x 720 for the largest Prophesee sensors), and it
#: bounds what one announced sensor size can make the network, the live view or a decoder allocate.
MAX_SENSOR_SIDE = 4096

#: Largest absolute timestamp (us) accepted: 2**53 (285 years; exact in float64, far from int64 wrap).
MAX_TIME_US = 1 << 53


def make_events(t, x, y, p) -> np.ndarray:
    """Build a structured event array from four equally long sequences: pixel coordinates 0..65535 (InputError
    otherwise, never wrapped around), polarity ON where `p` is above 0 (1/0 or +1/-1 alike)."""
    t = np.asarray(t)
    out = np.empty(t.shape[0], dtype=EVENT_DTYPE)
    out["t"] = t
    for name, v in (("x", x), ("y", y)):
        v = np.asarray(v)
        if v.dtype != np.uint16 and v.size and (v.min() < 0 or v.max() > 0xFFFF):
            raise InputError(f"event {name} coordinates run {v.min()}..{v.max()}; a pixel is 0..65535 "
                             "(within the sensor)")
        out[name] = v
    p = np.asarray(p)
    out["p"] = p if p.dtype in (np.uint8, np.bool_) and (not p.size or p.max() <= 1) else p > 0
    return out


def as_event_array(events: np.ndarray) -> np.ndarray:
    """Convert any structured array with fields t, x, y, p (any integer/bool types) to EVENT_DTYPE."""
    if events.dtype == EVENT_DTYPE:
        return events
    names = events.dtype.names or ()
    missing = [f for f in ("t", "x", "y", "p") if f not in names]
    if missing:
        raise InputError(f"event array lacks field(s) {', '.join(missing)}; expected fields t, x, y, p")
    return make_events(events["t"], events["x"], events["y"], np.asarray(events["p"]) > 0)


def time_cuts(t: np.ndarray, dt_us: int) -> tuple[np.ndarray, np.ndarray]:
    """For non-decreasing times `t` (at least one): where each non-empty stretch of `dt_us` from t[0] starts (an
    index into t) and its number (stretch k holds t[0] + k dt_us <= t < t[0] + (k + 1) dt_us). The work follows
    the events, not the time they span: one timestamp days ahead costs nothing."""
    bins = (t - t[0]) // dt_us
    starts = np.concatenate(([0], np.flatnonzero(np.diff(bins)) + 1))
    return starts, bins[starts]


@dataclass(frozen=True)
class EventBatch:
    """Events from one sensor, in time order, with optional sample metadata.

    `events` is a 1-D array of EVENT_DTYPE. `width` x `height` is the sensor size; every event lies
    inside it and timestamps never decrease (checked by `validate`, which the constructor calls).
    `sample` and `label` are known for dataset replay (sample id, class index) and None for live
    streams; `source` names where the events came from (a path, a camera, an address).
    """

    events: np.ndarray
    width: int
    height: int
    sample: str | None = None
    label: int | None = None
    source: str | None = None
    meta: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "events", as_event_array(np.asarray(self.events)))
        self.validate()

    # -- checks -------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise InputError naming the first offending index if the batch is not well formed."""
        ev = self.events
        where = f" in {self.source}" if self.source else ""
        if ev.ndim != 1:
            raise InputError(f"events{where} must be a 1-D array, got shape {ev.shape}")
        if self.width <= 0 or self.height <= 0:
            raise InputError(f"sensor size{where} must be positive, got {self.width}x{self.height}")
        if self.width > MAX_SENSOR_SIDE or self.height > MAX_SENSOR_SIDE:
            raise InputError(f"sensor size{where} {self.width}x{self.height} exceeds the largest streamsnn "
                             f"accepts ({MAX_SENSOR_SIDE}x{MAX_SENSOR_SIDE}); the header or packet is corrupt")
        if ev.size == 0:
            return
        t0, t1 = int(ev["t"][0]), int(ev["t"][-1])
        if abs(t0) > MAX_TIME_US or abs(t1) > MAX_TIME_US:
            raise InputError(f"timestamps{where} reach {max(abs(t0), abs(t1))} us, beyond the largest "
                             f"accepted ({MAX_TIME_US} us); the data is corrupt")
        if ev["p"].max() > 1:
            raise InputError(f"polarity{where} holds {int(ev['p'].max())}; an event's p is 1 (ON) or 0 (OFF) "
                             "(make_events maps any value above 0 to ON)")
        bad = np.flatnonzero((ev["x"] >= self.width) | (ev["y"] >= self.height))
        if bad.size:
            i = int(bad[0])
            raise InputError(
                f"event {i}{where} at x={int(ev['x'][i])}, y={int(ev['y'][i])} lies outside the "
                f"{self.width}x{self.height} sensor; check the sensor size or the file format"
            )
        dec = np.flatnonzero(np.diff(ev["t"]) < 0)
        if dec.size:
            i = int(dec[0]) + 1
            raise InputError(
                f"timestamps{where} decrease at event {i} ({int(ev['t'][i - 1])} -> {int(ev['t'][i])} us); "
                "sort the events by time first"
            )

    # -- basic facts --------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.events.shape[0])

    @property
    def t_start(self) -> int | None:
        return int(self.events["t"][0]) if len(self) else None

    @property
    def t_end(self) -> int | None:
        return int(self.events["t"][-1]) if len(self) else None

    @property
    def duration_us(self) -> int:
        return (self.t_end - self.t_start) if len(self) else 0

    @property
    def sensor_size(self) -> tuple[int, int]:
        return (self.width, self.height)

    def with_events(self, events: np.ndarray) -> EventBatch:
        """Same sensor and metadata, other events (validated)."""
        return replace(self, events=events)

    def with_meta(self, **changes) -> EventBatch:
        """Same events, other `sample`, `label`, `source` or `meta`; the events are not checked again."""
        bad = set(changes) - {"sample", "label", "source", "meta"}
        if bad:
            raise TypeError(f"with_meta changes only sample, label, source and meta, not {', '.join(sorted(bad))}")
        return self._trusted(self.events, **changes)

    def _trusted(self, events: np.ndarray, **changes) -> EventBatch:
        """A batch known to be valid (a slice of this one, or new metadata): skips `validate`."""
        new = object.__new__(EventBatch)
        state = vars(new)  # a frozen dataclass's fields, set without `fields()` (per packet: it is slow)
        state.update(vars(self))
        state.update(changes)
        state["events"] = events
        return new

    # -- slicing ------------------------------------------------------------------------------
    def slice_count(self, start: int, stop: int | None = None) -> EventBatch:
        """Events with index in [start, stop)."""
        return self._trusted(self.events[start:stop])  # a slice of a valid batch is valid

    def slice_time(self, t_start: int | None = None, t_end: int | None = None) -> EventBatch:
        """Events with t_start <= t < t_end (either bound may be None). Uses binary search."""
        t = self.events["t"]
        lo = 0 if t_start is None else int(np.searchsorted(t, t_start, side="left"))
        hi = len(t) if t_end is None else int(np.searchsorted(t, t_end, side="left"))
        return self._trusted(self.events[lo:max(lo, hi)])

    def split_count(self, n: int) -> list[EventBatch]:
        """Consecutive batches of at most n events."""
        if n <= 0:
            raise ValueError("n must be positive")
        return [self.slice_count(i, i + n) for i in range(0, len(self), n)]

    def split_time(self, dt_us: int) -> list[EventBatch]:
        """Consecutive batches covering dt_us each, starting at the first event (empty ones dropped)."""
        if dt_us <= 0:
            raise ValueError("dt_us must be positive")
        if not len(self):
            return []
        starts, _ = time_cuts(self.events["t"], dt_us)
        stops = np.append(starts[1:], len(self))
        return [self.slice_count(a, b) for a, b in zip(starts.tolist(), stops.tolist())]

    @staticmethod
    def concatenate(batches: Iterable[EventBatch]) -> EventBatch:
        """Join batches from the same sensor, in order; the result keeps the first batch's metadata."""
        batches = list(batches)
        if not batches:
            raise ValueError("nothing to concatenate")
        first = batches[0]
        for b in batches[1:]:
            if b.sensor_size != first.sensor_size:
                raise InputError(
                    f"cannot concatenate events from a {b.width}x{b.height} sensor with a "
                    f"{first.width}x{first.height} one"
                )
        return first.with_events(join_events(b.events for b in batches))

    def polarity_counts(self) -> tuple[int, int]:
        """(OFF, ON) event counts."""
        on = int(np.count_nonzero(self.events["p"]))
        return len(self) - on, on
