"""Continual learning from feedback: delayed progressive validation (the published prediction is scored, a
window is counted once), the feedback learning-rate scale, and classes added by feedback (bounded, off by
default, kept in checkpoints); on the real network with real N-MNIST samples and the pipeline's own path."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from conftest import need
from daemon_util import QuietSink

from streamsnn.errors import ConfigError
from streamsnn.io import open_dataset
from streamsnn.pipeline import Pipeline
from streamsnn.pipeline.segment import Window
from streamsnn.snn import SpikingNetwork


@pytest.fixture(scope="module")
def samples():
    return [s.load() for s in open_dataset(need("nmnist_small")).split("test").samples[:8]]


class Collect(QuietSink):
    """A sink keeping (sample, published label) of every decision, and every class list it is sent."""

    def __init__(self):
        self.decisions, self.class_lists = [], []

    def publish_decision(self, window, decision, info) -> None:
        self.decisions.append((window.sample, int(decision.label)))

    def publish_classes(self, classes) -> None:
        self.class_lists.append(list(classes))


class Source:
    """Real samples handed over one by one, then silence until closed (a live source)."""

    def __init__(self, batches, labelled: bool = True):
        self.batches, self.closed = list(batches), asyncio.Event()
        self.labelled = labelled

    def __aiter__(self):
        return self._gen()

    async def _gen(self):
        for b in self.batches:  # whole samples, each closing its sample as a replay's do
            await asyncio.sleep(0)
            yield b.with_meta(meta={**b.meta, "end_of_sample": True}, label=b.label if self.labelled else None)
        await self.closed.wait()

    async def aclose(self):
        self.closed.set()


async def until(cond, timeout: float = 60.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def test_feedback_scores_the_prediction_published_for_its_window_and_counts_it_once(samples):
    net = SpikingNetwork((2312, 32, 10), seed=3)
    sink, fb = Collect(), asyncio.Queue()
    pipe = Pipeline(Source(samples, labelled=False), net, [sink], feedback=fb, feedback_per_s=0,
                    metrics_every_s=60)
    run = asyncio.create_task(pipe.run())
    await until(lambda: len(sink.decisions) == len(samples))
    published = dict(sink.decisions)
    seen, events = net.samples_seen, net.events_seen
    assert seen == len(samples)
    # The model moves on after the decisions (here: one class now wins everything); feedback arriving
    # now must score what was published then, not a fresh prediction.
    first, second = samples[0].sample, samples[1].sample
    other = (published[first] + 1) % 10
    net.bias[other] += 1e4
    await fb.put({"sample": first, "label": str(published[first])})        # the published label was right
    await fb.put({"sample": second, "label": str((published[second] + 1) % 10)})  # it was wrong
    await fb.put({"sample": first, "label": str(published[first])})        # again: a duplicate
    await until(lambda: pipe.counters.feedback["received"] == 3)
    assert (net.progressive_correct, net.progressive_total) == (1, 2)
    assert (net.samples_seen, net.events_seen) == (seen, events)  # feedback does not count a window again
    m = pipe.metrics()
    assert m["feedback_accuracy"] == 0.5 and m["samples_seen"] == seen and m["decisions"] == len(samples)
    assert m["feedback"]["learned"] == 2 and m["feedback"]["duplicate"] == 1
    pipe.stop()
    await asyncio.wait_for(run, 60)


async def test_a_labelled_replay_stays_test_then_train_scored_once(samples):
    net = SpikingNetwork((2312, 32, 10), seed=3)
    sink = Collect()
    pipe = Pipeline(Source(samples), net, [sink], metrics_every_s=60)
    run = asyncio.create_task(pipe.run())
    await until(lambda: len(sink.decisions) == len(samples))
    right = sum(label == s.label for (_, label), s in zip(sink.decisions, samples))
    assert (net.samples_seen, net.progressive_total, net.progressive_correct) == (len(samples), len(samples), right)
    assert await pipe.apply_feedback({"sample": samples[0].sample, "label": samples[0].label}) is False  # learned
    assert net.progressive_total == len(samples) and pipe.counters.feedback["duplicate"] == 1
    pipe.stop()
    await asyncio.wait_for(run, 60)


def test_lr_scale_scales_the_step():
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 2312, 3000).astype(np.int32)
    nets = {s: SpikingNetwork((2312, 64, 10), seed=1, max_step=0) for s in (1.0, 0.25, 0.0)}
    b0 = nets[1.0].bias.copy()
    for s, net in nets.items():
        net.learn_indices(idx, 4, lr_scale=s, prediction=2)
    np.testing.assert_allclose(nets[0.25].bias - b0, 0.25 * (nets[1.0].bias - b0), rtol=1e-5, atol=1e-7)
    assert np.array_equal(nets[0.0].bias, b0) and np.array_equal(nets[0.0].W2, SpikingNetwork((2312, 64, 10),
                                                                                               seed=1).W2)
    with pytest.raises(Exception, match="lr_scale"):
        nets[1.0].learn_indices(idx, 4, lr_scale=-1.0)


async def test_the_pipeline_learns_feedback_at_feedback_lr_scale(samples):
    s = samples[0]
    ref = SpikingNetwork((2312, 32, 10), seed=5)
    ref.learn_one(s, 7, prediction=1, lr_scale=0.3)
    out = {}
    for scale in (0.3, 1.0):
        pipe = Pipeline(None, SpikingNetwork((2312, 32, 10), seed=5), [], feedback_lr_scale=scale)
        pipe.recent.add(Window(s, s.t_start, s.t_end, s.sample, None, predicted=1))
        assert await pipe.apply_feedback({"sample": s.sample, "label": 7}) is True
        pipe._worker.shutdown()
        out[scale] = pipe.net
    assert all(np.array_equal(a, b) for a, b in zip(out[0.3].weights + [out[0.3].bias], ref.weights + [ref.bias]))
    assert not np.array_equal(out[1.0].W2, ref.W2)
    with pytest.raises(ConfigError):
        Pipeline(None, ref, [], feedback_lr_scale=-0.1)


def test_add_class_keeps_the_old_scores_and_survives_a_checkpoint(samples, tmp_path):
    net = SpikingNetwork(arch="conv:4:5:2:2,dense:32", classes=["a", "b", "c"], seed=2)
    before = [net.predict_one(s).scores for s in samples]
    assert net.add_class("new", lr_boost=4.0) == 3 and net.classes == ["a", "b", "c", "new"]
    after = [net.predict_one(s) for s in samples]
    for b, a in zip(before, after):
        np.testing.assert_allclose(a.scores[:3], b, rtol=1e-6)  # float sums: the same up to rounding
        assert a.label == int(np.argmax(b))  # the new unit wins nothing before it has learned
    with pytest.raises(ConfigError):
        net.add_class("b")
    for _ in range(15):  # it learns from later labels
        net.learn_one(samples[0], 3, prediction=0)
    assert net.predict_one(samples[0]).label == 3
    net.save(tmp_path / "m.npz")
    back = SpikingNetwork.load(tmp_path / "m.npz")
    assert back.classes == net.classes and back.class_lr.tolist() == [1, 1, 1, 4]
    for s in samples:
        np.testing.assert_array_equal(back.predict_one(s).scores, net.predict_one(s).scores)  # bit for bit


def test_a_new_class_learns_faster_with_its_boost(samples):
    got = {}
    for boost in (1.0, 8.0):
        net = SpikingNetwork((2312, 32, 10), seed=4)
        net.add_class("x", lr_boost=boost)
        net.learn_one(samples[0], 10, prediction=0)
        got[boost] = net.predict_one(samples[0]).scores[10]
    assert got[8.0] > got[1.0]


async def test_feedback_adds_a_class_only_when_allowed_and_within_the_bound(samples):
    def pipeline(**kw):
        sink = Collect()
        pipe = Pipeline(None, SpikingNetwork((2312, 32, 10), seed=5), [sink], feedback_per_s=0, **kw)
        for s in samples:
            pipe.recent.add(Window(s, s.t_start, s.t_end, s.sample, None, predicted=0))
        return pipe, sink

    off, _ = pipeline()  # model.new_classes is off by default
    assert await off.apply_feedback({"sample": samples[0].sample, "label": "ten"}) is False
    assert off.counters.feedback["unknown_class"] == 1 and off.net.n_classes == 10
    off._worker.shutdown()

    pipe, sink = pipeline(new_classes=True, max_classes=11)
    assert await pipe.apply_feedback({"sample": samples[0].sample, "label": "ten"}) is True
    assert pipe.net.classes[-1] == "ten" and pipe.net.n_classes == 11 and sink.class_lists == [pipe.net.classes]
    assert pipe.net.W2.shape == (32, 11) and pipe.net.bias.shape == (11,)
    assert await pipe.apply_feedback({"sample": samples[1].sample, "label": "eleven"}) is False  # bound reached
    assert await pipe.apply_feedback({"sample": samples[2].sample, "label": "ten"}) is True  # known now
    assert await pipe.apply_feedback({"sample": samples[3].sample, "label": 10}) is True  # by index too
    m = pipe.metrics()
    assert m["classes"] == 11 and m["classes_added"] == 1 and m["feedback"]["unknown_class"] == 1
    assert m["feedback"]["learned"] == 3
    pipe._worker.shutdown()

    labelled, _ = pipeline(new_classes=True)
    s = samples[4]
    labelled.recent.add(Window(s, s.t_start, s.t_end, s.sample, s.label, predicted=0))
    assert await labelled.apply_feedback({"sample": s.sample, "label": "ten"}) is False  # its true label is known
    assert labelled.counters.feedback["contradicts_label"] == 1 and labelled.net.n_classes == 10
    assert await labelled.apply_feedback({"sample": "nope", "label": "ten"}) is False  # no such decision
    assert labelled.net.n_classes == 10
    labelled._worker.shutdown()


def test_late_feedback_leaves_a_leaky_networks_running_state_alone(samples):
    net = SpikingNetwork((2312, 32, 10), seed=6, tau_us=30_000)
    old, now = samples[0], samples[1]
    net.predict_one(now)  # the stream has moved on to `now`
    state = [p.copy() for p in net.phi] + [net.scores.copy()]
    w = net.W2.copy()
    net.learn_one(old, 3, prediction=5)  # feedback about an earlier window
    assert not np.array_equal(w, net.W2)  # it learned
    for a, b in zip(state, [*net.phi, net.scores]):
        np.testing.assert_array_equal(a, b)  # and the stream goes on where it was
    fresh = SpikingNetwork((2312, 32, 10), seed=6, tau_us=30_000)
    fresh.learn_one(old, 3, prediction=5)  # learned on the window alone, as from a fresh state
    np.testing.assert_array_equal(fresh.W2, net.W2)
