"""The merging delay line (snn/delays.py) feeds exactly what the sorting one did: the same copies in the same order,
the same pending copies, so a network with input delays gives the same spikes, scores and decisions, on whole
samples and across stream windows with copies pending."""

from __future__ import annotations

import numpy as np
import pytest

from streamsnn.events import EventBatch, make_events
from streamsnn.learn.streameval import stream_evaluate
from streamsnn.snn import SpikingNetwork
from streamsnn.snn.arch import InputMap
from streamsnn.snn.delays import DelayLine


class SortingLine:
    """The reference: the delay line as it was, in plain NumPy. Every copy of a call's events (copy k: unit
    + k * n_in, time + k * D) after the pending copies, one stable sort by time, cut after the call's last event;
    what is after the cut is pending. A call starting before the last one's end starts without pending copies."""

    def __init__(self, n_in: int, copies: int, delay_us: int):
        self.n_in, self.copies, self.delay_us = n_in, copies, delay_us
        self.reset()

    def reset(self):
        self.idx, self.t, self.now = np.zeros(0, np.int32), np.zeros(0, np.int64), None

    def take(self, idx, t):
        if not len(idx):
            return np.zeros(0, np.int32), np.zeros(0, np.int64)
        if self.now is not None and int(t[0]) < self.now:
            self.reset()
        ii = np.concatenate([self.idx] + [np.asarray(idx, np.int64) + k * self.n_in for k in range(self.copies)])
        tt = np.concatenate([self.t] + [np.asarray(t, np.int64) + k * self.delay_us for k in range(self.copies)])
        order = np.argsort(tt, kind="stable")
        ii, tt = ii[order].astype(np.int32), tt[order]
        self.now = int(t[-1])
        cut = int(np.searchsorted(tt, self.now, side="right"))
        self.idx, self.t = ii[cut:], tt[cut:]
        return ii[:cut], tt[:cut]

    def save(self):
        return self.idx.copy(), self.t.copy(), self.now

    def restore(self, saved):
        self.idx, self.t, self.now = saved


def same_take(fast: DelayLine, ref: SortingLine, idx, t) -> tuple[np.ndarray, np.ndarray]:
    a = fast.take(idx, t)
    b = ref.take(idx, t)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[0].dtype == np.int32 and a[1].dtype == np.int64
    np.testing.assert_array_equal(fast.idx, ref.idx)  # the same copies pending, in the same order
    np.testing.assert_array_equal(fast.t, ref.t)
    assert fast.now == ref.now
    return a


@pytest.mark.parametrize("copies", [1, 2, 3, 8])
def test_random_calls_feed_and_keep_what_the_sort_did(copies):
    """Calls in pieces, with ties, equal times, empty calls, time going back and events out of order."""
    rng = np.random.default_rng(copies)
    for _ in range(150):
        n_in, d = 5, int(rng.integers(0, 40))
        fast, ref = DelayLine(n_in, copies, d), SortingLine(n_in, copies, d)
        t0 = 0
        for _ in range(int(rng.integers(1, 8))):
            n = int(rng.integers(0, 25))
            if rng.random() < 0.1:
                t0 = max(0, t0 - int(rng.integers(1, 30)))  # a new stream: the clock goes back
            t = t0 + np.sort(rng.integers(0, int(rng.integers(1, 50)), n)).astype(np.int64)
            if n and rng.random() < 0.2:
                t[:] = t[0]
            if n > 2 and rng.random() < 0.1:
                rng.shuffle(t)  # out of order: taken by sorting, as before
            same_take(fast, ref, rng.integers(0, n_in, n).astype(np.int32), t)
            if n:
                t0 = int(t.max())


def test_a_long_stream_in_windows_carries_the_pending_copies():
    rng = np.random.default_rng(7)
    t = np.sort(rng.integers(0, 2_000_000, 20_000)).astype(np.int64)
    idx = rng.integers(0, 64, len(t)).astype(np.int32)
    fast, ref = DelayLine(64, 3, 325_000), SortingLine(64, 3, 325_000)
    edges = np.searchsorted(t, np.arange(0, 2_000_001, 50_000))
    fed = 0
    for lo, hi in zip(edges[:-1], edges[1:]):
        fed += len(same_take(fast, ref, idx[lo:hi], t[lo:hi])[0])
    assert fed + len(fast.idx) == 3 * len(t) and len(fast.idx) > 0


def test_edge_cases():
    fast, ref = DelayLine(4, 3, 10), SortingLine(4, 3, 10)
    # an empty window feeds nothing, and the pending copies wait
    same_take(fast, ref, np.array([1, 2], np.int32), np.array([0, 5], np.int64))
    pending = fast.idx.copy()
    assert len(same_take(fast, ref, np.zeros(0, np.int32), np.zeros(0, np.int64))[0]) == 0
    np.testing.assert_array_equal(fast.idx, pending)
    # copies landing exactly at the window's end are fed in it: unit 2 at 5, copy 1 at 15, copy 2 at 25
    i, tt = same_take(fast, ref, np.array([3], np.int32), np.array([15], np.int64))
    assert list(zip(i.tolist(), tt.tolist())) == [(1 + 4, 10), (2 + 4, 15), (3, 15)]
    i, tt = same_take(fast, ref, np.array([0], np.int32), np.array([25], np.int64))
    assert list(zip(i.tolist(), tt.tolist())) == [(1 + 8, 20), (2 + 8, 25), (3 + 4, 25), (0, 25)]
    # all events at the same time, again and again: pending first, then copy 0, 1, 2, each in the events' order
    fast, ref = DelayLine(4, 3, 0), SortingLine(4, 3, 0)
    for _ in range(3):
        i, _ = same_take(fast, ref, np.array([3, 1, 2], np.int32), np.full(3, 7, np.int64))
        assert i.tolist() == [3, 1, 2, 7, 5, 6, 11, 9, 10]
    fast, ref = DelayLine(4, 3, 5), SortingLine(4, 3, 5)
    same_take(fast, ref, np.array([3, 1, 2], np.int32), np.full(3, 7, np.int64))
    assert len(fast.idx) == 6


def test_save_and_restore_give_back_the_pending_copies():
    rng = np.random.default_rng(3)
    t = np.sort(rng.integers(0, 1000, 300)).astype(np.int64)
    idx = rng.integers(0, 8, 300).astype(np.int32)
    line = DelayLine(8, 3, 200)
    line.take(idx[:100], t[:100])
    saved = line.save()
    first = line.take(idx[100:200], t[100:200])
    line.take(idx[200:], t[200:])
    line.restore(saved)
    again = line.take(idx[100:200], t[100:200])
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])


IMAP = InputMap((6, 6), None, (6, 6, 2), 3, 40_000)


def samples(seed: int, count: int = 6) -> list[EventBatch]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        n = 1500
        t = np.sort(rng.integers(0, 250_000, n))
        if k == 1:
            t[:200] = t[0]  # a burst at one time
        out.append(EventBatch(make_events(t, rng.integers(0, 6, n), rng.integers(0, 6, n), rng.integers(0, 2, n)),
                              6, 6, sample=f"s{k}", label=k % 2))
    return out


def pair(arch: str, tau_us: float | None) -> tuple[SpikingNetwork, SpikingNetwork]:
    """The same network twice, the second with the reference delay line."""
    kw = {"arch": arch, "input_map": IMAP, "classes": 2, "seed": 1, "tau_us": tau_us}
    if tau_us is not None:
        kw["learning"] = "membrane"
    a, b = SpikingNetwork(**kw), SpikingNetwork(**kw)
    b.delay_line = SortingLine(a.delay_line.n_in, a.delay_line.copies, a.delay_line.delay_us)
    return a, b


@pytest.mark.parametrize("arch", ["dense:16", "conv:4:3:1:1,dense:12"])
@pytest.mark.parametrize("tau_us", [None, 30_000.0])
def test_whole_samples_give_the_same_spikes_and_scores(arch, tau_us):
    a, b = pair(arch, tau_us)
    for s in samples(0):
        idx, t = a.input_events(s)
        a.reset()
        b.reset()
        da, db = a.predict_indices(idx, t), b.predict_indices(idx, t)
        assert da.spikes == db.spikes and da.label == db.label and sum(da.spikes) > 0
        np.testing.assert_array_equal(da.scores, db.scores)
        for la, lb in zip(a.hidden, b.hidden):
            np.testing.assert_array_equal(la.counts, lb.counts)
            np.testing.assert_array_equal(la.phi, lb.phi)


@pytest.mark.parametrize("arch", ["dense:16", "conv:4:3:1:1,dense:12"])
def test_the_stream_gives_the_same_decisions_with_copies_pending(arch):
    """`eval --stream` (the daemon's Decider): a leaky network with delays, its state and its pending copies carried
    across windows, decides window by window as with the reference line."""
    a, b = pair(arch, 30_000.0)
    ss = samples(1)
    ra = stream_evaluate(a, ss, classes=["0", "1"], keep_decisions=True)
    rb = stream_evaluate(b, ss, classes=["0", "1"], keep_decisions=True)
    assert ra["decisions"] > 10 and ra["decision_list"] == rb["decision_list"]
    # window by window, the scores themselves, with copies pending between the windows
    a.reset()
    b.reset()
    pending = 0
    for s in ss[:3]:
        idx, t = a.input_events(s)
        for lo in range(0, len(idx), 250):
            da = a.predict_indices(idx[lo:lo + 250], t[lo:lo + 250])
            db = b.predict_indices(idx[lo:lo + 250], t[lo:lo + 250])
            np.testing.assert_array_equal(da.scores, db.scores)
            assert da.spikes == db.spikes
            pending += len(a.delay_line.idx) > 0
    assert pending > 5
