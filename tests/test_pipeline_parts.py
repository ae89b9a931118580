"""The pipeline's parts on their own (feedback teacher, class growth, metrics, checkpoints, settings) and the
smaller points of issue 18: `-v` gives debug logging, received MQTT messages that do not fit are counted in
our own bounded queue, the metrics carry no dead queue depth."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from daemon_util import QuietSink
from mqtt_util import mosquitto  # noqa: F401 (fixture)

from streamsnn.config import build_config
from streamsnn.errors import ConfigError
from streamsnn.events import EVENT_DTYPE, EventBatch
from streamsnn.mqtt import MqttSettings
from streamsnn.mqtt.connection import Connection
from streamsnn.pipeline import (
    BoundedQueue,
    Checkpoints,
    Counters,
    Growth,
    Metrics,
    Pipeline,
    PipelineSettings,
    Teacher,
)
from streamsnn.pipeline.feedback import MAX_CLASSES, MAX_FEEDBACK_BYTES, Recent
from streamsnn.pipeline.outputs import Outputs
from streamsnn.pipeline.segment import Segmenter, Window
from streamsnn.pipeline.stages import Classifier, Sink
from streamsnn.snn import SpikingNetwork
from streamsnn.snn.network import Decision


class TinyNet:
    """A `stages.Classifier` that decides class 0 and records what it is taught, added and asked to save."""

    def __init__(self, classes=("cup", "mug", "pen"), *, save_fails: bool = False):
        self.classes = list(classes)
        self.samples_seen = self.events_seen = self.updates = 0
        self.taught: list[tuple] = []
        self.boosts: list[float] = []
        self.save_fails = save_fails

    @property
    def sizes(self) -> tuple[int, ...]:
        return (4, len(self.classes))

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def model_version(self) -> str:
        return f"v{self.updates}"

    @property
    def progressive_accuracy(self) -> float | None:
        return 0.5 if self.updates else None

    def predict_one(self, batch) -> Decision:
        return Decision(0, np.zeros(self.n_classes, np.float32), 1.0, len(batch))

    def learn_one(self, batch, label, *, prediction=None, lr_scale=1.0) -> Decision:
        self.taught.append((label, prediction, lr_scale))
        self.updates += 1
        return self.predict_one(batch)

    def add_class(self, name, *, bias=None, lr_boost=1.0) -> int:
        self.classes.append(name)
        self.boosts.append(lr_boost)
        self.updates += 1
        return len(self.classes) - 1

    def save(self, path) -> None:
        if self.save_fails:
            raise OSError("No space left on device\nsecond line")
        Path(path).write_text(self.model_version)


async def direct(fn, *args):
    """`in_worker` for tests: run at once."""
    return fn(*args)


def window(i: int, *, label=None, predicted=0) -> Window:
    return Window(EventBatch(np.zeros(3, EVENT_DTYPE), 34, 34), i * 100, i * 100 + 50, sample=f"s{i}", label=label,
                  predicted=predicted)


def teacher(net=None, *, n_windows: int = 4, clock=None, **settings):
    net = net or TinyNet()
    counters, recent, lists = Counters(), Recent(16), []
    for i in range(n_windows):
        recent.add(window(i))
    s = PipelineSettings(**settings)
    growth = Growth(net, counters, enabled=s.new_classes, max_classes=s.max_classes, lr_boost=s.new_class_lr)
    t = Teacher(net, recent, counters, s, growth, direct, lists.append, *([clock] if clock else []))
    return t, net, counters, lists


# -- cli: -v ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("args,level", [([], logging.INFO), (["-v"], logging.DEBUG), (["-vv"], logging.DEBUG)])
def test_verbose_flag_gives_debug_logging(args, level):
    code = ("import logging, sys; from streamsnn.cli import main; rc = main(sys.argv[1:]); "
            "print(rc, logging.getLogger().level)")
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60,
                         env=os.environ.copy())
    assert out.stdout.split()[-2:] == ["2", str(level)], out.stderr  # no command: help, exit 2


def test_run_quiet_still_logs_warnings_only_even_with_verbose(tmp_path):
    pipeline = tmp_path / "p.toml"
    pipeline.write_text(f'[source]\nkind = "replay"\npath = "{tmp_path / "absent"}"\n[mqtt]\nenabled = false\n')
    code = ("import logging, sys; from streamsnn.cli import main; rc = main(sys.argv[1:]); "
            "print(rc, logging.getLogger().level)")
    out = subprocess.run([sys.executable, "-c", code, "-v", "run", "-q", str(pipeline)], capture_output=True,
                         text=True, timeout=60, env=os.environ.copy())
    assert out.stdout.split()[-2:] == ["2", str(logging.WARNING)]  # the missing dataset: exit 2, at WARNING
    assert "absent does not exist" in out.stderr


# -- MQTT: received messages beyond mqtt.incoming ---------------------------------------------------
async def test_received_messages_that_do_not_fit_are_dropped_and_counted_by_us(mosquitto, caplog):  # noqa: F811
    s = MqttSettings(host="127.0.0.1", port=mosquitto.port, node_id="drops", incoming=3, reconnect_min=0.2)
    conn = Connection(s, client_id="drops-in")
    kept = []

    async def session(client) -> bool:
        await client.subscribe("drops/t", qos=1)
        for i in range(10):  # nobody reads meanwhile
            await client.publish("drops/t", str(i).encode(), qos=1)
        while conn.incoming_dropped < 7:
            await asyncio.sleep(0.02)
        async for m in client.messages:
            kept.append(m.payload)
            if len(kept) == 3:
                return True
        return True

    with caplog.at_level(logging.DEBUG):
        await asyncio.wait_for(conn.run(session), 30)
    assert conn.incoming_dropped == 7 and kept == [b"0", b"1", b"2"]  # the first that fit are kept, in order
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 5 and all("received MQTT message dropped" in r.getMessage() for r in warned)
    assert not [r for r in caplog.records if r.name == "streamsnn.mqtt.protocol" and "queue is full" in r.getMessage()]


# -- settings ---------------------------------------------------------------------------------------
def test_settings_are_checked_when_made():
    assert PipelineSettings().max_feedback_bytes == MAX_FEEDBACK_BYTES
    for bad in (dict(feedback_lr_scale=-0.1), dict(new_class_lr=0), dict(metrics_every_s=0),
                dict(feedback_per_s=math.inf), dict(save_every_s=math.nan), dict(max_classes=1),
                dict(max_classes=MAX_CLASSES + 1)):
        with pytest.raises(ConfigError):
            PipelineSettings(**bad)


def test_settings_come_from_the_configuration_in_one_place(tmp_path):
    cfg = build_config({"pipeline": {"queue_size": 3, "policy": "drop_oldest", "metrics_every_s": 2.5},
                        "model": {"recent": 7, "feedback_per_s": 0.5, "feedback_burst": 2, "new_classes": True,
                                  "max_classes": 12, "new_class_lr": 5.0, "feedback_lr_scale": 0.3,
                                  "learn_from_labels": False, "save_every_s": 60.0}})
    s = PipelineSettings.from_config(cfg, checkpoint=tmp_path / "m.npz", max_feedback_bytes=999)
    assert (s.queue_size, s.policy, s.metrics_every_s, s.recent, s.feedback_per_s, s.feedback_burst) == \
        (3, "drop_oldest", 2.5, 7, 0.5, 2)
    assert (s.new_classes, s.max_classes, s.new_class_lr, s.feedback_lr_scale, s.learn_from_labels) == \
        (True, 12, 5.0, 0.3, False)
    assert (s.checkpoint, s.save_every_s, s.max_feedback_bytes) == (tmp_path / "m.npz", 60.0, 999)


def test_keyword_arguments_are_the_same_settings():
    net = TinyNet()
    by_kw = Pipeline(None, net, [], feedback_per_s=2.0, max_classes=8, queue_size=5)
    given = Pipeline(None, net, [], PipelineSettings(feedback_per_s=2.0, max_classes=8, queue_size=5))
    assert by_kw.settings == given.settings and by_kw.teacher.bucket.rate == 2.0 and by_kw.growth.max_classes == 8
    with pytest.raises(TypeError):
        Pipeline(None, net, [], no_such_setting=1)
    for p in (by_kw, given):
        p._worker.shutdown()


# -- the Classifier and Sink protocols ----------------------------------------------------------------
def test_the_network_and_the_test_double_are_classifiers():
    assert isinstance(SpikingNetwork((2312, 32, 10), seed=1), Classifier)
    assert isinstance(TinyNet(), Classifier)


def test_every_sink_has_every_method_of_the_sink_protocol():
    from streamsnn.mqtt.sink import MqttSink
    from streamsnn.sinks.console import ConsoleSink
    from streamsnn.sinks.jsonl import JsonlSink
    from streamsnn.web.view import LiveView

    methods = ("publish_decision", "publish_metrics", "publish_classes", "check", "flush", "close")
    for cls in (ConsoleSink, JsonlSink, MqttSink, LiveView):
        assert [m for m in methods if not callable(getattr(cls, m, None))] == [], cls.__name__
    assert isinstance(ConsoleSink(decisions=False), Sink)


def test_a_sink_without_publish_classes_is_isolated_like_one_that_raises():
    class Old:  # an older custom sink, written before publish_classes was in the protocol
        def publish_metrics(self, m):
            pass

    class Keep(QuietSink):
        def __init__(self):
            self.lists = []

        def publish_classes(self, classes):
            self.lists.append(classes)

    keep = Keep()
    out = Outputs([Old(), keep])
    out.classes(("a", "b"))
    assert keep.lists == [("a", "b")] and out.counters()["sink_errors"] == {"old": 1}


# -- teacher ---------------------------------------------------------------------------------------
async def test_teacher_learns_a_decision_once_scoring_the_published_prediction():
    t, net, c, _ = teacher(feedback_lr_scale=0.25)
    assert await t.apply({"sample": "s1", "label": "mug"}) is True
    assert net.taught == [(1, 0, 0.25)]  # the label, the prediction published for the window, the scale
    assert await t.apply({"sample": "s1", "label": 2}) is False  # taught already
    assert await t.apply(b"{not json") is False
    assert c.feedback == {**c.feedback, "received": 3, "learned": 1, "ignored": 2, "duplicate": 1, "bad_json": 1}
    assert (c.feedback_scored, c.feedback_correct) == (1, 0)  # the published 0 was wrong: it was "mug"
    t.enabled = False
    assert await t.apply({"sample": "s2", "label": 0}) is False and c.feedback["disabled"] == 1
    assert len(net.taught) == 1


async def test_teacher_rate_limit_and_its_loop_survive_any_message():
    now = [0.0]
    t, net, c, _ = teacher(n_windows=6, feedback_per_s=1.0, feedback_burst=2, clock=lambda: now[0])
    queue: asyncio.Queue = asyncio.Queue()
    for i in range(4):
        queue.put_nowait({"sample": f"s{i}", "label": 1})
    queue.put_nowait(object())  # not a message at all
    task = asyncio.create_task(t.loop(queue))
    try:
        while queue.qsize():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)
        assert len(net.taught) == 2 and c.feedback["rate_limited"] == 2
        now[0] = 1.0  # a second later: one more token
        queue.put_nowait({"sample": "s5", "label": 1})
        while len(net.taught) < 3:
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert c.feedback["received"] == 6 and c.feedback["ignored"] == 3


async def test_teacher_asks_growth_for_a_new_class_and_sends_the_class_list_at_once():
    t, net, c, lists = teacher(new_classes=True, max_classes=4, new_class_lr=7.0, feedback_per_s=0)
    assert await t.apply({"sample": "s0", "label": "lamp"}) is True
    assert net.classes == ["cup", "mug", "pen", "lamp"] and net.boosts == [7.0] and net.taught[0][0] == 3
    assert lists == [("cup", "mug", "pen", "lamp")] and c.classes_added == 1
    assert await t.apply({"sample": "s1", "label": "book"}) is False  # max_classes reached
    assert c.feedback["unknown_class"] == 1 and net.classes[-1] == "lamp"


# -- growth ----------------------------------------------------------------------------------------
def test_growth_adds_a_class_once_within_its_bound(caplog):
    net, c = TinyNet(), Counters()
    off = Growth(net, c, enabled=False, max_classes=8, lr_boost=3.0)
    assert not off.may_add()
    g = Growth(net, c, enabled=True, max_classes=4, lr_boost=3.0)
    assert g.may_add()
    with caplog.at_level(logging.INFO):
        assert g.add("Lamp") == ("cup", "mug", "pen", "Lamp")
    assert g.add("lamp") == ("cup", "mug", "pen", "Lamp")  # the same class (any case): added meanwhile
    assert c.classes_added == 1 and net.boosts == [3.0] and not g.may_add()
    assert "added class 'Lamp' (output 3; now 4 classes of at most 4)" in caplog.text
    from streamsnn.pipeline.feedback import Refused
    said = g.refusal(Refused("unknown_class", "no class 'book'"))
    assert said.reason == "unknown_class" and "model.max_classes = 4" in str(said)
    assert str(off.refusal(Refused("unknown_class", "no class 'book'"))) == "no class 'book'"


# -- metrics ---------------------------------------------------------------------------------------
class Recorder(QuietSink):
    def __init__(self, *, flush_fails: bool = False):
        self.metrics, self.order, self.flush_fails = [], [], flush_fails

    def publish_metrics(self, m) -> None:
        self.metrics.append(m)
        self.order.append("metrics")

    async def flush(self, timeout=None) -> bool:
        self.order.append("flush")
        if self.flush_fails:
            raise OSError("pipe closed")
        return True


def metrics(sinks=(), **kw):
    now = [10.0]
    c, net = Counters(), TinyNet()
    m = Metrics(c, net, BoundedQueue(4), Segmenter(), Outputs(list(sinks)), clock=lambda: now[0], **kw)
    return m, c, net, now


async def test_metrics_count_the_run_and_the_model_and_no_dead_queue():
    m, c, net, now = metrics(extra=lambda: {"source": {"packets": 3}})
    await m.windows.put("w")
    c.events_in, c.decisions, c.labelled, c.correct, c.feedback_scored, c.feedback_correct = 500, 4, 4, 3, 2, 1
    now[0] = 12.0
    snap = m.snapshot()
    assert snap["queues"] == {"windows": 1}  # decisions go straight to the sinks: there is no decision queue
    assert (snap["events_per_s"], snap["accuracy"], snap["feedback_accuracy"]) == (250.0, 0.75, 0.5)
    assert (snap["classes"], snap["model_version"], snap["source"]) == (3, "v0", {"packets": 3})
    assert snap["feedback"]["received"] == 0 and snap["sink_errors"] == {}
    assert (snap["nonfinite"], snap["lr_backoff"]) == (0, 1.0)  # a run-away network is seen in the metrics
    net.nonfinite, net.lr_backoff, net.silent_windows = 3, 0.125, 7
    assert (m.snapshot()["nonfinite"], m.snapshot()["lr_backoff"], m.snapshot()["silent_windows"]) == (3, 0.125, 7)
    assert (snap["revivals"], snap["labels_stopped"], snap["scene_changes"]) == (0, False, 0)
    net.revivals, net.labels_stopped, net.scene_changes = 2, True, 5
    assert (m.snapshot()["revivals"], m.snapshot()["labels_stopped"], m.snapshot()["scene_changes"]) == (2, True, 5)
    now[0] = 13.0
    assert m.snapshot()["events_per_s"] == 0.0  # the rate since the previous snapshot


async def test_final_metrics_come_after_every_flush_even_a_failing_one(caplog):
    good, bad = Recorder(), Recorder(flush_fails=True)
    m, *_ = metrics([bad, good])
    await m.final(0.1)
    assert bad.order == ["flush", "metrics"] and good.order == ["flush", "metrics"]
    assert "did not flush: OSError: pipe closed" in caplog.text


async def test_the_metrics_loop_goes_on_after_a_failure():
    calls = []

    def extra():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("once")
        return {}

    sink = Recorder()
    m, *_ = metrics([sink], extra=extra)
    task = asyncio.create_task(m.loop(0.01))
    try:
        while not sink.metrics:
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert len(calls) >= 2


# -- checkpoints -----------------------------------------------------------------------------------
async def test_checkpoints_save_count_and_survive_a_failure(tmp_path, caplog):
    c, net = Counters(), TinyNet()
    ck = Checkpoints(net, tmp_path / "sub" / "m.npz", c, direct)
    assert await ck.save_logged("periodic") is True and (tmp_path / "sub" / "m.npz").read_text() == "v0"
    net.updates, net.save_fails = 5, True
    assert await ck.save_logged("at exit") is False
    assert (c.checkpoints, c.checkpoint_errors) == (1, 1)
    assert (tmp_path / "sub" / "m.npz").read_text() == "v0"  # the file already there is kept
    line = [r.getMessage() for r in caplog.records if "checkpoint not saved" in r.getMessage()]
    assert line == ["checkpoint not saved (at exit): No space left on device"]
    with pytest.raises(OSError):
        await ck.save()  # save() itself raises: the caller decides


async def test_checkpoints_loop_saves_periodically(tmp_path):
    c, net = Counters(), TinyNet()
    task = asyncio.create_task(Checkpoints(net, tmp_path / "m.npz", c, direct).loop(0.01))
    try:
        while c.checkpoints < 3:
            net.updates += 1
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert (tmp_path / "m.npz").exists() and c.checkpoint_errors == 0
