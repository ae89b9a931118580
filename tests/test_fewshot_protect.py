"""Teaching one class must not erase the others (issue 22): a class added by feedback learns only its output unit
(model.new_class_fit), fit against the old classes' kept examples and the scene decided before it was added
(pipeline/scene.py, snn/classedit.fit_class); the hidden layers, which the old classes depend on, stay as they were."""

from __future__ import annotations

import asyncio
import copy
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import need

from streamsnn.learn.training import load_split, train_epoch
from streamsnn.pipeline import Pipeline
from streamsnn.pipeline.scene import Scene
from streamsnn.pipeline.segment import Window
from streamsnn.snn import SpikingNetwork, classedit

OLD = (0, 2, 3)  # the classes the base model knows; digit 1 is taught


@pytest.fixture(scope="module")
def digits():
    """(a dense:64 network trained on OLD with its rehearsal memory, test SampleArrays, 20 real training 1s and
    30 real training windows of OLD as EventBatches: the scene the camera shows before a 1 is named)."""
    from streamsnn.io import open_dataset

    folder = need("nmnist_small")
    probe = SpikingNetwork(arch="dense:1")
    train = load_split(folder, "train", probe, quiet=True)
    test = load_split(folder, "test", probe, quiet=True)
    train = train.pick([k for k, y in enumerate(train.labels) if y in OLD])
    train.labels = np.asarray([OLD.index(int(y)) for y in train.labels])
    net = SpikingNetwork(arch="dense:64", classes=[str(c) for c in OLD], seed=0)
    for ep in range(3):
        train_epoch(net, train, epoch=ep, epochs=3, seed=0, quiet=True)
    net.memory.fill(net, train)
    samples = open_dataset(folder).split("train").samples
    ones = [s.load() for s in samples if s.label == 1][:20]
    scene = [s.load() for s in samples if s.label in OLD][-30:]
    return net, test, ones, scene


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def teach(base, ones, scene, names=None, **settings):
    """A copy of ``base`` that first decides ``scene`` unlabelled (one second apart), then is taught ``ones`` as a
    new class "1" (or as ``names``, one per window) through the daemon's feedback path; returns (net, pipeline)."""
    net, clock = copy.deepcopy(base), Clock()
    pipe = Pipeline(None, net, [], feedback_per_s=0, new_classes=True, max_classes=8, clock=clock, **settings)
    try:
        for k, b in enumerate([*scene, *ones]):
            clock.now += 1.0
            w = Window(b, b.t_start, b.t_end, b.sample, None)
            d, info = pipe._worker.submit(pipe._decide, w).result()
            pipe._publish(w, d, info)
            if k >= len(scene):
                name = "1" if names is None else names[k - len(scene)]
                assert asyncio.run(pipe.apply_feedback({"sample": b.sample, "label": name}))
    finally:
        pipe._worker.shutdown(wait=True)
    return net, pipe


def accuracy(net, test, digits) -> float:
    keep = [k for k, y in enumerate(test.labels) if int(y) in digits]
    return float(np.mean([net.classes[net.predict_indices(test.idx[k], test.t[k]).label] == str(int(test.labels[k]))
                          for k in keep]))


def test_teaching_only_a_new_class_leaves_the_hidden_layers_and_the_old_classes(digits):
    base, test, ones, scene = digits
    before = accuracy(base, test, OLD)
    assert before >= 0.8
    hidden = [layer.weight.copy() for layer in base.hidden]
    old_off, pipe_off = teach(base, ones, scene, new_class_fit=False, rehearse=0)  # the backprop path, no replay
    net, pipe = teach(base, ones, scene)  # the defaults
    assert pipe.counters.fitted == len(ones) and pipe.counters.rehearsed == 0 and pipe_off.counters.fitted == 0
    assert all(np.array_equal(a, layer.weight) for a, layer in zip(hidden, net.hidden))  # untouched
    assert not all(np.array_equal(a, layer.weight) for a, layer in zip(hidden, old_off.hidden))
    assert accuracy(net, test, (1,)) >= 0.6  # the new class is learned (0.79) ...
    assert before - accuracy(old_off, test, OLD) >= 0.3  # ... where the backprop path's unit takes over (0.56)
    assert before - accuracy(net, test, OLD) <= 0.1  # ... and the old classes keep what they knew (0.04 lost)


def test_the_scene_is_what_was_decided_before_the_class_was_named(digits):
    base, _, ones, scene = digits
    net, clock = copy.deepcopy(base), Clock()
    with ThreadPoolExecutor(1) as worker:
        s = Scene(net, worker, clock, enabled=True, size=8, per_s=0.5, gap_s=3.0)
        for b in scene[:20]:
            clock.now += 1.0
            s.seen(Window(b, b.t_start, b.t_end, b.sample, None))
        labelled = scene[20]
        s.seen(Window(labelled, labelled.t_start, labelled.t_end, labelled.sample, 0))  # a true label: not the scene
        worker.submit(lambda: None).result()
        assert len(s) == 8  # one window every 2 s of the 20, the last 8 kept
        clock.now = 21.0
        worker.submit(s.added, 3).result()
        neg = s.negatives(3)
        assert neg.shape == (7, 64)  # the window seen at 19 s is within 3 s of the class: left out
        assert np.allclose(neg[-1], net.features(*net.input_events(scene[16])))
        assert s.negatives(2) is None
    assert not Scene(net, worker, clock, enabled=False).enabled


def test_the_fit_sees_the_last_taught_windows_each_with_varied_copies(digits, monkeypatch):
    from streamsnn import defaults

    base, _, ones, scene = digits
    seen = []
    real_fit = classedit.fit_class

    def spy(net, index, positives, negatives, **kw):
        seen.append((len(net.memory.features_of(net, [k for k, y in enumerate(net.memory.labels) if y == index])),
                     np.array(positives)))
        return real_fit(net, index, positives, negatives, **kw)

    monkeypatch.setattr(classedit, "fit_class", spy)
    monkeypatch.setattr(defaults, "FIT_POOL", 3)
    net, pipe = teach(base, ones[:5], scene[:10])
    assert pipe.counters.fitted == 5 and len(seen) == 5 and net.hidden_updates == base.hidden_updates
    copies = 1 + defaults.FIT_AUGMENT
    for n, (kept, positives) in enumerate(seen, start=1):  # the kept examples, then the last 3 windows and copies
        assert len(positives) == kept + min(n, 3) * copies
    last = seen[-1][1][-copies:]  # the window taught last, then its copies: other counts (shifted, thinned)
    h = net.features(*net.input_events(ones[4]))
    assert np.allclose(last[0], h)
    assert all(not np.array_equal(row, h) for row in last[1:])
    seen.clear()
    monkeypatch.setattr(defaults, "FIT_AUGMENT", 0)
    monkeypatch.setattr(defaults, "FIT_POOL", 0)
    teach(base, ones[:3], scene[:10])
    assert [len(p) - kept for kept, p in seen] == [1, 1, 1]  # as before: the kept examples and the window
    seen.clear()
    monkeypatch.setattr(defaults, "FIT_AUGMENT", 2)
    monkeypatch.setattr(defaults, "FIT_POOL", 20)
    net, _ = teach(base, [ones[0], ones[1], scene[20], ones[2]], scene[:10], names=["1", "1", "0", "1"])
    assert net.hidden_updates > base.hidden_updates  # feedback on an old class moved the hidden layers ...
    assert [len(p) - kept for kept, p in seen] == [3, 6, 3]  # ... so the 1s taught before it are not fit again
    seen.clear()
    teach(base, ones[:3], [])  # nothing decided before the class was named: no scene
    assert [len(p) - kept for kept, p in seen] == [1, 1, 1]  # no copies: the kept examples and the window


def test_fit_class_moves_only_its_unit_so_its_windows_win_and_the_others_keep():
    rng = np.random.default_rng(0)
    net = SpikingNetwork(arch="dense:8", input_shape=(4, 4, 1), classes=3, seed=0)
    net.add_class("new", lr_boost=100.0)
    P = rng.poisson(3.0, (10, 8)).astype(np.float32)
    P[:, 0] += 8
    N = rng.poisson(3.0, (40, 8)).astype(np.float32)
    W, b = net.out_weight.copy(), net.bias.copy()
    assert classedit.fit_class(net, 3, P, N, steps=300, rate=10.0, weight=3.0)
    assert np.array_equal(net.out_weight[:, :3], W[:, :3]) and np.array_equal(net.bias[:3], b[:3])
    win = lambda X: np.argmax(X @ net.out_weight + net.bias, axis=1)  # noqa: E731
    assert np.mean(win(P) == 3) >= 0.9 and np.mean(win(N) == 3) <= 0.1
    assert not classedit.fit_class(net, 3, P, N[:0], steps=5, rate=10.0, weight=3.0)  # no negatives: unchanged
    bad = N.copy()
    bad[0, 0] = np.nan
    before = net.out_weight.copy()
    assert not classedit.fit_class(net, 3, P, bad, steps=5, rate=10.0, weight=3.0)
    assert np.array_equal(net.out_weight, before)


def test_model_new_class_fit_is_a_setting():
    from streamsnn.config import build_config
    from streamsnn.pipeline.settings import PipelineSettings

    assert PipelineSettings().new_class_fit is True
    cfg = build_config({}, overrides=["model.new_class_fit=false"])
    assert PipelineSettings.from_config(cfg).new_class_fit is False


def test_a_leaky_network_teaches_a_new_class_the_whole_way_with_the_replay(digits):
    _, _, ones, scene = digits
    net = SpikingNetwork(arch="dense:16", classes=["0", "2", "3"], seed=0, tau_us=50_000.0)
    for k, b in enumerate(scene[:9]):
        net.memory.add(*net.input_events(b), k % 3)
    hidden = net.hidden[0].weight.copy()
    _, pipe = teach(net, ones[:2], scene[:3], rehearse=2)
    assert pipe.counters.fitted == 0 and pipe.counters.rehearsed == 4  # scores are decayed evidence: no fit
    assert not pipe.keeper.scene.enabled
    taught, _ = teach(net, ones[:2], scene[:3])
    assert not np.array_equal(taught.hidden[0].weight, hidden)


def test_a_class_added_after_a_restart_is_fit_against_the_scene_decided_before_it(digits, tmp_path):
    """A daemon decides 10 scene windows, is saved and restarted, and a new class is named before anything else is
    decided: its scene is the 10 windows from before the restart (they count as older than the gap). A file without
    the recent windows (written before they were saved) leaves the class without a scene, as before."""
    base, _, ones, scene = digits
    decided, _ = teach(base, [], scene[:10])
    rows = np.stack([h for _, h in decided.memory.fit.recent])
    assert rows.shape == (10, 64)  # one a second is under the 2 a second kept
    decided.save(tmp_path / "m.npz")
    after, pipe = teach(SpikingNetwork.load(tmp_path / "m.npz"), ones[:1], [])
    assert pipe.counters.fitted == 1
    neg = after.memory.fit.scene(after.classes.index("1"))
    assert neg is not None and np.allclose(neg, rows, atol=1e-6)
    old = {k: v for k, v in np.load(tmp_path / "m.npz").items() if k != "memory_recent"}
    np.savez(tmp_path / "old.npz", **old)
    before_it, _ = teach(SpikingNetwork.load(tmp_path / "old.npz"), ones[:1], [])
    assert before_it.memory.fit.scene(before_it.classes.index("1")) is None


def test_a_restarted_daemon_fits_a_new_class_against_the_same_scene_and_pool(digits, monkeypatch, tmp_path):
    """Taught 4 windows of a new class in one run, or 2, then saved, loaded and taught the other 2 (nothing decided
    after the restart): the fits after the restart see the scene and the pool of windows taught before it."""
    base, _, ones, scene = digits
    seen = []
    real_fit = classedit.fit_class

    def spy(net, index, positives, negatives, **kw):
        seen.append((np.array(positives), np.array(negatives)))
        return real_fit(net, index, positives, negatives, **kw)

    monkeypatch.setattr(classedit, "fit_class", spy)
    teach(base, ones[:4], scene[:10])
    whole, seen[:] = list(seen), []
    before, _ = teach(base, ones[:2], scene[:10])
    before.save(tmp_path / "m.npz")
    after, pipe = teach(SpikingNetwork.load(tmp_path / "m.npz"), ones[2:4], [])
    assert pipe.counters.fitted == 2 and len(seen) == 4
    from streamsnn import defaults

    copies = 1 + defaults.FIT_AUGMENT
    for (p, n), (wp, wn) in zip(seen[2:], whole[2:]):
        assert n.shape == wn.shape and np.allclose(n, wn, atol=1e-4)  # the kept examples and the same scene
        assert p.shape == wp.shape  # the kept examples and the pool, the windows before the restart in it
    pooled = len(seen[2][0]) - 3 * copies  # the kept examples of the class, then 2 windows from before, then this
    assert np.allclose(seen[2][0][pooled:pooled + 2 * copies], whole[2][0][pooled:pooled + 2 * copies], atol=1e-4)
