"""A network whose training accuracy collapses is revived (issue 19: never die silently).

Before: N-MNIST with twice the synthetic samples (20,550 training samples, the default 9 epochs, seed 1): the
convolutions' activity ran away within the last epoch (16 spikes per input event in the second layer), the training
accuracy fell from 0.875 to 0.785 and the saved model scored 52 % on held-out samples (93 % the epoch before). It
still spiked and its decisions still changed, so no watch saw it: `train` saved it as if it had learned.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from conftest import need

from streamsnn.learn import watch as watch_mod
from streamsnn.learn.training import evaluate, load_split, train_epoch
from streamsnn.learn.watch import NetworkSilent, Watch
from streamsnn.snn import SpikingNetwork

N = watch_mod.COLLAPSE_SAMPLES


def net() -> SpikingNetwork:
    return SpikingNetwork(arch="dense:32", input_shape=(8, 8, 1), classes=4, seed=0)


def decide(w: Watch, right, n: int, rng=None) -> None:
    """``n`` decisions, each right with probability ``right(k)`` (drawn from ``rng``, or the exact share when none)."""
    for k in range(n):
        p = right(k)
        ok = rng.random() < p if rng is not None else int((k + 1) * p + 1e-9) > int(k * p + 1e-9)
        label = k % 4
        w.spiked((500, 60), 1000, 0)
        w.decided(label if ok else (label + 1) % 4, label, 0)


def test_a_network_whose_training_accuracy_collapses_is_revived_with_its_earlier_weights(caplog):
    n = net()
    w = Watch.of(n)
    w.start_epoch()
    good = n.out_weight.copy()
    decide(w, lambda k: 0.85, 2 * N)
    assert w.revivals == 0
    n.out_weight[:] = 7.0  # what learning did meanwhile
    with caplog.at_level(logging.WARNING, logger="streamsnn.learn.watch"):
        decide(w, lambda k: 0.5, N)
    assert w.revivals == 1 and n.lr_backoff == 0.5
    assert np.array_equal(n.out_weight, good)
    line = caplog.records[-1].getMessage()
    assert "training accuracy fell to" in line and "from the 85%" in line and "spikes per input event" in line


def test_sound_runs_are_left_alone():
    rng = np.random.default_rng(0)
    w = Watch.of(net())
    w.start_epoch()
    decide(w, lambda k: 0.2 + 0.7 * min(1.0, k / (5 * N)), 10 * N, rng)  # learning: 20 % up to 90 %
    decide(w, lambda k: 0.9 - 0.05 * (k // N % 2), 10 * N, rng)  # epochs a few points apart, drawn at random
    decide(w, lambda k: 0.83, 3 * N, rng)  # a few points under the peak for a while
    assert w.revivals == 0


def test_the_first_items_set_no_peak_and_a_network_that_keeps_collapsing_stops_in_one_line():
    w = Watch.of(net())
    w.start_epoch()
    decide(w, lambda k: 1.0 if k < N // 5 else 0.6, 2 * N)  # a lucky start is not the peak
    assert w.revivals == 0
    with pytest.raises(NetworkSilent) as e:
        for _ in range(watch_mod.MAX_REVIVALS + 1):
            decide(w, lambda k: 0.8, 2 * N)
            decide(w, lambda k: 0.3, 2 * N)
    assert "training accuracy fell" in str(e.value) and "\n" not in str(e.value)


def test_a_collapsing_network_is_not_taken_as_the_good_state_of_the_next_epoch():
    n = net()
    w = Watch.of(n)
    w.start_epoch()
    good = n.out_weight.copy()
    decide(w, lambda k: 0.9, 2 * N)
    decide(w, lambda k: 0.82, N)  # falling, but not yet by COLLAPSE_DROP
    assert w.revivals == 0
    n.out_weight[:] = 7.0
    w.start_epoch()  # collapsing: these weights are not kept as the ones to go back to
    decide(w, lambda k: 0.4, N)
    assert w.revivals == 1 and np.array_equal(n.out_weight, good)


def test_a_real_run_whose_first_layer_is_wrecked_mid_epoch_is_revived_and_learns_on(monkeypatch, caplog):
    """Real N-MNIST samples through the real kernels: after two sound epochs the first layer's weights are shuffled
    in the middle of the third (as a runaway does to what the layer had learned); the watch sees the training
    accuracy fall, puts back the weights the epoch began with, and the run ends as sound as it was."""
    need("nmnist_small")
    monkeypatch.setattr(watch_mod, "COLLAPSE_SAMPLES", 100)
    n = SpikingNetwork(arch="dense:64", input_shape=(34, 34, 2), classes=10, seed=0)
    train = load_split(need("nmnist_small"), "train", n, limit=300, quiet=True)
    for ep in range(2):
        train_epoch(n, train, epoch=ep, epochs=4, seed=0, quiet=True)
    before = evaluate(n, train)["accuracy"]
    assert before > 0.5  # sound enough that a wreck shows
    start = [w.copy() for w in n.weights]
    learn, calls = n.learn_indices, [0]

    def wrecked(*a, **kw):
        calls[0] += 1
        if calls[0] == 50:
            n.hidden[0].weight[...] = np.random.default_rng(1).permutation(n.hidden[0].weight)
        return learn(*a, **kw)

    monkeypatch.setattr(n, "learn_indices", wrecked)
    with caplog.at_level(logging.WARNING, logger="streamsnn.learn.watch"):
        r = train_epoch(n, train, epoch=2, epochs=4, seed=0, quiet=True)
    assert r["revivals"] == 1 and n.lr_backoff == 0.5
    assert any("training accuracy fell" in rec.getMessage() for rec in caplog.records)
    assert not np.array_equal(n.weights[0], start[0])  # learned on from the weights it went back to
    assert evaluate(n, train)["accuracy"] >= before - 0.05
