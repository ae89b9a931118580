"""Synaptic delays on the input: K copies of every input unit, copy k receiving each event k*D later.

An input map with ``delays = K`` (``InputMap.delays``, ``delay_us = D``) gives the first layer K blocks of
input units: block k holds the events of the grid delayed by k*D (unit ``k * n + unit``, ``n`` the grid's units;
for a convolution, channel ``k * P + p``). A network that counts then sees "what happened now, D ago, 2D ago":
time bins, but causal and computed once per event. A delayed copy reaches the network when its time has come:
``DelayLine.take`` feeds, in time order, every copy due by the call's last event and keeps the rest (at most
the events of the last (K-1)*D) for the next call; a network fed whole samples from a fresh state drops what
is still pending (it would arrive after the readout), a network that carries its state (a leak) gets it in the
next call. An idle network costs nothing; each input event costs K first-layer events.

Speed: the pending copies are in time order and so is each copy of a call's events (the events are), so
``take`` merges these K + 1 runs in one linear pass (``merge_runs``, numba) instead of sorting them; events
given out of time order fall back to the stable sort of ``delayed``, which defines the order either way.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Most copies per input unit an input map may ask for.
MAX_DELAYS = 8


def delayed(idx: np.ndarray, t: np.ndarray, n_in: int, copies: int, delay_us: int,
            pending: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every copy of the events (input units ``idx`` of ``n_in``, times ``t`` in order): copy k is
    (``idx + k * n_in``, ``t + k * delay_us``); returned merged in time order, after the ``pending`` copies
    of earlier calls (unit, time) where times are equal, then copy 0, 1, ... and the events' own order."""
    blocks_i = [np.asarray(idx, np.int32) + np.int32(k * n_in) for k in range(copies)]
    blocks_t = [np.asarray(t, np.int64) + np.int64(k * delay_us) for k in range(copies)]
    if pending is not None and len(pending[0]):
        blocks_i.insert(0, pending[0])
        blocks_t.insert(0, pending[1])
    ii, tt = np.concatenate(blocks_i), np.concatenate(blocks_t)
    order = np.argsort(tt, kind="stable")  # one sort of everything due or pending
    return ii[order], tt[order]


@njit(cache=True, nogil=True)
def merge_copies(ev_i, ev_t, ev_c, head, stop, n_in, delay_us):
    """The copies k of the held events ``head[k] <= j < stop[k]`` (unit ``ev_i[j] + k * n_in``, time ``ev_t[j] +
    k * delay_us``), merged in ``delayed``'s order: by time, then by the call that gave the event (``ev_c``: an
    earlier call's copies were pending, and pending copies go first), then by copy, then by the events' order.
    Each copy's events are in that order already (they are held in time order, call by call), so this is a
    K-way merge; a copy whose times stay before every other copy's next one is copied in one go (the copies of
    a short call do not overlap). Returns (unit int32, time int64).

    ``ev_i`` int32, ``ev_t`` int64, ``ev_c`` int64: the held events; ``head``, ``stop`` int64 (K,)."""
    copies = head.shape[0]
    total = 0
    for k in range(copies):
        total += stop[k] - head[k]
    out_i = np.empty(total, np.int32)
    out_t = np.empty(total, np.int64)
    pos = head.copy()
    q = 0
    while q < total:
        best, bt, bc = -1, np.int64(0), np.int64(0)  # the copy whose next event goes first, its time and call
        for k in range(copies):
            if pos[k] < stop[k]:
                tk, ck = ev_t[pos[k]] + k * delay_us, ev_c[pos[k]]
                if best < 0 or tk < bt or (tk == bt and ck < bc):
                    best, bt, bc = k, tk, ck
        nxt, lt, lc = copies, np.int64(0), np.int64(0)  # the first of the others' next events: (time, call, copy)
        for k in range(copies):
            if k != best and pos[k] < stop[k]:
                tk, ck = ev_t[pos[k]] + k * delay_us, ev_c[pos[k]]
                if nxt == copies or tk < lt or (tk == lt and (ck < lc or (ck == lc and k < nxt))):
                    nxt, lt, lc = k, tk, ck
        j = pos[best]
        shift, unit = best * delay_us, best * n_in
        while j < stop[best]:
            tj, cj = ev_t[j] + shift, ev_c[j]
            if nxt < copies and not (tj < lt or (tj == lt and (cj < lc or (cj == lc and best < nxt)))):
                break
            out_i[q] = ev_i[j] + unit
            out_t[q] = tj
            q += 1
            j += 1
        pos[best] = j
    return out_i, out_t


@njit(cache=True, nogil=True)
def due_stops(ev_t, head, hi, delay_us, now):
    """Per copy k, the end of the held events whose copy k is due by ``now`` (time + k * delay_us <= now), from
    ``head[k]`` on (int64 (K,)); ``ev_t[head[k]:hi]`` in time order."""
    stop = np.empty(head.shape[0], np.int64)
    for k in range(head.shape[0]):
        stop[k] = head[k] + np.searchsorted(ev_t[head[k]:hi], now - k * delay_us, side="right")
    return stop


@njit(cache=True, nogil=True)
def in_order(t):
    """True when the times ``t`` (int64 array) never go back."""
    for j in range(1, t.shape[0]):
        if t[j] < t[j - 1]:
            return False
    return True


class DelayLine:
    """The copies not yet due of a network with input delays (one per network; its state, like the potentials).

    Held as the input events themselves (unit, time, the call that gave them), in time order, and per copy k the
    first event whose copy k is not fed yet: one copy of the last (K-1)*D of events, nothing sorted. ``idx`` and
    ``t`` are the pending copies (unit, time) in the order they will be fed. A call with events out of time order
    (never from a camera or the segmenter) is taken by sorting (``delayed``), as its pending copies are until
    they are fed."""

    def __init__(self, n_in: int, copies: int, delay_us: int):
        self.n_in, self.copies, self.delay_us = int(n_in), int(copies), int(delay_us)
        self.reset()

    @classmethod
    def of(cls, input_map) -> DelayLine:
        """The delay line of a network reading `input_map` (one copy: no delays, nothing is ever pending)."""
        return cls(input_map.n_inputs, input_map.delays, input_map.delay_us)

    def reset(self) -> None:
        """Forget the pending copies (a fresh state)."""
        self._ev_i = np.zeros(64, np.int32)  # the held events: [lo, hi) of these buffers
        self._ev_t = np.zeros(64, np.int64)
        self._ev_c = np.zeros(64, np.int64)
        self._hi = 0
        self._head = np.zeros(self.copies, np.int64)  # per copy: the first held event whose copy is not fed yet
        self._calls = 0
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None  # pending copies after events out of order
        self.now: int | None = None

    @property
    def idx(self) -> np.ndarray:
        """The pending copies' units, in the order they will be fed."""
        return self.pending()[0]

    @property
    def t(self) -> np.ndarray:
        """The pending copies' times, in the order they will be fed."""
        return self.pending()[1]

    def pending(self) -> tuple[np.ndarray, np.ndarray]:
        if self._sorted is not None:
            return self._sorted
        return merge_copies(self._ev_i, self._ev_t, self._ev_c, self._head,
                            np.full(self.copies, self._hi, np.int64), self.n_in, self.delay_us)

    def _hold(self, idx: np.ndarray, t: np.ndarray) -> None:
        """Append a call's events to the held ones, dropping those whose every copy was fed (amortised: the
        buffers are compacted or grown only when full)."""
        lo = int(self._head.min())
        live, n = self._hi - lo, len(idx)
        if self._hi + n > len(self._ev_i):
            size = max(len(self._ev_i), 2 * (live + n))
            for name in ("_ev_i", "_ev_t", "_ev_c"):
                old = getattr(self, name)
                new = old if size == len(old) else np.empty(size, old.dtype)
                new[:live] = old[lo:self._hi]
                setattr(self, name, new)
            self._head -= lo
            self._hi = live
        hi = self._hi
        self._ev_i[hi:hi + n] = idx
        self._ev_t[hi:hi + n] = t
        self._ev_c[hi:hi + n] = self._calls
        self._hi = hi + n
        self._calls += 1

    def take(self, idx: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The events to feed for a call with input events (``idx``, ``t``, in time order): the pending copies
        and every copy of these events due by the last event's time, in time order; the later ones stay
        pending. A call whose first event is earlier than the last call's (a new stream, a looped replay)
        starts without the pending copies. No events: nothing is fed (the pending copies wait)."""
        if not len(idx):
            return np.zeros(0, np.int32), np.zeros(0, np.int64)
        if self.now is not None and int(t[0]) < self.now:
            self.reset()
        idx = np.ascontiguousarray(idx, np.int32)
        t = np.ascontiguousarray(t, np.int64)
        self.now = int(t[-1])
        if self._sorted is None and in_order(t):  # the usual case: a merge of the copies, nothing sorted
            self._hold(idx, t)
            stop = due_stops(self._ev_t, self._head, self._hi, self.delay_us, self.now)
            out = merge_copies(self._ev_i, self._ev_t, self._ev_c, self._head, stop, self.n_in, self.delay_us)
            self._head = stop
            return out
        ii, tt = delayed(idx, t, self.n_in, self.copies, self.delay_us, self.pending())
        cut = int(np.searchsorted(tt, self.now, side="right"))
        keep = (ii[cut:].copy(), tt[cut:].copy())
        now = self.now
        self.reset()
        self.now = now
        self._sorted = keep if len(keep[0]) else None
        return np.ascontiguousarray(ii[:cut]), np.ascontiguousarray(tt[:cut])

    def save(self) -> tuple:
        lo, hi = int(self._head.min()), self._hi
        held = tuple(a[lo:hi].copy() for a in (self._ev_i, self._ev_t, self._ev_c))
        return held, self._head - lo, self._calls, self._sorted, self.now

    def restore(self, saved: tuple) -> None:
        held, head, self._calls, self._sorted, self.now = saved
        self._ev_i, self._ev_t, self._ev_c = (a.copy() for a in held)
        self._hi = len(held[0])
        self._head = head.copy()
