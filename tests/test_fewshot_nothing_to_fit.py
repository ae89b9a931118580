"""A class added by feedback on a model with nothing to fit its unit against (no kept examples of another class, no
scene) is taught the whole way, with the replay, not by its output unit alone at the feedback rate: that way
bench_incremental's new digit (base models without kept examples) won none of its test samples after 10 examples."""

from __future__ import annotations

import asyncio
import copy

import numpy as np
import pytest
from conftest import need

from streamsnn.learn.training import load_split, train_epoch
from streamsnn.pipeline import Pipeline
from streamsnn.pipeline.segment import Window
from streamsnn.snn import SpikingNetwork

OLD = (0, 2, 3)


@pytest.fixture(scope="module")
def base():
    """(a dense:32 network trained on OLD without kept examples, 30 real training 1s, the training samples)."""
    from streamsnn.io import open_dataset

    folder = need("nmnist_small")
    train = load_split(folder, "train", SpikingNetwork(arch="dense:1"), quiet=True)
    train = train.pick([k for k, y in enumerate(train.labels) if y in OLD][:150])
    train.labels = np.asarray([OLD.index(int(y)) for y in train.labels])
    net = SpikingNetwork(arch="dense:32", classes=[str(c) for c in OLD], seed=0)
    train_epoch(net, train, epoch=0, epochs=1, seed=0, quiet=True)
    samples = open_dataset(folder).split("train").samples
    ones = [s.load() for s in samples if s.label == 1][:30]
    return net, ones, train


def teach(net, ones):
    pipe = Pipeline(None, net, [], feedback_per_s=0, new_classes=True, max_classes=8, new_class_lr=10.0, rehearse=2)
    try:
        for b in ones:
            w = Window(b, b.t_start, b.t_end, b.sample, None)
            d, info = pipe._worker.submit(pipe._decide, w).result()
            pipe._publish(w, d, info)
            assert asyncio.run(pipe.apply_feedback({"sample": b.sample, "label": "1"}))
    finally:
        pipe._worker.shutdown(wait=True)
    return pipe


def test_without_kept_examples_a_new_class_is_taught_the_whole_way(base):
    net0, ones, _ = base
    net = copy.deepcopy(net0)
    assert not net.memory.labels
    hidden = net.hidden[0].weight.copy()
    pipe = teach(net, ones[:10])
    assert pipe.counters.fitted == 0
    assert not np.array_equal(net.hidden[0].weight, hidden)  # the hidden layers learned it too
    # held-out 1s: 8 of 15 right (its unit alone at the feedback rate, as before: 1 of 15)
    assert sum(net.classes[net.predict_indices(*net.input_events(b)).label] == "1" for b in ones[15:]) >= 5


def test_with_kept_examples_of_the_old_classes_only_its_unit_is_fit(base):
    net0, ones, train = base
    net = copy.deepcopy(net0)
    net.memory.fill(net, train)
    hidden = net.hidden[0].weight.copy()
    pipe = teach(net, ones[:6])
    assert pipe.counters.fitted == 6 and pipe.counters.rehearsed == 0
    assert np.array_equal(net.hidden[0].weight, hidden)
