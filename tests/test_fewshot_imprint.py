"""Imprinting a class added by feedback (model.imprint, snn/classedit.imprint): its first taught window decides it at
once, windows like it too, and the old classes' decisions on their own examples barely move (issue 22)."""

from __future__ import annotations

import asyncio
import copy

import numpy as np
import pytest
from conftest import need

from streamsnn.events import EventBatch
from streamsnn.learn.training import load_split, train_epoch
from streamsnn.pipeline import Pipeline
from streamsnn.pipeline.segment import Window
from streamsnn.snn import SpikingNetwork, classedit

OLD = (0, 2, 3)  # the classes the base model knows; digit 1 is taught
MOVED = 0.05  # at most this fraction of the old classes' test decisions may change when the class is added


@pytest.fixture(scope="module")
def digits():
    """(a dense:64 network trained on OLD with its rehearsal memory, test SampleArrays of OLD relabelled 0..2,
    real training 1s as EventBatches)."""
    from streamsnn.io import open_dataset

    folder = need("nmnist_small")
    probe = SpikingNetwork(arch="dense:1")
    train = load_split(folder, "train", probe, quiet=True)
    test = load_split(folder, "test", probe, quiet=True)
    train, test = (d.pick([k for k, y in enumerate(d.labels) if y in OLD]) for d in (train, test))
    for d in (train, test):
        d.labels = np.asarray([OLD.index(int(y)) for y in d.labels])
    net = SpikingNetwork(arch="dense:64", classes=[str(c) for c in OLD], seed=0)
    for ep in range(3):
        train_epoch(net, train, epoch=ep, epochs=3, seed=0, quiet=True)
    net.memory.fill(net, train)
    ones = [s.load() for s in open_dataset(folder).split("train").samples if s.label == 1][:4]
    return net, test, ones


def variants(batch: EventBatch, n: int = 6, drop: float = 0.15) -> list[EventBatch]:
    """``batch`` with a random ``drop`` of its events left out, ``n`` times: windows like it."""
    rng = np.random.default_rng(7)
    out = []
    for _ in range(n):
        keep = np.sort(rng.choice(len(batch), int(len(batch) * (1 - drop)), replace=False))
        out.append(EventBatch(batch.events[keep], batch.width, batch.height, sample=batch.sample))
    return out


def decisions(net, test) -> np.ndarray:
    return np.asarray([net.predict_indices(i, t).label for i, t in zip(test.idx, test.t)])


def teach_once(base, batch, imprint: bool) -> tuple[SpikingNetwork, Pipeline]:
    """A copy of ``base`` taught one window of a new class "1" through the daemon's feedback path."""
    net = copy.deepcopy(base)
    # imprinting against zero weights under the backprop path (model.new_class_fit: test_fewshot_protect.py)
    pipe = Pipeline(None, net, [], feedback_per_s=0, new_classes=True, max_classes=8, imprint=imprint,
                    new_class_fit=False)
    try:
        w = Window(batch, batch.t_start, batch.t_end, batch.sample, None)
        d, _ = pipe._worker.submit(pipe._decide, w).result()  # on the worker, as the daemon decides
        w.predicted = d.label
        pipe.recent.add(w)
        assert asyncio.run(pipe.apply_feedback({"sample": batch.sample, "label": "1"}))
    finally:
        pipe._worker.shutdown(wait=True)
    return net, pipe


def test_an_imprinted_class_decides_its_window_and_windows_like_it_at_once(digits):
    base, test, ones = digits
    before = decisions(base, test)
    assert np.mean(before == test.labels) >= 0.8
    right = {}
    for imprint in (False, True):
        net, pipe = teach_once(base, ones[0], imprint)
        new = net.class_index("1")
        assert pipe.counters.imprinted == int(imprint)
        right[imprint] = [net.predict_one(b).label == new for b in [ones[0], *variants(ones[0])]]
        moved = float(np.mean(decisions(net, test) != before))
        assert moved <= MOVED, (imprint, moved)  # the old classes keep their decisions on their own examples
    assert all(right[True]), right[True]  # the taught window and every variant: the new class at once
    assert sum(right[False]) <= 2, right[False]  # today's zero weights: one window is not enough


def test_imprinting_leaves_every_other_score_as_it_was_and_puts_the_window_above_them(digits):
    base, _, ones = digits
    net = copy.deepcopy(base)
    idx, t = net.input_events(ones[1])
    h = net.features(idx, t)
    old = net.predict_indices(idx, t).scores.copy()
    new = net.add_class("1")
    assert classedit.imprint(net, new, h, margin=2.0, centre=net.memory.centre(net, new))
    scores = net.predict_indices(idx, t).scores
    np.testing.assert_allclose(scores[:new], old, rtol=1e-6)  # the old units are untouched
    assert scores[new] == pytest.approx(old.max() + 2.0, abs=1e-3)
    norms = np.linalg.norm(net.out_weight, axis=0)
    assert norms[new] == pytest.approx(float(np.median(norms[:new])), rel=1e-4)
    assert not classedit.imprint(net, new, np.zeros_like(h), margin=2.0)  # no spikes: nothing to imprint from


def test_a_convolutional_network_is_imprinted_and_a_leaky_one_keeps_zero_weights(digits):
    _, _, ones = digits
    conv = SpikingNetwork(arch="conv:4:5:2:2,dense:32", input_shape=(34, 34, 2), classes=["a", "b"], seed=1)
    idx, t = conv.input_events(ones[2])
    new = conv.add_class("c")
    assert classedit.imprints(conv)
    assert classedit.imprint(conv, new, conv.features(idx, t), margin=1.0)
    assert conv.predict_indices(idx, t).label == new
    leaky = SpikingNetwork(arch="dense:16", input_shape=(34, 34, 2), classes=["a", "b"], seed=1, tau_us=50_000.0)
    new = leaky.add_class("c")
    assert not classedit.imprints(leaky)
    idx, t = leaky.input_events(ones[2])
    assert not classedit.imprint(leaky, new, leaky.features(idx, t), margin=1.0)
    assert not np.any(leaky.out_weight[:, new])
