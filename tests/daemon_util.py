"""Test helper: the daemon as users run it, `python -m streamsnn run PIPELINE --set ...` in a subprocess.

`Daemon(folder, pipeline, sets, name=, env=)`: `start()`, `await wait(timeout)` (the exit status; fails
the test with the log's tail when it does not exit), `signal(sig)`, `text()` (its output so far), `stop()`
(kill). The `daemons` fixture kills whatever a test left running.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from streamsnn.pipeline.stages import QuietSink  # noqa: F401 (the tests import it from here)


class Daemon:
    """`python -m streamsnn run PIPELINE --set ...` as a subprocess, its output in a log file."""

    def __init__(self, folder: Path, pipeline: Path, sets: dict, *, name: str = "daemon", env: dict | None = None):
        self.log = folder / f"{name}.log"
        self.env = env or {}
        self.cmd = [sys.executable, "-m", "streamsnn", "run", str(pipeline)]
        for k, v in sets.items():
            self.cmd += ["--set", f"{k}={str(v).lower() if isinstance(v, bool) else v}"]
        self.proc: subprocess.Popen | None = None

    def start(self) -> Daemon:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self._out = self.log.open("ab")
        self.proc = subprocess.Popen(self.cmd, stdout=self._out, stderr=subprocess.STDOUT, env=env, cwd=self.log.parent)
        return self

    async def wait(self, timeout: float = 180) -> int:
        try:
            return await asyncio.to_thread(self.proc.wait, timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"daemon did not exit within {timeout} s; log:\n{self.text()[-3000:]}")
        finally:
            self._out.close()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def daemons():
    started: list[Daemon] = []
    yield started
    for d in started:
        d.stop()


def stop_with_sigint(proc: subprocess.Popen, log: Path, what: str = "daemon") -> int:
    """Ctrl-C for a daemon or demo subprocess (if still running); its exit code. A process that does not stop
    within 60 s is killed and the test fails with the end of its log."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        # a stop still running 30 s after the signal has printed every thread's stack into the log
        pytest.fail(f"{what} did not stop on SIGINT; log:\n{log.read_text(errors='replace')[-12000:]}")


class ListSource:
    """Real batches handed over one by one, as a live source does; then, optionally, silence until closed.
    ``each(i, pipe)`` (a coroutine function) runs before batch i, with ``pipe`` as the test set it (to kill a
    worker, to wait)."""

    def __init__(self, batches, each=None, *, then_wait: bool = False, fail: Exception | None = None):
        self.batches, self.each, self.then_wait, self.fail = list(batches), each, then_wait, fail
        self.pipe = None
        self.closed = asyncio.Event()

    def __aiter__(self):
        return self._gen()

    async def _gen(self):
        for i, b in enumerate(self.batches):
            if self.each is not None:
                await self.each(i, self.pipe)
            await asyncio.sleep(0)
            yield b
        if self.fail is not None:
            raise self.fail
        if self.then_wait:
            await self.closed.wait()

    async def aclose(self):
        self.closed.set()


def worker_killer(at, killed: list, wait_s: float):
    """A ``ListSource`` ``each`` hook that kills the pipeline's first worker process (SIGKILL) before each batch
    index in ``at``, notes its pid in ``killed`` and waits ``wait_s`` seconds."""

    async def kill(i, pipe):
        if i in at and pipe.pool.pids():
            pid = pipe.pool.pids()[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            await asyncio.sleep(wait_s)

    return kill


async def live_replay_decisions(folder: Path, daemons: list, samples: list, ckpt: Path) -> tuple[list, int]:
    """Replay ``samples`` as one stream (an AEDAT4 recording) through `streamsnn run` at the live settings, as
    fast as possible, with the model ``ckpt`` and learning off; (the decisions it wrote as JSON lines, the
    stream's events)."""
    import json

    import numpy as np
    from conftest import ROOT
    from dataset_util import write_aedat4

    from streamsnn.learn.streameval import LIVE_HOP_US, LIVE_MIN_EVENTS, LIVE_WINDOW_US, make_stream

    events = np.concatenate([b.events for b in make_stream(samples).batches])
    rec = folder / "stream.aedat4"
    write_aedat4(rec, events, (34, 34))
    jsonl = folder / "decisions.jsonl"
    sets = {"source.path": rec, "source.split": "", "source.speed": 0, "segment.mode": "window",
            "segment.window_us": LIVE_WINDOW_US, "segment.hop_us": LIVE_HOP_US,
            "segment.min_events": LIVE_MIN_EVENTS, "model.checkpoint": ckpt, "model.learn_from_labels": False,
            "model.learn_from_feedback": False, "model.save_every_s": 0, "mqtt.enabled": False,
            "console.enabled": False, "jsonl.path": jsonl, "pipeline.policy": "block"}
    d = Daemon(folder, ROOT / "pipelines" / "nmnist-replay.toml", sets)
    daemons.append(d.start())
    assert await d.wait(120) == 0, d.text()[-3000:]
    return [json.loads(x) for x in jsonl.read_text().splitlines()], len(events)
