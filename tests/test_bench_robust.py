"""The robustness benchmark's derived datasets (BioLab re-cut, DVS128 by recording) read back with streamsnn's own
dataset reader, and its reading of a training run (divergences, dead networks) on crafted inputs."""

from __future__ import annotations

import sys
from collections import Counter, defaultdict

import pytest
from conftest import ROOT, need

from streamsnn.io import read_events
from streamsnn.io.dataset import open_dataset
from streamsnn.io.labelled import read_label_csv

sys.path.insert(0, str(ROOT))  # the benchmarks package lives beside streamsnn, not in it
from benchmarks.bench_robust import by_recording, dead_at_test, parse_train, pieces, recut  # noqa: E402

CLASSES = ["box", "box_cutter", "mouse", "mug", "pencil", "phone", "scissors"]


def windows(ds, split):
    """recording name -> sorted (start, end) of the split's samples, and class name per recording."""
    out, names = defaultdict(list), {}
    for s in ds.split(split).samples:
        out[s.path.name].append((s.start_us, s.end_us))
        names.setdefault(s.path.name, set()).add(s.label_name)
    return {k: sorted(v) for k, v in out.items()}, names


def assert_consecutive(ws, step):
    for a, b in ws:
        assert b - a == step
    for (_, end), (start, _) in zip(ws, ws[1:]):
        assert end <= start  # no overlap


def span(rec):
    t = read_events(rec).events["t"]
    return int(t[0]), int(t[-1])


@pytest.mark.parametrize("seconds", [4.0, 0.25])
def test_biolab_recut_reads_back_as_consecutive_samples_inside_the_recordings(tmp_path, seconds):
    src = need("biolab_objects")
    ds = open_dataset(recut(src, tmp_path / "d", seconds))
    assert ds.classes == CLASSES and set(ds.splits) == {"train", "test"}
    step = int(seconds * 1e6)
    for split, folder in (("train", "Train"), ("test", "Test")):
        got, names = windows(ds, split)
        shipped = {rec.name: read_label_csv(src / folder / f"{rec.stem}_labels.csv")
                   for rec in (src / folder).glob("*.aedat")}
        assert set(got) == set(shipped)
        for rec, rows in shipped.items():
            assert names[rec] == {rows[0][0]}
            assert len(got[rec]) == int(len(rows) / seconds)  # the shipped rows are consecutive 1 s samples
            assert_consecutive(got[rec], step)
            assert got[rec][0][0] == rows[0][1] and got[rec][-1][1] <= rows[-1][2]
            t0, t1 = span(src / folder / rec)
            # inside the recording (the shipped Test labels start up to 60 us before a recording's first event)
            assert t0 - 1000 <= got[rec][0][0] and got[rec][-1][1] <= t1 + 1
            assert (tmp_path / "d" / folder / rec).is_symlink()
    counts = Counter(s.label_name for s in ds.split("test").samples)
    assert set(counts) == set(CLASSES)
    s = ds.split("train").samples[0]
    assert len(s.load().events) > 0


def test_biolab_4s_split_sizes(tmp_path):
    src = need("biolab_objects")
    ds = open_dataset(recut(src, tmp_path / "d", 4.0))
    per = {f: [len(read_label_csv(p)) // 4 for p in (src / f).glob("*_labels.csv")] for f in ("Train", "Test")}
    assert len(ds.split("train")) == sum(per["Train"]) and len(ds.split("test")) == sum(per["Test"])
    assert 15 <= len(ds.split("train")) <= 22 and 5 <= len(ds.split("test")) <= 9  # 87 s / 36 s of recordings


def test_dvs128_by_recording_splits_each_recording_in_time(tmp_path):
    src = need("recordings/dvs128_aedat2")
    recs = sorted(src.glob("*.aedat"))
    ds = open_dataset(by_recording(src, tmp_path / "d"))
    assert ds.classes == sorted(r.stem for r in recs) and len(ds.classes) == 11
    train, names_tr = windows(ds, "train")
    test, names_te = windows(ds, "test")
    n_train = n_test = 0
    for rec in recs:
        t0, t1 = span(rec)
        tr, te = train.get(rec.name, []), test.get(rec.name, [])
        assert tr and te, rec.name  # every recording (7 s and up) gives both splits
        assert names_tr[rec.name] == names_te[rec.name] == {rec.stem}
        assert_consecutive(tr, 1_000_000)
        assert_consecutive(te, 1_000_000)
        assert tr[0][0] == t0 and te[-1][1] <= t1 + 1  # inside the recording
        cut = t0 + int(0.7 * (t1 + 1 - t0))
        assert tr[-1][1] <= cut <= te[0][0]  # train before test, no overlap
        assert len(tr) == int(0.7 * (t1 + 1 - t0) // 1_000_000)
        n_train, n_test = n_train + len(tr), n_test + len(te)
    assert (len(ds.split("train")), len(ds.split("test"))) == (n_train, n_test)
    assert n_train > 2 * n_test > 0
    sample = ds.split("test").samples[0]
    b = sample.load()
    assert len(b.events) and b.events["t"].min() >= sample.start_us and b.events["t"].max() < sample.end_us


def test_pieces_end_inside_the_span():
    assert pieces(10, 35, 10) == [(10, 20), (20, 30)]
    assert pieces(10, 30, 10) == [(10, 20), (20, 30)]
    assert pieces(10, 19, 10) == []


EPOCHS_OK = ("classes: a, b (folders)\n"
             "epoch 1/2: train 0.500 (augmented)  test 0.400  1.2 s  0.50 M events/s learning\n"
             "epoch 2/2: train 0.700 (augmented)  test 0.600  1.1 s  0.52 M events/s learning\n")
EPOCHS_UNDONE = ("epoch 1/3: train 0.300  test 0.300  1.0 s  0.5 M events/s learning  (4 non-finite updates undone, "
                 "1 revivals; learning rates now x0.25)\n"
                 "epoch 2/3: train 0.500  test 0.500  1.0 s  0.5 M events/s learning\n"
                 "epoch 3/3: train 0.600  test 0.600  1.0 s  0.5 M events/s learning  (2 non-finite updates undone, "
                 "0 revivals; learning rates now x0.125)\n")


def test_parse_train_counts_clean_undone_and_revived_runs():
    ok = parse_train(0, EPOCHS_OK)
    assert ok["epochs_done"] == 2 and not ok["diverged"] and not ok["traceback"] and not ok["silent_stop"]
    assert not ok["failed"]
    bad = parse_train(0, EPOCHS_UNDONE)
    assert (bad["epochs_done"], bad["nonfinite"], bad["revivals"], bad["diverged"]) == (3, 6, 1, True)


def test_parse_train_sees_a_silent_stop_a_traceback_and_the_watch_log():
    stop = parse_train(2, EPOCHS_OK + "streamsnn: error: training stopped in epoch 3: the network failed (its last "
                       "hidden layer fired no spike on 50 samples in a row) again after 4 revivals ...\n",
                       logs=["streamsnn.learn.watch: epoch 3: the network failed (x); revived with the weights of "
                             "an earlier epoch and the learning rates halved (now x0.5; revival 1 of 4)"] * 4)
    assert stop["silent_stop"] and stop["revivals"] == 4 and stop["diverged"] and not stop["failed"]
    assert stop["error"].startswith("streamsnn: error: training stopped")
    refused = parse_train(0, EPOCHS_OK, logs=["streamsnn.learn.watch: epoch 1, sample box#3: update not finite"])
    assert refused["diverged"] and refused["logged_refusals"] == 1
    tb = parse_train(None, "RuntimeWarning: overflow encountered in matmul\n",
                     exc="Traceback (most recent call last):\nOverflowError: cannot convert float infinity to integer")
    assert tb["traceback"] and tb["warnings"] == 1 and not tb["failed"]
    printed = parse_train(1, "Traceback (most recent call last):\n  File ...\nValueError: x\n")
    assert printed["traceback"]
    other = parse_train(2, "streamsnn: error: --data x: no such folder\n")
    assert other["failed"] and not other["silent_stop"] and not other["traceback"]


def test_dead_at_test():
    assert dead_at_test([1, 1, 1], [5, 0, 3]).startswith("predicts class 1")
    assert "never spiked" in dead_at_test([0, 1, 2], [0, 0, 0])
    assert dead_at_test([0, 1, 1], [0, 4, 0]) is None
    assert dead_at_test([], []) is None
