"""Each numba kernel of streamsnn.snn.kernels against a slow, obvious NumPy reference on random inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamsnn.snn import kernels

THETA = np.float32(0.5)


def random_net(rng, n_in=60, n_h=41, n_out=7, scale=0.4):
    W1 = (rng.standard_normal((n_in, n_h)) * scale).astype(np.float32)
    W2 = (rng.standard_normal((n_h, n_out)) * scale).astype(np.float32)
    return W1, W2


def ref_forward(idx, W1, W2, theta=0.5):
    """One event at a time: add the row, then fire while above threshold, subtracting 1 per spike."""
    phi = np.zeros(W1.shape[1], np.float32)
    counts = np.zeros(W1.shape[1], np.int64)
    scores = np.zeros(W2.shape[1], np.float64)
    for i in idx:
        phi += W1[i]
        for j in range(len(phi)):
            while phi[j] > theta:
                phi[j] -= np.float32(1.0)
                counts[j] += 1
                scores += W2[j]
    return phi, counts, scores


def ref_forward_leaky(idx, t, W1, W2, tau, theta=0.5):
    """Decay every potential explicitly before each event: phi *= exp(-(t - t_last)/tau)."""
    phi = np.zeros(W1.shape[1], np.float64)
    counts = np.zeros(W1.shape[1], np.int64)
    scores = np.zeros(W2.shape[1], np.float64)
    t_last = t[0]
    for i, tk in zip(idx, t):
        d = math.exp(-(tk - t_last) / tau)
        phi *= d
        scores *= d
        t_last = tk
        phi += W1[i]
        for j in range(len(phi)):
            while phi[j] > theta:
                phi[j] -= 1.0
                counts[j] += 1
                scores += W2[j]
    return phi, counts, scores, t_last


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_forward_matches_reference(seed):
    rng = np.random.default_rng(seed)
    W1, W2 = random_net(rng)
    idx = rng.integers(0, W1.shape[0], 800).astype(np.int32)
    phi = np.zeros(W1.shape[1], np.float32)
    counts = np.zeros(W1.shape[1], np.float32)
    scores = np.zeros(W2.shape[1], np.float32)
    total = kernels.forward(idx, W1, W2, phi, counts, scores, THETA)
    rphi, rcounts, rscores = ref_forward(idx, W1, W2)
    assert total == rcounts.sum() > 0
    np.testing.assert_array_equal(counts, rcounts)
    np.testing.assert_allclose(phi, rphi, atol=1e-5)
    np.testing.assert_allclose(scores, rscores, rtol=1e-4, atol=1e-3)
    assert np.all(phi <= THETA)


def test_forward_emits_several_spikes_for_one_large_weight():
    W1 = np.array([[3.2, -1.0, 0.4]], np.float32)
    W2 = np.eye(3, dtype=np.float32)
    phi = np.zeros(3, np.float32)
    counts = np.zeros(3, np.float32)
    scores = np.zeros(3, np.float32)
    kernels.forward(np.zeros(2, np.int32), W1, W2, phi, counts, scores, THETA)
    # unit 0: 3.2 -> 3 spikes, 0.2; +3.2 -> 3.4 -> 3 spikes, 0.4. unit 2: 0.4, then 0.8 -> 1 spike, -0.2.
    np.testing.assert_array_equal(counts, [6, 0, 1])
    np.testing.assert_allclose(phi, [0.4, -2.0, -0.2], atol=1e-6)
    np.testing.assert_allclose(scores, [6, 0, 1])


@pytest.mark.parametrize("seed,tau", [(0, 500.0), (1, 3000.0), (2, 40.0)])
def test_forward_leaky_matches_explicit_decay(seed, tau):
    rng = np.random.default_rng(seed)
    W1, W2 = random_net(rng, scale=0.3)
    n = 600
    idx = rng.integers(0, W1.shape[0], n).astype(np.int32)
    # irregular times, including idle gaps of many tau (forces the frame renormalisation)
    gaps = rng.exponential(tau / 20, n)
    gaps[rng.random(n) < 0.02] += 40 * tau
    t = (1000 + np.cumsum(gaps)).astype(np.int64)
    phi = np.zeros(W1.shape[1], np.float32)
    counts = np.zeros(W1.shape[1], np.float32)
    scores = np.zeros(W2.shape[1], np.float32)
    ref = np.array([float(t[0])])
    total = kernels.forward_leaky(idx, t, W1, W2, phi, counts, scores, THETA, 1.0 / tau, ref)
    rphi, rcounts, rscores, t_last = ref_forward_leaky(idx, t, W1, W2, tau)
    d = kernels.decay_factor(t_last, 1.0 / tau, ref)
    assert ref[0] > t[0]  # renormalised at least once
    assert total == counts.sum() > 0
    # float32 in a scaled frame vs float64 explicit decay: a tie at the threshold may flip one spike
    assert np.abs(counts - rcounts).sum() <= 2
    np.testing.assert_allclose(phi * d, rphi, atol=2e-3)
    np.testing.assert_allclose(scores * d, rscores, atol=2e-2)


def test_forward_leaky_with_huge_tau_equals_forward():
    rng = np.random.default_rng(5)
    W1, W2 = random_net(rng)
    idx = rng.integers(0, W1.shape[0], 500).astype(np.int32)
    t = np.arange(500, dtype=np.int64) * 1000
    a = [np.zeros(W1.shape[1], np.float32), np.zeros(W1.shape[1], np.float32), np.zeros(W2.shape[1], np.float32)]
    b = [x.copy() for x in a]
    kernels.forward(idx, W1, W2, *a, THETA)
    kernels.forward_leaky(idx, t, W1, W2, *b, THETA, 1e-15, np.array([0.0]))
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_allclose(a[0], b[0], atol=1e-5)


def test_input_counts_matches_bincount():
    rng = np.random.default_rng(3)
    idx = rng.integers(0, 300, 1000).astype(np.int32)
    active = np.empty(300, np.int32)
    x = np.empty(300, np.float32)
    n = kernels.input_counts(idx, 300, active, x)
    c = np.bincount(idx, minlength=300)
    np.testing.assert_array_equal(active[:n], np.flatnonzero(c))
    np.testing.assert_array_equal(x[:n], c[c > 0])


def sparse_sample(rng, n_in, n_h, n_out):
    active = np.sort(rng.choice(n_in, 25, replace=False)).astype(np.int32)
    x = rng.integers(1, 6, 25).astype(np.float32)
    act_h = np.sort(rng.choice(n_h, 15, replace=False)).astype(np.int32)
    h = rng.integers(1, 8, 15).astype(np.float32)
    p = rng.dirichlet(np.ones(n_out)).astype(np.float32)
    e = p.copy()
    e[2] -= 1.0
    return active, x, act_h, h, e


def test_update_counts_matches_outer_products():
    rng = np.random.default_rng(4)
    W1, W2 = random_net(rng)
    b2 = rng.standard_normal(W2.shape[1]).astype(np.float32)
    active, x, act_h, h, e = sparse_sample(rng, *W1.shape, W2.shape[1])
    lr1, lr2 = np.float32(0.01), np.float32(0.02)
    xd = np.zeros(W1.shape[0]); xd[active] = x
    hd = np.zeros(W1.shape[1]); hd[act_h] = h
    gate = hd > 0
    dh = (W2.astype(np.float64) @ e) * gate
    rW1 = W1 - lr1 * np.outer(xd, dh)
    rW2 = W2 - lr2 * np.outer(hd, e)
    rb2 = b2 - lr2 * e
    W1c, W2c, b2c = W1.copy(), W2.copy(), b2.copy()
    got_dh = kernels.update_counts(active, x, act_h, h, e, W1c, W2c, b2c, lr1, lr2)
    np.testing.assert_allclose(got_dh, dh[act_h], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(W1c, rW1, atol=1e-5)
    np.testing.assert_allclose(W2c, rW2, atol=1e-5)
    np.testing.assert_allclose(b2c, rb2, atol=1e-6)
    untouched = np.setdiff1d(np.arange(W1.shape[0]), active)
    np.testing.assert_array_equal(W1c[untouched], W1[untouched])


def test_update_spikes_agrees_with_counts_within_quantization_bound():
    """Error spikes through herders: per weight |dW_spikes - dW_counts| <= lr * activity * bound / K.

    Output herders are within 0.5/K of e; a hidden herder of unit j is within
    (0.5 + 0.5 * sum_c |W2[j, c]|)/K of dh_j. With a tiny learning rate the O(lr^2) effect of W2
    changing during the sample is far below these bounds.
    """
    rng = np.random.default_rng(6)
    W1, W2 = (w.astype(np.float64) for w in random_net(rng))  # float64: keep rounding out of the comparison
    b2 = np.zeros(W2.shape[1])
    active, x, act_h, h, e = sparse_sample(rng, *W1.shape, W2.shape[1])
    x, h, e = x.astype(np.float64), h.astype(np.float64), e.astype(np.float64)
    lr = 1e-4
    W1c, W2c, b2c = W1.copy(), W2.copy(), b2.copy()
    kernels.update_counts(active, x, act_h, h, e, W1c, W2c, b2c, lr, lr)
    dW1c, dW2c = W1c - W1, W2c - W2
    errs = []
    for K in (4, 16, 64, 256):
        W1s, W2s, b2s = W1.copy(), W2.copy(), b2.copy()
        n_out, n_hid = kernels.update_spikes(active, x, act_h, h, e, W1s, W2s, b2s, lr, lr, K,
                                             np.zeros(len(e)), np.zeros(W1.shape[1]))
        assert n_out > 0 and n_hid > 0
        dW1s, dW2s = W1s - W1, W2s - W2
        bound2 = lr * h[:, None] * 0.5 / K
        assert np.all(np.abs(dW2s[act_h] - dW2c[act_h]) <= bound2 * 1.01 + 1e-12)
        hb = (0.5 + 0.5 * np.abs(W2[act_h]).sum(axis=1)) / K
        bound1 = lr * x[:, None] * hb[None, :]
        diff1 = np.abs(dW1s[np.ix_(active, act_h)] - dW1c[np.ix_(active, act_h)])
        assert np.all(diff1 <= bound1 * 1.01 + 1e-12)
        # nothing outside the active inputs x active hidden units moves
        mask = np.ones(W1.shape, bool); mask[np.ix_(active, act_h)] = False
        assert np.all(dW1s[mask] == 0)
        errs.append(np.abs(dW1s - dW1c).max() + np.abs(dW2s - dW2c).max())
    assert errs[-1] < errs[0] / 10  # the agreement improves with the error-spike resolution K


def test_dense_hidden_matches_matrix_product():
    rng = np.random.default_rng(8)
    W1, _ = random_net(rng)
    active = np.sort(rng.choice(W1.shape[0], 30, replace=False)).astype(np.int32)
    x = rng.integers(1, 9, 30).astype(np.float32)
    np.testing.assert_allclose(kernels.dense_hidden(active, x, W1), x @ W1[active], rtol=1e-5, atol=1e-5)
