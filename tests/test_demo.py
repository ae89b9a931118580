"""`streamsnn demo` as a user runs it: trains briefly, prints the URL, serves the live view with decisions
of the simulated camera, stops on Ctrl-C with exit 0; and pipelines/demo.toml is the same pipeline."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import need
from daemon_util import stop_with_sigint
from mqtt_util import Collector, free_port

from streamsnn.commands.demo import DEMO
from streamsnn.config import build_config, load_config
from streamsnn.snn import DEFAULT_ARCH, SpikingNetwork

ROOT = Path(__file__).resolve().parent.parent


def test_demo_toml_is_the_demo_pipeline():
    assert load_config(ROOT / "pipelines" / "demo.toml").data == build_config(DEMO).data


def test_the_demo_segments_the_camera_as_the_live_camera_pipeline_does():
    demo = load_config(ROOT / "pipelines" / "demo.toml").data["segment"]
    live = load_config(ROOT / "pipelines" / "live-camera.toml").data["segment"]
    assert demo["mode"] == live["mode"] == "window" and demo["label_windows"] is True
    assert {k: v for k, v in demo.items() if k != "label_windows"} == {k: v for k, v in live.items()
                                                                         if k != "label_windows"}
    cfg = build_config(DEMO)
    assert cfg.liveview.enabled and cfg.source.kind == "synthetic" and cfg.source.speed == 1.0


def run_demo(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / "demo.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streamsnn", "demo", *extra], stdout=out,
                                stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    return proc, log


def wait_for(cond, timeout: float, what: str, proc, log: Path):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if (got := cond()):
            return got
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"{what} did not happen (exit {proc.poll()}); log:\n{log.read_text(errors='replace')[-3000:]}")


def snapshot(url: str) -> dict:
    with urllib.request.urlopen(f"{url}metrics.json", timeout=10) as r:
        return json.loads(r.read())


async def first_classification(port: int) -> dict:
    """What `mosquitto_sub -h 127.0.0.1 -p PORT -t 'streamsnn/demo/#'` shows first on the classification topic."""
    async with Collector(port, "streamsnn/demo/#") as c:
        await c.wait_for(lambda m: c.payloads("streamsnn/demo/classification"), 60)
    return json.loads(c.payloads("streamsnn/demo/classification")[0])


@pytest.mark.slow
def test_demo_trains_prints_the_url_serves_the_page_and_stops_on_ctrl_c(tmp_path):
    need("nmnist_small")
    need("mnist")
    port = free_port()
    proc, log = run_demo(tmp_path, "--port", str(port), "--epochs", "1", "--train-limit", "100",
                         "--synthetic", "20", "--speed", "4")
    try:
        url = wait_for(lambda: (m := re.search(r"live view: open (http://\S+)", log.read_text())) and m.group(1),
                       240, "the URL being printed", proc, log)
        assert url == f"http://127.0.0.1:{port}/"
        text = log.read_text()
        assert "training: 100 real N-MNIST samples" in text and "filming 20 synthetic samples" in text
        assert f"training: {DEFAULT_ARCH} on 120 samples" in text
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.status == 200 and b"EventSource" in r.read()
        snap = wait_for(lambda: (s := snapshot(url))["decisions"] >= 3 and s, 120, "three decisions", proc, log)
        d = snap["decision"]
        assert snap["sensor"] == [34, 34] and snap["events"] > 0
        assert 0 <= d["label"] <= 9 and len(d["scores"]) == 10 and d["true_label"] in range(10)
        assert d["source"] == "synthetic" and d["sample"].startswith("mnist-")
        assert d["label_name"] == str(d["label"]) and d["true_label_name"] == str(d["true_label"])
        # the broker's address and a ready mosquitto_sub line are printed, and that command's topics work
        watch = re.search(r"watch: +mosquitto_sub -h 127\.0\.0\.1 -p (\d+) -t 'streamsnn/demo/#' -v", log.read_text())
        assert watch, log.read_text()[-2000:]
        got = asyncio.run(first_classification(int(watch.group(1))))
        assert got["node"] == "demo" and got["source"] == "synthetic" and got["label_name"] == str(got["label"])
    finally:
        code = stop_with_sigint(proc, log, "demo")
    assert code == 0, log.read_text(errors="replace")[-3000:]
    kept = tmp_path / "cache" / "streamsnn" / "demo-model.npz"
    net = SpikingNetwork.load(kept)  # trained (120 updates), then learned from the demo's labels
    assert net.updates > 120 and net.arch == DEFAULT_ARCH and net.n_classes == 10
    assert len(set(net.memory.labels)) >= 9  # examples kept for rehearsal when the page teaches one class


@pytest.mark.slow
def test_demo_with_a_model_copies_it_and_leaves_it_unchanged(tmp_path):
    model = tmp_path / "given.npz"
    SpikingNetwork((2312, 32, 10), seed=3).save(model)
    before = model.read_bytes()
    port = free_port()
    proc, log = run_demo(tmp_path, "--port", str(port), "--model", str(model), "--images", "font", "--speed", "4")
    try:
        url = wait_for(lambda: (m := re.search(r"live view: open (http://\S+)", log.read_text())) and m.group(1),
                       120, "the URL being printed", proc, log)
        snap = wait_for(lambda: (s := snapshot(url))["decisions"] >= 2 and s, 120, "two decisions", proc, log)
        assert snap["decision"]["sample"].startswith("font-")
        assert "training" not in log.read_text()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0, log.read_text(errors="replace")[-3000:]
    assert model.read_bytes() == before
    kept = SpikingNetwork.load(tmp_path / "cache" / "streamsnn" / "demo-model-given.npz")
    assert kept.sizes == (2312, 32, 10) and kept.updates >= 2
    # the demo model a plain `streamsnn demo` trains and reuses is not where the copy learnt (it was overwritten)
    assert not (tmp_path / "cache" / "streamsnn" / "demo-model.npz").exists()
    np.testing.assert_array_equal(SpikingNetwork.load(model).sizes, (2312, 32, 10))


def test_demo_errors_are_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "streamsnn", "demo", "--model", str(tmp_path / "none.npz"),
                          "--port", "0"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)})
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (f"streamsnn: error: --model {tmp_path / 'none.npz'} not found; "
                                                   "give a .npz made by streamsnn train or run")
    # a file that is not a model: named as given, and the copy an earlier --model demo learned into is kept
    (tmp_path / "bad.npz").write_text("not a model")
    kept = tmp_path / "streamsnn" / "demo-model-given.npz"
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_bytes(b"learned earlier")
    out = subprocess.run([sys.executable, "-m", "streamsnn", "demo", "--model", str(tmp_path / "bad.npz"),
                          "--port", "0"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)})
    assert out.returncode == 2 and out.stderr.strip().splitlines()[-1].startswith(
        f"streamsnn: error: {tmp_path / 'bad.npz'} is not a .npz checkpoint"), out.stderr
    assert kept.read_bytes() == b"learned earlier" and "starting" not in out.stdout + out.stderr
    out = subprocess.run([sys.executable, "-m", "streamsnn", "demo", "--set", "liveview.port=99999"],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)})
    assert out.returncode == 2 and "liveview.port must be at most 65535" in out.stderr
    assert "Traceback" not in out.stderr
