"""Backpropagation through time of `src:N` over the window's own event trace: the layer's step against finite
differences of a NumPy reference of its differentiable model on tiny networks with recurrent cascades, the
one-step truncation against it, and the trace recorded only when learning, bounded by what the forward did."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamsnn.snn import SpikingNetwork
from streamsnn.snn.layers.base import NO_T
from streamsnn.snn.layers.src import CASCADE

THETA = 0.5


def run_trace(idx, g, W, R, t=None, tau=None):
    """The layer without a leak, event by event in float64: returns (steps, spikes), None when a cascade would
    reach the cap. A step is (kind, who, fired):
    ("in", event k) adds g_k * W[idx_k], ("rec", spike q) adds c_q * R[unit_q], then the units above threshold
    fire (in unit order); ``fired`` are the spike numbers. A spike is (unit, multiplicity, depth): 0 when the
    event's row fired it, d + 1 when the row of a spike of depth d did. With ``tau`` the potentials leak between
    the events' times ``t``."""
    n = W.shape[1]
    phi = np.zeros(n)
    spikes, steps = [], []

    def fire(depth):
        fired = []
        for j in range(n):
            if phi[j] > THETA:
                c = math.ceil(phi[j] - THETA)
                phi[j] -= c
                spikes.append((j, c, depth))
                fired.append(len(spikes) - 1)
        return fired

    for k in range(len(idx)):
        if tau and k:
            phi *= math.exp(-(t[k] - t[k - 1]) / tau)
        phi += g[k] * W[idx[k]]
        first = len(spikes)
        steps.append(("in", k, fire(0)))
        q = first
        while q < len(spikes):  # first in, first out, as the kernel's queue
            if sum(c for _, c, _ in spikes[first:]) > CASCADE * n:
                return None  # the cap would be reached (the model below has no clamp): not a case for it
            j, c, d = spikes[q]
            phi += c * R[j]
            steps.append(("rec", q, fire(d + 1)))
            q += 1
    return steps, spikes


def model(trace, idx, g0, W0, R0, g, W, R, om=None):
    """The differentiable model at (g, W, R), step by step on the trace recorded at (g0, W0, R0): a spike carries
    its multiplicity plus the change of the charge its unit received since its previous spike (slope 1), its
    row of R passes that on; a unit that spiked has as its activity its count plus the change of all the charge
    it received; one that never spiked, 0. At (g0, W0, R0) the activities are the counts. With ``om`` (learning
    "membrane": per event, exp(-(T - t) / tau)) a charge reaches the activities weighted by its event's ``om``
    (the spikes still carry it whole), and the activities are the spikes so weighted."""
    steps, spikes = trace
    n = W.shape[1]
    carried = [float(c) for _, c, _ in spikes]
    since, total, counts = np.zeros(n), np.zeros(n), np.zeros(n)
    event = 0
    for kind, who, fired in steps:
        if kind == "in":
            q = g[who] * W[idx[who]] - g0[who] * W0[idx[who]]
            event = who
        else:
            j, c, _ = spikes[who]
            q = carried[who] * R[j] - c * R0[j]
        w = 1.0 if om is None else om[event]
        since += q
        total += w * q
        for p in fired:
            j, c, _ = spikes[p]
            carried[p] = c + since[j]
            since[j] = 0.0
            counts[j] += w * c
    return np.where(counts > 0, counts + total, 0.0)


def loss(h, V, label):
    s = h @ V
    s = s - s.max()
    return math.log(np.exp(s).sum()) - s[label]


def case(seed, n_in=3, n=4, events=12):
    """A tiny layer and event trace whose cascades go at least two recurrent steps deep (weights multiples of
    1/8: the kernel's float32 sums are exact, so its trace is the reference's)."""
    rng = np.random.default_rng(seed)
    while True:
        W = np.round(rng.uniform(-0.3, 1.0, (n_in, n)) * 8) / 8
        R = np.round(rng.uniform(-0.5, 0.9, (n, n)) * 8) / 8
        np.fill_diagonal(R, 0)
        idx = rng.integers(0, n_in, events).astype(np.int32)
        g = rng.integers(1, 3, events).astype(np.float64)
        trace = run_trace(idx, g, W, R)
        if trace is not None and max((d for _, _, d in trace[1]), default=0) >= 2:
            return idx, g, W, R, trace


def layer_step(W, R, idx, g, V, label, record=True):
    """The layer's own step with rate 1 and no bound: (gradient of W, of R, error at the active inputs, inputs)."""
    n_in, n = W.shape
    net = SpikingNetwork(arch=f"src:{n}", input_shape=(n_in, 1, 1), classes=V.shape[1], seed=0)
    layer = net.hidden[0]
    layer.weight[...] = W
    layer.rec[...] = R
    layer.recording = record
    layer.forward(idx, g.astype(np.float32), NO_T, True, np.float32(THETA), 0.0)
    layer.recording = False
    h = layer.counts.astype(np.float64)
    s = h @ V
    e = np.exp(s - s.max())
    e /= e.sum()
    e[label] -= 1
    act = np.flatnonzero(h).astype(np.int32)
    delta = np.zeros(n, np.float32)
    delta[act] = (V @ e)[act]
    a_in = np.unique(idx).astype(np.int32)
    x_in = np.array([g[idx == i].sum() for i in a_in], np.float32)
    layer.note_activity(act, h[act].astype(np.float32))
    d_in = layer.backward(a_in, x_in, act, delta[act], delta, 1.0, 0.0, True)
    gR = R - layer.rec
    np.fill_diagonal(gR, 0)
    return W - layer.weight, gR, d_in, a_in, layer


def numeric(trace, idx, g, W, R, V, label, eps=1e-5):
    """Central differences of the model's loss: (dL/dW, dL/dR off the diagonal, dL/dx of each input unit)."""
    def L(g1, W1, R1):
        return loss(model(trace, idx, g, W, R, g1, W1, R1), V, label)

    gW, gR = np.zeros_like(W), np.zeros_like(R)
    for (i, j), _ in np.ndenumerate(W):
        d = np.zeros_like(W)
        d[i, j] = eps
        gW[i, j] = (L(g, W + d, R) - L(g, W - d, R)) / (2 * eps)
    for (i, j), _ in np.ndenumerate(R):
        if i != j:
            d = np.zeros_like(R)
            d[i, j] = eps
            gR[i, j] = (L(g, W, R + d) - L(g, W, R - d)) / (2 * eps)
    gx = {}
    for i in np.unique(idx):  # all of input i's events scaled together: the derivative by its count x_i
        x = g[idx == i].sum()
        s = np.where(idx == i, 1 + eps / x, 1.0)
        gx[int(i)] = (L(g * s, W, R) - L(g * (2 - s), W, R)) / (2 * eps)
    return gW, gR, gx


@pytest.mark.parametrize("seed", range(6))
def test_the_step_is_the_gradient_of_the_model(seed):
    idx, g, W, R, trace = case(seed)
    rng = np.random.default_rng(100 + seed)
    V = rng.normal(0, 0.7, (W.shape[1], 3))
    label = seed % 3
    gW, gR, gx = numeric(trace, idx, g, W, R, V, label)
    sW, sR, d_in, a_in, _ = layer_step(W.astype(np.float32), R.astype(np.float32), idx, g, V, label)
    assert np.abs(gR).max() > 0
    np.testing.assert_allclose(sW, gW, atol=2e-5, rtol=1e-3)
    np.testing.assert_allclose(sR, gR, atol=2e-5, rtol=1e-3)
    np.testing.assert_allclose(d_in, [gx[int(i)] for i in a_in], atol=2e-5, rtol=1e-3)


def test_the_one_step_truncation_misses_the_recurrent_paths():
    """One event: input 0 fires unit 0, whose spike fires unit 1 (one step deep); with R[1, 2] set, unit 1's spike
    fires unit 2 (two steps deep). The one-step rule (no trace) misses W's path through R at any depth, and R's
    at two: R[0, 1] reaches unit 2 through unit 1's spike. One step deep, its R step is the gradient."""
    W = np.zeros((2, 4))
    W[0, 0], W[1, 3] = 1.0, 0.75
    R = np.zeros((4, 4))
    R[0, 1] = 1.0
    idx = np.array([0], np.int32)
    g = np.ones(1)
    V = np.array([[0.5, -0.25], [-0.5, 0.75], [1.0, -1.0], [0.25, 0.5]])
    for depth, r12 in ((1, 0.0), (2, 0.75)):
        R[1, 2] = r12
        trace = run_trace(idx, g, W, R)
        assert max(d for _, _, d in trace[1]) == depth
        gW, gR, _ = numeric(trace, idx, g, W, R, V, 0)
        f32 = (W.astype(np.float32), R.astype(np.float32))
        sW, sR, _, _, _ = layer_step(*f32, idx, g, V, 0)
        tW, tR, _, _, _ = layer_step(*f32, idx, g, V, 0, record=False)
        np.testing.assert_allclose(sW, gW, atol=1e-5)
        np.testing.assert_allclose(sR, gR, atol=1e-5)
        assert abs(tW[0, 0] - gW[0, 0]) > 0.02  # W[0, 0] reaches unit 1 through unit 0's spike
        if depth == 2:
            assert abs(tR[0, 1] - gR[0, 1]) > 0.02
        else:
            np.testing.assert_allclose(tR, gR, atol=1e-5)


def test_the_trace_is_recorded_only_when_learning_and_bounded_by_the_forward():
    rng = np.random.default_rng(4)
    idx = rng.integers(0, 34 * 34 * 2, 4000).astype(np.int32)
    net = SpikingNetwork(arch="src:32", seed=0, init_gain=2.0)
    layer = net.hidden[0]
    net.predict_indices(idx)
    assert list(layer.trace_n) == [0, 0]  # inference records nothing
    net.reset()
    net.learn_indices(idx, 3)
    events, spikes = (int(v) for v in layer.trace_n)
    assert events == len(idx)
    assert 0 < spikes <= events * layer.geo.n_out * (1 + CASCADE)  # one entry per firing, the cap holding
    assert layer.counts.sum() > 0 and not layer.recording


def test_learning_moves_W_through_the_recurrent_paths_on_a_stack():
    """Stacked under a dense layer, with a leak: learning runs, the BPTT terms reach W beyond the dense step."""
    rng = np.random.default_rng(6)
    idx = rng.integers(0, 34 * 34 * 2, 3000).astype(np.int32)
    t = np.sort(rng.integers(0, 100_000, 3000)).astype(np.int64)
    net = SpikingNetwork(arch="dense:24,src:16", seed=1, tau_us=30_000.0, init_gain=2.0, max_step=0.0)
    layer = net.hidden[1]
    W0, R0 = layer.weight.copy(), layer.rec.copy()
    net.learn_indices(idx, 2, t)
    assert layer.trace_n[1] > 0
    assert not np.array_equal(layer.weight, W0) and not np.array_equal(layer.rec, R0)
    assert np.all(np.isfinite(layer.weight)) and np.all(np.diag(layer.rec) == np.diag(R0))


@pytest.mark.parametrize("seed", range(3))
def test_membrane_weighs_the_charges_by_their_decay_to_the_readout(seed):
    """Learning "membrane" (leaky layer): the step is the gradient of the model whose activities are the charges
    weighted by exp(-(T - t) / tau), T the readout, while the spikes respond to the charge itself."""
    tau = 3000.0
    trace = None
    for attempt in range(20):  # a case whose leaky cascades stay under the cap
        idx, g, W, R, _ = case(10 * attempt + seed)
        t = np.cumsum(np.random.default_rng(seed).integers(0, 1500, len(idx))).astype(np.int64)
        trace = run_trace(idx, g, W, R, t, tau)
        if trace is not None:
            break
    assert trace is not None
    om = np.exp((t - t[-1]) / tau)
    V = np.random.default_rng(200 + seed).normal(0, 0.7, (W.shape[1], 3))

    def L(W1, R1):
        return loss(model(trace, idx, g, W, R, g, W1, R1, om), V, 1)

    n_in, n = W.shape
    net = SpikingNetwork(arch=f"src:{n}", input_shape=(n_in, 1, 1), classes=3, seed=0, tau_us=tau)
    layer = net.hidden[0]
    layer.weight[...] = W
    layer.rec[...] = R
    layer.recording = True
    layer.ref[0] = t[0]  # the leak's frame starts at the first event (the network's align_clock)
    layer.forward(idx, g.astype(np.float32), t, True, np.float32(THETA), 1.0 / tau)
    h = model(trace, idx, g, W, R, g, W, R, om)
    counts = np.zeros(n)
    for j, c, _ in trace[1]:
        counts[j] += c
    np.testing.assert_array_equal(layer.counts, counts)  # the kernel's trace is the reference's
    s = h @ V
    e = np.exp(s - s.max())
    e /= e.sum()
    e[1] -= 1
    act = np.flatnonzero(counts).astype(np.int32)
    delta = np.zeros(n, np.float32)
    delta[act] = (V @ e)[act]
    a_in = np.unique(idx).astype(np.int32)
    x_in = np.array([(g * om)[idx == i].sum() for i in a_in], np.float32)  # the inputs' traces
    layer.note_activity(act, h[act].astype(np.float32))
    layer.note_readout(int(t[-1]))
    layer.backward(a_in, x_in, act, delta[act], delta, 1.0, 0.0, False)
    eps = 1e-5
    for (i, j), _ in np.ndenumerate(W):
        d = np.zeros_like(W)
        d[i, j] = eps
        assert W[i, j] - layer.weight[i, j] == pytest.approx((L(W + d, R) - L(W - d, R)) / (2 * eps),
                                                             abs=3e-5, rel=1e-3)
    for (i, j), _ in np.ndenumerate(R):
        if i != j:
            d = np.zeros_like(R)
            d[i, j] = eps
            assert R[i, j] - layer.rec[i, j] == pytest.approx((L(W, R + d) - L(W, R - d)) / (2 * eps),
                                                              abs=3e-5, rel=1e-3)
