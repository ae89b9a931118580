"""A network whose decision stops following its input (one class, many classes passing) is revived (issue 19)."""

from __future__ import annotations

import numpy as np
import pytest

from streamsnn.learn import watch as watch_mod
from streamsnn.learn.training import SampleArrays, train_epoch
from streamsnn.learn.watch import NetworkSilent, Watch
from streamsnn.snn import SpikingNetwork


def data(n: int, classes: int = 4, seed: int = 0) -> SampleArrays:
    rng = np.random.default_rng(seed)
    idx = [np.sort(rng.integers(0, 64, 200)).astype(np.int32) for _ in range(n)]
    t = [np.arange(200, dtype=np.int64) * 100 for _ in range(n)]
    return SampleArrays(idx, t, (np.arange(n) % classes).astype(np.int64), [f"s{k}" for k in range(n)])


def stuck(net: SpikingNetwork) -> None:
    """The output sees nothing of the hidden layer and one bias wins: the same class whatever the input."""
    net.out_weight[:] = 0.0
    net.bias[:] = 0.0
    net.bias[1] = 50.0


def test_a_stuck_network_is_revived_with_its_earlier_weights():
    net = SpikingNetwork(arch="dense:32", input_shape=(8, 8, 1), classes=4, seed=0)
    w = Watch.of(net)
    w.start_epoch()
    good = net.out_weight.copy()
    stuck(net)
    d = data(watch_mod.STUCK_SAMPLES)
    for k in range(watch_mod.STUCK_SAMPLES):
        p = net.predict_indices(d.idx[k], d.t[k])
        assert p.label == 1 and p.spikes[-1] > 0  # not silent: the hidden layer still fires
        w.decided(p.label, int(d.labels[k]), 0)
    assert w.revivals == 1 and net.lr_backoff == 0.5
    assert np.array_equal(net.out_weight, good) and net.bias[1] != 50.0


@pytest.mark.parametrize("classes", [2, 4])
def test_a_run_of_one_decision_is_not_stuck_with_few_classes_or_short_runs(classes):
    w = Watch.of(SpikingNetwork(arch="dense:4", input_shape=(8, 8, 1), classes=4, seed=0))
    w.start_epoch()
    n = watch_mod.STUCK_SAMPLES * 2 if classes < watch_mod.STUCK_CLASSES else watch_mod.STUCK_SAMPLES - 1
    for k in range(n):
        w.decided(0, k % classes, 0)
    for k in range(n):  # a run broken by another decision starts again
        w.decided((k + 1) % 2, k % classes, 0)
    assert w.revivals == 0


def test_training_a_network_that_stays_stuck_stops_in_one_line():
    net = SpikingNetwork(arch="dense:32", input_shape=(8, 8, 1), classes=4, seed=0)
    net.lr = net.lr_out = 0.0  # nothing can unstick it, and every revival returns to stuck weights
    stuck(net)
    d = data((watch_mod.MAX_REVIVALS + 1) * watch_mod.STUCK_SAMPLES + 10)
    with pytest.raises(NetworkSilent, match="same|class 1") as e:
        train_epoch(net, d, epochs=1, quiet=True)
    assert "\n" not in str(e.value) and "--lr" in str(e.value)
