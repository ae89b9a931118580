"""A network whose activity runs away is caught at a bounded size, not when the machine runs out of memory.

Before: a membrane run of bench_time on N-MNIST (real + synthetic) ran away during training; each layer's spike
buffers doubled until the kernel's out-of-memory killer ended the process at 22 GiB, with no line saying why.
"""

from __future__ import annotations

import numpy as np
import pytest

from streamsnn.learn.training import SampleArrays, train_epoch
from streamsnn.learn.watch import Watch
from streamsnn.snn import SpikingNetwork, limits
from streamsnn.snn.network import NonFinite

DEEP = "conv:8:3:1:1,dense:64"
CAP = 20_000


def deep(seed=0, **kw) -> SpikingNetwork:
    return SpikingNetwork(arch=DEEP, input_shape=(16, 16, 2), classes=3, seed=seed, **kw)


def sample(events: int = 2000, seed: int = 0, n_in: int = 512):
    rng = np.random.default_rng(seed)
    return np.sort(rng.integers(0, n_in, events)).astype(np.int32), np.arange(events, dtype=np.int64) * 50


def run_away(net) -> None:
    """Weights that make every unit fire on every event, layer after layer (the state a runaway reaches)."""
    for layer in net.hidden:
        layer.weight[:] = np.abs(layer.weight) * 50 + 1.0


@pytest.fixture
def small_cap(monkeypatch):
    monkeypatch.setattr(limits, "MAX_SPIKE_EVENTS", CAP)


@pytest.mark.parametrize("tau_us", [None, 20_000])
def test_a_runaway_window_is_withheld_in_one_line_with_bounded_buffers(small_cap, tau_us):
    net = deep(tau_us=tau_us)
    idx, t = sample()
    good = net.predict_indices(idx, t).scores.copy()
    run_away(net)
    with pytest.raises(NonFinite, match="activity ran away") as e:
        net.predict_indices(idx, t)
    msg = str(e.value)
    assert "\n" not in msg and "hidden layer" in msg and "MAX_SPIKE_EVENTS" in msg and not e.value.undone
    assert net.nonfinite == 1
    assert all(layer.out_i.shape[0] <= CAP for layer in net.hidden)  # the buffers never grew past the bound
    assert all(layer.ran_away is None for layer in net.hidden)  # the reset after the withheld decision clears it
    fresh = deep(tau_us=tau_us)  # sound weights again: the same network decides as before, nothing left over
    for layer, sound in zip(net.hidden, fresh.hidden):
        layer.weight[:] = sound.weight
    assert np.allclose(net.predict_indices(idx, t).scores, good)


def test_the_bound_changes_nothing_below_it():
    idx, t = sample(5000, seed=3)
    a, b = deep(seed=1), deep(seed=1)
    sa = a.predict_indices(idx, t).scores
    spikes = a.predict_indices(idx, t).spikes
    assert max(spikes) < CAP  # this window stays below the small bound too
    lim = limits.MAX_SPIKE_EVENTS
    try:
        limits.MAX_SPIKE_EVENTS = CAP
        sb = b.predict_indices(idx, t).scores
    finally:
        limits.MAX_SPIKE_EVENTS = lim
    assert np.array_equal(sa, sb)


def test_pieces_fed_to_a_runaway_network_give_a_withheld_decision(small_cap):
    from streamsnn.snn.propagate import feed, scores_of

    net = deep()
    run_away(net)
    idx, _ = sample()
    net.reset()
    for piece in np.array_split(idx, 4):  # as the daemon feeds a window while its events arrive
        feed(net, piece)
    scores = scores_of(net, net.hidden[-1].counts)
    with pytest.raises(NonFinite, match="activity ran away"):
        net.decision_of(scores, (0, 0), len(idx))


def test_training_revives_a_network_that_runs_away_instead_of_growing_without_bound(small_cap):
    net = deep()
    n = 12
    data = SampleArrays([sample(1500, seed=k)[0] for k in range(n)], [sample(1500, seed=k)[1] for k in range(n)],
                        (np.arange(n) % 3).astype(np.int64), [f"s{k}" for k in range(n)])
    train_epoch(net, data, quiet=True)

    calls = []

    def sabotage(idx, t, shape, rng):  # the weights run away in the middle of the second epoch
        calls.append(1)
        if len(calls) == 4:
            run_away(net)
        return idx, t

    train_epoch(net, data, epoch=1, epochs=2, augment=sabotage, quiet=True)
    watch = Watch.of(net)
    assert watch.revivals == 1 and net.lr_backoff == 0.5 and net.nonfinite >= 1
    assert all(layer.out_i.shape[0] <= CAP for layer in net.hidden)
    idx, t = sample(1500, seed=0)
    net.predict_indices(idx, t)  # the weights the epoch began with decide again
