"""The paper's limit property: with the same weights, every layer's spike counts / K approach the ReLU
network's activations as the presentation gets K times longer, for dense and convolutional stacks."""

from __future__ import annotations

import numpy as np
import pytest

from streamsnn.snn import SpikingNetwork, relu


def present(x: np.ndarray, K: int, rng) -> np.ndarray:
    """Input i emits K * x_i events spread evenly over one presentation (random phase), merged by time."""
    idx, times = [], []
    for i, xi in enumerate(x):
        c = int(K * xi)
        if c:
            idx.append(np.full(c, i, np.int32))
            times.append((np.arange(c) + rng.random()) / c)
    idx, times = np.concatenate(idx), np.concatenate(times)
    return np.ascontiguousarray(idx[np.argsort(times, kind="stable")])


@pytest.mark.parametrize("arch,grid,gain", [
    ("dense:30", (8, 5, 1), 0.8),                               # the one-layer network of the paper
    ("dense:40,dense:30,dense:20", (8, 5, 1), 1.0),             # deep dense
    ("conv:4:3:1:1,conv:6:3:2:1,dense:12", (8, 8, 2), 1.3),     # convolutions, padding, stride, then dense
])
def test_spike_counts_approach_relu_network_as_one_over_k(arch, grid, gain):
    rng = np.random.default_rng(0)
    net = SpikingNetwork(arch=arch, input_shape=grid, classes=6, seed=1, init_gain=gain)
    n_in = net.sizes[0]
    x = rng.integers(0, 4, n_in).astype(np.float64)  # input intensities (events per unit of presentation)
    acts, out = relu.forward(net, x)
    for a in acts:  # both sides of every rectifier are exercised
        assert (a > 0.5).sum() >= 3 and (a == 0).sum() >= 3, a
    Ks = (1, 4, 16, 64, 256)
    gaps = []
    for K in Ks:
        d = net.predict_indices(present(x, K, rng))
        layer_gaps = [np.abs(c / K - a).max() for c, a in zip(net.counts, acts)]
        gaps.append(layer_gaps + [np.abs((d.scores - net.bias) / K - (out - net.bias)).max()])
        assert d.spikes == tuple(int(c.sum()) for c in net.counts)
    gaps = np.array(gaps)  # (K, layer): every layer and the output
    # the gap shrinks with K at every layer and roughly as 1/K: 256x longer, well over 30x smaller
    assert np.all(gaps[-1] < gaps[0] / 30), gaps
    assert np.all(np.diff(gaps[1:], axis=0) < 0), gaps
    # and about as 1/K: gap * K stays within a small band from K = 4 on
    scaled = gaps[1:] * np.array(Ks[1:])[:, None]
    assert np.all(scaled.max(axis=0) <= 6 * scaled.min(axis=0)), scaled
    # at the longest presentation the classification agrees with the ReLU network
    assert d.label == int(np.argmax(out))
