"""Running as a systemd service: sd_notify over $NOTIFY_SOCKET (a path and the abstract namespace), READY=1 from
a real daemon once it classifies and STOPPING=1 when SIGTERM ends it; the shipped unit file's settings."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

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
    readme = (ROOT / "README.md").read_text()
    assert "contrib/streamsnn.service" in readme and "NOTIFY_SOCKET" in readme
