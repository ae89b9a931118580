"""Learning "timing" on convolutional layers (timing_conv.py): the same units as a dense layer holding the expanded
kernel, the exact gradient of the shared weights, and a convolutional timing model through train, eval and a
checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_timing import loss64, scores64

from streamsnn.cli import main
from streamsnn.snn import SpikingNetwork, timed

TAU = 5_000.0
ARCH = "conv:3:3:2:1,conv:4:3:1:0,dense:5"  # 2x6x6 input -> 3x3x3 -> 4x1x1 -> 5


def conv_net(**kw):
    base = dict(arch=ARCH, input_shape=(6, 6, 2), classes=3, seed=3, tau_us=TAU, learning="timing",
                max_step=0.0, activity=0.0, init_gain=3.0, theta=0.5)
    return SpikingNetwork(**{**base, **kw})


def expanded(layer) -> np.ndarray:
    """The dense weights (n_in, n_out) of a convolution: what each input unit adds to each unit, from its table."""
    K, st = layer.weight, layer.geo.layer.stride
    co, ow = layer.geo.layer.units, layer.geo.out_shape[2]
    W = np.zeros((layer.geo.n_in, layer.geo.n_out), np.float32)
    for u, (ci, dy0, oy0, ny, dx0, ox0, nx) in enumerate(layer.table):
        for a in range(ny):
            for b in range(nx):
                j0 = ((oy0 - a) * ow + (ox0 - b)) * co
                W[u, j0:j0 + co] += K[ci, dy0 + a * st, dx0 + b * st]
    return W


def dense_twin(net) -> SpikingNetwork:
    """The same network with every convolution replaced by a dense layer of its expanded kernel."""
    arch = ",".join(f"dense:{layer.geo.n_out}" for layer in net.hidden)
    twin = SpikingNetwork(arch=arch, input_shape=(6, 6, 2), classes=3, seed=3, tau_us=TAU, learning="timing",
                          max_step=0.0, activity=0.0, theta=0.5)
    for mine, theirs in zip(twin.hidden, net.hidden):
        mine.weight = expanded(theirs) if theirs.conv_like else theirs.weight.copy()
    twin.out_weight[:] = net.out_weight
    twin.bias[:] = net.bias
    return twin


def events(rng, n=150, n_in=72, span=20_000):
    idx = rng.integers(0, n_in, n).astype(np.int32)
    t = np.sort(rng.uniform(0, span, n)).astype(np.int64)
    return idx, t


def test_a_convolution_fires_the_spikes_of_its_expanded_dense_layer():
    rng = np.random.default_rng(0)
    idx, t = events(rng)
    net = conv_net()
    twin = dense_twin(net)
    for k, (call_i, call_t) in enumerate([(idx[:70], t[:70]), (idx[70:], t[70:])]):  # the state carries over
        a = net.predict_indices(call_i, call_t, count=False)
        b = twin.predict_indices(call_i, call_t, count=False)
        for mine, theirs in zip(net.hidden, twin.hidden):
            (mi, mt, md), (ti, tt, td) = mine.spikes, theirs.spikes
            assert len(ti) >= 3 or k == 0, "each layer must spike for the test to mean anything"
            assert np.all(np.diff(mt) >= 0)  # in time order
            np.testing.assert_allclose(mt, tt, rtol=0, atol=1e-6)
            np.testing.assert_array_equal(np.sort(mi), np.sort(ti))
            np.testing.assert_allclose(md, td, rtol=1e-6)
            np.testing.assert_array_equal(mine.counts, theirs.counts)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-6)
    assert min(a.spikes) >= 3


def test_the_kernel_gradient_is_the_expanded_layers_gradient_summed_over_positions():
    rng = np.random.default_rng(1)
    idx, t = events(rng)
    net = conv_net()
    twin = dense_twin(net)
    e = np.array([0.3, -0.5, 0.2])
    net.predict_indices(idx, t, count=False)
    twin.predict_indices(idx, t, count=False)
    _, h, grads = timed.gradients(net, idx, t, e, price=1e-3)
    _, h2, grads2 = timed.gradients(twin, idx, t, e, price=1e-3)
    np.testing.assert_allclose(h, h2, rtol=1e-6)
    for layer, (act_in, grad), (act2, grad2) in zip(net.hidden, grads, grads2):
        full = np.zeros((layer.geo.n_in, layer.geo.n_out))
        full[act2] = grad2
        if not layer.conv_like:
            np.testing.assert_allclose(grad, full[act_in], rtol=1e-6, atol=1e-12)
            continue
        assert act_in is None and grad.shape == layer.weight.shape
        want = np.zeros(layer.weight.shape)  # each kernel weight gathers the gradient of every place it is used
        K, st = layer.weight, layer.geo.layer.stride
        co, ow = layer.geo.layer.units, layer.geo.out_shape[2]
        for u, (ci, dy0, oy0, ny, dx0, ox0, nx) in enumerate(layer.table):
            for a in range(ny):
                for b in range(nx):
                    j0 = ((oy0 - a) * ow + (ox0 - b)) * co
                    want[ci, dy0 + a * st, dx0 + b * st] += full[u, j0:j0 + co]
        assert np.abs(want).max() > 0
        np.testing.assert_allclose(grad, want, rtol=1e-6, atol=1e-12 * np.abs(want).max())
        assert K.shape == grad.shape


def test_the_kernel_gradient_matches_finite_differences_of_the_real_forward():
    rng = np.random.default_rng(2)
    idx, t = events(rng)
    net = conv_net()
    label = 1
    loss0, spikes0 = loss64(net, idx, t, label)
    assert min(spikes0) >= 3
    s = scores64(net, float(t[-1]))
    p = np.exp(s - s.max())
    e = p / p.sum()
    e[label] -= 1
    grads = timed.gradients(net, idx, t, e)[2]
    checked = 0
    for k in (0, 1):
        K, grad = net.hidden[k].weight, grads[k][1]
        for flat in np.argsort(-np.abs(grad).ravel())[:6]:  # the weights that matter most
            w = np.unravel_index(flat, K.shape)
            w0 = K[w]
            sides = []
            for sgn in (1, -1):
                K[w] = np.float32(w0 + sgn * 2.0 ** -16)
                sides.append((loss64(net, idx, t, label), float(K[w]) - float(w0)))
            K[w] = w0
            (lp, sp), dp = sides[0]
            (lm, sm), dm = sides[1]
            if sp != spikes0 or sm != spikes0:
                continue  # a spike appeared or vanished: not differentiable across it
            assert grad[w] == pytest.approx((lp - lm) / (dp - dm), rel=2e-3, abs=1e-6), (k, w)
            checked += 1
    assert checked >= 6


def test_a_convolutional_timing_network_learns_and_its_checkpoint_gives_the_same_scores(tmp_path):
    rng = np.random.default_rng(3)
    net = conv_net(init_gain=2.0, activity=1e-4)
    before = [layer.weight.copy() for layer in net.hidden]
    for _ in range(5):
        idx, t = events(rng)
        net.reset()
        net.learn_indices(idx, int(rng.integers(3)), t)
    for layer, w in zip(net.hidden, before):
        assert np.isfinite(layer.weight).all() and not np.array_equal(layer.weight, w)
    net.save(tmp_path / "m.npz")
    back = SpikingNetwork.load(tmp_path / "m.npz")
    assert back.learning == "timing" and [lay.spec() for lay in back.layers] == ARCH.split(",")
    idx, t = events(rng)
    net.reset()
    np.testing.assert_array_equal(net.predict_indices(idx, t, count=False).scores,
                                  back.predict_indices(idx, t, count=False).scores)


def test_train_and_eval_a_convolutional_timing_model(tmp_path, nmnist_dir, capsys):
    from streamsnn.defaults import TIMING_CONV_GAIN

    out = tmp_path / "m.npz"
    for arch, gain in (("dense:16", 1.0), ("conv:4:5:2:2,dense:16", TIMING_CONV_GAIN)):
        assert main(["train", "--data", str(nmnist_dir), "--limit", "6", "--epochs", "1", "--learning", "timing",
                     "--arch", arch, "--out", str(out), "--choose", "off"]) == 0
        said = [x for x in capsys.readouterr().err.splitlines() if x.startswith("learning rates")]
        assert len(said) == 1 and ("TIMING_CONV_GAIN" in said[0]) == (gain != 1.0)
        net = SpikingNetwork.load(out)
        assert net.init_gain == gain  # train draws a convolutional timing network's weights smaller
    assert net.learning == "timing" and net.layers[0].conv_like
    for extra in ([], ["--stream"]):
        assert main(["eval", "--data", str(nmnist_dir), "--model", str(out), "--limit", "4", "--json", "--quiet",
                     *extra]) == 0
        res = json.loads(capsys.readouterr().out)
        assert res["samples"] == 4 and ("stream_accuracy" in res) == bool(extra)


def test_the_guard_undoes_a_non_finite_step_of_a_convolution():
    from streamsnn.snn.guard import NonFinite

    rng = np.random.default_rng(4)
    idx, t = events(rng)
    net = conv_net()
    net.lr = net.lr_out = 1e30
    before = [w.copy() for w in net.weights]
    with pytest.raises(NonFinite) as exc:
        net.learn_indices(idx, 0, t)
    assert exc.value.undone and net.lr_backoff == 0.5
    for w0, w1 in zip(before, net.weights):
        np.testing.assert_array_equal(w0, w1)
