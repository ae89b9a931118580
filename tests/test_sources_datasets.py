"""Replay and training data for every dataset layout: ReplaySource per sample with class names, and
training.load_split (labels as class indices, names alongside); train and eval on POKER-DVS class folders."""

import json

import numpy as np
import pytest
from conftest import need
from dataset_util import aedat4_class_folders, labelled_recording, nmnist_events, nmnist_picks, shifted

from streamsnn.cli import main
from streamsnn.errors import InputError
from streamsnn.io import open_dataset
from streamsnn.learn.training import load_split
from streamsnn.snn import SpikingNetwork
from streamsnn.sources.files import ReplaySource


async def collect(src):
    async with src:
        return [b async for b in src]


async def test_replay_poker_test_split_with_class_names():
    root = need("poker_dvs_inverted")
    batches = await collect(ReplaySource(root, split="test", speed=0))
    ds = open_dataset(root).split("test")
    assert [b.sample for b in batches] == [s.sample_id for s in ds]
    assert [b.meta["label_name"] for b in batches] == [s.label_name for s in ds]
    assert [ds.classes[b.label] for b in batches] == [b.meta["label_name"] for b in batches]
    assert {b.meta["label_name"] for b in batches} == {"club", "diamond", "spade"}
    assert len(batches[0]) == 956 and all(b.sensor_size == (128, 128) and b.meta["end_of_sample"] for b in batches)


async def test_replay_labelled_recording_in_chunks(tmp_path):
    rows = labelled_recording(tmp_path, "rec", nmnist_picks("test", 3))
    batches = await collect(ReplaySource(tmp_path, speed=0, chunk_us=100_000))
    assert [b.sample for b in batches if b.meta["end_of_sample"]] == ["rec#1", "rec#2", "rec#3"]
    for k, (cls, _, _, events) in enumerate(rows, 1):
        mine = [b for b in batches if b.sample == f"rec#{k}"]
        assert {b.meta["label_name"] for b in mine} == {cls} and {b.label for b in mine} == {int(cls)}
        np.testing.assert_array_equal(np.concatenate([b.events for b in mine]), events)


async def test_replay_aedat4_class_folders_and_tonic(tmp_path):
    written = aedat4_class_folders(tmp_path / "a", n_train=2, n_test=2)
    batches = await collect(ReplaySource(tmp_path / "a", split="test", speed=0))
    want = sorted((i, d) for i, (s, d) in written.items() if s == "test")
    assert sorted((b.sample, b.label) for b in batches) == want
    np.testing.assert_array_equal(batches[0].events, shifted(nmnist_events(batches[0].sample)))
    src = need("nmnist_small")
    for sample_id, digit in nmnist_picks("test", 3):
        d = tmp_path / "t" / "NMNIST" / "Test" / str(digit)
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{sample_id}.bin").symlink_to(src / f"{sample_id}.bs2")
    replay = ReplaySource(f"tonic:NMNIST:{tmp_path / 't'}", speed=0)
    batches = await collect(replay)
    assert replay.sensor_size == (34, 34)
    assert sorted((b.sample, b.label, b.meta["label_name"]) for b in batches) == \
        sorted((i, d, str(d)) for i, d in nmnist_picks("test", 3))


def net_for(n_classes):
    return SpikingNetwork((34 * 34 * 2, 16, n_classes), input_shape=(34, 34, 2), seed=0)


def test_load_split_on_class_folders_and_labelled_recordings(tmp_path):
    poker = load_split(need("poker_dvs_inverted"), "test", net_for(3), quiet=True)
    assert poker.classes == ["club", "diamond", "spade"] and len(poker) == 15
    assert poker.labels.tolist() == [0] * 6 + [1] * 4 + [2] * 5
    assert len(poker.idx[0]) == 956 and poker.idx[0].max() < 34 * 34 * 2
    rows = labelled_recording(tmp_path / "Train", "s", nmnist_picks("train", 4))
    data = load_split(tmp_path, "train", net_for(10), quiet=True)
    assert data.labels.tolist() == [int(c) for c, *_ in rows] and data.ids == [f"s#{k}" for k in range(1, 5)]
    assert [len(i) for i in data.idx] == [len(ev) for *_, ev in rows]


def test_load_split_refuses_unlabelled_recordings_in_one_line():
    with pytest.raises(InputError, match="unlabelled recordings; training and evaluation need labels") as info:
        load_split(need("recordings/dvs128_aedat2"), "all", net_for(10), quiet=True)
    assert "\n" not in str(info.value)


def _labelled_recordings(tmp_path):
    labelled_recording(tmp_path / "rec" / "Train", "s1", nmnist_picks("train", 6))
    labelled_recording(tmp_path / "rec" / "Test", "s2", nmnist_picks("test", 3))
    return str(tmp_path / "rec"), 3


def _tonic_nmnist(tmp_path):
    src = need("nmnist_small")
    for split, folder, n in (("train", "Train", 6), ("test", "Test", 4)):
        for sample_id, digit in nmnist_picks(split, n):
            d = tmp_path / "NMNIST" / folder / str(digit)
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{sample_id}.bin").symlink_to(src / f"{sample_id}.bs2")
    return f"tonic:NMNIST:{tmp_path}", 4


@pytest.mark.parametrize("make", [lambda tmp: (str(need("poker_dvs_inverted")), 15), _labelled_recordings,
                                  _tonic_nmnist], ids=["poker-class-folders", "labelled-recordings", "tonic"])
def test_train_and_eval_on_any_layout(tmp_path, capsys, make):
    data, n_test = make(tmp_path)
    model = tmp_path / "model.npz"
    assert main(["train", "--data", data, "--epochs", "1", "--hidden", "16", "--out", str(model), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["eval", "--data", data, "--model", str(model), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["samples"] == n_test and sum(map(sum, res["confusion"])) == n_test


def test_train_refuses_unlabelled_recordings_in_one_line(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "streamsnn", "train", "--data", str(need("recordings/dvs128_aedat2")),
                           "--out", str(tmp_path / "m.npz"), "--quiet"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "training and evaluation need labels" in proc.stderr


def test_serve_plays_a_dataset_of_any_layout_as_one_stream():
    from streamsnn.sources.serve import dataset_as_stream

    rec = dataset_as_stream(need("poker_dvs_inverted"), split="test", limit=3)
    ds = open_dataset(need("poker_dvs_inverted")).split("test")
    assert rec.sensor_size == (128, 128) and len(rec) == sum(len(s.load()) for s in ds.samples[:3])
    with pytest.raises(InputError, match="sensor differs"):  # 640x480, 320x240, 34x34: not one stream
        dataset_as_stream(need("recordings"))


def test_daemon_replay_path_may_name_a_tonic_dataset():
    from streamsnn.io.nmnist_fetch import find_nmnist

    assert find_nmnist("tonic:NMNIST:/data", download=False) == "tonic:NMNIST:/data"
