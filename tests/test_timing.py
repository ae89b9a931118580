"""Learning "timing" (Yamamoto, Sakemi & Aihara 2022): spike times against an ODE reference, exact gradients
against finite differences of the real forward, learning timing, checkpoints, refusals and the guard."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from daemon_util import daemons  # noqa: F401 (fixture)

from streamsnn.cli import main
from streamsnn.errors import ConfigError
from streamsnn.snn import SpikingNetwork, settings, timed
from streamsnn.snn.guard import NonFinite
from streamsnn.snn.timing import psp_norm

TAU = 5_000.0


def tiny(arch="dense:6,dense:5", **kw):
    base = dict(arch=arch, input_shape=(4, 4, 1), classes=3, seed=3, tau_us=TAU, learning="timing",
                max_step=0.0, activity=0.0, init_gain=3.0, theta=0.5)
    return SpikingNetwork(**{**base, **kw})


def events(rng, n=60, n_in=16, span=20_000):
    idx = rng.integers(0, n_in, n).astype(np.int32)
    t = np.sort(rng.uniform(0, span, n)).astype(np.int64)
    return idx, t


def ode_layer(in_i, in_t, W, theta, tau_m, tau_s, t_end, dt=0.5):
    """The same units as an ODE, integrated with tiny steps: v' = -v/tau_m + J, J' = -J/tau_s, an input spike
    of weight w adds c w (1/tau_s - 1/tau_m) to J; a spike where v crosses theta (linear in the step), v -= theta."""
    inv_m, inv_s = 1 / tau_m, 1 / tau_s
    c = psp_norm(inv_m, inv_s)
    n = W.shape[1]
    v, J = np.zeros(n), np.zeros(n)
    out = []
    k = 0
    now = float(in_t[0])
    while now < t_end:
        while k < len(in_i) and in_t[k] <= now:
            J += c * W[in_i[k]].astype(np.float64) * (inv_s - inv_m)
            k += 1
        step = min(dt, t_end - now, (in_t[k] - now) if k < len(in_i) else dt)
        # Heun on v, J exact over the step
        J1 = J * np.exp(-step * inv_s)
        f0 = -v * inv_m + J
        v1 = v + step * f0
        v_new = v + 0.5 * step * (f0 + (-v1 * inv_m + J1))
        for j in np.flatnonzero(v_new >= theta):
            frac = (theta - v[j]) / (v_new[j] - v[j])
            out.append((now + frac * step, j))
            v_new[j] -= theta * np.exp(-(1 - frac) * step * inv_m)  # the reset, decayed since the crossing
        v, J = v_new, J1
        now += step
    out.sort()
    return np.array([j for _, j in out], np.int32), np.array([s for s, _ in out])


@pytest.mark.parametrize("ratio", [0.5, 0.3])  # the closed form (tau_s = tau_m / 2), and Newton
def test_spike_times_match_an_ode_reference(ratio):
    rng = np.random.default_rng(0)
    idx, t = events(rng)
    net = tiny(tau_s_ratio=ratio)
    net.predict_indices(idx, t, count=False)
    ref_i, ref_t = idx, t.astype(np.float64)
    ratio = net.tau_s_ratio
    for layer in net.hidden:
        ref_i, ref_t = ode_layer(ref_i, ref_t, layer.weight, net.theta, TAU, TAU * ratio, float(t[-1]))
        got_i, got_t, _ = layer.spikes
        assert len(got_i) >= 5, "the network must spike for the test to mean anything"
        assert list(got_i) == list(ref_i)
        assert np.max(np.abs(got_t - ref_t)) < 0.5  # µs, against a 0.5 µs ODE step
        np.testing.assert_array_equal(layer.counts, np.bincount(got_i, minlength=layer.geo.n_out))


def weigh(net, u):
    """What the readout gives a last-layer spike of age u, written out: rising then forgotten, or decaying."""
    if net.readout == "decay":
        return np.exp(-u / net.tau_us)
    tau_f = net.readout_forget * net.tau_us
    return np.exp(-u / tau_f) * (1.0 - np.exp(-u / net.tau_us))


def scores64(net, T):
    """The scores in float64 from the last layer's spike times of the last call (a fresh state)."""
    sp_i, sp_t, _ = net.hidden[-1].spikes
    return net.bias.astype(np.float64) + weigh(net, T - sp_t) @ net.out_weight[sp_i].astype(np.float64)


def loss64(net, idx, t, label):
    """The loss of the real forward (fresh state), its readout in float64 from the last layer's spike times."""
    net.reset()
    d = net.predict_indices(idx, t, count=False)
    s = scores64(net, float(t[-1]))
    np.testing.assert_allclose(d.scores, s, rtol=1e-4, atol=1e-5)  # the network reads out what is written here
    s -= s.max()
    return np.log(np.exp(s).sum()) - s[label], d.spikes


@pytest.mark.parametrize("readout,forget,ratio", [("rise", None, 0.5), ("rise", 0.5, 0.5), ("decay", None, 0.5),
                                                  ("rise", None, 0.3)])
def test_gradient_matches_finite_differences_of_the_real_forward(readout, forget, ratio):
    rng = np.random.default_rng(1)
    idx, t = events(rng)
    kw = dict(readout_forget=forget) if readout == "rise" else {}
    net = tiny(readout=readout, tau_s_ratio=ratio, **kw)
    label = 1
    loss0, spikes0 = loss64(net, idx, t, label)
    assert min(spikes0) >= 5
    s = scores64(net, float(t[-1]))
    p = np.exp(s - s.max())
    e = p / p.sum()
    e[label] -= 1
    act, h, grads = timed.gradients(net, idx, t, e)
    checked = 0
    for k, (act_in, grad) in enumerate(grads):
        W = net.hidden[k].weight
        for r in rng.permutation(len(act_in))[:4]:
            for j in rng.permutation(W.shape[1])[:3]:
                i = act_in[r]
                w0 = W[i, j]
                sides = []
                for sgn in (1, -1):
                    W[i, j] = np.float32(w0 + sgn * 2.0 ** -16)
                    dw = float(W[i, j]) - float(w0)
                    sides.append((loss64(net, idx, t, label), dw))
                W[i, j] = w0
                (lp, sp), dp = sides[0]
                (lm, sm), dm = sides[1]
                if sp != spikes0 or sm != spikes0:
                    continue  # a spike appeared or vanished: the loss is not differentiable across it
                fd = (lp - lm) / (dp - dm)
                assert grad[r, j] == pytest.approx(fd, rel=2e-3, abs=1e-6), (k, i, j)
                checked += 1
    assert checked >= 10
    # the output layer: the traces times e
    W = net.out_weight
    j, c = act[0], 2
    w0 = W[j, c]
    W[j, c] = np.float32(w0 + 2.0 ** -12)
    up = loss64(net, idx, t, label)[0]
    dw = float(W[j, c]) - float(w0)
    W[j, c] = w0
    assert h[0] * e[c] == pytest.approx((up - loss0) / dw, rel=1e-2)


def timing_task(rng, n, n_in=4, span=60_000):
    """Two classes with the same events per input in a random order: class 0 fires every input within 2 ms
    (coincident), class 1 spreads them over ``span``. Only timing tells them apart."""
    xs, ys = [], []
    for _ in range(n):
        y = int(rng.integers(2))
        idx = np.repeat(np.arange(n_in), 3)
        if y == 0:
            t = rng.uniform(0, span - 2_000) + rng.uniform(0, 2_000, len(idx))
        else:
            t = rng.uniform(0, span, len(idx))
        order = np.argsort(t)
        xs.append((idx[order].astype(np.int32), np.round(t[order]).astype(np.int64)))
        ys.append(y)
    return xs, ys


def accuracy_after(net, rng, epochs=4):
    train, ytr = timing_task(rng, 200)
    test, yte = timing_task(rng, 100)
    for _ in range(epochs):
        for (idx, t), y in zip(train, ytr):
            net.reset()
            net.learn_indices(idx, y, t)
    right = 0
    for (idx, t), y in zip(test, yte):
        net.reset()
        right += net.predict_indices(idx, t, count=False).label == y
    return right / len(yte)


@pytest.mark.parametrize("readout,tau_us", [("decay", 4_000.0), ("rise", 20_000.0)])
def test_timing_learns_a_task_only_timing_separates_better_than_counts(readout, tau_us):
    """"rise" weighs the spikes of the last coincident burst (at the readout) nothing and forgets over 2 tau: its
    leak must span the task's 60 ms (at 4 ms it is at chance, 51 %)."""
    common = dict(arch="dense:8", input_shape=(4, 1, 1), classes=2, seed=0)
    timing = accuracy_after(SpikingNetwork(**common, learning="timing", tau_us=tau_us, lr=0.003, lr_out=0.02,
                                           tau_s_ratio=0.25, readout=readout),
                            np.random.default_rng(5))
    counts = accuracy_after(SpikingNetwork(**common, learning="counts"), np.random.default_rng(5))
    assert timing >= 0.9
    assert timing > counts + 0.2


def test_checkpoint_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    idx, t = events(rng)
    net = tiny(tau_s_ratio=0.4)
    net.learn_indices(idx, 2, t)
    net.save(tmp_path / "m.npz")
    back = SpikingNetwork.load(tmp_path / "m.npz")
    assert back.learning == "timing" and back.tau_s_ratio == 0.4
    net.reset()
    a = net.predict_indices(idx, t, count=False).scores
    b = back.predict_indices(idx, t, count=False).scores
    np.testing.assert_array_equal(a, b)
    # a state carried over a stream split in two gives what one call gives
    back.reset()
    back.predict_indices(idx[:30], t[:30], count=False)
    np.testing.assert_allclose(back.predict_indices(idx[30:], t[30:], count=False).scores, a, rtol=1e-5, atol=1e-5)


def test_unsupported_layer_kind_is_one_line():
    with pytest.raises(ConfigError, match="dense:N and conv layers only") as exc:
        tiny(arch="src:5,dense:5", input_shape=(8, 8, 1))
    assert "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match="timing"):
        SpikingNetwork(arch="dense:5", input_shape=(4, 4, 1), learning="counts", tau_s_ratio=0.3)


def test_cli_refuses_timing_on_a_recurrent_layer_with_exit_2(tmp_path, nmnist_dir):
    r = subprocess.run([sys.executable, "-m", "streamsnn", "train", "--data", str(nmnist_dir), "--limit", "4",
                        "--learning", "timing", "--arch", "src:8,dense:8", "--out", str(tmp_path / "m.npz")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = [x for x in r.stderr.splitlines() if "dense:N and conv layers only" in x]
    assert len(lines) == 1 and "src:8" in lines[0]


def test_guard_undoes_a_non_finite_step():
    rng = np.random.default_rng(4)
    idx, t = events(rng)
    net = tiny()
    net.lr = 1e30
    net.lr_out = 1e30
    before = [w.copy() for w in net.weights]
    with pytest.raises(NonFinite) as exc:
        net.learn_indices(idx, 0, t)
    assert exc.value.undone
    for w0, w1 in zip(before, net.weights):
        np.testing.assert_array_equal(w0, w1)
    assert net.lr_backoff == 0.5


def test_a_saved_timing_model_runs_in_eval_and_eval_stream(tmp_path, nmnist_dir, capsys):
    from streamsnn.io import open_dataset
    from streamsnn.learn.streameval import stream_evaluate

    net = SpikingNetwork(arch="dense:16", input_shape=(34, 34, 2), classes=10, seed=0, learning="timing",
                         tau_us=20_000.0)
    for s in open_dataset(nmnist_dir).split("train").samples[:3]:
        net.reset()
        net.learn_one(s.load(), s.label)
    ckpt = tmp_path / "timing.npz"
    net.save(ckpt)
    for extra in ([], ["--stream"]):
        assert main(["eval", "--data", str(nmnist_dir), "--model", str(ckpt), "--limit", "4", "--json", "--quiet",
                     *extra]) == 0
        out = json.loads(capsys.readouterr().out)
        assert ("stream_accuracy" in out) == bool(extra) and out["samples"] == 4
    samples = [s.load() for s in open_dataset(nmnist_dir).split("test").samples[:3]]
    res = stream_evaluate(SpikingNetwork.load(ckpt), samples, keep_decisions=True)
    assert res["decision_list"] and res["events"] == sum(len(b.events) for b in samples)


@pytest.mark.slow
async def test_the_daemon_runs_a_timing_model_on_a_continuous_stream(tmp_path, daemons):  # noqa: F811
    from conftest import need
    from daemon_util import live_replay_decisions

    from streamsnn.io import open_dataset
    from streamsnn.learn.streameval import stream_evaluate

    samples = [s.load() for s in open_dataset(need("nmnist_small")).split("test").samples[:4]]
    ckpt = tmp_path / "timing.npz"
    SpikingNetwork(arch="dense:16", input_shape=(34, 34, 2), classes=10, seed=0, learning="timing",
                   tau_us=20_000.0).save(ckpt)
    rows, n_events = await live_replay_decisions(tmp_path, daemons, samples, ckpt)
    assert sum(r["events"] for r in rows) == n_events
    want = stream_evaluate(SpikingNetwork.load(ckpt), samples, keep_decisions=True)["decision_list"]
    assert [(r["t_start_us"], r["label"]) for r in rows] == [(w["t_start_us"], w["label"]) for w in want]


def test_timing_with_input_delays_is_refused_in_one_line():
    m = {"sensor": [34, 34], "roi": [0, 0, 34, 34], "grid": [34, 34, 2], "delays": 2, "delay_us": 1000}
    SpikingNetwork(arch="dense:8", input_map=m, learning="membrane", tau_us=20_000.0)  # the rule that takes them
    with pytest.raises(ConfigError, match="delays") as e:
        SpikingNetwork(arch="dense:8", input_map=m, learning="timing", tau_us=20_000.0)
    assert "\n" not in str(e.value)


def hidden_step(net, idx, t, e):
    """(length of each hidden layer's step, of its raw gradient) of one ``backprop_timing`` on a fresh window."""
    net.reset()
    net.predict_indices(idx, t, count=False)
    before = [layer.weight.copy() for layer in net.hidden]
    raw = [float(np.linalg.norm(g)) for _, g in timed.gradients(net, idx, t, e)[2]]
    timed.backprop_timing(net, idx, t, e, 1.0)
    steps = [float(np.linalg.norm(layer.weight.astype(np.float64) - w)) for layer, w in zip(net.hidden, before)]
    for layer, w in zip(net.hidden, before):
        layer.weight[:] = w
    return steps, raw, before


def test_the_hidden_step_is_normalised_and_does_not_grow_with_the_spike_count():
    rng = np.random.default_rng(6)
    net = tiny(lr=1e-3, lr_out=0.0, readout="decay")  # "rise" forgets the early spikes of a 60 ms window at 5 ms
    e = np.array([0.3, -0.5, 0.2], np.float32)
    few = events(rng, n=30)
    many = events(rng, n=300, span=60_000)
    out = {}
    for name, (idx, t) in (("few", few), ("many", many)):
        steps, raw, before = hidden_step(net, idx, t, e)
        out[name] = (sum(net.hidden[0].counts), raw)
        for step, w in zip(steps, before):  # the definition: lr * |W| * |e| for every layer
            assert step == pytest.approx(1e-3 * np.linalg.norm(w) * np.linalg.norm(e), rel=1e-3)
    assert out["many"][0] > 4 * out["few"][0]  # many more spikes ...
    assert out["many"][1][0] > 3 * out["few"][1][0]  # ... a much longer raw gradient, the same step


@pytest.mark.parametrize("layer_price", [None, (2.5, 0.5)])
def test_the_spike_price_is_the_gradient_of_the_spikes_time_before_the_readout(layer_price):
    """... with each hidden layer's spikes priced at its multiplier (``layer_price``) when it has one."""
    rng = np.random.default_rng(7)
    idx, t = events(rng)
    net = tiny()
    net.layer_price = settings.layer_prices(layer_price, len(net.hidden))
    scale = layer_price or (1.0,) * len(net.hidden)
    T = float(t[-1])
    price = 0.7

    def cost():
        net.reset()
        d = net.predict_indices(idx, t, count=False)
        return sum(x * ((T - layer.spikes[1]) / tau).sum()
                   for x, layer, tau in zip(scale, net.hidden, net.layer_tau_us)), d.spikes

    c0, spikes0 = cost()
    e = np.zeros(3, np.float32)  # no output error: the price alone
    grads = timed.gradients(net, idx, t, e, price)[2]
    checked = 0
    for k, (act_in, grad) in enumerate(grads):
        W = net.hidden[k].weight
        for r in range(min(4, len(act_in))):
            for j in range(3):
                i, w0 = act_in[r], W[act_in[r], j]
                W[i, j] = np.float32(w0 + 2.0 ** -16)
                up, sp = cost()
                dw = float(W[i, j]) - float(w0)
                W[i, j] = w0
                if sp != spikes0:
                    continue
                assert grad[r, j] == pytest.approx(price * (up - c0) / dw, rel=2e-2, abs=1e-6), (k, i, j)
                checked += 1
    assert checked >= 8


def test_the_spike_price_lowers_the_spikes_of_a_toy_run():
    def spikes_after(activity):
        rng = np.random.default_rng(8)
        net = tiny(lr=0.02, lr_out=1e-3, activity=activity)
        for _ in range(40):
            idx, t = events(rng)
            net.reset()
            net.learn_indices(idx, int(rng.integers(3)), t)
        total = 0
        for _ in range(10):
            idx, t = events(rng)
            net.reset()
            total += sum(net.predict_indices(idx, t, count=False).spikes)
        return total

    free, priced = spikes_after(0.0), spikes_after(1.0)
    assert free > 20 and priced < 0.7 * free


def test_describe_and_info_show_tau_s_ratio_and_the_readout(tmp_path, capsys):
    net = tiny(tau_s_ratio=0.4)
    assert net.describe()["tau_s_ratio"] == 0.4
    assert "tau_s_ratio" not in SpikingNetwork(arch="dense:5", input_shape=(4, 4, 1), classes=3).describe()
    net.save(tmp_path / "m.npz")
    assert main(["info", str(tmp_path / "m.npz")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if "tau_s_ratio" in line and "0.4" in line]
    assert [line for line in out if line.split()[:2] == ["readout", "rise"]]
