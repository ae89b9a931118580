"""`train`, `eval`, `eval --stream` and a replay on POKER-DVS: classes by name, the input map picked from the data."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import ROOT, need

from streamsnn.cli import main
from streamsnn.snn import InputMap, SpikingNetwork

CLASSES = ["club", "diamond", "spade"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained by `streamsnn train --data poker_dvs_inverted --epochs 20 --json`, and that JSON."""
    out = tmp_path_factory.mktemp("poker") / "poker.npz"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["train", "--data", str(need("poker_dvs_inverted")), "--epochs", "20", "--out", str(out),
                     "--json"]) == 0
    return out, json.loads(buf.getvalue())


def test_train_picks_classes_region_and_grid_and_keeps_the_default_network(trained):
    from streamsnn.learn.datadefaults import AUGMENT
    from streamsnn.snn import DEFAULT_ARCH

    path, res = trained
    assert res["classes"] == CLASSES and res["why"]["classes"] == "3, from the class folders"
    m = InputMap.from_dict(res["input"])
    assert m.sensor == (128, 128) and m.roi[2] <= 48 and m.grid == (m.roi[2], m.roi[3], 2)
    # few samples (5.3 per class) are said, and get the N-MNIST network and augmentation (measured to suit them)
    assert res["small_data"] is True and res["arch"] == DEFAULT_ARCH and res["why"]["arch"] == "default"
    assert res["augment"] == AUGMENT
    net = SpikingNetwork.load(path)  # checkpoint round trip of classes and input map
    assert net.classes == CLASSES and net.input_map == m and net.arch == res["arch"]
    assert res["test_samples"] == 15 and res["train_samples"] == 16


def test_train_says_what_it_picked(tmp_path, capsys):
    assert main(["train", "--data", str(need("poker_dvs_inverted")), "--epochs", "1", "--grid", "16x17",
                 "--roi", "96,94,32,34", "--polarities", "1", "--out", str(tmp_path / "m.npz")]) == 0
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("classes:"))
    assert line == ("classes: club, diamond, spade (3, from the class folders); sensor 128x128 (from the file "
                    "headers); roi x 96..127 y 94..127 (--roi); grid 16x17x1 (--grid, --polarities 1)")
    assert "16 training samples (5.3 per class, fewer than 50: the defaults were checked on such data" in err
    assert SpikingNetwork.load(tmp_path / "m.npz").input_map == InputMap((128, 128), (96, 94, 32, 34), (16, 17, 1))
    assert main(["train", "--data", str(need("poker_dvs_inverted")), "--grid", "16", "--out",
                 str(tmp_path / "m.npz")]) == 2
    assert "--grid '16'" in capsys.readouterr().err


def eval_json(capsys, *args):
    capsys.readouterr()
    assert main(["eval", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_reports_by_class_name(trained, capsys):
    path, res = trained
    r = eval_json(capsys, "--data", need("poker_dvs_inverted"), "--model", path)
    assert r["classes"] == CLASSES and list(r["per_class"]) == CLASSES
    conf = np.array(r["confusion"])
    assert conf.shape == (3, 3) and conf.sum() == 15 and conf.sum(axis=1).tolist() == [6, 4, 5]
    assert r["accuracy"] == pytest.approx(res["test_accuracy"]) and r["unknown_classes"] == {}
    assert r["accuracy"] >= 0.6  # chance is 1/3
    # every test event is either fed or dropped outside the region (18,617 events: `info --count`)
    assert r["events"] + r["events_outside_region"] == 18617 and r["events_outside_region"] < 100
    assert main(["eval", "--data", str(need("poker_dvs_inverted")), "--model", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "club:" in out and "diamond" in out.splitlines()[-2]


@pytest.fixture
def renamed(tmp_path):
    """POKER-DVS test split with `diamond` renamed `ace`: dataset classes ace, club, spade (other indices)."""
    src = need("poker_dvs_inverted") / "Test"
    for cls in ("club", "diamond", "spade"):
        d = tmp_path / "Test" / ("ace" if cls == "diamond" else cls)
        d.mkdir(parents=True)
        for f in (src / cls).iterdir():
            os.symlink(f, d / f.name)
    return tmp_path


def test_eval_maps_by_name_and_reports_a_class_the_model_lacks(trained, renamed, capsys):
    path, _ = trained
    ref = eval_json(capsys, "--data", need("poker_dvs_inverted"), "--model", path)
    r = eval_json(capsys, "--data", renamed, "--model", path)
    assert r["unknown_classes"] == {"ace": 4} and r["samples"] == 11
    # club and spade are scored as the model's club and spade, though their dataset indices moved
    assert r["per_class"]["club"] == ref["per_class"]["club"] and r["per_class"]["spade"] == ref["per_class"]["spade"]
    assert r["per_class"]["diamond"] is None
    assert main(["eval", "--data", str(renamed), "--model", str(path), "--quiet"]) == 0
    assert "not scored: 4 sample(s) of classes the model does not have: ace (4)" in capsys.readouterr().out
    s = eval_json(capsys, "--data", renamed, "--model", path, "--stream", "--window-us", "5000", "--hop-us", "2500",
                  "--min-events", "20")
    assert s["unknown_classes"] == {"ace": 4} and s["predicted_classes"] == CLASSES


def test_replay_through_the_daemon_decides_as_eval(trained, tmp_path, capsys):
    """The same samples through `streamsnn run` (replay, one decision per sample) and `eval`: same confusion."""
    path, _ = trained
    ref = eval_json(capsys, "--data", need("poker_dvs_inverted"), "--model", path)
    model = tmp_path / "copy.npz"
    model.write_bytes(path.read_bytes())
    jsonl = tmp_path / "d.jsonl"
    sets = {"source.path": need("poker_dvs_inverted"), "source.split": "test", "source.shuffle": "false",
            "model.checkpoint": model, "model.learn_from_labels": "false", "model.learn_from_feedback": "false",
            "mqtt.enabled": "false", "console.enabled": "false", "jsonl.path": jsonl}
    argv = ["run", str(ROOT / "pipelines" / "nmnist-replay.toml")]
    for k, v in sets.items():
        argv += ["--set", f"{k}={v}"]
    assert main(argv) == 0
    rows = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert len(rows) == 15 and {r["label_name"] for r in rows} <= set(CLASSES)
    conf = np.zeros((3, 3), int)
    for r in rows:
        conf[CLASSES.index(r["true_label_name"]), CLASSES.index(r["label_name"])] += 1
    assert conf.tolist() == ref["confusion"]


def flat_poker(root):
    """POKER-DVS as a flat folder with train.txt / test.txt naming the classes (sensor 128x128)."""
    src = need("poker_dvs_inverted")
    for f in src.rglob("*.aedat"):
        (root / f.name).symlink_to(f)
    for split in ("Train", "Test"):
        files = sorted((src / split).rglob("*.aedat"))
        (root / f"{split.lower()}.txt").write_text("".join(f"{f.stem} {f.parent.name}\n" for f in files))
    return 16, 15


def labelled_nmnist(root):
    """Two AEDAT4 recordings of real N-MNIST samples back to back, cut by their _labels.csv files."""
    from dataset_util import labelled_recording, nmnist_picks

    labelled_recording(root / "Train", "session1", nmnist_picks("train", 20))
    labelled_recording(root / "Test", "session2", nmnist_picks("test", 10))
    return 20, 10


@pytest.mark.parametrize("layout", [flat_poker, labelled_nmnist])
def test_train_and_eval_on_other_layouts(layout, tmp_path, capsys):
    data, model = tmp_path / "data", tmp_path / "m.npz"
    data.mkdir()
    n_train, n_test = layout(data)
    capsys.readouterr()
    assert main(["train", "--data", str(data), "--epochs", "2", "--out", str(model), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert (res["train_samples"], res["test_samples"]) == (n_train, n_test)
    from streamsnn.io.dataset import open_dataset

    ds = open_dataset(data)
    assert res["classes"] == ds.classes and res["small_data"] is True
    r = eval_json(capsys, "--data", data, "--model", model)
    assert r["samples"] == n_test and r["classes"] == ds.classes and list(r["per_class"]) == ds.classes


def test_replay_labels_are_matched_by_name_unless_the_network_has_no_names():
    """The daemon learns and scores a dataset window by its class name (the model's order may differ)."""
    from streamsnn.io.dataset import open_dataset
    from streamsnn.pipeline.decide import by_name, true_output
    from streamsnn.pipeline.segment import Window

    spade = open_dataset(need("poker_dvs_inverted")).split("test").samples[-1].load()
    assert spade.meta["label_name"] == "spade" and spade.label == 2
    w = Window(spade.with_meta(label=0), 0, 1, label=0)  # a dataset where spade is class 0 (e.g. ace-less order)
    named = SpikingNetwork(arch="dense:4", input_shape=(34, 34, 2), classes=["club", "diamond", "spade"])
    assert true_output(named, w) == 2
    other = SpikingNetwork(arch="dense:4", input_shape=(34, 34, 2), classes=["club", "diamond", "heart"])
    assert true_output(other, w) is None  # a class the model lacks: neither learned nor scored
    numbered = SpikingNetwork(arch="dense:4", input_shape=(34, 34, 2), classes=3)
    assert true_output(numbered, w) == 0  # no names to match: the label is the output index
    assert by_name([str(i) for i in range(10)], ["3", "7"]) and not by_name(["0", "1", "2"], ["club"])
