"""The first hour of a new user, each friction found when trying it: a closed pipe, a taken port 1883, health
checks on the embedded broker, configuration errors before anything starts."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import need

from streamsnn.errors import ConfigError
from streamsnn.mqtt.broker import EmbeddedBroker

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "streamsnn"]


def test_check_into_a_closed_pipe_ends_quietly(tmp_path):
    # `streamsnn run ... --check | head`: the reader is gone before we write
    proc = subprocess.Popen([*CLI, "run", str(ROOT / "pipelines" / "nmnist-replay.toml"), "--check"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 141, err  # as a process ended by SIGPIPE
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err


def listening_socket() -> socket.socket:
    """A port taken the way a running Mosquitto takes 1883."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def test_a_taken_port_is_one_line_with_the_hint_and_no_amqtt_traceback(tmp_path):
    with listening_socket() as taken:
        port = taken.getsockname()[1]
        out = subprocess.run([*CLI, "run", str(ROOT / "pipelines" / "nmnist-replay.toml"), "--set", f"mqtt.port={port}",
                              "--set", f"source.path={need('nmnist_small')}", "--set", "model.checkpoint="],
                             capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f"streamsnn: error: cannot start the embedded MQTT broker: 127.0.0.1:{port} is already "
                           "in use")
    assert "mqtt.port" in last and "mqtt.broker" in last
    assert "Traceback" not in out.stderr and "amqtt" not in out.stderr


async def test_a_connection_that_closes_without_data_is_no_error(caplog):
    caplog.set_level(logging.DEBUG)
    async with EmbeddedBroker(port=0) as broker:
        import asyncio

        for _ in range(3):  # a health check: connect, close
            _, writer = await asyncio.open_connection("127.0.0.1", broker.port)
            writer.close()
            await writer.wait_closed()
        await asyncio.sleep(0.5)
        with pytest.raises(ConfigError, match="already in use"):
            await EmbeddedBroker(port=broker.port).start()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


@pytest.mark.parametrize("pipeline, sets, says, first", [
    ("live-camera.toml", [], "no iniVation camera found", False),  # a live source opens after the model loads
    ("nmnist-replay.toml", ["source.split=tain"], "tain", True),
    ("nmnist-replay.toml", ["source.path=/no/such/folder"], "/no/such/folder", True),
    # a checkpoint that can never be written: every save failed (logged) and all learning was lost at the end
    ("nmnist-replay.toml", ["model.checkpoint=afile/m.npz"], "cannot create its folder afile", True),
    ("nmnist-replay.toml", ["model.checkpoint=pipe.npz"], "pipe.npz: it is not a regular file", True),
    ("nmnist-replay.toml", ["model.checkpoint=/proc/streamsnn.npz"], "cannot create a file in /proc", True),
    # a card model's region of a 128x128 sensor replaying 34x34 digits: it skipped every window and exited 0
    ("nmnist-replay.toml", ["model.checkpoint=cards.npz"], "34x34 sensor, but the model reads the region", False),
    # the same model on the synthetic gesture camera (64x64): it ran forever with 0 decisions
    ("demo.toml", ["source.path=gestures", "model.checkpoint=cards.npz", "liveview.port=0"],
     "the synthetic camera: 64x64 sensor, but the model reads the region", False),
])
def test_configuration_errors_come_before_the_broker_starts(tmp_path, pipeline, sets, says, first):
    if "split" in " ".join(sets):
        sets = [*sets, f"source.path={need('nmnist_small')}"]
    (tmp_path / "afile").write_text("")
    os.mkfifo(tmp_path / "pipe.npz")
    from streamsnn.snn import InputMap, SpikingNetwork

    SpikingNetwork(arch="dense:8", input_map=InputMap(sensor=(128, 128), roi=(90, 90, 34, 34), grid=(34, 34, 2)),
                   classes=["club", "heart"]).save(tmp_path / "cards.npz")
    cmd = [*CLI, "run", str(ROOT / "pipelines" / pipeline), "--set", "mqtt.port=0"]
    for s in sets:
        cmd += ["--set", s]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert lines[-1].startswith("streamsnn: error: ") and says in lines[-1]
    assert not any("broker" in line or "publishing" in line for line in lines[:-1]), out.stderr  # no broker
    assert first == (not any("model:" in line for line in lines)), out.stderr  # a dataset: checked before all
