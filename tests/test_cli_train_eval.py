"""`streamsnn train` and `streamsnn eval` on the real N-MNIST samples, in both folder layouts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from streamsnn.cli import main
from streamsnn.snn import SpikingNetwork
from tests.conftest import need


@pytest.fixture(scope="module")
def tonic_layout(tmp_path_factory):
    """nmnist_small re-laid out as Train/<digit>/<id>.bin and Test/<digit>/<id>.bin (symlinks)."""
    src = need("nmnist_small")
    root = tmp_path_factory.mktemp("tonic") / "NMNIST"
    for split, lst in (("Train", "train1K.txt"), ("Test", "test100.txt")):
        for line in (src / lst).read_text().splitlines():
            if line.startswith("#") or not line.strip():
                continue
            sid, label = line.split()
            d = root / split / label
            d.mkdir(parents=True, exist_ok=True)
            os.symlink(src / f"{sid}.bs2", d / f"{sid}.bin")
    return root


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "m.npz"
    rc = main(["train", "--data", str(need("nmnist_small")), "--epochs", "2", "--hidden", "64",
               "--limit", "300", "--out", str(out), "--quiet"])
    assert rc == 0
    return out


def test_train_writes_a_model_with_counters(model):
    net = SpikingNetwork.load(model)
    assert net.sizes == (2312, 64, 10)
    assert net.epochs == 2 and net.updates == 600 and net.progressive_total == 600
    assert 0.1 < net.progressive_accuracy < 1.0


def run_eval_json(capsys, data, model):
    capsys.readouterr()
    assert main(["eval", "--data", str(data), "--model", str(model), "--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)  # exactly one JSON object, nothing else on stdout


def test_eval_json_on_both_layouts(capsys, model, tonic_layout):
    flat = need("nmnist_small")
    r = run_eval_json(capsys, flat, model)
    assert {"accuracy", "per_class", "confusion", "samples", "events", "events_per_s"} <= set(r)
    assert r["samples"] == 100
    # events of the 100 test samples, from the file sizes (5 bytes per event)
    assert r["events"] == sum((flat / f"{60000 + k}.bs2").stat().st_size // 5 for k in range(1, 101))
    conf = np.array(r["confusion"])
    assert conf.shape == (10, 10) and conf.sum() == 100
    assert conf[8].sum() == 2  # digit 8 has two test samples
    assert r["accuracy"] == pytest.approx(np.trace(conf) / 100)
    assert r["accuracy"] >= 0.35  # chance is 0.1; 300 samples x 2 epochs with 64 units
    assert r["events_per_s"] > 0
    assert r["per_class"]["8"] in (0.0, 0.5, 1.0)
    # the same samples in the tonic layout give the same result
    r2 = run_eval_json(capsys, tonic_layout, model)
    assert r2["confusion"] == r["confusion"] and r2["events"] == r["events"]


def test_eval_text_report(capsys, model):
    assert main(["eval", "--data", str(need("nmnist_small")), "--model", str(model), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "confusion" in out and "per class" in out


def test_train_on_tonic_layout_prints_epochs(capsys, tonic_layout, tmp_path):
    out = tmp_path / "t.npz"
    assert main(["train", "--data", str(tonic_layout), "--epochs", "1", "--hidden", "16", "--limit", "50",
                 "--no-augment", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "epoch 1/1: train" in captured.err and "test" in captured.err
    assert SpikingNetwork.load(out).sizes == (2312, 16, 10)


@pytest.mark.parametrize("argv,needle", [
    (["eval", "--data", "{tmp}/absent", "--model", "{model}"], "absent"),
    (["eval", "--data", "{data}", "--model", "{tmp}/absent.npz"], "absent.npz"),
    (["eval", "--data", "{data}", "--model", "{tmp}/junk.npz"], "junk.npz"),
    (["train", "--data", "{tmp}/absent", "--out", "{tmp}/x.npz"], "absent"),
    (["train", "--data", "{data}", "--out", "{tmp}/no/such/x.npz"], "no/such"),
    (["train", "--data", "{data}", "--out", "{tmp}"], "it is a folder"),  # before training, not after it
    # two sensors: refused in either order (it trained N-MNIST first, and refused the other way round)
    (["train", "--data", "{data}", "--data", "{poker}", "--out", "{tmp}/x.npz"], "a 128x128 sensor, but"),
    (["train", "--data", "{poker}", "--data", "{data}", "--out", "{tmp}/x.npz"], "a 34x34 sensor, but"),
])
def test_user_errors_exit_2_with_one_line(capsys, tmp_path, model, argv, needle):
    (tmp_path / "junk.npz").write_bytes(b"this is not a model")
    fill = {"tmp": tmp_path, "model": model, "data": need("nmnist_small"), "poker": need("poker_dvs_inverted")}
    rc = main([a.format(**fill) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("streamsnn: error:") and needle in lines[0]
    assert not (tmp_path / "x.npz").exists()


@pytest.mark.parametrize("roi,extra,says", [
    ("0,33,1,1", [], "none of the 20 training samples has an event inside the input region"),
    ("16,16,1,1", ["--epochs", "1", "--choose", "off"], "epoch 1: no training item reached the network"),
])
def test_a_region_nothing_reaches_the_network_through_saves_no_model(capsys, tmp_path, roi, extra, says):
    """A model of 0 updates was saved, exit 0; now the run ends with one line after train's first lines."""
    rc = main(["train", "--data", str(need("nmnist_small")), "--roi", roi, "--limit", "20", *extra,
               "--out", str(tmp_path / "x.npz")])
    err = capsys.readouterr().err.strip().splitlines()
    last = err[-1]
    assert rc == 2 and last.startswith("streamsnn: error:") and says in last, last
    assert not (tmp_path / "x.npz").exists()
    # the first lines say the settings are the whole data's and the run trains on --limit of it (it said 1000 only)
    assert any("1000 training samples (100 per class, settings for all of them; --limit 20: trains on that many)"
               in line for line in err), err[:3]


@pytest.mark.parametrize("cmd", ["train", "eval"])
def test_a_limit_below_one_is_refused_before_any_work(capsys, tmp_path, model, cmd):
    """--limit 0 used to train on nothing, end in a traceback and leave a model with 0 updates (train), or
    report accuracy 0.0 on 0 samples with exit status 0 (eval)."""
    other = ["--out", str(tmp_path / "x.npz")] if cmd == "train" else ["--model", str(model)]
    for bad in ("0", "-3"):
        with pytest.raises(SystemExit) as exit_:
            main([cmd, "--data", str(need("nmnist_small")), *other, "--limit", bad])
        assert exit_.value.code == 2
        assert f"argument --limit: give a whole number of 1 or more, not '{bad}'" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


CONV = "conv:4:5:2:2,dense:32"


def train_json(capsys, *argv):
    capsys.readouterr()
    assert main(["train", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)  # exactly one JSON object


def test_train_on_several_folders_concatenates_their_train_splits(capsys, tmp_path, synth_folder):
    nmnist = need("nmnist_small")
    r = train_json(capsys, "--data", nmnist, "--data", synth_folder, "--arch", CONV, "--limit", "40",
                   "--epochs", "2", "--out", tmp_path / "m.npz")
    assert r["train_samples"] == 40 + 30 and r["test_samples"] == 40 and r["test_from"] == str(nmnist)
    assert r["arch"] == CONV and len(r["epochs_run"]) == 2 and r["updates"] == 140
    assert 0 <= r["test_accuracy"] <= 1 and r["test_accuracy"] == r["epochs_run"][-1]["test_accuracy"]
    # the first folder without a test split is skipped for testing
    r = train_json(capsys, "--data", synth_folder, "--data", nmnist, "--arch", CONV, "--limit", "20",
                   "--epochs", "1", "--out", tmp_path / "m2.npz")
    assert r["train_samples"] == 20 + 20 and r["test_samples"] == 20 and r["test_from"] == str(nmnist)
    # a folder alone without a test split trains, and says there was no test
    r = train_json(capsys, "--data", synth_folder, "--arch", CONV, "--epochs", "1", "--out", tmp_path / "m3.npz")
    assert r["train_samples"] == 30 and r["test_samples"] == 0 and r["test_accuracy"] is None


def test_train_defaults_to_the_deep_convolutional_network(capsys, tmp_path):
    from streamsnn.learn.training import STREAM_LR_SCALE
    from streamsnn.snn import DEFAULT_ARCH
    from streamsnn.snn.arch import CONV_SETTINGS

    r = train_json(capsys, "--data", need("nmnist_small"), "--limit", "20", "--epochs", "1",
                   "--out", tmp_path / "d.npz")
    # the stream transforms are on by default, and with them the convolutional rates are scaled
    assert r["arch"] == DEFAULT_ARCH and r["stream_crops"] is True
    assert r["lr"] == pytest.approx(CONV_SETTINGS["lr"] * STREAM_LR_SCALE)
    assert r["lr_out"] == pytest.approx(CONV_SETTINGS["lr_out"] * STREAM_LR_SCALE)
    net = SpikingNetwork.load(tmp_path / "d.npz")
    assert net.arch == DEFAULT_ARCH and net.lr == pytest.approx(CONV_SETTINGS["lr"] * STREAM_LR_SCALE)
    r = train_json(capsys, "--data", need("nmnist_small"), "--limit", "20", "--epochs", "1", "--no-stream-crops",
                   "--out", tmp_path / "w.npz")
    assert r["stream_crops"] is False and r["lr"] == CONV_SETTINGS["lr"] and r["lr_out"] == CONV_SETTINGS["lr_out"]


def test_info_and_eval_describe_a_convolutional_model(capsys, tmp_path):
    out = tmp_path / "c.npz"
    train_json(capsys, "--data", need("nmnist_small"), "--arch", CONV, "--limit", "30", "--epochs", "1",
               "--out", out)
    assert main(["info", str(out), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["kind"] == "model" and [x["kind"] for x in d["layers"]] == ["conv", "dense", "output"]
    assert d["layers"][0] | {"in": [2, 34, 34], "out": [4, 17, 17]} == d["layers"][0]
    assert (d["layers"][0]["kernel"], d["layers"][0]["stride"], d["layers"][0]["padding"]) == (5, 2, 2)
    assert d["layers"][1]["units"] == 32 and d["layers"][1]["in"] == [4, 17, 17]
    assert d["classes"] == [str(k) for k in range(10)]
    assert d["parameters"] == 2 * 25 * 4 + 4 * 17 * 17 * 32 + 32 * 10 + 10
    assert d["updates"] == 30 and d["epochs"] == 1 and d["samples_seen"] == 30 + 30
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "conv 4 ch, 5x5 kernel, stride 2, pad 2: 2x34x34 -> 4x17x17" in text and "classes" in text
    r = run_eval_json(capsys, need("nmnist_small"), out)
    assert r["arch"] == CONV and r["samples"] == 100 and r["classes"] == [str(k) for k in range(10)]


def test_train_refuses_bad_architectures_in_one_line(capsys, tmp_path):
    for argv, needle in ((["--arch", "conv:4:5:2:2,pool:2"], "pool:2"), (["--arch", "dense:8", "--hidden", "8"],
                                                                        "not both"),
                         (["--arch", "conv:4:3", "--learning", "spikes"], "dense layers only"),
                         # a layer left out between commas (or after the last) was dropped without a word
                         (["--arch", "dense:4,,dense:4"], "has an empty layer between its commas"),
                         (["--arch", "dense:4,"], "has an empty layer between its commas")):
        rc = main(["train", "--data", str(need("nmnist_small")), *argv, "--out", str(tmp_path / "x.npz")])
        lines = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and needle in lines[0], lines


def test_eval_takes_one_data_folder_and_one_model(capsys, model):
    """A second --data or --model was taken silently in place of the first."""
    data = str(need("nmnist_small"))
    for argv in (["--data", data, "--data", data, "--model", str(model)],
                 ["--data", data, "--model", str(model), "--model", str(model)]):
        with pytest.raises(SystemExit) as exit_:
            main(["eval", *argv])
        assert exit_.value.code == 2 and "given twice; give it once" in capsys.readouterr().err


def test_a_model_path_that_is_a_folder_or_a_device_says_so(capsys, tmp_path):
    for path, says in ((tmp_path, "is a folder"), (Path("/dev/null"), "is not a regular file")):  # not "not found"
        assert main(["eval", "--data", str(need("nmnist_small")), "--model", str(path)]) == 2
        assert f"model file {path} {says}; give a .npz" in capsys.readouterr().err


def test_eval_with_no_sample_of_the_models_classes_is_refused_not_scored_zero(capsys, tmp_path):
    """A card model evaluated on digits scored nothing and printed "accuracy 0.0000 on 0 samples", exit 0."""
    cards = tmp_path / "cards.npz"
    SpikingNetwork(arch="dense:8", input_shape=(34, 34, 2), classes=["club", "diamond", "heart"]).save(cards)
    for extra in ([], ["--json"], ["--stream"]):
        rc = main(["eval", "--data", str(need("nmnist_small")), "--model", str(cards), "--limit", "5", *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and "is of a class the model has (the model's: club, diamond, heart" in err[-1], err


def test_a_numbered_model_given_named_data_says_labels_are_taken_as_indices(caplog, tmp_path):
    """A digit model evaluated on the cards scored club as output 0 without a word (docs: matched by name)."""
    digits = tmp_path / "digits.npz"
    SpikingNetwork(arch="dense:8", input_shape=(34, 34, 2), classes=10).save(digits)
    assert main(["eval", "--data", str(need("poker_dvs_inverted")), "--model", str(digits), "--limit", "3"]) == 0
    said = [r.getMessage() for r in caplog.records if "numbered" in r.getMessage()]
    assert len(said) == 1 and "numbered 0..9 and the data's names (club, diamond, spade) are not among them" in said[0]


def test_limit_runs_the_settings_the_whole_data_gets(capsys, tmp_path):
    """With --limit 50 the time probe saw 12 held-out samples and gave N-MNIST `membrane` with input delays; the
    help promises "quick runs of the same settings"."""
    r = train_json(capsys, "--data", need("nmnist_small"), "--limit", "50", "--epochs", "1", "--arch", "dense:16",
                   "--out", tmp_path / "m.npz")
    assert r["train_samples"] == 50 and r["learning"] == "counts"
    assert r["time_probe"]["held_out"] >= 240  # a quarter of each class of the 1,000 training samples


def test_both_evaluations_name_the_models_architecture(tmp_path, capsys):
    """`eval --stream` printed the layer sizes as a tuple, (2312, 8, 10), and its --json had no arch."""
    path = tmp_path / "m.npz"
    SpikingNetwork(arch="dense:8", input_shape=(34, 34, 2), classes=10).save(path)
    for extra in ([], ["--stream"]):
        argv = ["eval", "--data", str(need("nmnist_small")), "--model", str(path), "--limit", "3", "--quiet", *extra]
        assert main(argv) == 0
        first = capsys.readouterr().out.splitlines()[0]
        assert first == f"model {path}: dense:8 -> 10 classes (18,586 parameters), 0 updates, 0 epochs", first
        assert main([*argv, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["arch"] == "dense:8"


def test_a_path_the_system_refuses_is_one_line_not_a_traceback(tmp_path, capsys):
    """A file name over 255 bytes gave a full OSError traceback (exit 1) in info, classes, eval and train."""
    long = tmp_path / ("a" * 300 + ".npz")
    for argv in (["info", str(long)], ["classes", str(long)], ["eval", "--data", str(need("nmnist_small")),
                                                                   "--model", str(long)],
                 ["train", "--data", str(need("nmnist_small")), "--out", str(tmp_path / ("b" * 300) / "m.npz"),
                  "--limit", "3"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("streamsnn: error: ") and "name too long" in err.lower() and "\n" not in err, err
