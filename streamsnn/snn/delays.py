"""Synaptic delays on the input: K copies of every input unit, copy k receiving each event k*D later.

An input map with ``delays = K`` (``InputMap.delays``, ``delay_us = D``) gives the first layer K blocks of
input units: block k holds the events of the grid delayed by k*D (unit ``k * n + unit``, ``n`` the grid's units;
for a convolution, channel ``k * P + p``). A network that counts then sees "what happened now, D ago, 2D ago":
time bins, but causal and computed once per event. A delayed copy reaches the network when its time has come:
``DelayLine.take`` feeds, in time order, every copy due by the call's last event and keeps the rest (at most
the events of the last (K-1)*D) for the next call; a network fed whole samples from a fresh state drops what
is still pending (it would arrive after the readout), a network that carries its state (a leak) gets it in the
next call. An idle network costs nothing; each input event costs K first-layer events.
"""

from __future__ import annotations

import numpy as np

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


class DelayLine:
    """The copies not yet due of a network with input delays (one per network; its state, like the potentials)."""

    def __init__(self, n_in: int, copies: int, delay_us: int):
        self.n_in, self.copies, self.delay_us = int(n_in), int(copies), int(delay_us)
        self.reset()

    @classmethod
    def of(cls, input_map) -> DelayLine:
        """The delay line of a network reading `input_map` (one copy: no delays, nothing is ever pending)."""
        return cls(input_map.n_inputs, input_map.delays, input_map.delay_us)

    def reset(self) -> None:
        """Forget the pending copies (a fresh state)."""
        self.idx = np.zeros(0, np.int32)
        self.t = np.zeros(0, np.int64)
        self.now: int | None = None

    def take(self, idx: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The events to feed for a call with input events (``idx``, ``t``, in time order): the pending copies
        and every copy of these events due by the last event's time, in time order; the later ones stay
        pending. A call whose first event is earlier than the last call's (a new stream, a looped replay)
        starts without the pending copies. No events: nothing is fed (the pending copies wait)."""
        if not len(idx):
            return np.zeros(0, np.int32), np.zeros(0, np.int64)
        if self.now is not None and int(t[0]) < self.now:
            self.reset()
        ii, tt = delayed(idx, t, self.n_in, self.copies, self.delay_us, (self.idx, self.t))
        self.now = int(t[-1])
        cut = int(np.searchsorted(tt, self.now, side="right"))
        self.idx, self.t = ii[cut:].copy(), tt[cut:].copy()
        return np.ascontiguousarray(ii[:cut]), np.ascontiguousarray(tt[:cut])

    def save(self) -> tuple:
        return self.idx.copy(), self.t.copy(), self.now

    def restore(self, saved: tuple) -> None:
        self.idx, self.t, self.now = saved
