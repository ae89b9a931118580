"""Synthetic gestures (`streamsnn synth --gestures`, `streamsnn demo --gestures`): reproducible, every class
labelled by name, readable by streamsnn's dataset reader, and classes that differ only in the order of motion."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess

import numpy as np
import pytest
from daemon_util import stop_with_sigint
from mqtt_util import free_port
from test_demo import run_demo, snapshot, wait_for

from streamsnn.cli import main
from streamsnn.synth.gestures import (
    CLASSES,
    REVERSED,
    SHAPES,
    GestureCamera,
    GestureParams,
    GestureSpec,
    draw,
    path,
    sample_rng,
)

W = H = 64


def film(gesture: str, seed: int = 1, k: int = 0, camera: GestureCamera | None = None, like: str | None = None,
         **spec):
    """(spec, events) of sample k of `gesture`; with `like`, everything but the motion (shape, size, place,
    speed, noise, the random numbers of the pixels) as sample k of that class; `spec` overrides what was drawn."""
    camera = camera or GestureCamera(seed=0)
    like = like or gesture
    rng = sample_rng(seed, 0, CLASSES.index(like), k)
    s = dataclasses.replace(draw(camera.params, like, rng), gesture=gesture, **spec)
    return s, camera.events(s, rng)


def counts(ev: np.ndarray, polarity: bool = False) -> np.ndarray:
    """Events per pixel, both polarities together or (`polarity`) apart."""
    c = np.zeros((2, H, W))
    np.add.at(c, (ev["p"] if polarity else 0, ev["y"], ev["x"]), 1)
    return c if polarity else c[0]


def drift(ev: np.ndarray, field: str, length_us: int) -> float:
    """Mean coordinate of the last third of the sample minus that of the first third."""
    t = ev["t"]
    first, last = ev[t < length_us / 3][field], ev[t >= 2 * length_us / 3][field]
    return float(last.mean() - first.mean())


def test_the_same_seed_makes_the_same_samples():
    a, b = film("circle_cw", seed=4, k=2), film("circle_cw", seed=4, k=2)
    assert a[0] == b[0] and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], film("circle_cw", seed=5, k=2)[1])
    assert not np.array_equal(a[1], film("circle_cw", seed=4, k=3)[1])
    # another sensor (threshold pattern) films the same motion differently
    other = film("circle_cw", seed=4, k=2, camera=GestureCamera(seed=1))
    assert other[0] == a[0] and not np.array_equal(other[1], a[1])


def test_every_class_makes_events_in_the_expected_range():
    camera = GestureCamera(seed=0)
    for c, name in enumerate(CLASSES):
        for k in range(2):
            rng = sample_rng(0, 0, c, k)
            spec = draw(camera.params, name, rng)
            b = camera.record(spec, rng, sample="s")
            assert b.label == c and b.meta["label_name"] == name and b.sensor_size == (W, H)
            length_us = b.meta["length_us"]
            assert 300 <= spec.duration_ms <= 1500 and length_us == round((spec.duration_ms + 100) * 1000)
            t = b.events["t"]
            assert t.min() >= 0 and t.max() < length_us and np.all(np.diff(t) >= 0)
            rate = len(b) / (length_us / 1e6)  # events per second
            assert 2_000 < rate < 60_000, (name, rate)
            assert 0.3 < b.events["p"].mean() < 0.75, name  # ON leads, OFF trails: both present
            # the motion spans much of the sensor
            busy = counts(b.events) >= 5
            assert np.ptp(np.nonzero(busy.any(0))[0]) > 15 or np.ptp(np.nonzero(busy.any(1))[0]) > 15, name


def test_what_varies_per_sample():
    p = GestureParams()
    specs = [draw(p, "wave", sample_rng(0, 0, 6, k)) for k in range(60)]
    for name, (lo, hi) in (("duration_ms", p.duration_ms), ("radius", p.radius), ("noise_hz", p.noise_hz),
                           ("brightness", p.brightness)):
        v = np.array([getattr(s, name) for s in specs])
        assert lo <= v.min() and v.max() <= hi and np.ptp(v) > 0.5 * (hi - lo), name
    assert {s.shape for s in specs} == set(SHAPES)
    cx = np.array([s.centre[0] for s in specs])
    assert np.ptp(cx) > 4 and abs(cx.mean() - W / 2) < 3
    assert np.ptp([s.phase for s in specs]) > 3


def test_reversed_classes_are_the_same_path_played_backwards():
    s = np.linspace(0, 1, 101)
    for back, fwd in REVERSED.items():
        spec = GestureSpec(fwd, centre=(30.0, 33.0), extent=15.0, phase=1.0)
        x, y = path(dataclasses.replace(spec, gesture=back), s)
        x2, y2 = path(spec, 1 - s)
        assert np.allclose(x, x2) and np.allclose(y, y2), back
    # a swipe runs in from beyond one edge and out past the other: every pixel sees the shape come and go
    x, y = path(GestureSpec("swipe_right", radius=5.0, centre=(30.0, 33.0), extent=15.0, sensor=(W, H)), s)
    assert x[0] < -5 and x[-1] > W - 1 + 5 and np.all(np.diff(x) >= 0) and np.all(y == 33)


@pytest.mark.parametrize("a,b,field", [("swipe_left", "swipe_right", "x"), ("swipe_up", "swipe_down", "y"),
                                       ("corner_down_right", "corner_left_up", "x")])
def test_order_only_pairs_have_the_same_pixel_counts_but_opposite_motion(a, b, field):
    spec, ea = film(a, seed=2)
    _, eb = film(b, seed=2, like=a)  # the same drawn shape, size, place, speed and noise
    ca, cb = counts(ea), counts(eb)
    assert abs(len(ea) - len(eb)) < 0.02 * len(ea)
    assert np.abs(ca - cb).sum() < 0.1 * ca.sum()  # nearly the same events per pixel
    assert np.corrcoef(ca.ravel(), cb.ravel())[0, 1] > 0.97
    pa, pb = counts(ea, True), counts(eb, True)  # also per polarity: arriving ON, leaving OFF either way
    assert np.abs(pa - pb).sum() < 0.2 * pa.sum()
    length_us = round(spec.length_ms * 1000)
    da, db = drift(ea, field, length_us), drift(eb, field, length_us)
    assert abs(da) > 5 and abs(db) > 5 and np.sign(da) == -np.sign(db)  # ... but in the opposite time order
    assert np.sign(da) == (-1 if a in ("swipe_left", "swipe_up") else 1)


def test_circles_cover_the_same_pixels_in_opposite_directions():
    spec, cw = film("circle_cw", seed=3, noise_hz=0.0)
    _, ccw = film("circle_ccw", seed=3, like="circle_cw", noise_hz=0.0)
    ca, cb = counts(cw), counts(ccw)
    assert np.abs(ca - cb).sum() < 0.1 * ca.sum()
    cx, cy = spec.centre
    turns = []
    for ev in (cw, ccw):  # the angle of the event centroid around the circle's centre, over time
        bins = np.array_split(ev, 12)
        ang = np.unwrap([np.arctan2(e["y"].mean() - cy, e["x"].mean() - cx) for e in bins])
        turns.append(ang[-1] - ang[0])
    assert turns[0] > 3 and turns[1] < -3  # clockwise on screen (y down) = growing angle


def test_bad_params_are_refused_with_the_name():
    from streamsnn.errors import ConfigError

    with pytest.raises(ConfigError, match="duration_ms"):
        GestureCamera(GestureParams(duration_ms=(500.0, 100.0)))
    with pytest.raises(ConfigError, match="sensor"):
        GestureCamera(GestureParams(width=4))
    with pytest.raises(ConfigError, match="unknown gesture"):
        draw(GestureParams(), "jump", np.random.default_rng(0))


def test_synth_gestures_writes_class_folders_that_streamsnn_reads(tmp_path, capsys):
    from streamsnn.io.dataset import open_dataset

    out = tmp_path / "g"
    assert main(["synth", "--gestures", "--count", "2", "--test-count", "1", "--out", str(out), "--seed", "7"]) == 0
    said = capsys.readouterr().out
    assert "wrote 30 gesture samples (2 train, 1 test per class, 10 classes" in said
    ds = open_dataset(out)
    assert ds.layout == "class-folders" and ds.sensor_size == (W, H) and sorted(ds.splits) == ["test", "train"]
    assert sorted(ds.classes) == sorted(CLASSES)
    assert len(ds.split("train")) == 20 and len(ds.split("test")) == 10
    camera = GestureCamera(seed=7)
    for s in ds.samples[::7]:
        b = s.load()
        name = s.label_name
        k = int(s.sample_id.rsplit("-", 1)[1]) - 1
        no = 0 if s.split == "train" else 1
        assert s.sample_id.startswith(name) and ds.classes[s.label] == name and b.sensor_size == (W, H)
        rng = sample_rng(7, no, CLASSES.index(name), k)
        assert np.array_equal(b.events, camera.events(draw(camera.params, name, rng), rng))  # reproducible
    meta = json.loads((out / "gestures.json").read_text())
    assert meta["seed"] == 7 and meta["classes"] == list(CLASSES) and len(meta["samples"]) == 30
    assert main(["info", str(out)]) == 0
    assert "class-folders" in capsys.readouterr().out
    # one split only, other parameters
    assert main(["synth", "--gestures", "--count", "1", "--split", "test", "--out", str(tmp_path / "t"), "-q",
                 "--param", "duration_ms=[300, 400]", "--param", "width=48"]) == 0
    ds = open_dataset(tmp_path / "t")
    assert ds.splits == ["test"] and len(ds) == 10 and ds.sensor_size == (48, 64)


def test_synth_gestures_again_into_the_same_folder_replaces_the_set(tmp_path, capsys):
    """A second run with fewer samples left the first's extra ones beside its own (train read 20 of 10), and
    gestures.json described only the second."""
    from streamsnn.io.dataset import open_dataset

    out = tmp_path / "g"
    (out / "Train" / "swipe_left").mkdir(parents=True)
    (out / "Train" / "swipe_left" / "mine.aedat4").write_bytes(b"x")  # not synth's: left alone
    assert main(["synth", "--gestures", "--count", "2", "--test-count", "1", "--out", str(out), "-q"]) == 0
    assert main(["synth", "--gestures", "--count", "1", "--test-count", "1", "--seed", "5", "--out", str(out),
                 "-q"]) == 0
    files = sorted(p.name for p in (out / "Train").rglob("*.aedat4"))
    assert len(files) == 11 and "mine.aedat4" in files and not any(f.endswith("-2.aedat4") for f in files)
    meta = json.loads((out / "gestures.json").read_text())
    assert meta["seed"] == 5 and len(meta["samples"]) == 20
    # one split again with the same seed: the other split's samples stay, in the files and in gestures.json
    assert main(["synth", "--gestures", "--test-count", "2", "--split", "test", "--seed", "5", "--out", str(out),
                 "-q"]) == 0
    (out / "Train" / "swipe_left" / "mine.aedat4").unlink()
    assert open_dataset(out).split_counts() == {"train": 10, "test": 20}
    assert len(json.loads((out / "gestures.json").read_text())["samples"]) == 30
    # ... but not with another seed: that would be two generations in one set
    assert main(["synth", "--gestures", "--count", "1", "--split", "test", "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert "holds the train split of another --seed or --param" in err and err.count("\n") == 1, err
    assert open_dataset(out).split_counts() == {"train": 10, "test": 20}


@pytest.mark.parametrize("argv,message", [
    (["--gestures", "--param", "speed=2"], "KEY=VALUE"),
    (["--gestures", "--param", "duration_ms=5"], "(low, high) pair"),
    (["--gestures", "--count", "0"], "--count"),
    (["--font", "--test-count", "3"], "--test-count is for --gestures"),
    (["--gestures", "--first", "5"], "--gestures draws its own samples"),  # silently ignored before
    (["--gestures", "--mnist-split", "train"], "--gestures draws its own samples"),
])
def test_synth_gestures_errors_are_one_line(tmp_path, capsys, argv, message):
    assert main(["synth", *argv, "--out", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("streamsnn: error:") and message in err and err.count("\n") == 1


def test_train_and_eval_read_the_gesture_set(tmp_path, capsys):
    out = tmp_path / "g"
    assert main(["synth", "--gestures", "--count", "2", "--test-count", "1", "--out", str(out), "-q",
                 "--param", "duration_ms=[300, 400]"]) == 0
    model = tmp_path / "m.npz"
    assert main(["train", "--data", str(out), "--out", str(model), "--arch", "dense:16", "--epochs", "1",
                 "--choose", "off", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["eval", "--model", str(model), "--data", str(out), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["samples"] == 10 and set(got["classes"]) == set(got["per_class"]) == set(CLASSES)


async def test_gesture_source_streams_labelled_gestures_on_one_clock():
    from streamsnn.sources.synthetic import SyntheticSource

    src = SyntheticSource.from_path("gestures", speed=0, limit=5, seed=1, chunk_us=20_000)
    parts = [b async for b in src]
    ends = [b for b in parts if b.meta["end_of_sample"]]
    assert len(ends) == 5 and parts[-1].meta["end_of_sample"]
    assert all(b.sensor_size == (W, H) and CLASSES[b.label] == b.meta["label_name"] for b in parts)
    assert [b.sample for b in ends] == [f"gesture-{k}" for k in range(1, 6)]
    t = np.concatenate([b.events["t"] for b in parts])
    assert np.all(np.diff(t) >= 0)  # one running clock
    starts = [b.t_start for a, b in zip(parts, parts[1:]) if a.sample != b.sample]
    lengths = np.diff([0, *starts])
    assert np.all(lengths >= 400_000) and np.ptp(lengths) > 0  # each gesture lasts its own length
    again = [b async for b in SyntheticSource.from_path("gestures", speed=0, limit=5, seed=1, chunk_us=20_000)]
    assert [b.label for b in again] == [b.label for b in parts]


@pytest.mark.slow
def test_demo_gestures_trains_and_decides(tmp_path):
    port = free_port()
    proc, log = run_demo(tmp_path, "--gestures", "--port", str(port), "--epochs", "1", "--synthetic", "10",
                         "--speed", "4")
    try:
        url = wait_for(lambda: "live view: open" in log.read_text() and f"http://127.0.0.1:{port}/", 240,
                       "the URL being printed", proc, log)
        text = log.read_text()
        assert "simulated gestures on a 64x64 sensor" in text and "filming 10 synthetic gestures" in text
        snap = wait_for(lambda: (s := snapshot(url))["decisions"] >= 3 and s, 120, "three decisions", proc, log)
        d = snap["decision"]
        assert snap["sensor"] == [W, H] and d["source"] == "synthetic" and d["sample"].startswith("gesture-")
        assert d["label_name"] in CLASSES and d["true_label_name"] in CLASSES and len(d["scores"]) == 10
    finally:
        code = stop_with_sigint(proc, log, "demo")
    assert code == 0, log.read_text(errors="replace")[-3000:]
    from streamsnn.snn import SpikingNetwork

    net = SpikingNetwork.load(tmp_path / "cache" / "streamsnn" / "demo-gestures.npz")
    assert list(net.classes) == list(CLASSES) and net.updates > 10
    if net.tau_us is not None:  # time was needed: the same network `train` gives, input delays included
        from streamsnn.learn.datadefaults import DELAY_COPIES

        assert net.learning == "membrane" and net.input_map.delays == DELAY_COPIES and "delayed copies" in text
    assert not (tmp_path / "cache" / "streamsnn" / "demo-model.npz").exists()  # the digit model is another file


def test_the_gesture_demo_says_how_long_its_training_has_left(tmp_path):
    """The first `demo --gestures` trains for minutes: each epoch's line but the last says about how long is left,
    from the epochs so far; later starts load the kept model and print none of it."""
    import types

    from streamsnn.commands._demo_gestures import left_text, train_gestures

    assert left_text(40.4) == "40 s" and left_text(89) == "89 s" and left_text(395) == "7 min"
    said = []
    train_gestures(types.SimpleNamespace(synthetic=20, epochs=3), tmp_path / "g.npz", said.append)
    epochs = [line for line in said if line.startswith("training: epoch ")]
    assert len(epochs) == 3, said
    assert all(" left" in line for line in epochs[:2]) and " left" not in epochs[-1], epochs
    first = float(epochs[0].split(", ")[2].removesuffix(" s"))  # "..., 1.2 s, about 2 s left"
    assert epochs[0].endswith(f"about {left_text(2 * first)} left"), epochs[0]
