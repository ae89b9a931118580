"""`streamsnn info` on real files and folders: readable listing and exactly one JSON object."""

import json
import subprocess
import sys

from conftest import need

from streamsnn.cli import main


def info_json(capsys, path):
    assert main(["info", str(path), "--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)  # fails if stdout holds anything besides one JSON object


def test_file_json(capsys):
    d = info_json(capsys, need("nmnist_small/1.bs2"))
    assert d["format"] == "N-MNIST"
    assert (d["width"], d["height"], d["events"], d["label"]) == (34, 34, 4681, 5)
    assert d["polarity"]["on"] + d["polarity"]["off"] == 4681
    assert d["duration_us"] == d["t_end_us"] - d["t_start_us"] > 0


def test_recording_json(capsys):
    d = info_json(capsys, need("recordings/tonic_sample.aedat4"))
    assert (d["format"], d["width"], d["height"], d["events"]) == ("AEDAT4", 320, 240, 111954)
    assert d["label"] is None


def test_folder_json(capsys):
    d = info_json(capsys, need("nmnist_small"))
    assert d["format"] == "N-MNIST" and d["samples"] == 1100
    assert d["splits"] == {"train": 1000, "test": 100}
    assert sum(d["classes"].values()) == 1100 and sorted(d["classes"]) == [str(k) for k in range(10)]
    assert d["split_classes"]["test"]["8"] == 2
    assert d["events"] == 4518827  # total from the data README, counted from file sizes


def test_readable_listing_through_the_console_script():
    proc = subprocess.run([sys.executable, "-m", "streamsnn", "info", str(need("nmnist_small/1.bs2"))],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = dict(line.split(None, 1) for line in proc.stdout.strip().splitlines())
    assert rows["events"].strip() == "4,681"
    assert rows["label"].strip() == "5"
    assert rows["sensor"].strip() == "34 x 34"
    # aligned: every value starts in the same column
    starts = {len(line) - len(line.split(None, 1)[1]) for line in proc.stdout.strip().splitlines()}
    assert len(starts) == 1


def test_readable_folder_listing(capsys):
    assert main(["info", str(need("nmnist_small"))]) == 0
    out = capsys.readouterr().out
    assert "train:1,000" in out and "test:100" in out and "1,100" in out


def test_info_on_a_model_of_any_name_a_pipe_and_class_names_with_spaces(tmp_path, capsys):
    """A model saved without .npz was refused as an unsupported file type; class names with spaces read as more
    classes; a pipe named like a recording was "an empty sample"."""
    import os

    from streamsnn.snn import SpikingNetwork

    SpikingNetwork((2312, 8, 3), classes=["zero digit", "one", "x y"], seed=1).save(tmp_path / "model")
    assert main(["info", str(tmp_path / "model")]) == 0
    assert "zero digit, one, x y" in capsys.readouterr().out
    os.mkfifo(tmp_path / "cam.aedat4")
    assert main(["info", str(tmp_path / "cam.aedat4")]) == 2
    err = capsys.readouterr().err.strip()
    assert "cam.aedat4: it is not a regular file" in err and "\n" not in err, err


def test_info_on_a_file_in_a_class_folder_names_its_class(capsys):
    """It said "label unknown" for Train|Test/<class>/ files, while an N-MNIST file got its label."""
    path = need("poker_dvs_inverted/Test/club/xclub16i.aedat")
    assert main(["info", str(path)]) == 0
    assert "label       club (the class folder it is in)" in capsys.readouterr().out
    assert main(["info", str(path), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["class"] == "club" and got["label"] is None
