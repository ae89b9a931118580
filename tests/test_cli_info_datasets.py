"""`streamsnn info DIR` on every dataset layout (function and CLI), and listing 10,000 samples without decoding."""

import json
import subprocess
import sys

import pytest
from conftest import need
from dataset_util import aedat4_class_folders, labelled_recording, nmnist_picks

from streamsnn.cli import main
from streamsnn.commands.info import describe


def info_json(capsys, *argv):
    assert main(["info", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)  # exactly one JSON object on stdout


def test_poker_class_folders(capsys):
    d = info_json(capsys, need("poker_dvs_inverted"))
    assert (d["layout"], d["format"], d["width"], d["height"]) == ("class-folders", "AEDAT2 (DVS128)", 128, 128)
    assert d["samples"] == 31 and d["labelled"] is True
    assert list(d["classes"].items()) == [("club", 13), ("diamond", 8), ("spade", 10)]  # index order
    assert d["splits"] == {"train": 16, "test": 15}
    assert d["split_classes"]["test"] == {"club": 6, "diamond": 4, "spade": 5}
    assert d["events"] is None  # AEDAT 2.0 sizes are not exact counts; nothing is decoded


def test_count_decodes_every_sample(capsys):
    d = info_json(capsys, need("poker_dvs_inverted/Test"), "--count")
    assert d["unreadable"] == 0 and d["events"] == d["split_events"]["test"]
    assert d["events"] > 15 * 369  # the smallest recording has 369 events (data README)
    r = d["active_region"]
    assert 20 <= r["width"] <= 34 and 20 <= r["height"] <= 34 and r["x0"] >= 94 and r["coverage"] > 0.98


def test_nmnist_both_layouts(capsys, tmp_path):
    flat = info_json(capsys, need("nmnist_small"))
    assert flat["layout"] == "flat" and flat["events"] == 4518827
    assert list(flat["classes"]) == [str(d) for d in range(10)]
    src = need("nmnist_small")
    for split, n in (("train", 10), ("test", 5)):
        for sample_id, digit in nmnist_picks(split, n):
            d = tmp_path / split.capitalize() / str(digit)
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{sample_id}.bin").symlink_to(src / f"{sample_id}.bs2")
    folders = info_json(capsys, tmp_path)
    assert folders["layout"] == "class-folders" and folders["format"] == "N-MNIST"
    assert folders["splits"] == {"train": 10, "test": 5}
    assert folders["events"] == sum((src / f"{i}.bs2").stat().st_size // 5
                                    for s in ("train", "test") for i, _ in nmnist_picks(s, 10 if s == "train" else 5))


def test_aedat4_class_folders_sensor_from_the_header(tmp_path):
    aedat4_class_folders(tmp_path, n_train=3, n_test=2)
    d = describe(tmp_path)
    assert (d["format"], d["width"], d["height"]) == ("AEDAT4", 96, 72)
    assert d["samples"] == 5 and d["events"] is None


def test_labelled_recording(tmp_path):
    rows = labelled_recording(tmp_path / "Train", "s1", nmnist_picks("train", 4))
    labelled_recording(tmp_path / "Test", "s2", nmnist_picks("test", 2))
    d = describe(tmp_path, count=True)
    assert d["layout"] == "labelled-recordings" and d["splits"] == {"train": 4, "test": 2}
    assert d["split_events"]["train"] == sum(len(ev) for *_, ev in rows)


def test_unlabelled_recordings_readable_listing():
    proc = subprocess.run([sys.executable, "-m", "streamsnn", "info", str(need("recordings/dvs128_aedat2"))],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = dict(line.split(None, 1) for line in proc.stdout.strip().splitlines())
    assert rows["layout"].strip() == "recordings" and rows["samples"].strip() == "11"
    assert rows["classes"].strip() == "none (unlabelled)" and rows["sensor"].strip() == "128 x 128"
    assert rows["events"].startswith("unknown")


def test_tonic_spec(capsys, tmp_path):
    src = need("nmnist_small")
    for sample_id, digit in nmnist_picks("test", 6):
        d = tmp_path / "NMNIST" / "Test" / str(digit)
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{sample_id}.bin").symlink_to(src / f"{sample_id}.bs2")
    d = info_json(capsys, f"tonic:NMNIST:{tmp_path}")
    assert d["layout"] == "tonic" and d["format"] == "tonic NMNIST" and d["splits"] == {"test": 6}


def test_not_a_dataset_is_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    proc = subprocess.run([sys.executable, "-m", "streamsnn", "info", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "not a dataset folder" in proc.stderr


@pytest.fixture(scope="module")
def ten_thousand(tmp_path_factory):
    """10,000 samples in class folders whose files would not decode (so listing them proves nothing is
    decoded), and 10,000 tiny N-MNIST files in a flat folder with a label list."""
    root = tmp_path_factory.mktemp("ten_thousand")
    junk = b"#!AER-DAT4.0\r\n" + b"\x00" * 16  # an AEDAT4 magic and no valid header
    for k in range(10_000):
        d = root / "classes" / ("Train" if k % 5 else "Test") / f"class{k % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{k}.aedat4").write_bytes(junk)
    flat = root / "flat"
    flat.mkdir()
    event = bytes([1, 2, 0x80, 0, 10])  # one N-MNIST event
    labels = ["#sample #class"]
    for k in range(10_000):
        (flat / f"{k}.bs2").write_bytes(event * (1 + k % 3))
        labels.append(f"{k}\t{k % 10}")
    (flat / "train10k.txt").write_text("\n".join(labels) + "\n")
    return root


def test_ten_thousand_samples_list_without_decoding(ten_thousand):
    d = describe(ten_thousand / "classes")
    assert d["samples"] == 10_000 and d["splits"] == {"train": 8_000, "test": 2_000}
    assert list(d["classes"]) == [f"class{i}" for i in range(7)] and sum(d["classes"].values()) == 10_000
    assert d["width"] is None  # the junk header gives no sensor size, and nothing was decoded to find one
    f = describe(ten_thousand / "flat")
    assert f["samples"] == 10_000 and f["events"] == sum(1 + k % 3 for k in range(10_000))
    assert f["classes"] == {str(d): 1_000 for d in range(10)}
