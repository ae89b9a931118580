"""Learning "membrane" (Lee, Delbruck & Pfeiffer 2016): gradients against NumPy references, order, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

from streamsnn.errors import ConfigError
from streamsnn.snn import SpikingNetwork
from streamsnn.snn.network import softmax

TAU = 50_000.0


def tiny(learning="membrane", tau=TAU, **kw):
    """A 4x4x1 input, dense:12, 3 classes; no step bound, no spike cost: the plain gradient step."""
    base = dict(arch="dense:12", input_shape=(4, 4, 1), classes=3, seed=1, tau_us=tau, learning=learning,
                max_step=0.0, activity=0.0, init_gain=2.0)
    return SpikingNetwork(**{**base, **kw})


def events(rng, n=120, n_in=16, span=200_000):
    idx = rng.integers(0, n_in, n).astype(np.int32)
    t = np.sort(rng.integers(0, span, n)).astype(np.int64)
    return idx, t


def loss(net, idx, t, label):
    net.reset()
    d = net.predict_indices(idx, t, count=False)
    return -np.log(softmax(d.scores)[label])


def test_membrane_needs_a_leak():
    with pytest.raises(ConfigError, match="time constant"):
        tiny(tau=None)


def test_output_step_is_the_exact_gradient_of_the_real_network():
    """Output weights do not change which hidden units spike: the loss of the real spiking network is smooth in
    them, and the step equals -lr_out times its finite-difference gradient."""
    rng = np.random.default_rng(0)
    idx, t = events(rng)
    lr_out = 1e-2
    net = tiny(lr=0.0, lr_out=lr_out)
    label = 2
    W0, b0 = net.out_weight.copy(), net.bias.copy()
    assert loss(net, idx, t, label) > 0
    act = np.flatnonzero(net.hidden[0].counts)
    assert len(act) >= 3, "the tiny network must spike for the test to mean anything"
    grad = np.zeros_like(W0)
    h = 1e-3
    for i in act:
        for c in range(3):
            for s in (1, -1):
                net.out_weight[:] = W0
                net.out_weight[i, c] += s * h
                grad[i, c] += s * loss(net, idx, t, label) / (2 * h)
    gb = np.zeros(3)
    for c in range(3):
        for s in (1, -1):
            net.out_weight[:] = W0
            net.bias[:] = b0
            net.bias[c] += s * h
            gb[c] += s * loss(net, idx, t, label) / (2 * h)
    net.out_weight[:], net.bias[:] = W0, b0
    net.reset()
    net.learn_indices(idx, label, t)
    step = net.out_weight - W0
    # float32 weights of about 1 hold a step to about 1e-7
    np.testing.assert_allclose(step, -lr_out * grad, atol=3e-7, rtol=2e-3)
    np.testing.assert_allclose(net.bias - b0, -lr_out * gb, rtol=2e-3, atol=1e-8)


def reference_hidden_gradient(net, idx, t, label, W1, Wout, b):
    """NumPy reference of Lee et al.'s hidden-layer rule, by finite differences.

    The twin: input traces x (each input event weighted exp(-(T - t)/tau) at the readout time T), the hidden
    activity the spiking layer produced (its traces h) treated as a signal that moves with its membrane input,
    slope 1 where the unit spiked and 0 where it did not (spike jumps as noise): h(W) = h0 + gate * ((W - W1)^T x);
    scores = Wout^T h(W) + b. Returns dL/dW by central differences."""
    T = t[-1]
    x = np.bincount(idx, weights=np.exp((t - T) / TAU), minlength=W1.shape[0])
    net.reset()
    net.predict_indices(idx, t, count=False)
    ev_i, ev_c, ev_t = net.spike_trains[0]
    h0 = np.bincount(ev_i, weights=ev_c * np.exp((ev_t - T) / TAU), minlength=W1.shape[1])
    gate = (h0 > 0).astype(np.float64)

    def L(W):
        hh = h0 + gate * ((W - W1).T @ x)
        return -np.log(softmax(Wout.T.astype(np.float64) @ hh + b)[label])

    g = np.zeros(W1.shape)
    e = 1e-4
    for i in np.flatnonzero(x):
        for j in range(W1.shape[1]):
            Wp, Wm = W1.astype(np.float64).copy(), W1.astype(np.float64).copy()
            Wp[i, j] += e
            Wm[i, j] -= e
            g[i, j] = (L(Wp) - L(Wm)) / (2 * e)
    return g, x, gate


def test_hidden_step_matches_the_numpy_reference():
    rng = np.random.default_rng(3)
    idx, t = events(rng)
    lr = 1e-2
    net = tiny(lr=lr, lr_out=0.0)
    label = 0
    W1, Wout, b = net.hidden[0].weight.copy(), net.out_weight.copy(), net.bias.copy()
    g, x, gate = reference_hidden_gradient(net, idx, t, label, W1, Wout, b)
    assert gate.sum() >= 3 and np.abs(g).max() > 1e-4
    net.reset()
    net.learn_indices(idx, label, t)
    step = net.hidden[0].weight - W1
    np.testing.assert_allclose(step, -lr * g, rtol=5e-3, atol=3e-7)
    assert np.all(step[:, gate == 0] == 0), "units that did not spike pass no error"
    # the traces weigh late events more: the step is not the counts rule's step
    net2 = tiny(learning="counts", lr=lr, lr_out=0.0)
    net2.reset()
    net2.learn_indices(idx, label, t)
    assert not np.allclose(net2.hidden[0].weight - W1, step, rtol=0.05)


def order_task(n, rng, n_in=16):
    """Two classes with the same events per input unit: units 0-7 fire before units 8-15 (class 0) or after."""
    out = []
    for k in range(n):
        label = k % 2
        first = np.arange(0, 8) if label == 0 else np.arange(8, 16)
        second = np.arange(8, 16) if label == 0 else np.arange(0, 8)
        a = np.repeat(first, 6)
        b = np.repeat(second, 6)
        ta = np.sort(rng.integers(0, 100_000, len(a)))
        tb = np.sort(rng.integers(150_000, 250_000, len(b)))
        out.append((np.concatenate([a, b]).astype(np.int32), np.concatenate([ta, tb]).astype(np.int64), label))
    return out


def accuracy(net, data):
    right = 0
    for idx, t, label in data:
        net.reset()
        right += net.predict_indices(idx, t, count=False).label == label
    return right / len(data)


def test_membrane_learns_order_where_the_counts_rule_does_not():
    """The same leaky network learns the order task from its traces, not from its spike counts (whose step is
    the same for both classes up to the rectification)."""
    rng = np.random.default_rng(5)
    train, test = order_task(200, rng), order_task(40, rng)
    got = {}
    for learning in ("membrane", "counts"):
        net = tiny(learning=learning, arch="dense:16", classes=2, lr=0.02, lr_out=0.02)
        for _ in range(3):
            for idx, t, label in train:
                net.reset()
                net.learn_indices(idx, label, t)
        got[learning] = accuracy(net, test)
    assert got["membrane"] >= 0.95
    assert got["counts"] <= 0.8


def test_membrane_checkpoint_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    net = tiny()
    idx, t = events(rng)
    net.learn_indices(idx, 1, t)
    net.save(tmp_path / "m.npz")
    back = SpikingNetwork.load(tmp_path / "m.npz")
    assert back.learning == "membrane" and back.tau_us == TAU
    net.reset()
    back.reset()
    np.testing.assert_array_equal(net.predict_indices(idx, t).scores, back.predict_indices(idx, t).scores)


def test_a_time_constant_per_layer():
    """Each hidden layer leaks with its own time constant; the same value everywhere is the single leak, bit for bit."""
    rng = np.random.default_rng(7)
    idx, t = events(rng)
    one = tiny(arch="dense:12,dense:8")
    same = tiny(arch="dense:12,dense:8", layer_tau_us=[TAU, TAU])
    own = tiny(arch="dense:12,dense:8", layer_tau_us=[5_000.0, 400_000.0])
    assert one.layer_tau_us == same.layer_tau_us == (TAU, TAU) and own.layer_tau_us == (5_000.0, 400_000.0)
    a, b, c = (n.predict_indices(idx, t).scores for n in (one, same, own))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    with pytest.raises(ConfigError, match="one time constant per hidden layer"):
        tiny(arch="dense:12,dense:8", layer_tau_us=[TAU])
    with pytest.raises(ConfigError, match="needs one too"):
        tiny(learning="counts", tau=None, layer_tau_us=[TAU])


def test_per_layer_traces_decay_with_the_layer_they_drive(tmp_path):
    """With its own leak per layer, the output step is still the exact gradient: the last layer's traces decay with
    the output's time constant, and the input's with the first layer's (checked on the hidden step's reference)."""
    rng = np.random.default_rng(11)
    idx, t = events(rng)
    lr = 1e-2
    net = tiny(lr=lr, lr_out=0.0, layer_tau_us=[20_000.0])
    W1, Wout, b = net.hidden[0].weight.copy(), net.out_weight.copy(), net.bias.copy()
    T = t[-1]
    x = np.bincount(idx, weights=np.exp((t - T) / 20_000.0), minlength=16)
    net.reset()
    net.predict_indices(idx, t, count=False)
    ev_i, ev_c, ev_t = net.spike_trains[0]
    h = np.bincount(ev_i, weights=ev_c * np.exp((ev_t - T) / TAU), minlength=12)
    scores = Wout.T.astype(np.float64) @ h + b
    e = softmax(scores)
    e[1] -= 1
    net.reset()
    np.testing.assert_allclose(net.predict_indices(idx, t, count=False).scores, scores, rtol=1e-4, atol=1e-5)
    delta = (Wout.astype(np.float64) @ e) * (h > 0)
    net.reset()
    net.learn_indices(idx, 1, t)
    np.testing.assert_allclose(net.hidden[0].weight - W1, -lr * np.outer(x, delta), rtol=5e-3, atol=3e-7)
    net.save(tmp_path / "m.npz")
    assert SpikingNetwork.load(tmp_path / "m.npz").layer_tau_us == (20_000.0,)
