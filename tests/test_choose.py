"""Settings chosen on a held-out part of the training split (issue 19 item 5): streamsnn/learn/choose.py and train."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from conftest import need

from streamsnn.cli import build_parser, main
from streamsnn.commands.train import plan
from streamsnn.errors import CheckpointError
from streamsnn.io.dataset import open_dataset
from streamsnn.learn import choose
from streamsnn.learn import datadefaults as dd
from streamsnn.learn.training import load_split
from streamsnn.snn import SpikingNetwork
from streamsnn.snn.checkpoint import load_checkpoint, save_checkpoint


def planned(data, *argv):
    args = build_parser().parse_args(["train", "--data", str(data), "--out", "/tmp/x.npz", *argv])
    return plan(args, lambda *a: None)


@pytest.fixture(scope="module")
def poker_run(tmp_path_factory):
    """`train --choose on --epochs 3` on POKER-DVS, with the samples every candidate was scored on recorded."""
    out = tmp_path_factory.mktemp("choose") / "m.npz"
    scored = []
    real = choose.hits

    def spy(net, data):
        scored.extend(data.ids)
        return real(net, data)

    buf = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(buf):
        mp.setattr(choose, "hits", spy)
        assert main(["train", "--data", str(need("poker_dvs_inverted")), "--choose", "on", "--epochs", "3",
                     "--out", str(out), "--json", "--jobs", "1"]) == 0  # (module-scoped: before one_job)
    return out, json.loads(buf.getvalue()), scored


def test_the_held_out_part_is_the_last_quarter_of_each_class_of_the_training_split():
    net = SpikingNetwork(arch="dense:4", input_shape=(128, 128, 2), classes=["club", "diamond", "spade"])
    train = load_split(need("poker_dvs_inverted"), "train", net, quiet=True)
    test_ids = {s.sample_id for s in open_dataset(need("poker_dvs_inverted")).split("test").samples}
    rest, held = choose.hold_out(train.labels)
    assert sorted(np.concatenate([rest, held]).tolist()) == list(range(len(train)))
    for c in np.unique(train.labels):
        pos = np.flatnonzero(train.labels == c)
        mine = held[train.labels[held] == c]
        assert len(mine) == max(1, round(len(pos) / 4))          # stratified: a quarter of every class
        assert mine.tolist() == pos[-len(mine):].tolist()        # contiguous: its last ones in the dataset's order
    held_ids = {train.ids[k] for k in held}
    assert held_ids <= set(train.ids) and not held_ids & test_ids
    # a class with one sample keeps it for training; two samples: one held out
    r, h = choose.hold_out([0, 0, 1, 2, 2, 2, 2, 2, 2, 2, 2])
    assert h.tolist() == [1, 9, 10] and r.tolist() == [0, 2, 3, 4, 5, 6, 7, 8]


def test_train_scores_candidates_on_training_samples_only_and_keeps_the_choice(poker_run, capsys):
    out, res, scored = poker_run
    train_ids = {s.sample_id for s in open_dataset(need("poker_dvs_inverted")).split("train").samples}
    test_ids = {s.sample_id for s in open_dataset(need("poker_dvs_inverted")).split("test").samples}
    assert scored and set(scored) <= train_ids and not set(scored) & test_ids
    chosen = res["chosen"]
    assert chosen["held_out"] == 4 and chosen["training_samples"] == 16 and len(set(scored)) == 4
    assert chosen["searched"] == "lr x1/x0.5/x0.25, augment on/off, 3 epochs fixed"  # crops: pips are too short
    assert res["epochs"] == 3 and res["train_samples"] == 16
    net = SpikingNetwork.load(out)
    assert net.chosen == chosen and net.lr == pytest.approx(res["lr"])
    assert main(["info", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chosen"] == chosen
    assert main(["info", str(out)]) == 0
    table = {line.split("  ")[0]: line.split()[-1] for line in capsys.readouterr().out.splitlines()}
    assert table["chosen winner"] == chosen["winner"] and table["chosen held_out"] == "4"


def test_a_clearly_worse_candidate_is_not_chosen():
    """lr x0.001 learns nothing in 10 epochs; listed first, it still loses to the default rates."""
    data = need("poker_dvs_inverted")
    net, s, _, _ = planned(data)
    train = load_split(data, "train", net, quiet=True)

    def make_net(c):
        return SpikingNetwork(**{**net.config(), "lr": s["lr"] * c.lr_scale, "lr_out": s["lr_out"] * c.lr_scale})

    c = choose.search(make_net, train, choose.Candidate(), epochs=10, multipliers=(0.001, 1.0), vary_augment=False)
    worse, default = c.results
    assert c.winner is default and default.accuracy > worse.accuracy
    assert 1 <= c.winner.best <= 10 and len(default.curve) == 10
    # 4 held-out samples can never show an epoch clearly better than the last: the winner trains all 10
    assert c.held == 4 and c.winner.epochs == 10 and worse.epochs == 10


def test_an_early_best_epoch_trains_only_when_clearly_better_than_the_last():
    yes, no = np.ones(100, bool), np.zeros(100, bool)
    assert choose.clearly_better(np.arange(100) < 5, no[:100]) and not choose.clearly_better(np.arange(100) < 4, no)
    a, b = np.arange(100) < 7, np.arange(100) == 99  # 7 against 1; 6 against 1 is not enough
    assert choose.clearly_better(a, b) and not choose.clearly_better(np.arange(100) < 6, b)
    assert not choose.clearly_better(yes, yes) and not choose.clearly_better(no, yes)
    assert not choose.clearly_better(np.arange(100) < 10, np.arange(100) < 10, sigmas=0.0)  # a tie never is


def test_options_the_user_gives_are_kept_not_searched(tmp_path, capsys):
    out = tmp_path / "m.npz"
    assert main(["train", "--data", str(need("poker_dvs_inverted")), "--choose", "on", "--lr", "0.001",
                 "--epochs", "2", "--no-augment", "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["lr"] == 0.001 and res["epochs"] == 2 and res["augment"] is None
    assert res["chosen"]["searched"] == "2 epochs fixed" and res["chosen"]["winner"] == "default"
    assert res["chosen"]["tried"].count(";") == 0  # one candidate: the user's settings


def test_auto_is_off_for_nmnist_and_on_for_small_or_other_sensors(capsys):
    _, _, _, picked = planned(need("nmnist_small"))
    assert picked["choose"] is False and "N-MNIST-like" in picked["why"]["choose"]
    _, _, _, picked = planned(need("nmnist_small"), "--choose", "on")
    assert picked["choose"] is True
    _, _, _, picked = planned(need("poker_dvs_inverted"))
    assert picked["choose"] is True and "5 training samples per class" in picked["why"]["choose"]
    _, _, _, picked = planned(need("poker_dvs_inverted"), "--choose", "off")
    assert picked["choose"] is False
    bio = open_dataset(need("biolab_objects"))
    on, why = choose.should_search("auto", len(bio.split("train")), len(bio.classes), bio.sensor_size)
    assert on and "128x128" in why and "12 training samples per class" in why
    # a big N-MNIST-sized set on another sensor is searched too; a small 34x34 one as well
    assert choose.should_search("auto", 1000, 10, (346, 260))[0]
    assert choose.should_search("auto", 300, 10, (34, 34))[0]
    assert not dd.is_small(1000, 10)


@pytest.mark.parametrize("chosen", [{"a": {"nested": 1}}, {"a": "x" * 5000}, {str(k): 1 for k in range(40)},
                                    {"a": [1, 2]}, {"": 1}])
def test_a_malformed_choice_record_refuses_the_checkpoint(tmp_path, chosen):
    good = tmp_path / "good.npz"
    SpikingNetwork(arch="dense:4", input_shape=(4, 4, 2), classes=2).save(good)
    _, arrays, config, counters = load_checkpoint(good)
    bad = save_checkpoint(tmp_path / "bad.npz", arrays, {**config, "chosen": chosen}, counters)
    with pytest.raises(CheckpointError, match="chosen"):
        SpikingNetwork.load(bad)


def test_one_sample_per_class_keeps_the_defaults():
    data = need("poker_dvs_inverted")
    net, _, _, _ = planned(data)
    train = load_split(data, "train", net, quiet=True).pick([0, 8, 15])
    assert len(set(train.labels.tolist())) == 3
    c = choose.search(lambda cand: pytest.fail("nothing may train"), train, choose.Candidate(), epochs=7)
    assert c.winner.candidate == choose.Candidate() and c.winner.epochs == 7 and c.held == 0 and not c.results
