"""A temporal (leaky) network on a live stream: each event reaches it once, its state carries across windows,
a decision at every window's end; in `eval --stream`, in the daemon's Pipeline and in `streamsnn run`. A
network without time decides each window alone, exactly as before."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from conftest import ROOT, need
from daemon_util import Daemon, QuietSink, daemons, live_replay_decisions  # noqa: F401 (fixture)
from dataset_util import write_aedat4

from streamsnn.events import EVENT_DTYPE, EventBatch
from streamsnn.io import open_dataset
from streamsnn.learn.streameval import LIVE_HOP_US, LIVE_MIN_EVENTS, LIVE_WINDOW_US, make_stream, stream_evaluate
from streamsnn.pipeline import Pipeline
from streamsnn.pipeline.decide import Decider, decide, evidence_at, temporal
from streamsnn.pipeline.segment import Segmenter
from streamsnn.snn import SpikingNetwork

SIZES = (2312, 32, 10)
TAU_US = 30_000.0


def leaky() -> SpikingNetwork:
    return SpikingNetwork(SIZES, seed=6, tau_us=TAU_US)


@pytest.fixture(scope="module")
def samples() -> list[EventBatch]:
    return [s.load() for s in open_dataset(need("nmnist_small")).split("test").samples[:10]]


def recording_net(net: SpikingNetwork) -> list[np.ndarray]:
    """Record the events of every predict_one and learn_one call of `net` (in call order)."""
    fed: list[np.ndarray] = []
    predict, learn = net.predict_one, net.learn_one

    def predict_one(batch):
        fed.append(batch.events.copy())
        return predict(batch)

    def learn_one(batch, *args, **kw):
        fed.append(batch.events.copy())
        return learn(batch, *args, **kw)

    net.predict_one, net.learn_one = predict_one, learn_one
    return fed


def windows_of(stream, continuous: bool) -> list:
    seg = Segmenter("window", LIVE_WINDOW_US, LIVE_HOP_US, LIVE_MIN_EVENTS, continuous=continuous)
    return [w for b in stream.batches for w in seg.feed(b)] + seg.flush()


def test_temporal_is_the_leak_unless_the_network_says():
    assert temporal(leaky()) and not temporal(SpikingNetwork(SIZES, seed=6))

    class Says:
        tau_us = None
        temporal = True

    assert temporal(Says())


def test_eval_stream_feeds_each_event_exactly_once_in_order(samples):
    net = leaky()
    fed = recording_net(net)
    res = stream_evaluate(net, samples, keep_decisions=True)
    stream = make_stream(samples)
    assert res["continuous"] is True and res["tau_us"] == TAU_US
    got = np.concatenate(fed)
    np.testing.assert_array_equal(got, np.concatenate([b.events for b in stream.batches]))  # all, once, in order
    assert res["events_fed"] == res["events"] == len(got)
    # the old path fed every window whole: with 100 ms windows every 50 ms, each event about twice
    assert sum(len(w.batch) for w in windows_of(stream, False)) > 1.8 * res["events"]


def test_a_decision_at_every_window_end_from_the_state_carried_so_far(samples):
    stream = make_stream(samples)
    whole = np.concatenate([b.events for b in stream.batches])
    net, decider = leaky(), Decider(0)
    resets = []
    original = net.reset
    net.reset = lambda: (resets.append(1), original())[1]
    windows = windows_of(stream, True)
    decisions = [decider(net, w) for w in windows]
    assert not resets  # never reset between windows
    # the same windows as without the continuous segmenter: one decision per hop whose window has events
    assert [(w.t_start_us, w.t_end_us) for w in windows] == \
        [(w.t_start_us, w.t_end_us) for w in windows_of(stream, False)]
    ends = np.array([w.t_end_us for w in windows])
    assert len(windows) > 30 and set(np.diff(ends)) == {LIVE_HOP_US}  # N-MNIST: never an idle window
    # each decision is the network that saw the whole stream up to the window's end, read out there
    for w, d in zip(windows, decisions):
        ref = leaky()
        before = EventBatch(whole[whole["t"] < w.t_end_us], 34, 34)
        want = evidence_at(ref, ref.predict_one(before), w.t_end_us)
        assert d.label == want.label
        np.testing.assert_allclose(d.scores, want.scores, rtol=1e-4, atol=1e-5)
    # and not each window alone from a fresh state
    alone = []
    for w in windows:
        net.reset = original
        net.reset()
        alone.append(net.predict_one(w.batch).label)
    assert alone != [d.label for d in decisions]


def test_the_readout_is_the_evidence_decayed_to_the_window_end(samples):
    net = leaky()
    d = net.predict_one(samples[0])
    later = evidence_at(net, d, net.t_last + int(TAU_US))
    np.testing.assert_allclose(later.scores - net.bias, (d.scores - net.bias) * np.exp(-1.0), rtol=1e-5)
    assert evidence_at(net, d, net.t_last).scores is d.scores
    assert evidence_at(SpikingNetwork(SIZES, seed=6), d, 10**9) is d  # no leak: nothing decays


def test_a_network_without_time_decides_exactly_as_before(samples):
    net = SpikingNetwork(SIZES, seed=6)
    res = stream_evaluate(net, samples, keep_decisions=True, overlap="inflight")  # the live default is chunks
    assert res["continuous"] is False
    old = [(w.t_start_us, w.t_end_us, net.predict_one(w.batch).label) for w in windows_of(make_stream(samples), False)]
    assert [(d["t_start_us"], d["t_end_us"], d["label"]) for d in res["decision_list"]] == old
    # a window that carries `fresh` events changes nothing for it either
    for w in windows_of(make_stream(samples[:3]), True):
        assert w.fresh is not None
        a, b = Decider(0)(net, w), decide(net, w)
        assert a.label == b.label and a.events == b.events == len(w.batch)
        np.testing.assert_array_equal(a.scores, b.scores)


async def test_the_pipeline_makes_its_segmenter_continuous_for_a_temporal_network(samples):
    stream = make_stream(samples)

    class Got(QuietSink):
        def __init__(self):
            self.rows = []

        def publish_decision(self, w, d, info):
            self.rows.append((w.t_start_us, d.label, d.events, w.fresh))

    async def source():
        for b in stream.batches:
            yield b
            await asyncio.sleep(0)

    runs = {}
    for name, net in (("leaky", leaky()), ("plain", SpikingNetwork(SIZES, seed=6))):
        sink = Got()
        pipe = Pipeline(source(), net, [sink], segmenter=Segmenter("window", LIVE_WINDOW_US, LIVE_HOP_US,
                                                                   LIVE_MIN_EVENTS))
        await pipe.run()
        assert pipe.segmenter.continuous is (name == "leaky")
        assert all(fresh is None for *_, fresh in sink.rows)  # not kept with the windows held for feedback
        runs[name] = sink.rows
    assert sum(e for _, _, e, _ in runs["leaky"]) == stream.events
    res = stream_evaluate(leaky(), samples, keep_decisions=True)  # the very decisions of eval --stream
    assert [(t, lab) for t, lab, _, _ in runs["leaky"]] == [(d["t_start_us"], d["label"]) for d in res["decision_list"]]


def test_labelled_windows_learn_on_the_running_state_as_it_decides(samples):
    # before, each labelled window was learned alone on a fresh state, a way of deciding the stream never used (the
    # gesture demo's model: 57 % of held-out stream windows right alone, 71 % carrying its state)
    stream = make_stream(samples[:4])
    labelled = windows_of(stream, True)  # make_stream strips labels: each window is labelled by hand below
    net, twin = leaky(), leaky()
    decider = Decider(0)
    fed = recording_net(net)
    import copy

    rights = []
    for k, w in enumerate(labelled):
        w.label = k % 10
        before = copy.deepcopy(twin)  # the twin learns in step with the network (which is wrapped to record)
        d = decider(net, w, learn=True)
        rights.append(d.label == w.label)
        # test then train: the decision is the network's before the update (the bias it learned must not reach it)
        want = evidence_at(before, before.predict_one(w.fresh), w.t_end_us)
        assert d.label == want.label
        np.testing.assert_allclose(d.scores, want.scores, rtol=1e-5, atol=1e-6)
        twin.learn_one(w.fresh, w.label)  # learning on the running state, state carried
    assert net.updates == twin.updates == len(labelled) and np.array_equal(net.W2, twin.W2)
    assert sum(len(e) for e in fed) == sum(len(w.fresh) for w in labelled) == stream.events  # each event once
    assert net.samples_seen == net.progressive_total == len(labelled)  # each window counted once
    assert net.progressive_correct == sum(rights)  # scored as published (read out at the window's end)


def labelled_stream(samples) -> list[EventBatch]:
    """The samples on one clock in 20 ms batches that keep their sample id and label (a simulated camera filming
    known samples, the demo's `segment.label_windows`)."""
    stream = make_stream(samples, chunk_us=20_000)
    whole = EventBatch.concatenate(stream.batches).events
    out = []
    for i, (a, b) in enumerate(zip(stream.starts, stream.ends)):
        part = whole[(whole["t"] >= a) & (whole["t"] < b)]
        out += EventBatch(part, 34, 34, sample=stream.ids[i], label=int(stream.labels[i])).split_time(20_000)
    return out


async def test_windows_labelled_by_their_sample_still_feed_each_event_once_and_carry_the_state(samples):
    # the demo (a simulated camera, label_windows) gave a leaky network every window whole onto the state the window
    # before had left: each event about twice
    batches = labelled_stream(samples[:4])
    events = sum(len(b) for b in batches)

    class Got(QuietSink):
        def __init__(self):
            self.rows = []

        def publish_decision(self, w, d, info):
            self.rows.append((w.sample, w.label, d.label))

    async def source():
        for b in batches:
            yield b
            await asyncio.sleep(0)

    for learn in (False, True):
        net = leaky()
        fed = recording_net(net)
        sink = Got()
        seg = Segmenter("window", LIVE_WINDOW_US, LIVE_HOP_US, LIVE_MIN_EVENTS, label_windows=True)
        pipe = Pipeline(source(), net, [sink], segmenter=seg, learn_from_labels=learn)
        await pipe.run()
        assert len(sink.rows) > 20 and all(lab is not None for _, lab, _ in sink.rows)  # labelled stream windows
        got = np.concatenate(fed)
        np.testing.assert_array_equal(got, np.concatenate([b.events for b in batches]))  # all, once, in order
        assert len(got) == events
        assert net.updates == (len(sink.rows) if learn else 0)  # each labelled window learned once


def test_events_waiting_for_a_window_are_bounded():
    # an idle sensor whose windows never reach min_events: at most max_events held, the rest counted
    t = np.arange(0, 2_000_000, 1_000, dtype=np.int64)
    ev = np.zeros(len(t), EVENT_DTYPE)
    ev["t"] = t
    seg = Segmenter("window", 100_000, 50_000, min_events=1_000, max_events=500, continuous=True)
    out = [w for b in EventBatch(ev, 34, 34).split_time(10_000) for w in seg.feed(b)]
    assert out == [] and len(seg._unfed) == 500 and seg.counters["unfed"] == len(t) - 500


@pytest.mark.slow
async def test_the_daemon_runs_a_leaky_model_on_a_continuous_stream(tmp_path, samples, daemons):  # noqa: F811
    ckpt = tmp_path / "leaky.npz"
    leaky().save(ckpt)
    rows, n_events = await live_replay_decisions(tmp_path, daemons, samples[:8], ckpt)
    assert sum(r["events"] for r in rows) == n_events  # each event reached the network once
    want = stream_evaluate(leaky(), samples[:8], keep_decisions=True)["decision_list"]
    assert [(r["t_start_us"], r["label"]) for r in rows] == [(w["t_start_us"], w["label"]) for w in want]


def test_eval_stream_tau_override_replaces_per_layer_leaks_too(samples):
    net = SpikingNetwork((2312, 32, 16, 10), seed=6, tau_us=TAU_US, layer_tau_us=[5_000.0, 90_000.0])
    seen = []
    original = net.predict_one

    def predict_one(batch):
        seen.append(net.layer_tau_us)
        return original(batch)

    net.predict_one = predict_one
    res = stream_evaluate(net, samples[:3], tau_us=20_000.0)
    assert res["tau_us"] == 20_000.0 and seen and set(seen) == {(20_000.0, 20_000.0)}
    assert net.layer_tau_us == (5_000.0, 90_000.0) and net.tau_us == TAU_US  # restored afterwards
    seen.clear()
    stream_evaluate(net, samples[:3])
    assert set(seen) == {(5_000.0, 90_000.0)}


def test_a_clock_that_goes_back_keeps_the_state_as_it_was_at_the_last_event(samples):
    # before: compared with the leak frame's start, not the last event: the state was read up to exp(16) times too
    # strong (the same recording again from its start: the evidence x27,741)
    net = leaky()
    x = samples[0]
    end = net.predict_one(x)
    again = net.predict_one(EventBatch(x.events[:1].copy(), 34, 34))
    assert np.abs(again.scores - net.bias).max() < 1.5 * np.abs(end.scores - net.bias).max()


async def run_pipe(net, batches, segmenter, **options) -> list:
    """(t_start, label, scores) of every decision a Pipeline publishes for ``batches`` (not learning from labels)."""
    rows = []

    class Got(QuietSink):
        def publish_decision(self, w, d, info):
            rows.append((w.t_start_us, d.label, d.scores))

    async def source():
        for b in batches:
            yield b
            await asyncio.sleep(0)

    await Pipeline(source(), net, [Got()], segmenter=segmenter, **{"learn_from_labels": False, **options}).run()
    return rows


async def test_a_stream_that_starts_again_starts_from_a_fresh_state(samples):
    # a looped clip, a sensor whose clock restarted: before, the old stream's state carried at full strength (the
    # second pass named the digit shown last before the restart on 19 of 24 windows)
    stream = make_stream(samples[:4]).batches
    seg = lambda: Segmenter("window", LIVE_WINDOW_US, LIVE_HOP_US, LIVE_MIN_EVENTS)  # noqa: E731
    once = await run_pipe(leaky(), stream, seg())
    twice = await run_pipe(leaky(), stream + stream, seg())
    assert len(twice) == 2 * len(once) and len(once) > 10
    for (t, label, scores), (t2, label2, scores2) in zip(once, twice[len(once):]):
        assert (t, label) == (t2, label2)
        np.testing.assert_allclose(scores, scores2, rtol=1e-4, atol=1e-5)


async def test_a_temporal_network_decides_each_whole_sample_from_a_fresh_state(samples):
    # a dataset replay (segment.mode "sample"): before, each sample was decided on the state the one before left
    # (18 of 100 right against eval's 67 for a leaky model); now as `eval` decides it
    batches = [s.with_meta(meta={**s.meta, "end_of_sample": True}) for s in samples]
    rows = await run_pipe(leaky(), batches, Segmenter("sample"))
    ref = leaky()
    want = []
    for s in samples:
        ref.reset()
        want.append(ref.predict_one(s))
    assert [label for _, label, _ in rows] == [d.label for d in want]
    for (_, _, scores), d in zip(rows, want):
        np.testing.assert_allclose(scores, d.scores, rtol=1e-4, atol=1e-5)


async def test_windows_labelled_by_their_sample_are_smoothed_as_any_stream_window(samples):
    from streamsnn.pipeline.decide import Decider

    labelled = labelled_stream(samples[:6])
    plain = [b.with_meta(sample=None, label=None) for b in labelled]
    runs = []
    for batches, lw in ((labelled, True), (plain, False)):
        seg = Segmenter("window", LIVE_WINDOW_US, LIVE_HOP_US, LIVE_MIN_EVENTS, label_windows=lw)
        runs.append(await run_pipe(leaky(), batches, seg, decider=Decider(100_000)))
    assert len(runs[0]) == len(runs[1]) > 20
    assert [label for _, label, _ in runs[0]] == [label for _, label, _ in runs[1]]  # before: 43 of 48 differed


def test_windows_labelled_by_their_sample_keep_the_class_name(samples):
    from streamsnn.pipeline.decide import true_output

    named = [b.with_meta(meta={"label_name": str(b.label)}) for b in labelled_stream(samples[:3])]
    seg = Segmenter("window", LIVE_WINDOW_US, LIVE_HOP_US, LIVE_MIN_EVENTS, label_windows=True)
    windows = [w for b in named for w in seg.feed(b)] + seg.flush()
    backwards = SpikingNetwork(SIZES, seed=6, classes=[str(c) for c in range(9, -1, -1)])  # classes 9 .. 0
    assert windows and all(w.batch.meta["label_name"] == str(w.label) for w in windows)
    assert all(backwards.classes[true_output(backwards, w)] == str(w.label) for w in windows)  # before: 9 - label


def test_smoothing_starts_afresh_with_another_stream_even_when_the_clock_goes_on(samples):
    # another sensor size (or a segmenter reset after a bad batch): the network was reset, the smoothed evidence not
    from streamsnn.pipeline.decide import Decider

    net, decider = leaky(), Decider(1e9)  # a time constant that forgets nothing
    seg = Segmenter("window", LIVE_WINDOW_US, LIVE_HOP_US, LIVE_MIN_EVENTS, continuous=True)
    first = [w for b in make_stream(samples[:3]).batches for w in seg.feed(b)]
    later = np.concatenate([b.events for b in make_stream(samples[3:6]).batches])
    later["t"] += first[-1].t_end_us + 1_000_000
    other = EventBatch(later, 35, 34)  # another sensor, the clock going on
    for w in first:
        decider(net, w)
    second = seg.feed(other) + seg.flush()
    new = [w for w in second if w.stream != first[-1].stream]
    assert new
    d = decider(net, new[0])
    raw = decider.alone(leaky(), new[0], False)  # the same window on a fresh network, unsmoothed
    assert d.label == raw.label and np.allclose(d.scores, np.asarray(log_softmax_of(raw.scores)), atol=1e-5)


def log_softmax_of(scores):
    z = np.asarray(scores, np.float64)
    z = z - z.max()
    return z - np.log(np.exp(z).sum())


def test_the_watch_judges_a_temporal_network_deciding_as_it_does(samples):
    """The revival's watch compares the network with its copy deciding the same windows the same way: a temporal
    network's stream of fresh events with its state carried (each window alone on a fresh state was right on
    5-9 points fewer of them: half the margin of a revival for accuracy). A network that learns nothing is its copy:
    the same record, the same rates."""
    from streamsnn.pipeline import revive

    net = SpikingNetwork(SIZES, seed=6, tau_us=TAU_US, lr=0.0, lr_out=0.0)  # stays its copy bit for bit
    decider = Decider(0)
    windows = windows_of(make_stream(samples[:6]), True)
    for k, w in enumerate(windows):
        w.label = (k // 4) % 10
        decider(net, w, learn=True)
    watch = decider.watch
    assert len(watch.recent) >= revive.JUDGE_MIN and all(c is not None for *_, c in watch.recent)
    (rates, acc), (copy_rates, copy_acc) = watch.judge(net)
    assert acc == copy_acc and np.allclose(rates, copy_rates)


def test_the_judge_replays_the_stream_for_both_networks_alike(samples):
    """Both networks replay the windows the temporal network learned from, afresh at a new stream (a looped clip), and
    are scored on the replay. Before, a network identical to its copy was right on 45.3 % of a looped clip's windows
    (its record, with the state the whole stream built) and its copy's replay on 38.9 %: an error as large as the
    margin of a revival for accuracy. Windows it did not learn from are not kept (on a busy stream they crowded the
    judged ones out of the event budget, and the judge gave up)."""
    net = SpikingNetwork(SIZES, seed=6, tau_us=TAU_US, lr=0.0, lr_out=0.0)  # stays its copy bit for bit
    decider = Decider(0)
    seg = Segmenter("window", LIVE_WINDOW_US, LIVE_HOP_US, LIVE_MIN_EVENTS, continuous=True)
    batches = make_stream(samples[:5]).batches
    windows = [w for b in batches + batches for w in seg.feed(b)]  # the same clip again from t = 0: a restart
    assert len({w.stream for w in windows}) == 2
    for k, w in enumerate(windows):
        w.label = None if k % 4 == 0 else (k // 4) % 10  # every fourth window unlabelled: decided, not learned
        decider(net, w, learn=True)
    (rates, acc), (copy_rates, copy_acc) = decider.watch.judge(net)
    assert decider.watch.judged_windows > 20 and len(decider.watch.recent) < decider.watch.judged_windows + 5
    assert acc == copy_acc and np.allclose(rates, copy_rates)


def test_progressive_accuracy_scores_the_decision_as_published(samples):
    # a window read out well after its last event (a gap between samples): the evidence has decayed toward the
    # bias, so the published label can differ from the one at the last event, which the metrics counted
    net = leaky()
    net.bias[:] = 0.0
    net.bias[9] = 0.5
    decider = Decider(0)
    seg = Segmenter("window", LIVE_WINDOW_US, LIVE_HOP_US, 50, continuous=True)
    windows = [w for b in make_stream(samples[:6], gap_us=150_000).batches for w in seg.feed(b)]
    rights = []
    for k, w in enumerate(windows):
        w.label = 9 if k % 3 == 0 else k % 9
        rights.append(decider(net, w, learn=True).label == w.label)
    assert net.progressive_total == len(windows) and net.progressive_correct == sum(rights)


async def test_events_of_windows_dropped_under_overload_are_counted_as_unfed(samples):
    # pipeline.policy drop_oldest (the live pipelines'): a dropped window's fresh events never reach a temporal
    # network; before, only the window was counted (the demo daemon fed 414,651 of 546,915 events, "drops 194")
    import time

    stream = make_stream(samples[:6])
    net = leaky()
    fed = recording_net(net)
    slow = net.predict_one

    def predict_one(batch):
        time.sleep(0.003)  # a network slower than the stream
        return slow(batch)

    net.predict_one = predict_one

    async def source():
        for b in stream.batches:
            yield b
            await asyncio.sleep(0)

    seg = Segmenter("window", LIVE_WINDOW_US, LIVE_HOP_US, LIVE_MIN_EVENTS)
    pipe = Pipeline(source(), net, [QuietSink()], segmenter=seg, queue_size=1, policy="drop_oldest")
    await pipe.run()
    assert pipe.windows.dropped > 0
    assert sum(len(e) for e in fed) + seg.counters["unfed"] == stream.events  # every event fed or counted
