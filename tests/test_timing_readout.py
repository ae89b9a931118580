"""Learning "timing"'s readouts: "rise" (the default: two evidence sums per class, each decaying at its own rate)
and "decay" (older checkpoints). The state carried across calls, the evidence read out later, class edits on a
running stream, old files, refusals. The gradient of both against finite differences is in test_timing.py."""

from __future__ import annotations

import numpy as np
import pytest
from test_timing import TAU, events, scores64, tiny, weigh

from streamsnn.defaults import TIMING_FORGET
from streamsnn.errors import ConfigError
from streamsnn.pipeline.decide import evidence_at
from streamsnn.snn import SpikingNetwork
from streamsnn.snn.checkpoint import load_checkpoint, save_checkpoint
from streamsnn.snn.decision import Decision


def fed(readout, seed):
    """A tiny network of that readout fed 80 events in one call from a fresh state: (net, idx, t, every last-layer
    spike's unit and time, the call's Decision)."""
    idx, t = events(np.random.default_rng(seed), n=80)
    net = tiny(readout=readout)
    d = net.predict_indices(idx, t, count=False)
    sp_i, sp_t, _ = net.hidden[-1].spikes
    return net, idx, t, sp_i.copy(), sp_t.copy(), d


def written_out(net, sp_i, sp_t, T):
    """The scores at T of those spikes, from the readout's formula (float64)."""
    return net.bias.astype(np.float64) + weigh(net, T - sp_t) @ net.out_weight[sp_i].astype(np.float64)


def test_the_default_readout_is_rise_and_a_fresh_spike_weighs_nothing():
    net = tiny()
    assert net.readout == "rise" and net.config()["readout"] == "rise"
    assert tiny(readout="decay").readout == "decay"
    assert weigh(net, np.array([0.0]))[0] == 0.0
    u = np.linspace(0, 10 * TAU, 1001)
    w = weigh(net, u)
    assert np.argmax(w) > 0 and 0.0 < w.max() < 1.0  # rising from 0, then forgotten
    assert w[-1] < 0.1 * w.max()


@pytest.mark.parametrize("readout", ["rise", "decay"])
def test_the_state_carried_over_a_split_stream_reads_out_as_one_call(readout):
    net, idx, t, sp_i, sp_t, _ = fed(readout, 7)
    assert len(sp_i) >= 5
    np.testing.assert_allclose(scores64(net, float(t[-1])), written_out(net, sp_i, sp_t, float(t[-1])))
    net.reset()
    for a, b in ((0, 25), (25, 50), (50, 80)):
        d = net.predict_indices(idx[a:b], t[a:b], count=False)
    np.testing.assert_allclose(d.scores, written_out(net, sp_i, sp_t, float(t[-1])), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("readout", ["rise", "decay"])
def test_the_evidence_read_out_later_decays_each_sum_at_its_own_rate(readout):
    net, idx, t, sp_i, sp_t, d = fed(readout, 8)
    for later in (float(t[-1]) + 0.5 * TAU, float(t[-1]) + 4 * TAU):
        got = evidence_at(net, d, int(later))
        np.testing.assert_allclose(got.scores, written_out(net, sp_i, sp_t, int(later)), rtol=1e-4, atol=1e-5)
        assert got.label == int(np.argmax(got.scores))
    assert evidence_at(net, d, int(t[-1])) is d  # nothing later: the decision as it was


@pytest.mark.parametrize("readout", ["rise", "decay"])
def test_a_replay_that_loops_back_in_time_carries_its_evidence_without_blowing_up(readout):
    rng = np.random.default_rng(9)
    idx, t = events(rng, n=80)
    net = tiny(readout=readout)
    net.predict_indices(idx, t + 5_000_000, count=False)  # far later than the loop's start
    d = net.predict_indices(idx, t, count=False)  # before the fix, "decay" multiplied its evidence by exp(1000)
    assert np.all(np.isfinite(d.scores)) and np.max(np.abs(d.scores)) < 1e3


def test_adding_and_removing_a_class_on_a_running_stream_keeps_the_other_scores():
    rng = np.random.default_rng(10)
    idx, t = events(rng, n=80)
    net, twin = tiny(), tiny()
    for n in (net, twin):
        n.predict_indices(idx[:40], t[:40], count=False)
    assert np.any(net.scores_fast != 0)
    new = net.add_class("extra")
    assert net.scores.shape == net.scores_fast.shape == (4,)
    a = net.predict_indices(idx[40:], t[40:], count=False).scores
    b = twin.predict_indices(idx[40:], t[40:], count=False).scores
    np.testing.assert_array_equal(a[:3], b)
    later = int(t[-1]) + 20_000
    da = evidence_at(net, Decision(label=0, scores=a, confidence=0.5, events=1, spikes=(0,)), later)
    db = evidence_at(twin, Decision(label=0, scores=b, confidence=0.5, events=1, spikes=(0,)), later)
    np.testing.assert_allclose(da.scores[:3], db.scores, rtol=1e-6)
    net.remove_class(new)
    assert net.scores.shape == net.scores_fast.shape == (3,)
    np.testing.assert_array_equal(net.scores, twin.scores)
    np.testing.assert_array_equal(net.scores_fast, twin.scores_fast)


def test_a_timing_file_written_before_the_rise_readout_loads_with_decay(tmp_path):
    rng = np.random.default_rng(11)
    idx, t = events(rng, n=80)
    old = tiny(readout="decay")
    old.learn_indices(idx, 1, t)
    old.save(tmp_path / "new.npz")
    version, arrays, config, counters = load_checkpoint(tmp_path / "new.npz")
    assert config.pop("readout") == "decay" and config.pop("readout_forget") == TIMING_FORGET
    save_checkpoint(tmp_path / "old.npz", arrays, config, counters)
    back = SpikingNetwork.load(tmp_path / "old.npz")
    assert back.readout == "decay"
    old.reset()
    np.testing.assert_array_equal(back.predict_indices(idx, t, count=False).scores,
                                  old.predict_indices(idx, t, count=False).scores)
    rise = tiny()
    rise.save(tmp_path / "rise.npz")
    assert SpikingNetwork.load(tmp_path / "rise.npz").readout == "rise"


def test_a_rise_readout_forgets_over_its_own_time_which_the_checkpoint_keeps(tmp_path):
    idx, t = events(np.random.default_rng(12), n=80)
    T = float(t[-1])
    nets = {f: tiny(readout_forget=f) for f in (TIMING_FORGET, 5.0)}
    got = {}
    for f, net in nets.items():
        assert net.readout_forget == f and net.config()["readout_forget"] == f
        got[f] = net.predict_indices(idx, t, count=False).scores
        sp_i, sp_t, _ = net.hidden[-1].spikes
        np.testing.assert_allclose(got[f], written_out(net, sp_i, sp_t, T), rtol=1e-4, atol=1e-5)
    assert not np.allclose(got[TIMING_FORGET], got[5.0])  # the same spikes, weighed otherwise
    slow = nets[5.0]
    slow.save(tmp_path / "slow.npz")
    back = SpikingNetwork.load(tmp_path / "slow.npz")
    assert back.readout_forget == 5.0
    np.testing.assert_array_equal(back.predict_indices(idx, t, count=False).scores, got[5.0])
    version, arrays, config, counters = load_checkpoint(tmp_path / "slow.npz")
    del config["readout_forget"]  # a file written before it was kept
    save_checkpoint(tmp_path / "older.npz", arrays, config, counters)
    assert SpikingNetwork.load(tmp_path / "older.npz").readout_forget == TIMING_FORGET


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "slow", 1e7])
def test_a_readout_forget_that_is_not_a_positive_number_is_refused_in_one_line(bad):
    with pytest.raises(ConfigError, match="readout_forget must be") as e:
        tiny(readout_forget=bad)
    assert "\n" not in str(e.value)


def test_a_readout_that_is_not_one_or_not_for_timing_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="readout must be one of rise, decay") as e:
        tiny(readout="sideways")
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="readout is a setting of learning 'timing'"):
        SpikingNetwork(arch="dense:5", input_shape=(4, 4, 1), learning="counts", readout="rise")
    with pytest.raises(ConfigError, match="readout_forget is a setting of learning 'timing'"):
        SpikingNetwork(arch="dense:5", input_shape=(4, 4, 1), learning="counts", readout_forget=3.0)


def test_train_takes_the_readout_and_refuses_it_without_timing(tmp_path, nmnist_dir, capsys):
    from streamsnn.cli import main

    out = tmp_path / "m.npz"
    common = ["train", "--data", str(nmnist_dir), "--limit", "6", "--epochs", "1", "--choose", "off", "--out", str(out)]
    assert main([*common, "--learning", "timing", "--arch", "dense:8", "--readout", "decay"]) == 0
    said = capsys.readouterr()
    assert "'decay' readout" in said.out + said.err
    assert SpikingNetwork.load(out).readout == "decay"
    assert main([*common, "--learning", "timing", "--arch", "dense:8"]) == 0
    assert SpikingNetwork.load(out).readout == "rise"
    capsys.readouterr()
    assert main([*common, "--readout", "decay"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "--readout" in line]
    assert len(err) == 1 and "--learning timing" in err[0]


def test_train_leaves_timing_unvaried_by_default_and_varies_it_when_asked(tmp_path, nmnist_dir, capsys):
    """Learning timing trains on its samples as they are unless --augment: the same weights as --no-augment."""
    from streamsnn.cli import main

    common = ["train", "--data", str(nmnist_dir), "--limit", "6", "--epochs", "1", "--choose", "off",
              "--learning", "timing", "--arch", "dense:8"]
    weights = {}
    for name, extra in (("default", []), ("off", ["--no-augment"]), ("on", ["--augment"])):
        assert main([*common, "--out", str(tmp_path / f"{name}.npz"), *extra]) == 0
        said = capsys.readouterr()
        said = said.out + said.err
        weights[name] = SpikingNetwork.load(tmp_path / f"{name}.npz").hidden[0].weight.copy()
        if name == "default":
            assert "augment off (the default for learning timing)" in said
        if name == "on":
            assert "augment shift" in said
    np.testing.assert_array_equal(weights["default"], weights["off"])
    assert not np.array_equal(weights["default"], weights["on"])
