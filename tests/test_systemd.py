"""Running as a systemd service: sd_notify over $NOTIFY_SOCKET (a path and the abstract namespace), READY=1 from
a real daemon once it classifies and STOPPING=1 when SIGTERM ends it; the shipped unit file's settings."""

from __future__ import annotations

import asyncio
import configparser
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import need

from streamsnn.systemd import notify

ROOT = Path(__file__).resolve().parent.parent


def datagram_socket(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + address[1:] if address.startswith("@") else address)
    sock.settimeout(60)
    return sock


def test_notify_sends_to_a_path_and_to_the_abstract_namespace(tmp_path, monkeypatch):
    for address in (str(tmp_path / "notify.sock"), f"@streamsnn-test-{os.getpid()}"):
        with datagram_socket(address) as sock:
            monkeypatch.setenv("NOTIFY_SOCKET", address)
            assert notify("READY=1", "STATUS=classifying") is True
            assert sock.recv(4096) == b"READY=1\nSTATUS=classifying"


def test_notify_without_systemd_or_with_a_dead_socket_does_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    assert notify("READY=1") is False  # logged at DEBUG, never raised


@pytest.mark.slow
def test_the_daemon_tells_systemd_it_is_ready_and_stopping(tmp_path):
    address = str(tmp_path / "notify.sock")
    with datagram_socket(address) as sock:
        env = {**os.environ, "NOTIFY_SOCKET": address}
        cmd = [sys.executable, "-m", "streamsnn", "run", str(ROOT / "pipelines" / "nmnist-replay.toml"), "-q",
               "--set", f"source.path={need('nmnist_small')}", "--set", "source.speed=1", "--set", "source.loop=true",
               "--set", "mqtt.enabled=false", "--set", "model.hidden=32", "--set", "model.checkpoint="]
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
        try:
            assert sock.recv(4096).split(b"\n")[0] == b"READY=1"
            proc.send_signal(signal.SIGTERM)
            assert sock.recv(4096) == b"STOPPING=1"
            assert proc.wait(60) == 0, proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()


def test_the_unit_file_restarts_notifies_and_keeps_secrets_out_of_the_command_line():
    unit = (ROOT / "contrib" / "streamsnn.service").read_text()
    lines = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in unit.splitlines()
             if "=" in line and not line.startswith("#")}
    assert lines["Type"] == "notify" and lines["Restart"] == "on-failure"
    assert lines["EnvironmentFile"].endswith("streamsnn.env") and "STREAMSNN_MQTT_PASSWORD" not in lines["ExecStart"]
    assert "model.checkpoint=" in lines["ExecStart"] and lines["StateDirectory"] == "streamsnn"
    assert lines["KillSignal"] == "SIGTERM" and "StandardOutput" in lines and "journal" in lines["StandardError"]
    readme = (ROOT / "docs" / "service.md").read_text()  # the README's "Running as a service", now in docs/
    assert "contrib/streamsnn.service" in readme and "NOTIFY_SOCKET" in readme


# -- the watchdog (issue 17, item 12) -----------------------------------------------------------------
def beats(sock: socket.socket, seconds: float, *, until: bytes | None = None) -> list[bytes]:
    """The datagrams that arrive within `seconds` (up to the first one equal to `until`, when given)."""
    got, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            got.append(sock.recv(4096))
        except TimeoutError:
            break
        if got[-1] == until:
            break
    return got


class LiveSource:
    """A live stream: real chunks of a recording, 5 ms apart, then silence (no events) until closed."""

    def __init__(self, batches):
        self.batches, self.closed = batches, asyncio.Event()

    def __aiter__(self):
        return self._gen()

    async def _gen(self):
        for b in self.batches:
            await asyncio.sleep(0.005)
            yield b
        await self.closed.wait()

    async def aclose(self):
        self.closed.set()


@pytest.fixture
def watchdog_env(tmp_path, monkeypatch):
    """$NOTIFY_SOCKET bound to a real datagram socket, and systemd's watchdog asking for beats every 0.1 s."""
    address = str(tmp_path / "notify.sock")
    with datagram_socket(address) as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", address)
        monkeypatch.setenv("WATCHDOG_USEC", "200000")
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
        yield sock


async def test_watchdog_beats_while_the_pipeline_runs_and_stops_while_its_worker_is_stuck(watchdog_env, caplog,
                                                                                         recordings_dir):
    from streamsnn.io import read_events
    from streamsnn.pipeline import Pipeline
    from streamsnn.pipeline.segment import Segmenter
    from streamsnn.snn import SpikingNetwork

    sock = watchdog_env
    rec = read_events(recordings_dir / "tonic_sample.aedat4")
    source = LiveSource(rec.split_time(10_000))
    net = SpikingNetwork((2312, 32, 10), seed=2)
    net.warm_up()  # as the daemon does before READY=1: compiling is not progress
    pipe = Pipeline(source, net, [], segmenter=Segmenter("window"), metrics_every_s=60)
    run = asyncio.create_task(pipe.run())
    stuck = threading.Event()
    try:
        got = await asyncio.to_thread(beats, sock, 1.5)  # classifying, then a live source with no events
        assert got.count(b"WATCHDOG=1") >= 5 and set(got) == {b"WATCHDOG=1"}
        assert pipe.counters.decisions > 0
        pipe._worker.submit(stuck.wait)  # a network worker that hangs
        await asyncio.to_thread(beats, sock, 0.25)  # the check under way may still beat (its probe ran)
        assert await asyncio.to_thread(beats, sock, 1.0) == []  # ten periods: no beat while it is stuck
        stuck.set()
        assert b"WATCHDOG=1" in await asyncio.to_thread(beats, sock, 10.0, until=b"WATCHDOG=1")  # beats again
    finally:
        stuck.set()
        pipe.stop()
        await asyncio.wait_for(run, 60)
    warned = [r.getMessage() for r in caplog.records if "no WATCHDOG=1 sent" in r.getMessage()]
    assert len(warned) == 1 and "worker thread has not answered" in warned[0]


async def test_watchdog_withholds_beats_while_windows_wait_and_none_is_decided(watchdog_env):
    from concurrent.futures import ThreadPoolExecutor

    from streamsnn.pipeline import Counters
    from streamsnn.pipeline.watchdog import watchdog

    sock = watchdog_env

    class Windows:
        waiting = 3

        def qsize(self):
            return self.waiting

    pipe = SimpleNamespace(_worker=ThreadPoolExecutor(1), counters=Counters(), windows=Windows())
    task = asyncio.create_task(watchdog(pipe, 0.1))
    try:
        assert await asyncio.to_thread(beats, sock, 0.8) == []  # windows wait, the decide stage finishes none

        async def decide_slowly():
            for _ in range(10):
                pipe.counters.decisions += 1
                await asyncio.sleep(0.05)
        decide = asyncio.create_task(decide_slowly())
        assert b"WATCHDOG=1" in await asyncio.to_thread(beats, sock, 0.5, until=b"WATCHDOG=1")  # slow, moving
        await decide
        pipe.windows.waiting = 0  # idle: nothing waits, nothing decided
        await asyncio.to_thread(beats, sock, 0.15)
        assert len(await asyncio.to_thread(beats, sock, 0.55)) >= 2
    finally:
        task.cancel()
        pipe._worker.shutdown()


def test_watchdog_only_when_systemd_asks_this_process():
    from streamsnn.pipeline.watchdog import watchdog_period

    me = str(os.getpid())
    assert watchdog_period({}) is None
    assert watchdog_period({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_period({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": me}) == 15.0
    assert watchdog_period({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None  # another process's
    assert watchdog_period({"WATCHDOG_USEC": "soon"}) is None and watchdog_period({"WATCHDOG_USEC": "0"}) is None


def test_the_unit_file_has_a_watchdog_and_does_not_restart_a_configuration_error():
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read(ROOT / "contrib" / "streamsnn.service")
    service = unit["Service"]
    assert service["Type"] == "notify" and service["Restart"] == "on-failure"
    assert 10 <= int(service["WatchdogSec"].removesuffix("s")) <= 120
    assert service["RestartPreventExitStatus"].split() == ["2"]


def test_the_daemon_sends_watchdog_beats_between_ready_and_stopping(tmp_path):
    address = str(tmp_path / "notify.sock")
    with datagram_socket(address) as sock:
        env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"}  # WatchdogSec=1s
        env.pop("WATCHDOG_PID", None)
        cmd = [sys.executable, "-m", "streamsnn", "run", str(ROOT / "pipelines" / "demo.toml"), "-q",
               "--set", "liveview.enabled=false", "--set", "mqtt.enabled=false", "--set", "model.hidden=32"]
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
        try:
            assert sock.recv(4096).split(b"\n")[0] == b"READY=1"
            got = [sock.recv(4096) for _ in range(3)]  # every 0.5 s while it classifies
            assert got == [b"WATCHDOG=1"] * 3
            proc.send_signal(signal.SIGTERM)
            while (msg := sock.recv(4096)) != b"STOPPING=1":  # beats may still come while it drains
                assert msg == b"WATCHDOG=1"
            assert proc.wait(60) == 0, proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
