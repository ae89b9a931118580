"""Windows in flight (segment.overlap): the network works on a window's events as they arrive.

"inflight" must give exactly the decisions and scores of feeding each window whole ("repeat") on real
streams, through bad packets, cuts, restarts, skipped batches and learning; "chunks" feeds each event once.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from daemon_util import ListSource, QuietSink

from streamsnn.config import SCHEMA
from streamsnn.errors import ConfigError
from streamsnn.events import EventBatch
from streamsnn.io import open_dataset, read_events
from streamsnn.learn import streameval
from streamsnn.pipeline import Pipeline
from streamsnn.pipeline.decide import Decider
from streamsnn.pipeline.inflight import InFlight
from streamsnn.pipeline.segment import Piece, Segmenter
from streamsnn.snn import SpikingNetwork, propagate
from streamsnn.snn.arch import InputMap

ARCH = "conv:8:5:2:2,dense:64"  # a convolution and a dense layer, quick to run


def small_net(**kw) -> SpikingNetwork:
    return SpikingNetwork(arch=ARCH, input_shape=(34, 34, 2), classes=10, seed=3, **kw)


def nmnist_stream(nmnist_dir, n: int = 12):
    samples = [s.load() for s in open_dataset(nmnist_dir).split("test").samples[:n]]
    return streameval.make_stream(samples, gap_us=0, chunk_us=10_000)


def same(a, b) -> bool:
    """Two decisions are the same bit for bit: label, scores, confidence, events and spikes."""
    return (a.label == b.label and np.array_equal(a.scores, b.scores) and a.confidence == b.confidence
            and a.events == b.events and a.spikes == b.spikes)


def play(net, batches, overlap, *, window_us=100_000, hop_us=50_000, min_events=1, skip=(), **seg):
    """(window, decision) of every window, the segmenter fed batch by batch and the pieces fed as they arrive
    (the ones at positions `skip` not fed, as the pipeline does when its worker falls behind)."""
    segmenter = Segmenter("window", window_us, hop_us, min_events, overlap=overlap, **seg)
    decider = Decider()
    out = []
    for i, b in enumerate(batches):
        try:
            windows = segmenter.feed(b)
        except Exception:  # a refused batch (duplicated, late): the state is as it was
            continue
        for piece in segmenter.take_pieces():
            if i not in skip:
                decider.feed(net, piece)
        out += [(w, decider(net, w)) for w in windows]
    out += [(w, decider(net, w)) for w in segmenter.flush()]
    return out, decider.inflight


def test_inflight_gives_the_same_decisions_and_scores_as_whole_windows_on_nmnist(nmnist_dir):
    stream = nmnist_stream(nmnist_dir)
    net = small_net()
    whole, _ = play(net, stream.batches, "repeat")
    ahead, inflight = play(net, stream.batches, "inflight")
    assert len(whole) == len(ahead) >= 40
    assert all(same(a, b) and wa.t_start_us == wb.t_start_us for (wa, a), (wb, b) in zip(whole, ahead))
    assert inflight.counters["read"] == len(ahead) and inflight.counters["recomputed"] == 0  # from the states
    assert len({d.label for _, d in whole}) > 1 and sum(sum(d.spikes) for _, d in whole) > 0  # not a trivial net
    assert len(inflight.states) <= 2  # nothing left behind but the windows still open at the end


def test_stream_evaluation_scores_inflight_like_repeat(nmnist_dir):
    samples = [s.load() for s in open_dataset(nmnist_dir).split("test").samples[:10]]
    net = small_net()
    res = {ov: streameval.stream_evaluate(net, samples, overlap=ov, keep_decisions=True)
           for ov in ("repeat", "inflight")}
    assert res["repeat"]["decision_list"] == res["inflight"]["decision_list"]
    assert res["inflight"]["overlap"] == "inflight"


class Collect(QuietSink):
    def __init__(self):
        self.got = []

    def publish_decision(self, window, decision, info):
        self.got.append((window.t_start_us, window.t_end_us, decision))


def run_pipeline(net, batches, overlap, **seg):
    sink = Collect()
    segmenter = Segmenter("window", 100_000, 50_000, overlap=overlap, **seg)
    pipe = Pipeline(ListSource(batches), net, [sink], segmenter=segmenter, metrics_every_s=60)
    counters = asyncio.run(asyncio.wait_for(pipe.run(), 120))
    return sink.got, counters, pipe


def hostile(rec: EventBatch) -> list[EventBatch]:
    """The recording in 7 ms chunks with a duplicated and a late chunk slipped in (both refused)."""
    chunks = rec.split_time(7_000)
    late = chunks[18].slice_count(len(chunks[18]) // 2)
    return chunks[:10] + [chunks[9]] + chunks[10:20] + [late] + chunks[20:]


def test_the_daemon_pipeline_decides_an_aedat4_recording_the_same_with_bad_packets(recordings_dir):
    rec = read_events(recordings_dir / "tonic_sample.aedat4")  # a real 320x240 recording
    batches = hostile(rec)
    whole, c1, _ = run_pipeline(small_net(), batches, "repeat")
    ahead, c2, pipe = run_pipeline(small_net(), batches, "inflight")
    assert c1.bad_batches == c2.bad_batches == 2
    assert len(whole) == len(ahead) >= 8
    assert all(a[:2] == b[:2] and same(a[2], b[2]) for a, b in zip(whole, ahead))
    m = pipe.metrics()["overlap"]
    assert m["read"] == len(ahead) and m["recomputed"] == 0 and m["fed"] == len(batches) - 2


def test_cuts_and_restarts_keep_the_decisions(recordings_dir):
    rec = read_events(recordings_dir / "tonic_sample.aedat4")
    part = rec.slice_time(None, rec.t_start + 300_000)
    looped = part.split_time(7_000) * 2  # the clock goes back: a new stream (restart)
    net = small_net()
    seg = dict(max_events=3_000)  # windows cut early at the bound
    whole, _ = play(net, looped, "repeat", **seg)
    ahead, inflight = play(net, looped, "inflight", **seg)
    assert len(whole) == len(ahead) > 10
    assert all(same(a, b) for (_, a), (_, b) in zip(whole, ahead))
    cut = Segmenter("window", 100_000, 50_000, overlap="inflight", **seg)
    for b in looped:
        cut.feed(b)
    assert cut.counters["cut"] > 0 and cut.counters["restarts"] == 1
    assert inflight.counters["read"] > inflight.counters["recomputed"]


def test_a_batch_not_fed_ahead_makes_its_windows_recomputed_never_wrong(nmnist_dir):
    stream = nmnist_stream(nmnist_dir, 4)
    net = small_net()
    whole, _ = play(net, stream.batches, "repeat")
    ahead, inflight = play(net, stream.batches, "inflight", skip={5, 17})
    assert all(same(a, b) for (_, a), (_, b) in zip(whole, ahead))
    assert inflight.counters["recomputed"] >= 2 and inflight.counters["read"] > 0


def test_learning_between_feeding_and_reading_out_recomputes_the_window(nmnist_dir):
    stream = nmnist_stream(nmnist_dir, 3)
    net = small_net()
    seg = Segmenter("window", 100_000, 50_000, overlap="inflight")
    decider = Decider()
    windows = []
    for b in stream.batches:
        windows += seg.feed(b)
        for p in seg.take_pieces():
            decider.feed(net, p)
        if len(windows) >= 3:
            break
    version = net.model_version
    net.learn_one(stream.batches[0], 1)  # feedback learned while windows are in flight
    assert net.model_version != version
    got = [decider(net, w) for w in windows]
    assert all(same(g, net.predict_one(w.batch)) for g, w in zip(got, windows))
    assert decider.inflight.counters["recomputed"] == len(windows)


def labelled_stream(nmnist_dir, n):
    """Real N-MNIST samples back to back as one labelled stream (each batch keeps its sample's label)."""
    samples = [s.load() for s in open_dataset(nmnist_dir).split("train").samples[:n]]
    t, out = 0, []
    for s in samples:
        ev = s.events.copy()
        ev["t"] = ev["t"] - ev["t"][0] + t
        t = int(ev["t"][-1]) + 1
        whole = EventBatch(ev, s.width, s.height, sample=s.sample, label=s.label, meta=dict(s.meta))
        out += [b.with_meta(sample=s.sample, label=s.label, meta=dict(s.meta)) for b in whole.split_time(10_000)]
    return out


def test_learning_from_labelled_windows_learns_and_decides_as_before(nmnist_dir):
    batches = labelled_stream(nmnist_dir, 20)
    got = {}
    for overlap in ("repeat", "inflight", "chunks"):
        net = small_net()
        out, counters, _ = run_pipeline(net, batches, overlap, label_windows=True)
        got[overlap] = (out, net, counters)
    (whole, n1, c1), (ahead, n2, _), (chunked, n3, _) = got["repeat"], got["inflight"], got["chunks"]
    assert n1.updates == c1.labelled > 20  # it learns from every labelled window
    for out, net in ((ahead, n2), (chunked, n3)):  # each labelled window is learnt whole, as before
        assert all(a[:2] == b[:2] and same(a[2], b[2]) for a, b in zip(whole, out))
        assert net.updates == n1.updates and np.array_equal(net.out_weight, n1.out_weight)


def test_chunks_feed_each_event_once_and_sum_the_chunks(nmnist_dir, monkeypatch):
    stream = nmnist_stream(nmnist_dir, 4)
    net = small_net()
    fed = []
    real = propagate.feed
    monkeypatch.setattr(propagate, "feed", lambda n, idx: (fed.append(len(idx)), real(n, idx)))
    total = sum(len(b) for b in stream.batches)
    chunked, inflight = play(net, stream.batches, "chunks")
    assert sum(fed) == total and inflight.counters["read"] == len(chunked)  # each event fed once
    fed.clear()
    play(net, stream.batches, "inflight")
    assert sum(fed) > 1.8 * total  # window / hop times
    monkeypatch.setattr(propagate, "feed", real)
    for w, d in chunked[:12]:  # the scores: each hop-long chunk from the reset state, counts summed
        parts = [w.batch.slice_time(w.t_start_us + k * 50_000, w.t_start_us + (k + 1) * 50_000) for k in range(2)]
        evidence = sum(net.predict_one(p).scores - net.bias for p in parts if len(p))
        np.testing.assert_allclose(d.scores, evidence + net.bias, rtol=1e-5, atol=1e-4)
    # computed from the window alone (nothing fed ahead), a window gets the same chunks, bit for bit
    again, recomputed = play(net, stream.batches, "chunks", skip=set(range(len(stream.batches))))
    assert all(same(a, b) for (_, a), (_, b) in zip(chunked, again))
    assert recomputed.counters["recomputed"] == len(again)


def test_states_stay_bounded_and_a_bad_piece_drops_them(nmnist_dir):
    stream = nmnist_stream(nmnist_dir, 3)
    net = small_net()
    seg = Segmenter("window", 100_000, 10_000, overlap="inflight")
    inflight = InFlight(max_states=4)
    for b in stream.batches:
        seg.feed(b)
        for p in seg.take_pieces():
            inflight.feed(net, p)
        assert len(inflight.states) <= 4
    # a model that reads a region of the 34x34 sensor refuses a batch of another sensor: every state is dropped
    roi = SpikingNetwork(arch=ARCH, input_map=InputMap((34, 34), (2, 2, 30, 30), (30, 30, 2)), classes=10)
    inflight.feed(roi, p)
    assert inflight.states and inflight.counters["feed_errors"] == 0
    bad = EventBatch(stream.batches[0].events, 64, 64)
    inflight.feed(roi, Piece(bad, p.epoch, p.origin, p.window_us, p.hop_us, False))
    assert inflight.counters["feed_errors"] == 1 and not inflight.states


def test_overlap_settings_are_checked():
    assert SCHEMA["segment"]["overlap"].default == "auto"  # chunks where the window is a multiple of the hop
    assert Segmenter("window", 100_000, 50_000, overlap="auto").overlap == "chunks"
    assert Segmenter("window", 100_000, 30_000, overlap="auto").overlap == "inflight"
    with pytest.raises(ConfigError, match="multiple of hop_us"):
        Segmenter("window", 100_000, 30_000, overlap="chunks")
    with pytest.raises(ConfigError, match="segment.overlap"):
        Segmenter("window", overlap="twice")


def test_a_leaky_network_keeps_its_own_continuous_state(recordings_dir):
    rec = read_events(recordings_dir / "tonic_sample.aedat4")
    net = small_net(tau_us=50_000.0)
    out, _, pipe = run_pipeline(net, rec.split_time(7_000)[:40], "inflight")
    assert pipe.segmenter.overlap == "repeat" and pipe.segmenter.continuous and out
    assert pipe.metrics()["overlap"]["fed"] == 0


def test_no_sample_id_or_label_reaches_the_network_through_the_windows_in_flight(nmnist_dir):
    samples = [s.load() for s in open_dataset(nmnist_dir).split("test").samples[:6]]
    net = small_net()
    seen = []
    real = net.input_events
    net.input_events = lambda batch: (seen.append((batch.sample, batch.label, dict(batch.meta))), real(batch))[1]
    net.predict_one = lambda batch: pytest.fail("every window is read out from its state")
    res = streameval.stream_evaluate(net, samples, overlap="chunks")
    assert res["decisions"] > 0 and seen
    assert all(s == (None, None, {}) for s in seen)


def test_a_batch_spanning_a_long_idle_gap_costs_only_its_windows(recordings_dir):
    rec = read_events(recordings_dir / "tonic_sample.aedat4")
    a, b = rec.slice_time(None, rec.t_start + 120_000), rec.slice_time(rec.t_start + 120_000, rec.t_start + 240_000)
    ev = np.concatenate([a.events, b.events])
    ev["t"][len(a):] += 10**13  # one packet whose events lie four months apart: 2e8 hops of idle time
    packet = EventBatch(ev, rec.width, rec.height)
    net = small_net()
    whole, _ = play(net, [packet], "repeat")
    ahead, inflight = play(net, [packet], "inflight")  # before the gap was skipped, this walked every hop
    assert len(whole) == len(ahead) >= 4 and all(same(x, y) for (_, x), (_, y) in zip(whole, ahead))
    assert inflight.counters["recomputed"] == 0


def test_only_the_open_windows_keep_their_potentials_on_an_idle_sensor(recordings_dir):
    rec = read_events(recordings_dir / "tonic_sample.aedat4")
    net = small_net()
    seg = Segmenter("window", 100_000, 50_000, min_events=10**6, overlap="inflight")  # every window skipped
    inflight = InFlight()
    for b in rec.split_time(7_000):
        assert not seg.feed(b)
        for p in seg.take_pieces():
            inflight.feed(net, p)
        assert sum(st.arrays is not None for st in inflight.states.values()) <= 3
    assert len(inflight.states) >= 8  # the rest hold only the last layer's counts
