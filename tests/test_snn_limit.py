"""The paper's limit property: with the same weights, spike counts / K approach the ReLU MLP as K grows."""

from __future__ import annotations

import numpy as np

from streamsnn.snn import kernels


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


def test_spike_counts_approach_relu_mlp_as_one_over_k():
    rng = np.random.default_rng(0)
    n_in, n_h, n_out = 40, 30, 6
    W1 = (rng.standard_normal((n_in, n_h)) * 0.15).astype(np.float32)
    W2 = (rng.standard_normal((n_h, n_out)) * 0.3).astype(np.float32)
    x = rng.integers(0, 4, n_in).astype(np.float64)  # input intensities (events per unit of presentation)
    relu = np.maximum(W1.astype(np.float64).T @ x, 0)
    out = W2.astype(np.float64).T @ relu
    assert (relu > 0).sum() > 5 and (relu == 0).sum() > 5  # both sides of the rectifier are exercised
    # |count_j - K relu_j| <= 1 + 2 sum_i |W1_ij|: each input's count is within one event of its
    # linear share at every moment, so the running input of unit j strays <= sum_i |W1_ij| from the line.
    bound_h = 1.0 + 2.0 * np.abs(W1.astype(np.float64)).sum(axis=0)
    gaps_h, gaps_o = [], []
    Ks = (1, 4, 16, 64, 256)
    for K in Ks:
        idx = present(x, K, rng)
        phi = np.zeros(n_h, np.float32)
        counts = np.zeros(n_h, np.float32)
        scores = np.zeros(n_out, np.float32)
        kernels.forward(idx, W1, W2, phi, counts, scores, np.float32(0.5))
        gap_h = np.abs(counts / K - relu)
        gap_o = np.abs(scores / K - out)
        assert np.all(gap_h <= bound_h / K + 1e-4)
        assert np.all(gap_o <= np.abs(W2).T @ bound_h / K + 1e-3)
        gaps_h.append(gap_h.max())
        gaps_o.append(gap_o.max())
    assert all(a > b for a, b in zip(gaps_h, gaps_h[1:])), gaps_h
    assert all(a > b for a, b in zip(gaps_o, gaps_o[1:])), gaps_o
    # roughly 1/K: 256x longer presentation shrinks the gap by well over 30x
    assert gaps_h[-1] < gaps_h[0] / 30 and gaps_o[-1] < gaps_o[0] / 30
    # and the classification agrees with the ReLU MLP at the longest presentation
    assert np.argmax(scores) == np.argmax(out)
