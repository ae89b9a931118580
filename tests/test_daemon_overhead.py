"""The daemon's per-packet and per-decision overhead, cut without changing a decision.

The segmenter buffers stream events in an `EventBuffer` (linear in the events; windows get read-only
copies made as bytes); batches piled up for a busy worker are fed at once (`inflight.merged`) and none is skipped
while they span fewer than `queue_size` hops; each decision feeds what is still pending first.
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from daemon_util import ListSource, QuietSink

from streamsnn.events import EVENT_DTYPE, EventBatch, join_events
from streamsnn.io import read_events
from streamsnn.pipeline import Pipeline
from streamsnn.pipeline.decide import Decider
from streamsnn.pipeline.evbuffer import EventBuffer
from streamsnn.pipeline.inflight import InFlight, merged
from streamsnn.pipeline.segment import Segmenter
from streamsnn.snn import SpikingNetwork

ARCH = "conv:8:5:2:2,dense:64"


def small_net() -> SpikingNetwork:
    return SpikingNetwork(arch=ARCH, input_shape=(34, 34, 2), classes=10, seed=3)


def same(a, b) -> bool:
    return (a.label == b.label and np.array_equal(a.scores, b.scores) and a.confidence == b.confidence
            and a.events == b.events and a.spikes == b.spikes)


def random_events(rng, n: int, t0: int = 0) -> np.ndarray:
    ev = np.zeros(n, EVENT_DTYPE)
    ev["t"] = t0 + np.sort(rng.integers(0, 1000, n))
    ev["x"], ev["y"], ev["p"] = rng.integers(0, 300, n), rng.integers(0, 200, n), rng.integers(0, 2, n)
    return ev


def test_event_buffer_matches_joining_and_dropping_arrays():
    rng = np.random.default_rng(0)
    buf, ref = EventBuffer(), np.zeros(0, EVENT_DTYPE)
    kept = []  # views handed out earlier, with what they held then
    for step in range(300):
        part = random_events(rng, int(rng.integers(0, 700)), t0=step * 1000)
        buf.append(part)
        ref = np.concatenate([ref, part])
        if rng.random() < 0.3:
            k = int(rng.integers(0, len(ref) + 2))
            buf.drop(k)
            ref = ref[k:]
        assert len(buf) == len(ref) and np.array_equal(buf.view(), ref) and np.array_equal(buf.t, ref["t"])
        if len(ref) and rng.random() < 0.2:
            kept.append((buf.view(0, len(ref) // 2), ref[:len(ref) // 2].copy()))
    # what a view showed is never written over by later appends (the storage moves when it is full)
    assert kept and all(np.array_equal(v, was) for v, was in kept)
    assert not buf.view().flags.writeable
    parts = [random_events(rng, n) for n in (0, 5, 1, 300)]
    assert np.array_equal(join_events(parts), np.concatenate(parts))


def test_stream_windows_hold_exactly_their_events_read_only(recordings_dir):
    rec = read_events(recordings_dir / "tonic_sample.aedat4")
    rng = np.random.default_rng(1)
    cuts = np.unique(rng.integers(0, len(rec), 400))
    batches = [rec.slice_count(a, b) for a, b in zip([0, *cuts], [*cuts, len(rec)]) if b > a]
    seg = Segmenter("window", 100_000, 50_000, 1)
    windows = []
    for b in batches:
        windows += seg.feed(b)
    windows += seg.flush()
    assert len(windows) >= 8
    for w in windows:
        want = rec.slice_time(w.t_start_us, w.t_end_us).events
        assert np.array_equal(w.batch.events, want)  # still right after everything fed after it
        assert not w.batch.events.flags.writeable
        assert w.batch.sensor_size == rec.sensor_size and w.batch.meta == {}


def test_piled_up_batches_fed_at_once_give_the_same_decisions(recordings_dir):
    rec = read_events(recordings_dir / "tonic_sample.aedat4")
    part = rec.slice_time(None, rec.t_start + 300_000)
    batches = part.split_time(3_000) * 2  # the clock goes back: a new window grid (epoch) in the middle
    for overlap in ("inflight", "chunks"):
        out = {}
        for group in (1, 7):
            net, seg, dec = small_net(), Segmenter("window", 100_000, 50_000, overlap=overlap, max_events=3_000), \
                Decider()
            got, pending = [], []
            for b in batches:
                windows = seg.feed(b)
                pending += seg.take_pieces()
                if windows or len(pending) >= group:  # a worker that fell behind takes the whole pile
                    joined = merged(pending)
                    assert len({p.epoch for p in pending}) == len(joined) or group == 1
                    for piece in joined:
                        dec.feed(net, piece)
                    pending = []
                got += [dec(net, w) for w in windows]
            got += [dec(net, w) for w in seg.flush()]
            out[group] = (got, dec.inflight.counters)
        (one, c1), (pile, c7) = out[1], out[7]
        assert len(one) == len(pile) > 10 and all(same(a, b) for a, b in zip(one, pile))
        assert c7["recomputed"] == c1["recomputed"] and c7["read"] > 0


class Collect(QuietSink):
    def __init__(self):
        self.got = []

    def publish_decision(self, window, decision, info) -> None:
        self.got.append((window.t_start_us, window.t_end_us, decision))


class GatedSource(ListSource):
    """Hands over every batch while the network's worker is held busy, then lets it go."""

    def __init__(self, batches, gate: threading.Event):
        super().__init__(batches)
        self.gate = gate

    async def _gen(self):
        async for b in super()._gen():
            yield b
        self.gate.set()


def run(batches, overlap, *, gated: bool, feeds: list | None = None):
    net, sink, gate = small_net(), Collect(), threading.Event()
    seg = Segmenter("window", 100_000, 50_000, overlap=overlap)
    source = GatedSource(batches, gate) if gated else ListSource(batches)
    pipe = Pipeline(source, net, [sink], segmenter=seg, metrics_every_s=60, queue_size=8, policy="drop_oldest")
    if feeds is not None:
        real = pipe.decider.feed
        pipe.decider.feed = lambda n, piece: (feeds.append(len(piece.batch)), real(n, piece))
    if gated:
        pipe._worker.submit(gate.wait, 60)  # the worker busy until every batch was handed over
    counters = asyncio.run(asyncio.wait_for(pipe.run(), 120))
    return sink.got, counters, pipe.metrics()["overlap"]


@pytest.mark.parametrize("overlap", ["inflight", "chunks"])
def test_a_busy_worker_gets_the_piled_up_batches_at_once_and_skips_none(recordings_dir, overlap):
    rec = read_events(recordings_dir / "tonic_sample.aedat4")
    batches = rec.slice_time(None, rec.t_start + 260_000).split_time(1_000)  # 1 ms packets, as a camera's
    whole, _, _ = run(batches, "repeat", gated=False)
    feeds: list[int] = []
    piled, counters, m = run(batches, overlap, gated=True, feeds=feeds)
    # far more batches than queue_size waited, but they span under queue_size hops: none skipped (skipping
    # one makes its windows recompute whole), every window read from its state, fed in few calls
    assert len(batches) > 100 and m["skipped"] == 0 and m["fed"] == len(batches)
    assert m["recomputed"] == 0 and m["read"] == len(piled) == len(whole) >= 4 and counters.decisions == len(whole)
    assert sum(feeds) == sum(len(b) for b in batches) and len(feeds) < len(batches) / 10
    fed_as_they_came, _, _ = run(batches, overlap, gated=False)  # the same decisions as a worker that kept up
    assert all(a[:2] == b[:2] and same(a[2], b[2]) for a, b in zip(fed_as_they_came, piled))
    if overlap == "inflight":  # and as windows fed whole
        assert all(a[:2] == b[:2] and same(a[2], b[2]) for a, b in zip(whole, piled))


def test_batches_far_behind_are_still_skipped_and_decisions_stay_right(recordings_dir):
    rec = read_events(recordings_dir / "tonic_sample.aedat4")
    batches = rec.slice_time(None, rec.t_start + 500_000).split_time(1_000)  # over 8 hops of 50 ms
    whole, _, _ = run(batches, "repeat", gated=False)
    piled, _, m = run(batches, "inflight", gated=True)
    assert m["skipped"] > 0 and m["recomputed"] > 0  # windows whose batches were not fed: decided whole
    decided = {(a, b): d for a, b, d in whole}
    assert piled and all(same(decided[(a, b)], d) for a, b, d in piled)  # the queue may drop windows, never alter


def test_inflight_state_of_a_joined_piece_equals_the_pieces_one_by_one(recordings_dir):
    rec = read_events(recordings_dir / "tonic_sample.aedat4")
    batches = rec.slice_time(None, rec.t_start + 120_000).split_time(2_000)
    seg = Segmenter("window", 100_000, 50_000, overlap="inflight")
    pieces = []
    for b in batches:
        seg.feed(b)
        pieces += seg.take_pieces()
    joined = merged(pieces)
    assert len(joined) == 1 and np.array_equal(joined[0].batch.events, rec.slice_time(
        None, rec.t_start + 120_000).events)
    assert isinstance(joined[0].batch, EventBatch) and joined[0].origin == pieces[0].origin
    net = small_net()
    a, b = InFlight(), InFlight()
    for p in pieces:
        a.feed(net, p)
    b.feed(net, joined[0])
    assert a.states.keys() == b.states.keys()
    for key in a.states:
        sa, sb = a.states[key], b.states[key]
        sa.finish(net)
        sb.finish(net)
        assert np.array_equal(sa.last, sb.last) and sa.spikes == sb.spikes and (sa.raw, sa.fed) == (sb.raw, sb.fed)


def test_small_packets_are_fed_together_with_the_same_decisions(recordings_dir):
    from streamsnn.pipeline.ahead import FEED_EVENTS

    rec = read_events(recordings_dir / "tonic_sample.aedat4")
    batches = rec.slice_time(None, rec.t_start + 400_000).split_time(250)  # tens of events each
    whole, _, _ = run(batches, "repeat", gated=False)
    feeds: list[int] = []
    got, _, m = run(batches, "inflight", gated=False, feeds=feeds)
    total = sum(len(b) for b in batches)
    assert total / len(batches) < FEED_EVENTS / 10 and m["fed"] == len(batches) and m["skipped"] == 0
    # fed once FEED_EVENTS have come, or when a window closes: not once per packet
    assert sum(feeds) == total and len(feeds) <= total // FEED_EVENTS + len(got) + 1 < len(batches) / 4
    assert m["recomputed"] == 0 and len(got) == len(whole) >= 6
    assert all(a[:2] == b[:2] and same(a[2], b[2]) for a, b in zip(whole, got))


def test_a_closing_batch_events_after_its_last_window_wait_for_the_next_batch(recordings_dir):
    rec = read_events(recordings_dir / "tonic_sample.aedat4")
    t0 = rec.t_start
    first, closing = rec.slice_time(t0, t0 + 60_000), rec.slice_time(t0 + 60_000, t0 + 180_000)
    # the closing batch closes the windows [t0, t0 + 100 ms) and [t0 + 50, t0 + 150 ms)
    after_end = len(rec.slice_time(t0 + 150_000, t0 + 180_000))
    assert after_end > 1000

    class First(Collect):
        def __init__(self):
            super().__init__()
            self.decided = asyncio.Event()

        def publish_decision(self, window, decision, info) -> None:
            super().publish_decision(window, decision, info)
            self.decided.set()

    async def go():
        net, sink, feeds = small_net(), First(), []
        source = ListSource([first, closing], then_wait=True)  # then silence: no next batch
        pipe = Pipeline(source, net, [sink], segmenter=Segmenter("window", 100_000, 50_000, overlap="inflight"),
                        metrics_every_s=60)
        real = pipe.decider.feed
        pipe.decider.feed = lambda n, piece: (feeds.append(len(piece.batch)), real(n, piece))
        task = asyncio.create_task(pipe.run())
        await asyncio.wait_for(sink.decided.wait(), 60)
        fed_by_then = sum(feeds)  # its windows were decided without the events after t0 + 150 ms
        pipe.stop()
        await asyncio.wait_for(task, 60)
        return fed_by_then, sum(feeds), sink.got, pipe.metrics()["overlap"]

    fed_by_then, fed, got, m = asyncio.run(go())
    assert fed_by_then == len(first) + len(closing) - after_end
    assert fed == len(first) + len(closing) and m["fed"] == 2 and m["recomputed"] == 0
    whole, _, _ = run([first, closing], "repeat", gated=False)
    assert len(got) == len(whole) == 3 and all(a[:2] == b[:2] and same(a[2], b[2]) for a, b in zip(whole, got))


def test_feeding_a_windows_last_events_is_timed_apart_from_its_wait(recordings_dir):
    """A decision first feeds the window's events still pending (`feed_ms`), then reads it out (`compute_ms`); the
    wait before the worker took the window (`queue_ms`) does not include that feeding (schema 3)."""
    import time

    from streamsnn.pipeline.inflight import split_at

    rec = read_events(recordings_dir / "tonic_sample.aedat4")
    batches = rec.slice_time(None, rec.t_start + 160_000).split_time(1_000)
    net, sink = small_net(), Collect()
    pipe = Pipeline(ListSource([]), net, [sink], segmenter=Segmenter("window", 100_000, 50_000, overlap="chunks"),
                    metrics_every_s=60)
    assert pipe._feeding
    slow = 0.05  # each feed held 50 ms longer: it must show in feed_ms, not in queue_ms
    real = pipe.decider.feed
    pipe.decider.feed = lambda n, piece: (real(n, piece), time.sleep(slow))
    pieces, closed = [], []
    for b in batches:  # handed over and not fed yet, as when no feeding job ran before the window closed
        closed = pipe.segmenter.feed(b)
        pieces += pipe.segmenter.take_pieces()
        if closed:
            break
    w = closed[0]
    pipe.ahead.pending, _ = split_at(pieces, int(w.t_end_us))  # the pipeline holds back what comes after its end
    assert sum(len(p.batch) for p in pipe.ahead.pending) == w.events > 1000
    w.ready = time.monotonic()
    d, info = pipe._decide(w)
    assert not pipe.ahead.pending and info.feed_ms >= slow * 1000 > info.queue_ms
    assert info.latency_ms == info.queue_ms + info.feed_ms + info.compute_ms and info.compute_ms > 0
    assert pipe.decider.inflight.counters == {"read": 1, "recomputed": 0, "feed_errors": 0}  # from its fed state
    assert d.events == w.events
    pipe._worker.shutdown()
