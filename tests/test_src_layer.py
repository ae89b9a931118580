"""The recurrent spiking layer `src:N`: its cascade kernel against a NumPy reference, the cascade cap, zero R as a
dense layer, parsing and stacking, checkpoints, learning on real N-MNIST and the update guard over R."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from streamsnn.cli import main
from streamsnn.errors import ConfigError
from streamsnn.snn import SpikingNetwork
from streamsnn.snn.arch import parse_arch
from streamsnn.snn.guard import NonFinite
from streamsnn.snn.kernels import decay_factor
from streamsnn.snn.layers import KINDS, layer_line
from streamsnn.snn.layers import src as src_mod
from streamsnn.snn.layers.src import CASCADE, SrcLayer, src_forward
from tests.conftest import need

THETA = 0.5


def _fire(phi, counts, theta, budget, time, out, queue):
    """Fire every unit above theta in unit order (at most ``budget`` spikes, None: no bound); returns the spikes."""
    spent = 0
    for j in range(len(phi)):
        if phi[j] > theta:
            c = math.ceil(phi[j] - theta)
            if budget is not None:
                c = min(c, budget - spent)
                if c <= 0:
                    break
            phi[j] -= c
            counts[j] += c
            out.append((j, c, time))
            queue.append((j, c))
            spent += c
    return spent


def reference(idx, cnt, t, W, R, theta, tau, cap):
    """The layer, event by event in true units (float64), obviously: returns (spikes [(unit, c, t)], phi, counts,
    recurrent spikes, capped events)."""
    n = W.shape[1]
    phi = np.zeros(n)
    counts = np.zeros(n)
    out, rec, capped, t_prev = [], 0, 0, None
    for k in range(len(idx)):
        if tau:
            if t_prev is not None:
                phi *= math.exp(-(t[k] - t_prev) / tau)
            t_prev = t[k]
        phi += cnt[k] * W[idx[k]]
        queue = []
        time = int(t[k]) if tau else 0
        _fire(phi, counts, theta, None, time, out, queue)
        budget = cap
        for j, c in queue:  # the queue grows while it is walked: first in, first out
            phi += c * R[j]
            if budget > 0:
                spent = _fire(phi, counts, theta, budget, time, out, queue)
                budget -= spent
                rec += spent
        if budget <= 0:
            capped += 1
            phi[:] = np.minimum(phi, theta)
    return out, phi, counts, rec, capped


def run_kernel(idx, cnt, t, W, R, tau, emit=True, cap=None):
    n = W.shape[1]
    cap = CASCADE * n if cap is None else cap
    size = len(idx) * (n + cap) + n + cap + 1
    oi, oc, ot = np.empty(size, np.int32), np.empty(size, np.float32), np.empty(size, np.int64)
    phi, counts = np.zeros(n, np.float32), np.zeros(n, np.float32)
    ref = np.array([float(t[0]) if tau else 0.0])
    capped = np.zeros(1, np.int64)
    k, m = src_forward(idx, cnt, t if tau else np.zeros(0, np.int64), 0, W, R, phi, counts, np.float32(THETA),
                       1.0 / tau if tau else 0.0, ref, emit, oi, oc, ot, 0, cap, np.empty(n + cap, np.int32),
                       np.empty(n + cap, np.float32), capped)
    assert k == len(idx)
    true_phi = phi * decay_factor(int(t[-1]), 1.0 / tau, ref) if tau else phi
    spikes = [(int(i), float(c), int(s) if tau else 0) for i, c, s in zip(oi[:m], oc[:m], ot[:m])]
    return spikes, true_phi, counts, int(capped[0])


def random_case(seed, n_in=12, n=8, events=300, dyadic=True):
    """Random inputs (with multiplicities 1..3) and weights; dyadic weights (multiples of 1/8) make every sum
    exact in float32, so the kernel and the reference agree bit for bit without a leak."""
    rng = np.random.default_rng(seed)
    W = rng.uniform(-0.4, 0.9, (n_in, n))
    R = rng.uniform(-0.6, 0.8, (n, n))
    if dyadic:
        W, R = np.round(W * 8) / 8, np.round(R * 8) / 8
    np.fill_diagonal(R, 0)
    idx = rng.integers(0, n_in, events).astype(np.int32)
    cnt = rng.integers(1, 4, events).astype(np.float32)
    t = np.cumsum(rng.integers(0, 3000, events)).astype(np.int64)
    return idx, cnt, t, W.astype(np.float32), R.astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("emit", [True, False])
def test_kernel_matches_the_reference_without_a_leak(seed, emit):
    idx, cnt, t, W, R = random_case(seed)
    spikes, phi, counts, rec, capped = reference(idx, cnt, t, W.astype(np.float64), R.astype(np.float64), THETA,
                                                 None, CASCADE * W.shape[1])
    assert rec > 0  # cascades happened: recurrent spikes made other units fire
    got, gphi, gcounts, gcapped = run_kernel(idx, cnt, t, W, R, None, emit=emit)
    if emit:
        assert got == [(j, float(c), 0) for j, c, _ in spikes]  # the same spikes, in the same order
    np.testing.assert_array_equal(gphi, phi.astype(np.float32))
    np.testing.assert_array_equal(gcounts, counts.astype(np.float32))
    assert gcapped == capped


@pytest.mark.parametrize("seed", [3, 4])
def test_kernel_matches_the_reference_with_a_leak(seed):
    idx, cnt, t, W, R = random_case(seed, dyadic=False)
    tau = 4000.0
    spikes, phi, counts, rec, capped = reference(idx, cnt, t, W.astype(np.float64), R.astype(np.float64), THETA,
                                                 tau, CASCADE * W.shape[1])
    assert rec > 0
    got, gphi, gcounts, gcapped = run_kernel(idx, cnt, t, W, R, tau)
    assert got == [(j, float(c), int(s)) for j, c, s in spikes]
    np.testing.assert_allclose(gphi, phi, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(gcounts, counts)
    assert gcapped == capped


def test_a_recurrent_spike_makes_another_unit_fire_at_the_same_time():
    W = np.zeros((2, 3), np.float32)
    W[0, 0] = 1.0
    R = np.zeros((3, 3), np.float32)
    R[0, 1] = 1.0   # unit 0's spike drives unit 1 over threshold ...
    R[1, 2] = 0.75  # ... whose spike drives unit 2 over threshold
    idx, cnt, t = np.zeros(1, np.int32), np.ones(1, np.float32), np.array([500], np.int64)
    got, phi, counts, capped = run_kernel(idx, cnt, t, W, R, 10_000.0)
    assert got == [(0, 1.0, 500), (1, 1.0, 500), (2, 1.0, 500)]
    np.testing.assert_allclose(phi, [0.0, 0.0, -0.25], atol=1e-6)
    assert capped == 0


def test_a_runaway_loop_ends_at_the_cap():
    """Huge positive recurrent weights: every event ends, with at most the cap of recurrent spikes."""
    n, events = 6, 50
    W = np.zeros((1, n), np.float32)
    W[0, 0] = 1.0  # each event makes unit 0 fire exactly once
    R = np.full((n, n), 1e3, np.float32)
    np.fill_diagonal(R, 0)
    idx, cnt, t = np.zeros(events, np.int32), np.ones(events, np.float32), np.arange(events, dtype=np.int64)
    for tau in (None, 1e6):
        got, phi, counts, capped = run_kernel(idx, cnt, t, W, R, tau)
        assert capped == events
        assert counts.sum() <= events * (1 + CASCADE * n)
        assert counts.sum() >= events * CASCADE * n  # the cap was reached, not undercut
        assert np.all(np.isfinite(phi)) and np.all(phi <= THETA + 1e-3)
    # through the network, with its buffer growth: ends, and the scores stay finite
    net = SpikingNetwork(arch=f"src:{n}", input_shape=(1, 1, 1), classes=2, seed=0)
    net.hidden[0].weight[...] = W
    net.hidden[0].rec[...] = R
    d = net.predict_indices(idx)
    assert d.spikes[0] <= events * (1 + CASCADE * n) and net.hidden[0].capped[0] == events


def _dense_twin(arch_src, arch_dense, tau_us):
    net = SpikingNetwork(arch=arch_src, seed=3, tau_us=tau_us, init_gain=1.5)
    dense = SpikingNetwork(arch=arch_dense, seed=3, tau_us=tau_us, init_gain=1.5)
    for a, b in zip(net.hidden, dense.hidden):
        a.weight[...] = b.weight
    net.hidden[-1].rec[...] = 0
    net.out_weight[...] = dense.out_weight
    return net, dense


@pytest.mark.parametrize("tau_us", [None, 30_000.0])
def test_zero_recurrent_weights_make_a_dense_layer(tau_us):
    rng = np.random.default_rng(5)
    idx = rng.integers(0, 34 * 34 * 2, 3000).astype(np.int32)
    t = np.sort(rng.integers(0, 200_000, 3000)).astype(np.int64)
    for arch_src, arch_dense in (("src:40", "dense:40"), ("dense:30,src:40", "dense:30,dense:40")):
        net, dense = _dense_twin(arch_src, arch_dense, tau_us)
        a = net.predict_indices(idx, t if tau_us else None)
        b = dense.predict_indices(idx, t if tau_us else None)
        assert a.spikes == b.spikes and sum(a.spikes) > 0
        np.testing.assert_array_equal(net.hidden[-1].counts, dense.hidden[-1].counts)
        np.testing.assert_array_equal(a.scores, b.scores)


def test_parse_stack_describe():
    assert "src" in KINDS and parse_arch("src:64")[0].spec() == "src:64"
    for text, says in (("src:0", "'src:0': sizes must be positive"), ("conv:4:5:2:9", "(padding 0..kernel-1)")):
        with pytest.raises(ConfigError) as info:
            parse_arch(text)
        assert str(info.value).endswith(says) and ("padding" in says) == ("padding" in str(info.value))
    net = SpikingNetwork(arch="src:32")
    assert net.arch == "src:32" and net.hidden[0].rec.shape == (32, 32)
    assert np.all(np.diag(net.hidden[0].rec) == 0) and np.any(net.hidden[0].rec)
    assert net.parameters == 2312 * 32 + 32 * 32 + 32 * 10 + 10
    stacked = SpikingNetwork(arch="conv:4:5:2:2,src:64")
    assert [g.layer.kind for g in stacked.geometry] == ["conv", "src"]
    assert stacked.hidden[1].weight.shape == (4 * 17 * 17, 64)
    d = stacked.describe()["layers"][1]
    assert d["kind"] == "src" and d["units"] == 64 and "recurrent" in layer_line(d)
    with pytest.raises(Exception, match="dense layers only"):
        SpikingNetwork(arch="src:8", learning="spikes")


def test_untrained_layer_is_stable():
    """The initial R (He scale x 0.5, zero diagonal) does not run away on real-sized input."""
    rng = np.random.default_rng(0)
    net = SpikingNetwork(arch="src:64", seed=0)
    idx = rng.integers(0, 34 * 34 * 2, 5000).astype(np.int32)
    net.predict_indices(idx)
    assert net.hidden[0].capped[0] == 0


def test_checkpoint_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 34 * 34 * 2, 2000).astype(np.int32)
    t = np.sort(rng.integers(0, 100_000, 2000)).astype(np.int64)
    net = SpikingNetwork(arch="dense:20,src:24", seed=2, tau_us=20_000.0)
    net.learn_indices(idx, 4, t)
    net.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as z:
        np.testing.assert_array_equal(z["weight_1_rec"], net.hidden[1].rec)
    back = SpikingNetwork.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(back.hidden[1].rec, net.hidden[1].rec)
    net.reset()
    np.testing.assert_array_equal(back.predict_indices(idx, t).scores, net.predict_indices(idx, t).scores)


def test_cli_trains_and_describes_a_recurrent_layer(capsys, tmp_path):
    out = tmp_path / "s.npz"
    capsys.readouterr()
    assert main(["train", "--data", str(need("nmnist_small")), "--arch", "src:64", "--learning", "counts",
                 "--limit", "20", "--epochs", "1", "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["arch"] == "src:64"
    assert main(["info", str(out)]) == 0
    assert "src 64 units, recurrent" in capsys.readouterr().out


def _nmnist(n):
    from streamsnn.io import open_dataset

    samples = open_dataset(need("nmnist_small")).split("train").samples[:n]
    return [(s.load(), int(s.label)) for s in samples]


def _loss(net, data):
    total = 0.0
    for batch, label in data:
        idx, t = net.input_events(batch)
        net.reset()
        s = net.predict_indices(idx, t if net.tau_us else None, count=False).scores.astype(np.float64)
        s = s / net.learn_scale(len(idx))
        total += np.log(np.exp(s - s.max()).sum()) + s.max() - s[label]
    return total / len(data)


@pytest.mark.parametrize("learning", ["counts", "membrane"])
def test_learning_reduces_the_loss_on_real_nmnist(learning):
    data = _nmnist(200)
    tau = 50_000.0 if learning == "membrane" else None
    net = SpikingNetwork(arch="src:64", seed=0, learning=learning, tau_us=tau)
    before = _loss(net, data)
    rec0 = net.hidden[0].rec.copy()
    for _ in range(2):
        for batch, label in data:
            idx, t = net.input_events(batch)
            net.reset()
            net.learn_indices(idx, label, t if tau else None)
    after = _loss(net, data)
    assert after < 0.8 * before, (before, after)
    assert not np.array_equal(net.hidden[0].rec, rec0)  # R learned
    assert np.all(np.diag(net.hidden[0].rec) == 0)      # its diagonal did not


def test_the_guard_undoes_a_step_that_makes_R_non_finite(monkeypatch):
    rng = np.random.default_rng(2)
    idx = rng.integers(0, 34 * 34 * 2, 3000).astype(np.int32)
    net = SpikingNetwork(arch="src:32", seed=0, init_gain=2.0)
    layer = net.hidden[0]
    real = src_mod.dense_backward

    def poisoned(act_in, a_in, delta, act_out, W, lr, want):
        d = real(act_in, a_in, delta, act_out, W, lr, want)
        if W is layer.rec:  # only the recurrent step goes bad
            W[act_in[0], act_out[-1]] = np.inf  # off the diagonal (kept as it was)
        return d

    monkeypatch.setattr(src_mod, "dense_backward", poisoned)
    W0, R0, out0 = layer.weight.copy(), layer.rec.copy(), net.out_weight.copy()
    with pytest.raises(NonFinite) as err:
        net.learn_indices(idx, 1)
    assert err.value.undone and "src:32" in str(err.value)
    np.testing.assert_array_equal(layer.rec, R0)
    np.testing.assert_array_equal(layer.weight, W0)
    np.testing.assert_array_equal(net.out_weight, out0)
    assert net.lr_backoff == 0.5 and isinstance(layer, SrcLayer)
