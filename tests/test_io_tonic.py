"""tonic:<Class>:<folder> through tonic's own dataset classes, on tmp copies of tonic's on-disk layouts
built from the real shared files (NMNIST from nmnist_small, POKERDVS from poker_dvs_inverted); never downloads."""

import numpy as np
import pytest
from conftest import need
from dataset_util import poker_files, tonic_nmnist_links

from streamsnn.errors import InputError
from streamsnn.io import open_dataset, read_events

#: POKER-DVS pips sit at x 96..127, y 94..127 of the DVS128 here; tonic's POKERDVS is a 35x35 crop.
CROP = 93
CODES = {"club": "cl", "diamond": "di", "spade": "sp"}


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Any attempt by tonic to fetch something fails the test."""
    import tonic.download_utils

    def refuse(*args, **kwargs):
        raise AssertionError("tonic tried to download")

    for name in ("download_url", "download_and_extract_archive"):
        monkeypatch.setattr(tonic.download_utils, name, refuse)
    import tonic.dataset

    monkeypatch.setattr(tonic.dataset, "download_and_extract_archive", refuse)


@pytest.fixture(scope="module")
def tonic_root(tmp_path_factory):
    """save_to folder with NMNIST/{Train,Test}/<digit>/<id>.bin and POKERDVS/pips_{train,test}/<cl|di|sp>/*.npy."""
    root = tmp_path_factory.mktemp("tonic")
    tonic_nmnist_links(root, 12)
    for f in poker_files():
        e = read_events(f).events
        rows = np.stack([e["t"], e["x"].astype(np.int64) - CROP, e["y"].astype(np.int64) - CROP, e["p"]], axis=1)
        folder = "pips_train" if f.parent.parent.name == "Train" else "pips_test"
        d = root / "POKERDVS" / folder / CODES[f.parent.name]
        d.mkdir(parents=True, exist_ok=True)
        np.save(d / f"{f.stem}.npy", rows)  # tonic's POKERDVS keeps (t, x, y, p) rows in .npy files
    return root


def test_nmnist_through_tonic_matches_the_folder_layout(tonic_root):
    via_tonic = open_dataset(f"tonic:NMNIST:{tonic_root}")
    folders = open_dataset(tonic_root / "NMNIST")
    assert via_tonic.layout == "tonic" and via_tonic.format == "tonic NMNIST" and via_tonic.sensor_size == (34, 34)
    assert via_tonic.classes == [str(d) for d in range(10)]  # tonic's "0 - zero" ... named as the digit folders
    assert via_tonic.split_counts() == {"train": 12, "test": 12}
    key = {(s.split, s.sample_id): s.label for s in folders}
    assert {(s.split, s.sample_id): s.label for s in via_tonic} == key
    s = via_tonic.split("test").samples[0]
    b = s.load()
    ref = read_events(need("nmnist_small") / f"{s.sample_id}.bs2")
    np.testing.assert_array_equal(b.events, ref.events)
    assert b.label == ref.label and b.meta["label_name"] == str(ref.label) and b.sample == s.sample_id


def test_poker_dvs_through_tonic(tonic_root):
    ds = open_dataset(f"tonic:POKERDVS:{tonic_root / 'POKERDVS'}")  # the class folder itself works too
    assert ds.classes == ["club", "heart", "diamond", "spade"]  # tonic's order, full names
    assert ds.sensor_size == (35, 35)
    assert ds.split_counts() == {"train": 16, "test": 15}
    assert ds.split("test").class_counts() == {"club": 6, "heart": 0, "diamond": 4, "spade": 5}
    firsts = {f.stem: f for f in poker_files()}
    s = ds.split("test").samples[0]  # tonic lists files sorted: xclub16i first
    b = s.load()
    ref = read_events(firsts["xclub16i"]).events
    assert len(b) == 956 and b.label == 0 and b.meta["label_name"] == "club"
    np.testing.assert_array_equal(b.events["x"], ref["x"] - CROP)
    np.testing.assert_array_equal(b.events["t"], ref["t"])


def test_dvs_gesture_layout_through_tonic(tmp_path):
    """tonic's DVSGesture keeps (x, y, p, t in ms) rows in ibmGesture{Train,Test}/<user>_<lighting>/<class>.npy;
    built here from 100 ms slices of a real DVS128 recording (classes assigned by the test)."""
    rec = read_events(need("recordings/dvs128_aedat2/alex_walking_again.aedat"))
    slices = {}
    cases = [("ibmGestureTrain", "user01_led", 0), ("ibmGestureTrain", "user01_led", 4),
             ("ibmGestureTrain", "user02_natural", 10), ("ibmGestureTest", "user24_led", 4)]
    for k, (folder, user, cls) in enumerate(cases):
        t0 = rec.t_start + 1_000_000 * (k + 1)
        ev = rec.slice_time(t0, t0 + 100_000).events
        rows = np.stack([ev["x"], ev["y"], ev["p"], (ev["t"] - rec.t_start) // 1000], axis=1).astype(np.int64)
        d = tmp_path / "DVSGesture" / folder / user
        d.mkdir(parents=True, exist_ok=True)
        np.save(d / f"{cls}.npy", rows)
        slices[(folder, user, cls)] = ev
    ds = open_dataset(f"tonic:DVSGesture:{tmp_path}")
    assert ds.classes[0] == "Hand clapping" and len(ds.classes) == 11 and ds.sensor_size == (128, 128)
    assert ds.split_counts() == {"train": 3, "test": 1}
    assert sorted(s.label_name for s in ds.split("train")) == ["Hand clapping", "Other gestures", "Right arm ccw"]
    b = ds.split("test").samples[0].load()
    ref = slices[("ibmGestureTest", "user24_led", 4)]
    assert b.label == 4 and b.meta["label_name"] == "Right arm ccw" and len(b) == len(ref)
    np.testing.assert_array_equal(np.sort(b.events[["x", "y"]]), np.sort(ref[["x", "y"]]))
    assert np.all(b.events["t"] % 1000 == 0)  # tonic's ms resolution, in us


def test_missing_dataset_is_one_line_and_no_download(tonic_root):
    with pytest.raises(InputError, match="DVSGesture.*missing; download the dataset with tonic first") as info:
        open_dataset(f"tonic:DVSGesture:{tonic_root}")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("spec, words", [
    ("tonic:NoSuchSet:/tmp", "no dataset class 'NoSuchSet'; available: .*NMNIST"),
    ("tonic:NMNIST", "expected tonic:<DatasetClass>:<folder>"),
    ("tonic:NMNIST:/no/such/folder", "no such folder"),
])
def test_bad_specs(spec, words):
    with pytest.raises(InputError, match=words):
        open_dataset(spec)
