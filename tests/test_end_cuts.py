"""End cuts (streamsnn/learn/augment.py `EndCuts`): a temporal model's training items lose a random 0-50 ms (the live
hop) at their end, as its last live decision in a sample sees it; on by default for a model with a leak and input
delays (the time-aware model `train` gives data that need time)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from streamsnn.cli import main
from streamsnn.errors import ConfigError
from streamsnn.learn import choose, training
from streamsnn.learn.augment import LIVE_HOP_US, EndCuts, end_cuts
from streamsnn.learn.streameval import LIVE_HOP_US as EVAL_HOP_US
from streamsnn.learn.training import load_split, train_epoch
from streamsnn.snn import SpikingNetwork
from streamsnn.snn.arch import InputMap
from tests.conftest import need, rigged_hits

DELAYED = InputMap(delays=3, delay_us=100_000)  # N-MNIST's 34x34, each event also 100 and 200 ms later


@pytest.fixture(scope="module")
def real():
    """The first 20 real N-MNIST training samples (300 ms each) as network input arrays."""
    return load_split(need("nmnist_small"), "train", SpikingNetwork(arch="dense:4"), limit=20, quiet=True)


def test_the_cut_is_at_most_the_live_hop_drawn_evenly_and_keeps_a_prefix(real):
    assert LIVE_HOP_US == EVAL_HOP_US == 50_000  # the hop `eval --stream` and the daemon decide at
    cuts, rng = EndCuts(), np.random.default_rng(0)
    seen = []
    for k in range(len(real)):
        idx, t = real.idx[k], real.t[k]
        for _ in range(20):
            ci, ct = cuts(idx, t, rng)
            n = len(ct)
            assert np.array_equal(ci, idx[:n]) and np.array_equal(ct, t[:n])  # a prefix, in order
            # every event up to one hop before the end is kept, and the events dropped are the latest ones
            assert n >= np.count_nonzero(t <= t[-1] - LIVE_HOP_US) and (n == len(t) or t[n] > ct[-1])
            seen.append(int(t[-1]) - int(ct[-1]))
    seen = np.asarray(seen)
    assert seen.max() <= LIVE_HOP_US and seen.max() > 0.8 * LIVE_HOP_US and seen.min() < 0.1 * LIVE_HOP_US
    assert 0.4 * LIVE_HOP_US < seen.mean() < 0.6 * LIVE_HOP_US  # uniform: half the hop on average


def test_a_short_item_keeps_at_least_half_its_span_and_tiny_ones_are_left_alone():
    t = np.arange(0, 20_000, 10, dtype=np.int64)  # 20 ms: shorter than the hop
    idx = np.arange(len(t), dtype=np.int32)
    rng = np.random.default_rng(1)
    kept = [EndCuts()(idx, t, rng)[1] for _ in range(200)]
    assert min(int(k[-1]) for k in kept) >= t[-1] // 2 and min(len(k) for k in kept) < len(t)
    one = (np.zeros(1, np.int32), np.zeros(1, np.int64))
    assert EndCuts()(*one, rng)[1] is one[1]
    a, b = (EndCuts()(idx, t, np.random.default_rng(s))[1] for s in (5, 5))
    assert np.array_equal(a, b)  # deterministic by seed


@pytest.mark.parametrize("bad", [0, -5])
def test_end_cuts_refuse_a_bad_length(bad):
    with pytest.raises(ConfigError, match="max_us"):
        EndCuts(max_us=bad)


def test_a_leaky_network_with_input_delays_gets_end_cuts_by_default_others_none():
    timed = SpikingNetwork(arch="dense:4", learning="membrane", tau_us=30_000, input_map=DELAYED)
    leaky = SpikingNetwork(arch="dense:4", learning="membrane", tau_us=30_000)
    plain = SpikingNetwork(arch="dense:4")
    assert isinstance(end_cuts(timed), EndCuts) and end_cuts(leaky) is None and end_cuts(plain) is None
    assert end_cuts(timed, False) is None and isinstance(end_cuts(plain, True), EndCuts)  # as given


def test_an_epoch_with_end_cuts_learns_from_fewer_events_of_the_same_samples(real):
    """The real kernels, one epoch each way: every sample is still learned from, minus its cut end."""
    runs = {}
    for name, ends in (("whole", None), ("cut", EndCuts())):
        net = SpikingNetwork(arch="dense:16", learning="membrane", tau_us=30_000, seed=0)
        runs[name] = train_epoch(net, real, seed=0, ends=ends, quiet=True), net.updates
    (whole, n_whole), (cut, n_cut) = runs["whole"], runs["cut"]
    assert n_whole == n_cut == len(real) and whole["events"] == real.n_events
    # N-MNIST's events spread over 300 ms: a cut of 25 ms on average drops a few per cent of them
    assert 0.80 * real.n_events < cut["events"] < 0.99 * real.n_events


def test_the_settings_search_trains_its_candidates_with_the_end_cuts_train_uses(monkeypatch, real):
    seen = []

    def epoch(net, rest, *, ends=None, **kw):
        seen.append(ends)
        return {"accuracy": 0.0}

    monkeypatch.setattr(training, "train_epoch", epoch)
    monkeypatch.setattr(choose, "hits", rigged_hits(lambda net, held: 0.5))
    make = lambda cand: SpikingNetwork(arch="dense:4", learning="membrane", tau_us=50_000,  # noqa: E731
                                       input_map=DELAYED)
    for ends in (None, True, False):
        choose.search(make, real, choose.Candidate(), epochs=1, vary_lr=False, vary_augment=False,
                      fixed_epochs=True, ends=ends)
    assert isinstance(seen[0], EndCuts) and isinstance(seen[1], EndCuts) and seen[2] is None


@pytest.fixture(scope="module")
def gestures(tmp_path_factory):
    """A tiny synthetic gesture set (trained below with --learning membrane --delays 3: a leaky model with delays)."""
    out = tmp_path_factory.mktemp("gestures") / "g"
    assert main(["synth", "--gestures", "--count", "3", "--test-count", "1", "--out", str(out), "-q"]) == 0
    return out


def test_train_cuts_a_temporal_models_ends_says_so_and_can_be_told_not_to(gestures, tmp_path, capsys):
    got = {}
    for flag in ("", "--no-end-cuts"):
        out = tmp_path / f"m{flag}.npz"
        assert main(["train", "--data", str(gestures), "--arch", "dense:16", "--epochs", "1", "--choose", "off",
                     "--learning", "membrane", "--delays", "3", "--no-augment", "--out", str(out),
                     *([flag] if flag else [])]) == 0
        got[flag] = capsys.readouterr().err, SpikingNetwork.load(out)
    (said, cut), (said_off, whole) = got[""], got["--no-end-cuts"]
    assert cut.tau_us and "end cuts 0-50 ms" in said and "end cuts" not in said_off
    assert cut.events_seen < whole.events_seen and cut.updates == whole.updates
    assert main(["train", "--data", str(gestures), "--arch", "dense:16", "--epochs", "1", "--choose", "off",
                 "--learning", "membrane", "--delays", "3", "--out", str(tmp_path / "j.npz"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["end_cut_us"] == LIVE_HOP_US


def test_train_leaves_a_model_without_a_leak_uncut(tmp_path, capsys):
    assert main(["train", "--data", str(need("nmnist_small")), "--arch", "dense:8", "--epochs", "1", "--limit", "20",
                 "--out", str(tmp_path / "m.npz"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["learning"] == "counts" and res["tau_us"] is None and res["end_cut_us"] == 0
