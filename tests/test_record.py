"""`streamsnn record` and io/record.py: live samples into class folders that open_dataset and train read."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from dv_util import event_writer, free_port, wait_for_client
from mqtt_util import mosquitto  # noqa: F401  (a fixture)

from streamsnn.cli import main
from streamsnn.errors import InputError
from streamsnn.events import EventBatch, make_events
from streamsnn.io import open_dataset
from streamsnn.io.record import PARTIAL, Recorder, split_for

SYNTH = ["--source", "synthetic", "--set", "source.speed=0"]


def event_files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def batch(t0, n=200, size=(34, 34), span=10_000):
    t = t0 + np.arange(n) * (span // n)
    return EventBatch(make_events(t, np.arange(n) % size[0], np.arange(n) % size[1], np.arange(n) % 2), *size)


def record_cli(*args):
    return subprocess.run([sys.executable, "-m", "streamsnn", "record", *args], capture_output=True, text=True,
                          timeout=120)


def test_synthetic_camera_into_class_folders_that_open_dataset_reads(tmp_path):
    out = tmp_path / "data"
    assert main(["record", *SYNTH, "--out", str(out), "--seconds", "0.2", "--class", "cup", "--count", "6", "-q"]) == 0
    assert main(["record", *SYNTH, "--out", str(out), "--seconds", "0.2", "--class", "Ball", "--count", "2", "-q"]) == 0
    # the class folder keeps the case it was first given; "CUP" is the class "cup"
    assert main(["record", *SYNTH, "--out", str(out), "--seconds", "0.2", "--class", "CUP", "-q"]) == 0
    assert event_files(out) == ["Test/cup/cup-5.aedat4"] + [f"Train/Ball/Ball-{k}.aedat4" for k in (1, 2)] + \
        [f"Train/cup/cup-{k}.aedat4" for k in (1, 2, 3, 4, 6, 7)]
    ds = open_dataset(out)
    assert ds.layout == "class-folders" and ds.classes == ["Ball", "cup"] and ds.sensor_size == (34, 34)
    assert ds.split_counts() == {"train": 8, "test": 1}
    assert ds.split("test").class_counts() == {"Ball": 0, "cup": 1}
    for sample in ds:
        ev = sample.load().events
        assert len(ev) > 100 and ev["t"][0] >= 0
        assert 0.15e6 < ev["t"][-1] - ev["t"][0] < 0.2e6  # each sample covers its 0.2 s of stream, no more


def test_recorded_folder_trains(tmp_path):
    out = tmp_path / "data"
    for name in ("a", "b"):
        assert main(["record", *SYNTH, "--out", str(out), "--seconds", "0.1", "--class", name, "--count", "5",
                     "-q"]) == 0
    model = tmp_path / "m.npz"
    assert main(["train", "--data", str(out), "--epochs", "1", "--choose", "off", "--out", str(model)]) == 0
    assert model.stat().st_size > 0


def test_the_split_rule():
    assert [split_for(n, 5) for n in range(1, 11)] == ["train"] * 4 + ["test"] + ["train"] * 4 + ["test"]
    assert {split_for(n, 0) for n in range(1, 11)} == {"train"}
    assert [split_for(n, 2) for n in range(1, 5)] == ["train", "test", "train", "test"]


def test_keyboard_prompt_names_numbers_counts_and_bad_names(tmp_path):
    out = tmp_path / "data"
    proc = subprocess.run([sys.executable, "-m", "streamsnn", "record", *SYNTH, "--out", str(out),
                           "--seconds", "0.1", "--classes", "club,spade"], input="2\nclub\nheart\n../x\n1\nq\n",
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "holds a path separator" in proc.stdout
    assert "[1] club  2 (train 2, test 0)" in proc.stdout and "[3] heart  1 (train 1, test 0)" in proc.stdout
    assert event_files(out) == ["Train/club/club-1.aedat4", "Train/club/club-2.aedat4",
                                "Train/heart/heart-1.aedat4", "Train/spade/spade-1.aedat4"]


def test_samples_from_a_dv_network_stream(tmp_path):
    port = free_port()
    writer = event_writer(("127.0.0.1", port), 64, 48)
    out = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "streamsnn", "record", "--source", f"tcp://127.0.0.1:{port}",
                             "--out", str(out), "--seconds", "0.1", "--class", "hand", "--count", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def serve():  # 10 ms packets of 100 events on one running clock, as a camera sends them
        import dv_processing as dv

        wait_for_client(writer, 60)
        t = 1_000_000
        while proc.poll() is None:
            store = dv.EventStore()
            for k in range(100):
                store.push_back(t + k * 100, k % 64, k % 48, bool(k % 2))
            writer.writeEvents(store)
            t += 10_000
            time.sleep(0.002)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    ds = open_dataset(out)
    assert ds.classes == ["hand"] and len(ds) == 2 and ds.sensor_size == (64, 48)
    ev = ds[0].load().events
    assert ev["t"][0] >= 0 and ev["t"][-1] - ev["t"][0] == 99_900 and len(ev) == 1000


def test_samples_from_mqtt_event_packets(tmp_path, mosquitto):  # noqa: F811
    digits = tmp_path / "digits"
    assert main(["record", *SYNTH, "--out", str(digits), "--seconds", "0.2", "--class", "x", "--count", "2",
                 "-q"]) == 0
    out = tmp_path / "data"
    rec = subprocess.Popen([sys.executable, "-m", "streamsnn", "record", "--source",
                            f"mqtt://127.0.0.1:{mosquitto.port}/cam/events", "--out", str(out), "--seconds", "0.3",
                            "--class", "seen", "--count", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    pub = subprocess.Popen([sys.executable, "-m", "streamsnn", "publish", str(digits), "--broker",
                            f"127.0.0.1:{mosquitto.port}", "--topic", "cam/events", "--speed", "5", "--loop", "-q"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _, err = rec.communicate(timeout=120)
    finally:
        pub.terminate()
        pub.wait(30)
    assert rec.returncode == 0, err
    ds = open_dataset(out)
    assert ds.classes == ["seen"] and len(ds) == 2 and ds.sensor_size == (34, 34)
    for sample in ds:
        ev = sample.load().events
        assert 0.25e6 < ev["t"][-1] - ev["t"][0] < 0.3e6  # 0.3 s of packets whose clocks each start at 0


def test_ctrl_c_while_recording_leaves_no_file(tmp_path):
    out = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "streamsnn", "record", "--source", "synthetic", "--out", str(out),
                             "--seconds", "30"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdin.write("cup\n")
    proc.stdin.flush()
    for line in proc.stdout:
        if "recording 'cup'" in line:
            break
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err  # (it once exited 0 in CI, not reproduced since: say why if it does again)
    assert "the sample of 'cup' was not written" in err
    assert event_files(out) == []


def test_interrupted_write_leaves_no_file_and_leftovers_are_removed(tmp_path, monkeypatch):
    import streamsnn.synth.writer as writer

    def interrupted(src, dst):
        raise KeyboardInterrupt

    rec = Recorder(tmp_path, 0.01, notice=lambda m: None)
    monkeypatch.setattr(writer.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        rec.capture("cup", batch(0))
    monkeypatch.undo()
    assert event_files(tmp_path) == [] and rec.counts["cup"] == {"train": 0, "test": 0}
    # a crash (no chance to clean up) leaves a hidden temporary file: the next start removes it, saying so
    folder = tmp_path / "Train" / "cup"
    (folder / f"{PARTIAL}cup-1.aedat4").write_bytes(b"#!AER-DAT4.0\r\n half")
    notices = []
    rec = Recorder(tmp_path, 0.01, notice=notices.append)
    assert event_files(tmp_path) == [] and len(notices) == 1 and "removed 1 unfinished" in notices[0]
    assert rec.capture("cup", batch(0)).path == folder / "cup-1.aedat4"


def test_recorder_api_cuts_samples_on_the_stream_clock(tmp_path):
    rec = Recorder(tmp_path, 0.025, notice=lambda m: None)
    assert rec.feed(batch(0)) is None  # nothing armed: dropped
    assert rec.start("cup") == "cup" and rec.recording == "cup"
    done = [rec.feed(batch(t0)) for t0 in (10_000, 20_000, 30_000, 40_000)]
    assert done[:2] == [None, None] and done[3] is None and done[2].label == "cup"
    ev = open_dataset(tmp_path)[0].load().events
    assert ev["t"][0] == 0 and ev["t"][-1] < 25_000 and len(ev) == 2 * 200 + 100
    # a clock that jumps back (a synthetic camera's digits each start at 0) carries on where it was
    rec.start("cup")
    assert rec.feed(batch(0)) is None and rec.feed(batch(0)) is None
    assert rec.feed(batch(0)).events == 200 + 200 + 102  # each jump continues at the last event's time


def test_a_source_of_another_sensor_is_refused_before_a_sample_is_recorded(tmp_path, capsys):
    rec = Recorder(tmp_path, 0.025, notice=lambda m: None)
    rec.start("cup")
    for t0 in (0, 10_000, 20_000, 30_000):
        rec.feed(batch(t0, size=(40, 30)))
    assert rec.sensor == (40, 30)
    with pytest.raises(InputError, match="holds samples of a 40x30 sensor, this source is 34x34"):
        rec.feed(batch(50_000))  # nothing armed: refused all the same, before anyone records
    # the command: one line, exit 2, and it never starts a sample
    assert main(["record", *SYNTH, "--out", str(tmp_path), "--class", "cup", "--count", "1"]) == 2
    out, err = capsys.readouterr()
    assert "holds samples of a 40x30 sensor" in err and "\n" not in err.strip(), err
    assert "recording 'cup'" not in out
    assert len(event_files(tmp_path)) == 1


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    afile = tmp_path / "file"
    afile.write_text("x")
    for layout, listing in (("flat", "train.txt"), ("labelled", "walk_labels.csv")):  # read as that layout first
        (tmp_path / layout).mkdir()
        (tmp_path / layout / listing).write_text("#sample #class\n")
    cases = [
        (["--out", str(tmp_path / "flat"), "--class", "a"], "holds a dataset of another layout (train.txt)"),
        (["--out", str(tmp_path / "labelled"), "--class", "a"], "another layout (walk_labels.csv)"),
        (["--out", str(afile)], "is a file; give a folder"),
        (["--out", str(afile / "sub")], "cannot write to"),
        (["--out", str(tmp_path / "d"), "--class", "a/b"], "holds a path separator"),
        (["--out", str(tmp_path / "d"), "--class", ".hidden"], "starts with a dot"),
        (["--out", str(tmp_path / "d"), "--class", ""], "error: class name '' is empty"),  # named once, not twice
        (["--out", str(tmp_path / "d"), "--seconds", "0"], "--seconds must be a positive number"),
    ]
    for extra, says in cases:
        assert main(["record", *SYNTH, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert says in err and "\n" not in err, err
    assert main(["record", "--out", str(tmp_path / "d")]) == 2
    assert "record needs a source" in capsys.readouterr().err
    rec = Recorder(tmp_path / "e", 1.0, notice=lambda m: None)
    rec.start("cup")
    with pytest.raises(InputError, match="holds no events"):
        rec.finish()
    assert event_files(tmp_path / "e") == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_folder(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    assert main(["record", *SYNTH, "--out", str(ro), "--class", "cup"]) == 2
    assert "cannot write to" in capsys.readouterr().err
