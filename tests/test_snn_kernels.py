"""Each numba kernel of the spiking layers against a slow, obvious NumPy reference on random inputs.

Forward: dense and convolutional layers (planar and channel-last inputs, stride, padding, spike
multiplicities, the leak), one event at a time: add the weight to every unit the event reaches
(found by trying every output position), then fire while above threshold subtracting 1 per spike.
Backward: the weight gradient and the input error of each layer kind from explicit sums.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamsnn.snn import kernels
from streamsnn.snn.arch import parse_arch, place
from streamsnn.snn.layers.conv import conv_backward, conv_forward, conv_table
from streamsnn.snn.layers.dense import DenseLayer, dense_backward, dense_forward

THETA = np.float32(0.5)
NO_C = np.zeros(0, np.float32)
NO_T = np.zeros(0, np.int64)


def geometry(spec, grid, layer=0):
    return place(parse_arch(spec), grid)[layer]


def conv_args(g):
    """What the conv kernels take besides the weights: the reach table, output width, stride."""
    return conv_table(g), g.out_shape[2], g.layer.stride


def where(u, g):
    """(c, y, x) of input unit u of layer geometry g."""
    c, h, w = g.in_shape
    if g.planar_in:
        return u // (h * w), (u % (h * w)) // w, u % w
    return u % c, (u // c) // w, (u // c) % w


def reached(g, u):
    """[(unit offset, weight row)] an input unit reaches: every output position, tried one by one."""
    c, y, x = where(u, g)
    _, oh, ow = g.out_shape
    k, s, p, co = g.layer.kernel, g.layer.stride, g.layer.padding, g.layer.units
    out = []
    for oy in range(oh):
        for ox in range(ow):
            dy, dx = y + p - oy * s, x + p - ox * s
            if 0 <= dy < k and 0 <= dx < k:
                out.append(((oy * ow + ox) * co, (c, dy, dx)))
    return out


def ref_forward(g, W, idx, cnt=None, t=None, tau=None, theta=0.5):
    """Event by event, in float64: decay everything (leak), add, then fire per unit while above theta.

    Returns potentials, counts and, per input event, the sorted list of (unit, spikes) it caused.
    """
    n = g.n_out
    phi = np.zeros(n)
    counts = np.zeros(n, np.int64)
    caused = []
    t_last = None
    for k, u in enumerate(idx):
        c = 1.0 if cnt is None else float(cnt[k])
        if tau is not None:
            if t_last is not None:
                phi *= math.exp(-(t[k] - t_last) / tau)
            t_last = t[k]
        if g.layer.kind == "dense":
            phi += c * W[u].astype(np.float64)
        else:
            for base, (ci, dy, dx) in reached(g, u):
                phi[base: base + g.layer.units] += c * W[ci, dy, dx].astype(np.float64)
        fired = []
        for j in range(n):
            s = 0
            while phi[j] > theta:
                phi[j] -= 1.0
                s += 1
            if s:
                counts[j] += s
                fired.append((j, s))
        caused.append(sorted(fired))
    return phi, counts, caused


def run_kernel(g, W, idx, cnt=NO_C, t=NO_T, inv_tau=0.0, ref=None, emit=True, size=64):
    """The layer kernel over all events, growing its output as propagate.run_layer does."""
    phi = np.zeros(g.n_out, np.float32)
    counts = np.zeros(g.n_out, np.float32)
    ref = np.zeros(1) if ref is None else ref
    most = g.fan_out
    oi, oc, ot = np.empty(size, np.int32), np.empty(size, np.float32), np.empty(size, np.int64)
    done = m = 0
    calls = 0
    while True:
        if oi.shape[0] < m + most + 1:
            grow = max(2 * oi.shape[0], m + most + 1)
            oi, oc, ot = (np.concatenate([a[:m], np.empty(grow - m, a.dtype)]) for a in (oi, oc, ot))
        if g.layer.kind == "dense":
            done, m = dense_forward(idx, cnt, t, done, W, phi, counts, THETA, inv_tau, ref, emit, oi, oc, ot, m)
        else:
            done, m = conv_forward(idx, cnt, t, done, W, *conv_args(g), phi, counts, THETA, inv_tau, ref, emit,
                                   oi, oc, ot, m)
        calls += 1
        if done == len(idx):
            return phi, counts, (oi[:m], oc[:m], ot[:m]), calls


def per_event(g, W, idx, cnt=NO_C):
    """The kernel fed one event per call (state kept): the sorted spikes each event caused."""
    phi = np.zeros(g.n_out, np.float32)
    counts = np.zeros(g.n_out, np.float32)
    big = 10 * g.n_out
    out = []
    for k in range(len(idx)):
        oi, oc, ot = np.empty(big, np.int32), np.empty(big, np.float32), np.empty(big, np.int64)
        c = cnt[k:k + 1] if len(cnt) else NO_C
        args = (idx[k:k + 1], c, NO_T, 0)
        if g.layer.kind == "dense":
            _, m = dense_forward(*args, W, phi, counts, THETA, 0.0, np.zeros(1), True, oi, oc, ot, 0)
        else:
            _, m = conv_forward(*args, W, *conv_args(g), phi, counts, THETA, 0.0, np.zeros(1), True, oi, oc, ot, 0)
        out.append(sorted(zip(oi[:m].tolist(), oc[:m].astype(int).tolist())))
    return out


LAYERS = [
    ("dense:37", (5, 4, 2), 0),
    ("conv:6:3:1:1", (7, 6, 2), 0),
    ("conv:5:5:2:2", (9, 8, 2), 0),
    ("conv:4:4:3:0", (11, 10, 1), 0),
    ("conv:3:3:1:0,conv:6:3:2:1", (9, 9, 2), 1),   # a convolution on channel-last input
    ("conv:3:3:2:1,dense:9", (8, 8, 2), 1),       # a dense layer on a convolution's units
]


def random_layer(rng, spec, grid, layer, scale=0.6):
    g = geometry(spec, grid, layer)
    W = (rng.standard_normal(g.weight_shape) * scale).astype(np.float32)
    return g, W


@pytest.mark.parametrize("spec,grid,layer", LAYERS)
@pytest.mark.parametrize("multiplicity", [False, True])
def test_forward_matches_reference(spec, grid, layer, multiplicity):
    rng = np.random.default_rng(len(spec) + 7 * multiplicity)
    g, W = random_layer(rng, spec, grid, layer)
    idx = rng.integers(0, g.n_in, 300).astype(np.int32)
    cnt = rng.integers(1, 4, 300).astype(np.float32) if multiplicity else NO_C
    phi, counts, (oi, oc, _), calls = run_kernel(g, W, idx, cnt)
    rphi, rcounts, caused = ref_forward(g, W, idx, cnt if multiplicity else None)
    assert rcounts.sum() > 20 and calls > 1  # spikes happened, and the output buffer had to grow
    np.testing.assert_array_equal(counts, rcounts)
    np.testing.assert_allclose(phi, rphi, atol=1e-4)
    assert np.all(phi <= THETA)
    # the emitted events are the spikes, each unit's total as counted, multiplicities at least 1
    assert oc.min() >= 1 and oc.sum() == rcounts.sum()
    np.testing.assert_array_equal(np.bincount(oi, weights=oc, minlength=g.n_out), rcounts)
    # and event by event: every input event causes exactly the reference's spikes
    assert per_event(g, W, idx[:80], cnt[:80] if multiplicity else NO_C) == caused[:80]


@pytest.mark.parametrize("spec,grid,layer", [LAYERS[0], LAYERS[2], LAYERS[4]])
def test_no_emit_fast_path_counts_the_same(spec, grid, layer):
    rng = np.random.default_rng(11)
    g, W = random_layer(rng, spec, grid, layer)
    idx = rng.integers(0, g.n_in, 400).astype(np.int32)
    a = run_kernel(g, W, idx)
    b = run_kernel(g, W, idx, emit=False)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_allclose(a[0], b[0], atol=1e-5)


def test_one_large_weight_fires_several_spikes_at_once():
    g = geometry("dense:3", (1, 1, 1))
    W = np.array([[3.2, -1.0, 0.4]], np.float32)
    phi, counts, (oi, oc, _), _ = run_kernel(g, W, np.zeros(2, np.int32))
    # unit 0: 3.2 -> 3 spikes, 0.2; +3.2 -> 3.4 -> 3 spikes, 0.4. unit 2: 0.4, then 0.8 -> 1 spike, -0.2.
    np.testing.assert_array_equal(counts, [6, 0, 1])
    np.testing.assert_allclose(phi, [0.4, -2.0, -0.2], atol=1e-6)
    assert list(zip(oi.tolist(), oc.tolist())) == [(0, 3.0), (0, 3.0), (2, 1.0)]


@pytest.mark.parametrize("spec,grid,layer", [LAYERS[0], LAYERS[2], LAYERS[4]])
@pytest.mark.parametrize("tau", [300.0, 5000.0])
def test_leaky_forward_matches_explicit_decay(spec, grid, layer, tau):
    rng = np.random.default_rng(int(tau))
    g, W = random_layer(rng, spec, grid, layer, scale=0.4)
    n = 400
    idx = rng.integers(0, g.n_in, n).astype(np.int32)
    gaps = rng.exponential(tau / 20, n)
    gaps[rng.random(n) < 0.03] += 40 * tau  # idle gaps of many tau force the frame renormalisation
    t = (1000 + np.cumsum(gaps)).astype(np.int64)
    ref = np.array([float(t[0])])
    phi, counts, (oi, oc, ot), _ = run_kernel(g, W, idx, t=t, inv_tau=1.0 / tau, ref=ref)
    rphi, rcounts, caused = ref_forward(g, W, idx, t=t, tau=tau)
    assert ref[0] > t[0] and rcounts.sum() > 10
    # float32 in a scaled frame vs float64 explicit decay: a tie at the threshold may flip a spike
    assert np.abs(counts - rcounts).sum() <= 2
    np.testing.assert_allclose(phi * kernels.decay_factor(t[-1], 1.0 / tau, ref), rphi, atol=2e-3)
    # each spike carries the time of the input event that caused it
    times = [t[k] for k, c in enumerate(caused) for _ in c]
    assert abs(len(ot) - len(times)) <= 2
    assert np.all(np.diff(ot) >= 0) and set(ot.tolist()) <= set(t.tolist())


def test_input_counts_matches_bincount():
    rng = np.random.default_rng(3)
    idx = rng.integers(0, 300, 1000).astype(np.int32)
    active = np.empty(300, np.int32)
    x = np.empty(300, np.float32)
    n = kernels.input_counts(idx, 300, active, x)
    c = np.bincount(idx, minlength=300)
    np.testing.assert_array_equal(active[:n], np.flatnonzero(c))
    np.testing.assert_array_equal(x[:n], c[c > 0])


def ref_conv_grads(g, K, a, delta):
    """dK and the input error of a convolution from explicit sums over every (input, output) pair."""
    dK = np.zeros(K.shape)
    d_in = np.zeros(g.n_in)
    for u in np.flatnonzero(a):
        for base, (c, dy, dx) in reached(g, u):
            d = delta[base: base + g.layer.units]
            dK[c, dy, dx] += a[u] * d
            d_in[u] += K[c, dy, dx].astype(np.float64) @ d
    return dK, d_in


@pytest.mark.parametrize("spec,grid,layer", LAYERS)
def test_backward_matches_reference(spec, grid, layer):
    rng = np.random.default_rng(len(spec))
    g, W = random_layer(rng, spec, grid, layer)
    a = np.where(rng.random(g.n_in) < 0.4, rng.integers(1, 6, g.n_in), 0).astype(np.float32)
    act_in = np.flatnonzero(a).astype(np.int32)
    delta = np.where(rng.random(g.n_out) < 0.5, rng.standard_normal(g.n_out), 0).astype(np.float32)
    act_out = np.flatnonzero(delta).astype(np.int32)
    lr = np.float32(0.01)
    if g.layer.kind == "dense":
        dW = np.outer(a, delta)
        d_in = W.astype(np.float64) @ delta
    else:
        dW, d_in = ref_conv_grads(g, W, a, delta)
    Wc = W.copy()
    if g.layer.kind == "dense":
        got = dense_backward(act_in, a[act_in], delta, act_out, Wc, lr, True)
    else:
        got = conv_backward(act_in, a[act_in], delta, Wc, *conv_args(g), lr, True)
    assert np.abs(dW).max() > 0
    np.testing.assert_allclose(Wc, W - lr * dW, atol=1e-5)
    np.testing.assert_allclose(got, d_in[act_in], rtol=1e-4, atol=1e-4)
    # without the input error (the first layer) the weights move the same and no error is computed
    Wd = W.copy()
    if g.layer.kind == "dense":
        none = dense_backward(act_in, a[act_in], delta, act_out, Wd, lr, False)
    else:
        none = conv_backward(act_in, a[act_in], delta, Wd, *conv_args(g), lr, False)
    np.testing.assert_allclose(Wd, Wc, atol=1e-6)
    assert not none.any()


def test_dense_backward_sparse_and_full_paths_agree():
    rng = np.random.default_rng(9)
    W = rng.standard_normal((30, 200)).astype(np.float32)
    act_in = np.sort(rng.choice(30, 12, replace=False)).astype(np.int32)
    a = rng.integers(1, 5, 12).astype(np.float32)
    for frac in (0.05, 0.9):  # few active outputs (gather) and many (one contiguous pass)
        delta = np.where(rng.random(200) < frac, rng.standard_normal(200), 0).astype(np.float32)
        act_out = np.flatnonzero(delta).astype(np.int32)
        Wc = W.copy()
        got = dense_backward(act_in, a, delta, act_out, Wc, np.float32(0.1), True)
        np.testing.assert_allclose(got, W[act_in] @ delta, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(Wc[act_in], W[act_in] - 0.1 * np.outer(a, delta), atol=1e-5)


def test_dense_relu_matches_matrix_product():
    """The dense layer's ReLU twin: pre-activations sum_i a_i * W[i] over the active inputs."""
    rng = np.random.default_rng(8)
    layer = DenseLayer(place(parse_arch("dense:41"), (60, 1, 1))[0])
    layer.weight = W = rng.standard_normal((60, 41)).astype(np.float32)
    active = np.sort(rng.choice(60, 30, replace=False)).astype(np.int32)
    x = rng.integers(1, 9, 30).astype(np.float32)
    a = np.zeros(60, np.float32)
    a[active] = x
    np.testing.assert_allclose(layer.relu(a), x @ W[active], rtol=1e-5, atol=1e-5)


def test_output_leaky_matches_explicit_decay():
    rng = np.random.default_rng(4)
    W = rng.standard_normal((20, 5)).astype(np.float32)
    idx = rng.integers(0, 20, 200).astype(np.int32)
    cnt = rng.integers(1, 3, 200).astype(np.float32)
    t = np.cumsum(rng.exponential(400, 200)).astype(np.int64) + 50
    t[100:] += 100_000  # a long idle gap: renormalisation
    scores = np.zeros(5, np.float32)
    ref = np.array([float(t[0])])
    kernels.output_leaky(idx, cnt, t, W, scores, 1 / 2000.0, ref)
    want = sum(c * W[i].astype(np.float64) * math.exp(-(t[-1] - tk) / 2000.0) for i, c, tk in zip(idx, cnt, t))
    np.testing.assert_allclose(scores * kernels.decay_factor(t[-1], 1 / 2000.0, ref), want, rtol=1e-3, atol=1e-4)


def test_output_error_spikes_follow_the_error():
    e = np.array([0.3, -0.8, 0.05, 0.45], np.float32)
    herd = np.zeros(4, np.float32)
    units, signs = kernels.output_error_spikes(e, 64, herd)
    net = np.bincount(units, weights=signs, minlength=4)
    assert np.all(np.abs(net / 64 - e) <= 0.5 / 64 + 1e-6)  # within the quantization bound
    assert np.all(np.abs(herd) <= 0.5)
