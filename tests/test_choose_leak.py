"""The leak as a coordinate of `train --choose` (streamsnn/learn/choose.py): 1/4 of the input delay by default,
1/2 tried and taken only when it is better on held-out whole samples or on their last decisions played as one
stream, and worse on neither (the order task's failure: 100 % whole, 64 % last decisions with 1/2)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from streamsnn.cli import main
from streamsnn.commands import train as train_cmd
from streamsnn.io.dataset import open_dataset
from streamsnn.learn import choose, training
from streamsnn.learn import datadefaults as dd
from streamsnn.learn.training import SampleArrays
from streamsnn.snn import SpikingNetwork
from streamsnn.snn.checkpoint import check_chosen
from tests.conftest import rigged_hits


def tiny(n_per_class=4, classes=2) -> SampleArrays:
    labels = np.repeat(np.arange(classes), n_per_class)
    return SampleArrays([np.zeros(1, np.int32)] * len(labels), [np.zeros(1, np.int64)] * len(labels), labels,
                        [str(k) for k in range(len(labels))])


def rigged(monkeypatch, figures, key=lambda cand: cand.leak):
    """choose.run_candidate replaced by one that returns `figures[key(candidate)]` (by default its leak) =
    (whole accuracy, last decisions)."""
    ran = []

    def fake(make_net, cand, rest, held, *, epochs, seed, fixed_epochs, stream_score=None, pieces=0.0, ends=False):
        ran.append(cand)
        acc, last = figures[key(cand)]
        return choose.Result(cand, acc, epochs, last=last if stream_score else None, best=epochs)

    monkeypatch.setattr(choose, "run_candidate", fake)
    return ran


def test_a_leak_candidate_is_named_and_recorded_and_the_checkpoint_accepts_it():
    base = choose.Candidate()
    assert base.leak == dd.DELAY_TAU_SHARE == 0.25 and base.name(base) == "default"
    half = choose.Candidate(leak=0.5)
    assert half.name(base) == "leak 1/2 of the delay"
    assert choose.Candidate(lr_scale=0.5, leak=0.5).name(base) == "lr x0.5, leak 1/2 of the delay"
    c = choose.Choice(choose.Result(half, 0.9, 7, last=0.8, best=7), base,
                      [choose.Result(base, 0.8, 5, last=0.8, best=5), choose.Result(half, 0.9, 7, last=0.8, best=7)],
                      10, 40, "leak 1/4 or 1/2 of the delay", 7, leak_searched=True)
    rec = c.record()
    assert rec["leak_share"] == 0.5 and rec["held_out_last_decision"] == 0.8 and rec["winner"] == half.name(base)
    assert rec["tried"] == "default 0.800 at 5 last 0.800; leak 1/2 of the delay 0.900 at 7 last 0.800"
    assert check_chosen(rec) == rec
    assert "leak_share" not in choose.Choice(c.winner, base, c.results, 10, 40, "3 epochs fixed", 3).record()
    assert "(last decision 80%)" in c.brief()


def test_the_longer_leak_that_wins_whole_samples_but_loses_the_stream_is_refused(monkeypatch):
    # the order task's figures (datadefaults.py): both 100 % whole would be a tie; here 1/2 is better whole
    rigged(monkeypatch, {0.25: (0.9, 0.99), 0.5: (0.96, 0.64)})
    c = choose.search(None, tiny(), choose.Candidate(), epochs=3, vary_lr=False, vary_augment=False,
                      leaks=(0.5,), stream_score=lambda net, held: 0.0)
    assert [r.candidate.leak for r in c.results] == [0.25, 0.5]
    assert c.winner.candidate.leak == 0.25 and c.record()["leak_share"] == 0.25
    assert c.searched == "leak 1/4 or 1/2 of the delay, epochs 1-3"


@pytest.mark.parametrize("figures,chosen", [
    ({0.25: (0.91, 0.89), 0.5: (0.96, 0.89)}, 0.5),   # better whole, equal last: taken (gestures)
    ({0.25: (0.91, 0.80), 0.5: (0.96, 0.86)}, 0.5),   # better on both
    ({0.25: (0.96, 0.80), 0.5: (0.96, 0.99)}, 0.5),   # a tie on whole samples, better last decisions: taken
    ({0.25: (0.96, 0.80), 0.5: (0.96, 0.80)}, 0.25),  # a tie on both keeps the default
    ({0.25: (0.96, 0.80), 0.5: (0.95, 0.99)}, 0.25),  # far better last decisions, one whole sample fewer: refused
    ({0.25: (0.91, 0.89), 0.5: (0.99, 0.88)}, 0.25),  # one last decision fewer: refused
])
def test_the_acceptance_rule(monkeypatch, figures, chosen):
    rigged(monkeypatch, figures)
    c = choose.search(None, tiny(), choose.Candidate(), epochs=3, vary_lr=False, vary_augment=False,
                      leaks=(0.5,), stream_score=lambda net, held: 0.0)
    assert c.winner.candidate.leak == chosen


def test_the_leak_is_tried_last_at_the_best_so_far_and_not_without_a_stream_score(monkeypatch):
    ran = rigged(monkeypatch, {0.25: (0.5, 0.5), 0.5: (0.5, 0.5)})
    figures = {1.0: 0.5, 0.5: 0.7, 0.25: 0.6}
    monkeypatch.setattr(choose, "run_candidate", lambda mk, cand, *a, **k: (
        ran.append(cand), choose.Result(cand, figures[cand.lr_scale] + 0.01 * (cand.leak == 0.5), 3, last=0.5))[1])
    c = choose.search(None, tiny(), choose.Candidate(), epochs=3, vary_augment=False, leaks=(0.5,),
                      stream_score=lambda net, held: 0.0)
    assert ran[-1] == choose.Candidate(lr_scale=0.5, leak=0.5) and c.winner.candidate == ran[-1]
    with pytest.raises(ValueError, match="stream_score"):
        choose.search(None, tiny(), choose.Candidate(), epochs=3, leaks=(0.5,))


def test_run_candidate_reads_the_stream_at_the_epoch_it_chooses(monkeypatch):
    """Held-out whole accuracy 0.5, 0.8, 0.8, 0.6 over 4 epochs: epoch 3 is chosen (the last at the best),
    and its stream figure is the one kept; epochs that cannot be chosen are not played as a stream. (All 4 train:
    in so short a run the epochs around the best are the last ones, `stops_early`.)"""
    curve = iter([0.5, 0.8, 0.8, 0.6])
    monkeypatch.setattr(training, "train_epoch", lambda net, *a, **k: None)
    monkeypatch.setattr(choose, "hits", rigged_hits(lambda net, held: next(curve)))
    played = []

    def stream_score(net, held):
        played.append(len(played))
        return [0.1, 0.2, 0.3][len(played) - 1]

    r = choose.run_candidate(lambda c: object(), choose.Candidate(), tiny(), tiny(), epochs=4, seed=0,
                             fixed_epochs=False, stream_score=stream_score)
    assert (r.best, r.epochs) == (3, 4) and r.accuracy == 0.8 and r.last_at == {1: 0.1, 2: 0.2, 3: 0.3}
    assert r.last == 0.3
    curve = iter([0.5, 0.8, 0.8, 0.6])
    played.clear()
    r = choose.run_candidate(lambda c: object(), choose.Candidate(), tiny(), tiny(), epochs=4, seed=0,
                             fixed_epochs=True, stream_score=stream_score)
    assert r.epochs == 4 and r.last_at == {4: 0.1} and r.last == 0.1


def test_run_candidate_trains_all_the_epochs_unless_its_best_is_clearly_better(monkeypatch):
    """30 held-out samples, 16 epochs. A curve that turns down for good (27 right up to epoch 8, then 18) stops at its
    best epoch, 8. The same 27 right at epoch 8 alone, between epochs right on 18 (a different 18 each time, as a
    noisy run gives), beats the last epoch clearly too, but the epochs around it do not beat the last five: all
    16 train. Its score and its stream figure stay those of its best epoch either way."""
    monkeypatch.setattr(training, "train_epoch", lambda net, *a, **k: None)
    n, epochs = 30, 16

    def rotating(e, k=18):
        h = np.zeros(n, bool)
        h[[(e * 7 + j) % n for j in range(k)]] = True
        return h

    turned = [np.arange(n) < (27 if e < 8 else 18) for e in range(epochs)]
    lucky = [np.arange(n) < 27 if e == 7 else rotating(e) for e in range(epochs)]
    assert choose.clearly_better(lucky[7], lucky[-1])  # the single-epoch test alone would stop the lucky run
    for right, stops in ((turned, True), (lucky, False)):
        assert choose.stops_early(right, 8) == stops
        played, hits = itertools.count(1), iter(right)  # the stream figure of the k-th epoch played: 0.1 k
        monkeypatch.setattr(choose, "hits", lambda net, held, h=hits: next(h))
        r = choose.run_candidate(lambda c: object(), choose.Candidate(), tiny(), tiny(), epochs=epochs, seed=0,
                                 fixed_epochs=False, stream_score=lambda net, held, p=played: 0.1 * next(p))
        want = 8 if stops else epochs
        assert (r.best, r.epochs, r.accuracy) == (8, want, 0.9)
        assert r.last == r.last_at[8] and r.curve[-1] == right[-1].mean()
        assert ("is not clearly better than the last, 60%, nor the epochs around it (66% on average) than the last 5 "
                "(60%)" in r.why_epochs()) == (not stops)
        c = choose.Choice(r, choose.Candidate(), [r], n, 4 * n, f"epochs 1-{epochs}", epochs)
        assert c.record()["epochs"] == want and c.record()["best_epoch"] == 8
        assert c.brief().endswith(f"default, {want} epochs" + r.why_epochs())


def test_the_cut_compares_the_epochs_around_the_best_with_the_last_ones():
    """Per-sample shares: the sign test generalised (bool hits give the sign test itself), and windows clipped at
    the curve's ends: a best epoch among the last five never stops a run."""
    a, b = np.arange(10) < 7, np.arange(10) == 9
    assert choose.clearly_better(a, b) == choose.clearly_better(a.astype(float), b.astype(float))
    assert not choose.clearly_better(np.full(10, 0.5), np.full(10, 0.5))
    assert choose.clearly_better(np.full(10, 0.6), np.full(10, 0.5))  # the same gain on every sample: no doubt
    up = [np.arange(20) < k for k in (5, 10, 20, 20, 5, 5)]  # best at 4; epochs 2-6 against 2-6 (clipped)
    assert choose.clearly_better(up[3], up[-1]) and not choose.stops_early(up, 4)


def test_choose_tau_takes_another_share_of_the_delay():
    assert dd.choose_tau(None, None, "membrane", 361_000) == (90_000.0, "1/4 of the input delay, 361 ms")
    assert dd.choose_tau(None, None, "membrane", 361_000, delay_share=0.5) == (
        180_000.0, "1/2 of the input delay, 361 ms")
    assert dd.choose_tau(None, 30, "membrane", 361_000, delay_share=0.5)[0] == 30_000.0  # --tau-ms wins


@pytest.fixture(scope="module")
def gestures(tmp_path_factory):
    """A tiny synthetic gesture set: 4 training samples and 1 test sample per class, 10 classes."""
    out = tmp_path_factory.mktemp("gestures") / "g"
    assert main(["synth", "--gestures", "--count", "4", "--test-count", "1", "--out", str(out), "-q"]) == 0
    return out


def train_json(capsys, *argv) -> dict:
    assert main(["train", *argv, "--arch", "dense:32", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_train_tries_the_leak_on_held_out_training_samples_and_keeps_the_choice(gestures, tmp_path, capsys,
                                                                                monkeypatch):
    streamed = []
    real = train_cmd.HeldStream.__call__

    def spy(self, net, held):
        streamed.append((net.tau_us, list(held.ids), net.layer_tau_us))
        return real(self, net, held)

    monkeypatch.setattr(train_cmd.HeldStream, "__call__", spy)
    out = tmp_path / "m.npz"
    res = train_json(capsys, "--data", str(gestures), "--epochs", "2", "--choose", "on", "--out", str(out))
    chosen = res["chosen"]
    assert res["learning"] == "membrane" and res["input"]["delays"] == 3  # the probe saw that time matters
    delay = res["input"]["delay_us"]
    assert "leak 1/4 or 1/2 of the delay" in chosen["searched"] and "leak 1/2 of the delay" in chosen["tried"]
    assert chosen["leak_share"] in (0.25, 0.5) and 0 <= chosen["held_out_last_decision"] <= 1
    # every candidate was played as a stream of held-out training samples, the longer leak with its own tau
    train_ids = {s.sample_id for s in open_dataset(gestures).split("train").samples}
    assert streamed and all(set(ids) <= train_ids and len(ids) == chosen["held_out"] for _, ids, _ in streamed)
    assert {tau for tau, _, _ in streamed} == {round(delay / 4, -3), round(delay / 2, -3)}
    # and last, the first layer leaking over the whole delay, the rest with the leak chosen so far
    assert "first layer's leak as the others' or 1x the delay" in chosen["searched"]
    assert chosen["first_leak_share"] in (0.0, 1.0) and streamed[-1][2][0] == round(delay, -3)
    net = SpikingNetwork.load(out)
    assert net.chosen == chosen and net.tau_us == round(chosen["leak_share"] * delay, -3) == res["tau_us"]


def test_train_builds_the_final_model_with_the_longer_leak_when_it_wins(gestures, tmp_path, capsys, monkeypatch):
    """Scores rigged so that 1/2 wins whole samples and ties the stream: the saved model carries 1/2 of the delay."""
    monkeypatch.setattr(choose, "hits", rigged_hits(lambda net, held: net.tau_us / 1e6))
    monkeypatch.setattr(train_cmd.HeldStream, "__call__", lambda self, net, held: 0.5)
    out = tmp_path / "m.npz"
    res = train_json(capsys, "--data", str(gestures), "--epochs", "1", "--choose", "on", "--no-augment",
                     "--lr", "0.001", "--out", str(out))
    delay = res["input"]["delay_us"]
    assert res["chosen"]["leak_share"] == 0.5 and res["chosen"]["winner"] == "leak 1/2 of the delay"
    assert "chosen on held-out training samples" in res["why"]["tau"]
    assert SpikingNetwork.load(out).tau_us == round(delay / 2, -3) == res["tau_us"]


def test_a_leak_the_user_gives_is_not_searched(gestures, tmp_path, capsys):
    res = train_json(capsys, "--data", str(gestures), "--epochs", "1", "--choose", "on", "--no-augment",
                     "--lr", "0.001", "--tau-ms", "40", "--out", str(tmp_path / "m.npz"))
    # what is left to search for this temporal model: its prefixes (augment.PrefixCrops), not the leak
    assert "leak" not in res["chosen"]["searched"]
    assert [t.rsplit(" ", 3)[0] for t in res["chosen"]["tried"].split("; ")] == ["default", "crops on"]
    assert "leak_share" not in res["chosen"] and "held_out_last_decision" not in res["chosen"]
    assert res["tau_us"] == 40_000.0


class Carried:
    """A network whose decision is how many samples it saw since its last reset (its carried state)."""

    def __init__(self, tau_us):
        self.tau_us, self.seen = tau_us, 0

    def reset(self):
        self.seen = 0

    def predict_indices(self, idx, t):
        self.seen += 1
        return type("D", (), {"label": self.seen - 1})()


def test_held_out_whole_samples_are_scored_from_a_fresh_state_when_the_network_leaks():
    held = tiny(3, 1)  # three samples of class 0
    assert choose.hits(Carried(50_000.0), held).mean() == 1.0      # reset before each: always its first decision
    assert choose.hits(Carried(None), held).mean() == pytest.approx(1 / 3)  # no leak, no state to reset


# --- the first layer's own leak, the whole input delay (choose.FIRST_LEAKS), tried after the leak


def test_the_first_layers_leak_is_named_and_recorded():
    base = choose.Candidate()
    first = choose.Candidate(first=1.0)
    assert first.name(base) == "first layer's leak 1x the delay"
    assert choose.Candidate(leak=0.5, first=1.0).name(base) == "leak 1/2 of the delay, first layer's leak 1x the delay"
    c = choose.Choice(choose.Result(first, 0.9, 7, last=0.8), base, [choose.Result(first, 0.9, 7, last=0.8)],
                      10, 40, "s", 7, leak_searched=True, first_searched=True)
    assert c.record()["first_leak_share"] == 1.0 and check_chosen(c.record()) == c.record()
    c.winner = choose.Result(base, 0.9, 7, last=0.8)
    assert c.record()["first_leak_share"] == 0.0  # searched, not taken: as the other layers
    assert "first_leak_share" not in choose.Choice(c.winner, base, [], 10, 40, "s", 7, True).record()


@pytest.mark.parametrize("figures,winner", [
    # order_other's held-out figures (seed 0): better on both, taken
    ({(0.25, None): (0.867, 0.811), (0.5, None): (0.96, 0.72), (0.25, 1.0): (0.944, 0.867)}, (0.25, 1.0)),
    # synthetic gestures' (seed 0): better whole, fewer last decisions, refused
    ({(0.25, None): (0.90, 0.84), (0.5, None): (0.85, 0.84), (0.25, 1.0): (0.92, 0.79)}, (0.25, None)),
    # the first order task: a tie on both keeps what was chosen
    ({(0.25, None): (1.0, 1.0), (0.5, None): (1.0, 0.78), (0.25, 1.0): (1.0, 1.0)}, (0.25, None)),
    # order_other's with the end cuts (seed 0): a tie on whole samples, 89 % of last decisions against 83: taken
    ({(0.25, None): (0.96, 0.83), (0.5, None): (0.96, 0.76), (0.25, 1.0): (0.96, 0.89)}, (0.25, 1.0)),
    # tried at the leak chosen before it
    ({(0.25, None): (0.8, 0.8), (0.5, None): (0.9, 0.8), (0.5, 1.0): (0.95, 0.85)}, (0.5, 1.0)),
])
def test_the_first_layers_leak_is_tried_last_under_the_leaks_rule(monkeypatch, figures, winner):
    ran = rigged(monkeypatch, figures, key=lambda cand: (cand.leak, cand.first))
    c = choose.search(None, tiny(), choose.Candidate(), epochs=3, vary_lr=False, vary_augment=False,
                      leaks=(0.5,), first_leaks=(1.0,), stream_score=lambda net, held: 0.0)
    assert [(r.leak, r.first) for r in ran][:2] == [(0.25, None), (0.5, None)] and ran[-1].first == 1.0
    assert (c.winner.candidate.leak, c.winner.candidate.first) == winner
    assert c.searched == ("leak 1/4 or 1/2 of the delay, first layer's leak as the others' or 1x the delay, "
                          "epochs 1-3")
    with pytest.raises(ValueError, match="stream_score"):
        choose.search(None, tiny(), choose.Candidate(), epochs=3, first_leaks=(1.0,))


def test_train_builds_the_final_model_with_the_first_layers_leak_when_it_wins(gestures, tmp_path, capsys,
                                                                             monkeypatch):
    """Scores rigged so that the first layer's own leak wins whole samples and ties the stream: the saved model's
    first layer leaks over the input delay, the others and the output with the leak chosen (1/4 of it)."""
    monkeypatch.setattr(choose, "hits", rigged_hits(lambda net, held: net.layer_tau_us[0] / net.tau_us / 10))
    monkeypatch.setattr(train_cmd.HeldStream, "__call__", lambda self, net, held: 0.5)
    out = tmp_path / "m.npz"
    assert main(["train", "--data", str(gestures), "--arch", "dense:32,dense:16", "--json", "--epochs", "1",
                 "--choose", "on", "--no-augment", "--lr", "0.001", "--out", str(out)]) == 0
    cap = capsys.readouterr()
    res = json.loads(cap.out)
    delay = res["input"]["delay_us"]
    assert res["chosen"]["first_leak_share"] == 1.0 and res["chosen"]["leak_share"] == 0.25
    assert res["chosen"]["winner"] == "first layer's leak 1x the delay"
    net = SpikingNetwork.load(out)
    assert net.tau_us == round(delay / 4, -3) == res["tau_us"]
    assert list(net.layer_tau_us) == [round(delay, -3), round(delay / 4, -3)] == res["layer_tau_us"]
    assert "held-out" in res["why"]["layer_tau"]


def test_train_says_the_first_layers_leak_in_its_lines(gestures, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(choose, "hits", rigged_hits(lambda net, held: net.layer_tau_us[0] / net.tau_us / 10))
    monkeypatch.setattr(train_cmd.HeldStream, "__call__", lambda self, net, held: 0.5)
    assert main(["train", "--data", str(gestures), "--arch", "dense:32", "--epochs", "1", "--choose", "on",
                 "--no-augment", "--lr", "0.001", "--out", str(tmp_path / "m.npz")]) == 0
    err = capsys.readouterr().err
    delay_ms = SpikingNetwork.load(tmp_path / "m.npz").layer_tau_us[0] / 1000
    assert f"first layer's leak tau {delay_ms:g} ms" in err
    assert f"(the first layer {delay_ms:g} ms)" in err.split("training dense:32")[1].splitlines()[0]


@pytest.mark.parametrize("tau,layers,says", [
    (None, None, "none"),
    (30_000.0, None, "30 ms"),
    (30_000.0, (120_000.0, 30_000.0), "30 ms (the first layer 120 ms)"),
    (30_000.0, (120_000.0, 60_000.0), "120/60/30 ms (each layer, then the output)"),
    (30_000.0, (60_000.0, 60_000.0), "60/60/30 ms (each layer, then the output)"),
])
def test_trains_line_says_each_layers_leak_when_they_differ(tau, layers, says):
    from types import SimpleNamespace

    net = SimpleNamespace(tau_us=tau, layer_tau_us=layers if layers else ((tau,) * 2 if tau else None))
    assert train_cmd.leak_text(net) == says
