"""Learning "membrane" stays stable: every hidden spike is priced by its count, however long before the readout."""

from __future__ import annotations

import numpy as np

from streamsnn.snn import SpikingNetwork

TAU = 20_000.0
PRICE = 1e-3


def net_of(activity, arch="dense:12", lr=1e-2):
    """A 4x4x1 input, 3 classes, a leak of 20 ms; no step bound; the output does not learn (lr_out 0)."""
    return SpikingNetwork(arch=arch, input_shape=(4, 4, 1), classes=3, seed=1, tau_us=TAU, learning="membrane",
                          max_step=0.0, activity=activity, init_gain=2.0, lr=lr, lr_out=0.0)


def early_window(rng, n=150, n_in=16):
    """Events in the first 20 ms, then one event 300 ms later (the readout): 14 leak time constants after the
    burst, whose spikes have left traces of about exp(-14) at the readout."""
    idx = rng.integers(0, n_in, n).astype(np.int32)
    t = np.sort(rng.integers(0, 20_000, n)).astype(np.int64)
    return np.append(idx, idx[0]).astype(np.int32), np.append(t, 300_000).astype(np.int64)


def steps(arch, idx, t, label=0):
    """Each hidden layer's weights before and its step with the spike price and without (same network, same
    window): their difference is the price's own step."""
    got = []
    for activity in (PRICE, 0.0):
        net = net_of(activity, arch)
        before = [layer.weight.copy() for layer in net.hidden]
        net.reset()
        net.learn_indices(idx, label, t)
        got.append([layer.weight - w for layer, w in zip(net.hidden, before)])
    return before, net, got


def test_an_early_spike_costs_as_much_as_a_late_one():
    """The price's step is -lr * activity * (input counts) x (the unit spiked), the counts rule's, even when
    every spike came long before the readout (before: weighted by the traces, it was ~exp(-14) of that)."""
    rng = np.random.default_rng(2)
    idx, t = early_window(rng)
    _, net, (with_price, without) = steps("dense:12", idx, t)
    gate = (net.counts[0] > 0).astype(np.float64)
    assert gate.sum() >= 3
    x = np.bincount(idx, minlength=16).astype(np.float64)
    expected = -1e-2 * PRICE * np.outer(x, gate)
    np.testing.assert_allclose(with_price[0] - without[0], expected, rtol=1e-2, atol=1e-9)


def test_the_price_reaches_lower_layers_through_the_counts():
    """Two hidden layers: the lower one pays for its own spikes and for the upper ones' (W2 @ price, where the
    upper unit spiked), on its input counts, gated by its own spikes (slope 1 where a unit spiked)."""
    rng = np.random.default_rng(4)
    idx, t = early_window(rng, n=200)
    before, net, (with_price, without) = steps("dense:12,dense:8", idx, t)
    g1, g2 = ((c > 0).astype(np.float64) for c in net.counts)
    assert g1.sum() >= 3 and g2.sum() >= 1
    x = np.bincount(idx, minlength=16).astype(np.float64)
    np.testing.assert_allclose(with_price[1] - without[1], -1e-2 * PRICE * np.outer(net.counts[0], g2),
                               rtol=1e-2, atol=1e-9)
    W2 = before[1].astype(np.float64) + without[1]  # the price's pass runs after the error's step
    d1 = (W2 @ (PRICE * g2) + PRICE) * g1
    np.testing.assert_allclose(with_price[0] - without[0], -1e-2 * np.outer(x, d1), rtol=1e-2, atol=1e-9)


def test_activity_stays_bounded_on_windows_that_spike_long_before_their_readout():
    """A leaky network taught on windows whose activity is early: the price of its spikes holds them down
    (19,263 spikes at first, 1,757 after three passes; before, priced by the traces, 18,577)."""
    rng = np.random.default_rng(7)
    data = []
    for k in range(60):
        idx, t = early_window(rng)
        data.append((idx, t, k % 3))
    net = SpikingNetwork(arch="dense:24", input_shape=(4, 4, 1), classes=3, seed=3, tau_us=TAU,
                         learning="membrane", max_step=0.0, activity=0.02, init_gain=2.0, lr=0.01, lr_out=0.01)

    def spikes():
        total = 0
        for idx, t, _ in data:
            net.reset()
            total += net.predict_indices(idx, t, count=False).spikes[0]
        return total

    first = spikes()
    for _ in range(3):
        for idx, t, label in data:
            net.reset()
            net.learn_indices(idx, label, t)
    last = spikes()
    assert all(np.isfinite(layer.weight).all() for layer in net.hidden)
    assert 0 < last < first / 4
