"""Outputs that fail or block (issue 17, items 3 and 5): a FIFO nobody reads never holds up start-up or SIGTERM,
a failing sink is counted, logged once per interval and retried while the others go on, a path that can never
work is one line and exit 2, and JSON lines stay strict JSON when a score is not finite."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import select
import signal
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from daemon_util import Daemon, QuietSink, daemons  # noqa: F401 (fixture)
from mqtt_util import Collector, mosquitto  # noqa: F401 (fixture)

from streamsnn.errors import ConfigError
from streamsnn.events import EventBatch
from streamsnn.pipeline import Pipeline
from streamsnn.pipeline.outputs import Outputs
from streamsnn.pipeline.segment import Window
from streamsnn.pipeline.stages import DecisionInfo
from streamsnn.sinks.jsonl import JsonlSink
from streamsnn.snn.network import Decision

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "pipelines" / "demo.toml"  # font digits filmed live: no dataset needed


def demo_sets(**extra) -> dict:
    sets = {"liveview.enabled": False, "mqtt.enabled": False, "model.hidden": 32, "console.decisions": False,
            "pipeline.metrics_every_s": 0.5}
    sets.update({k.replace("__", "."): v for k, v in extra.items()})
    return sets


def strict_json(line: str):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(line, parse_constant=refuse)


def decision(scores=(0.1, 0.7, 0.2), label=1, confidence=0.7) -> tuple:
    from streamsnn.events import EVENT_DTYPE

    w = Window(EventBatch(np.zeros(0, EVENT_DTYPE), 34, 34), 0, 1000, "s0", None)
    d = Decision(label, np.asarray(scores, dtype=np.float32), confidence, 10)
    return w, d, DecisionInfo(0.1, 0.2, "v1", ("a", "b", "c"))


async def wait_until(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


# -- item 3: an output that blocks ------------------------------------------------------------------
async def test_a_fifo_nobody_reads_does_not_hold_up_the_daemon_or_sigterm(tmp_path, daemons):
    fifo = tmp_path / "decisions.fifo"
    os.mkfifo(fifo)
    d = Daemon(tmp_path, DEMO, demo_sets(jsonl__path=fifo))
    daemons.append(d.start())
    # before the fix the daemon blocked in open() here, deaf to SIGTERM and Ctrl-C
    await wait_until(lambda: "FIFO nobody reads" in d.text() or d.proc.poll() is not None, 60, "the FIFO line")
    await wait_until(lambda: "output jsonl failed" in d.text() or d.proc.poll() is not None, 30, "a decision")
    d.signal(signal.SIGTERM)
    assert await d.wait(20) == 0
    line = next(x for x in d.text().splitlines() if "FIFO nobody reads" in x)
    assert str(fifo) in line


def test_a_slow_fifo_reader_gets_whole_lines_and_never_blocks_the_writer(tmp_path):
    fifo = tmp_path / "slow.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader that does not read yet
    try:
        sink = JsonlSink(fifo, max_pending=256 * 1024)
        w, d, info = decision(scores=np.linspace(0, 1, 100))
        refused = 0
        for _ in range(3000):  # far more than the pipe (64 KiB) and the pending bound hold: never blocks
            try:
                sink.publish_decision(w, d, info)
            except BlockingIOError:
                refused += 1
        assert refused > 0 and len(sink._pending) <= 256 * 1024
        data = b""
        while True:  # the reader catches up: every line it gets is whole
            r, _, _ = select.select([reader], [], [], 0.2)
            chunk = os.read(reader, 1 << 16) if r else b""
            if not chunk:
                try:
                    sink._write()
                except BlockingIOError:
                    pass
                r, _, _ = select.select([reader], [], [], 0.2)
                if not r:
                    break
                continue
            data += chunk
        lines = data.decode().splitlines()
        assert data.endswith(b"\n") and len(lines) == 3000 - refused
        assert all(strict_json(x)["label"] == 1 for x in lines)
        asyncio.run(sink.close())
    finally:
        os.close(reader)


# -- item 5: an output that fails ---------------------------------------------------------------------
async def test_dev_full_as_jsonl_path_is_counted_and_mqtt_still_gets_every_decision(tmp_path, mosquitto, daemons):
    node = "fullsink"
    sets = demo_sets(jsonl__path="/dev/full", mqtt__enabled=True, mqtt__broker="127.0.0.1",
                     mqtt__port=mosquitto.port, pipeline__node_id=node)
    async with Collector(mosquitto.port, f"streamsnn/{node}/#") as col:
        d = Daemon(tmp_path, DEMO, sets)
        daemons.append(d.start())

        def metrics(msgs):
            return [json.loads(p) for t, p, _ in msgs if t == f"streamsnn/{node}/metrics"]

        def enough(msgs):  # before the fix the daemon ended (exit 1) after its first decision
            m = metrics(msgs)
            return bool(m) and m[-1]["decisions"] >= 20 and m[-1].get("sink_errors", {}).get("jsonl", 0) >= 2
        await col.wait_for(enough, timeout=90)
        assert d.proc.poll() is None
        d.signal(signal.SIGTERM)
        assert await d.wait(60) == 0
    decisions = col.payloads(f"streamsnn/{node}/classification")
    last = metrics(col.messages)[-1]
    assert len(decisions) >= 20 and last["decisions"] == len(decisions)  # MQTT got every decision
    assert last["sink_errors"]["jsonl"] >= 2 and last["sink_skipped"]["jsonl"] >= 1  # tried again, in a backoff
    log = d.text()
    assert log.count("output jsonl failed") == 1  # once per minute, not once per decision
    assert "this is a defect" not in log


@pytest.mark.parametrize("kind", ["folder", "parent is a file", "socket"])
def test_a_jsonl_path_that_can_never_work_is_one_config_error(tmp_path, kind):
    if kind == "folder":
        path = tmp_path
    elif kind == "parent is a file":
        (tmp_path / "file").write_text("x")
        path = tmp_path / "file" / "d.jsonl"
    else:
        path = tmp_path / "s.sock"
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
    with pytest.raises(ConfigError) as err:
        JsonlSink(path)
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg and msg.startswith("jsonl.path")


async def test_a_folder_as_jsonl_path_ends_the_daemon_with_one_line_and_exit_2(tmp_path, daemons):
    d = Daemon(tmp_path, DEMO, demo_sets(jsonl__path=tmp_path))
    daemons.append(d.start())
    assert await d.wait(120) == 2
    out = d.text()
    assert "Traceback" not in out
    errors = [x for x in out.splitlines() if x.startswith("streamsnn: error:")]
    assert errors == [f"streamsnn: error: jsonl.path {tmp_path} is a folder; name a file in it, "
                      f"e.g. {tmp_path / 'decisions.jsonl'}"]


def test_jsonl_lines_are_strict_json_when_scores_are_not_finite(tmp_path):
    out = tmp_path / "d.jsonl"
    sink = JsonlSink(out, metrics=True)
    w, d, info = decision(scores=(np.nan, np.inf, -np.inf), confidence=float("nan"))
    sink.publish_decision(w, d, info)
    sink.publish_metrics({"accuracy": float("inf"), "nested": [1.0, float("nan")]})
    sink.publish_decision(*decision())
    asyncio.run(sink.close())
    rows = [strict_json(x) for x in out.read_text().splitlines()]  # before the fix: bare NaN, not JSON
    assert rows[0]["scores"] == [None, None, None] and rows[0]["confidence"] is None
    assert rows[1] == {"metrics": {"accuracy": None, "nested": [1.0, None]}}
    assert rows[2]["scores"] == pytest.approx([0.1, 0.7, 0.2]) and sink.nonfinite == 2


class _Broken(QuietSink):
    """A sink whose writes fail for its first `fail` calls (a full disk), then work."""

    def __init__(self, fail: int):
        self.fail, self.calls, self.got = fail, 0, []

    def publish_decision(self, window, decision, info) -> None:
        self.calls += 1
        if self.calls <= self.fail:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.got.append(window.t_end_us)


class _Keep(QuietSink):
    def __init__(self):
        self.got = []

    def publish_decision(self, window, decision, info) -> None:
        self.got.append(window.t_end_us)


def test_a_failing_sink_is_left_out_for_a_backoff_logged_once_per_interval_and_retried(caplog):
    now = [0.0]
    broken, keep = _Broken(fail=5), _Keep()
    outputs = Outputs([broken, keep], clock=lambda: now[0], backoff_s=(1.0, 4.0), log_every_s=60.0)
    w, d, info = decision()
    with caplog.at_level(logging.WARNING, logger="streamsnn.pipeline.outputs"):
        for step in range(200):  # 20 s of decisions at 10 a second
            now[0] = step * 0.1
            outputs.decision(w, d, info)
    assert len(keep.got) == 200  # the other sink got every decision
    c = outputs.counters()
    assert c["sink_errors"] == {"_broken": 5}  # tried at 0, 1, 3, 7, 11 s (backoff 1, 2, 4, 4 s) ...
    assert c["sink_skipped"]["_broken"] + 5 + len(broken.got) == 200  # ... then works again at 15 s
    assert len(broken.got) == 200 - 150
    lines = [r.getMessage() for r in caplog.records]
    assert sum("failed" in x for x in lines) == 1 and sum("works again" in x for x in lines) == 1


async def test_a_raising_sink_does_not_stop_the_pipeline_but_a_fatal_check_still_does(recordings_dir):
    from streamsnn.io import read_events
    from streamsnn.pipeline.segment import Segmenter
    from streamsnn.snn import SpikingNetwork

    rec = read_events(recordings_dir / "tonic_sample.aedat4")

    class Source:
        def __aiter__(self):
            return self._gen()

        async def _gen(self):
            for b in rec.split_time(10_000):
                await asyncio.sleep(0)
                yield b

        async def aclose(self):
            pass

    broken, keep = _Broken(fail=10**9), _Keep()
    pipe = Pipeline(Source(), SpikingNetwork((2312, 32, 10), seed=2), [broken, keep],
                    segmenter=Segmenter("window"), metrics_every_s=60)
    counters = await asyncio.wait_for(pipe.run(), 120)  # before the fix: StageFailed after one decision
    assert counters.decisions == len(keep.got) >= 10
    assert pipe.metrics()["sink_errors"]["_broken"] >= 1

    class Refused(_Keep):  # the MQTT sink's way to end the run: check() raises its fatal error
        def check(self):
            if self.got:
                raise ConfigError("mqtt: the broker refused the login")

    pipe = Pipeline(Source(), SpikingNetwork((2312, 32, 10), seed=2), [Refused()],
                    segmenter=Segmenter("window"), metrics_every_s=60)
    with pytest.raises(ConfigError, match="refused the login"):
        await asyncio.wait_for(pipe.run(), 120)
