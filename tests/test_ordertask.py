"""The order-only task (benchmarks/ordertask.py): six classes with the same events per pixel from real BioLab
segments, train and test from disjoint time ranges, deterministic, read back by streamsnn, and its baselines."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from conftest import ROOT, need

from streamsnn.io import read_events
from streamsnn.io.dataset import open_dataset

sys.path.insert(0, str(ROOT))  # the benchmarks package lives beside streamsnn, not in it
from benchmarks.ordertask import CLASSES, MANIFEST, cut, make_order_task, pixel_counts  # noqa: E402

NAMES = ["ABC", "ACB", "BAC", "BCA", "CAB", "CBA"]


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    data = need("biolab_objects").parent
    out = tmp_path_factory.mktemp("order")
    manifest = make_order_task(out, per_class_train=8, per_class_test=4, seed=3, data=data)
    return out, manifest


def by_draw(ds, split):
    """draw number -> {class name: events} for one split, read through streamsnn's dataset reader."""
    out = {}
    for s in ds.split(split).samples:
        name, draw = s.path.stem.split("_")
        assert name == s.label_name
        out.setdefault(int(draw), {})[name] = s.load().events
    return out


def test_reads_back_with_class_names(task):
    out, _ = task
    ds = open_dataset(out)
    assert ds.layout == "class-folders"
    assert ds.classes == NAMES == list(CLASSES)
    assert (ds.width, ds.height) == (128, 128)
    for split, n in (("train", 8), ("test", 4)):
        labels = [s.label_name for s in ds.split(split).samples]
        assert sorted(labels) == sorted(NAMES * n)


def test_classes_of_a_draw_hold_the_same_events_per_pixel(task):
    out, _ = task
    ds = open_dataset(out)
    for split in ("train", "test"):
        for draw, samples in by_draw(ds, split).items():
            assert sorted(samples) == NAMES
            counts = {name: pixel_counts(ev) for name, ev in samples.items()}
            for name in NAMES:
                assert np.array_equal(counts[name], counts["ABC"]), (split, draw, name)
            # ... yet the six differ in when those events happen
            thirds = {name: pixel_counts(ev[ev["t"] < ev["t"][0] + (ev["t"][-1] - ev["t"][0]) // 3]).tobytes()
                      for name, ev in samples.items()}
            assert len(set(thirds.values())) >= 3  # the first third is A, B or C


def test_samples_are_the_recorded_segments_in_order(task):
    """Each sample is its draw's three real segments, cut from the recordings the manifest names, in class order."""
    out, manifest = task
    data = need("biolab_objects")
    ds = open_dataset(out)
    length = manifest["segment_us"]
    for split in ("train", "test"):
        recs = {name: read_events(data / split.capitalize() / f"{name}.aedat").events for name in manifest["sources"]}
        samples = by_draw(ds, split)
        for draw, segs in enumerate(manifest["draws"][split][:2]):
            parts = [cut(recs[g["source"]], g["start_us"], length) for g in segs]
            for name, ev in samples[draw].items():
                assert len(ev) == sum(len(p) for p in parts)
                for k, c in enumerate(name):  # segment k of the sample is the letter's segment, its timing kept
                    got = ev[(ev["t"] >= k * length) & (ev["t"] < (k + 1) * length)].copy()
                    got["t"] -= k * length
                    assert np.array_equal(got, parts["ABC".index(c)])


def test_train_and_test_come_from_disjoint_time_ranges(task):
    _, manifest = task
    data = need("biolab_objects")
    for name in manifest["sources"]:
        train_t = read_events(data / "Train" / f"{name}.aedat").events["t"]
        test_t = read_events(data / "Test" / f"{name}.aedat").events["t"]
        assert train_t[-1] < test_t[0]
        for split, (lo, hi) in (("train", (train_t[0], train_t[-1])), ("test", (test_t[0], test_t[-1]))):
            segs = [g for draw in manifest["draws"][split] for g in draw if g["source"] == name]
            assert len(segs) == (8 if split == "train" else 4)
            assert all(lo <= g["start_us"] and g["end_us"] <= hi + 1 for g in segs)
    # the three letters come from three different recordings
    for draw in manifest["draws"]["train"] + manifest["draws"]["test"]:
        assert [g["source"] for g in draw] == manifest["sources"]
        assert len(set(manifest["sources"])) == 3


def test_deterministic_for_a_seed(tmp_path):
    data = need("biolab_objects").parent
    runs = [make_order_task(tmp_path / d, per_class_train=2, per_class_test=1, seed=s, data=data)
            for d, s in (("a", 5), ("b", 5), ("c", 6))]
    assert runs[0] == runs[1] != runs[2]
    assert json.loads((tmp_path / "a" / MANIFEST).read_text()) == runs[0]
    for f in sorted((tmp_path / "a").rglob("*.aedat4")):
        twin = tmp_path / "b" / f.relative_to(tmp_path / "a")
        assert np.array_equal(read_events(f).events, read_events(twin).events)


def test_refuses_a_folder_it_did_not_write_and_unknown_sources(tmp_path):
    data = need("biolab_objects").parent
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        make_order_task(tmp_path, per_class_train=1, per_class_test=1, data=data)
    with pytest.raises(ValueError, match="no cup in .*pick three of box, box_cutter"):
        make_order_task(tmp_path / "new", per_class_train=1, per_class_test=1, data=data, sources=("box", "cup", "mug"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_counts_are_at_chance_and_three_time_bins_are_not(task):
    pytest.importorskip("sklearn", reason="scikit-learn (the bench extra) runs the baselines")
    from benchmarks.ordertask import baselines

    out, _ = task
    acc = baselines(out, pool=8)
    # identical counts in the six classes of every draw: any counting model is right on one sample in six
    assert acc["counts"] == pytest.approx(1 / 6)
    assert acc["time_bins"] >= 0.9
