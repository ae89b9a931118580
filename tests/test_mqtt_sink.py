"""MqttSink on a real Mosquitto: delivery, status and last will, outages, overflow, class names, feedback, metrics."""

import asyncio
import json
import logging
import signal
import time

import numpy as np
import pytest
from mqtt_util import Collector, Mosquitto, free_port, mosquitto, spawn_sink  # noqa: F401 (fixture)

from streamsnn.errors import ConfigError
from streamsnn.events import EventBatch, make_events
from streamsnn.mqtt.schema import FIELDS, SCHEMA_VERSION, classification_payload
from streamsnn.mqtt.settings import MqttSettings
from streamsnn.mqtt.sink import MqttSink
from streamsnn.pipeline.feedback import Message
from streamsnn.pipeline.segment import Window
from streamsnn.pipeline.stages import DecisionInfo
from streamsnn.snn.network import Decision

CLASSES = tuple(f"class{k}" for k in range(10))


def settings(broker, **kw) -> MqttSettings:
    kw.setdefault("node_id", "testnode")
    kw.setdefault("reconnect_min", 0.2)
    kw.setdefault("reconnect_max", 1.0)
    return MqttSettings(host="127.0.0.1", port=broker.port, **kw)


def decision_ids(collector: Collector, topic: str) -> list[str]:
    return [json.loads(p)["sample"] for p in collector.payloads(topic)]


def window(sample: str | None, t0: int = 1000, t1: int = 11000, label: int | None = None, **meta) -> Window:
    ev = make_events(np.array([t0, t1 - 1]), np.array([1, 2]), np.array([3, 4]), np.array([1, 0]))
    batch = EventBatch(ev, 34, 34, sample=sample, label=label, source="test", meta=meta)
    return Window(batch, t0, t1, sample=sample, label=label, source="test")


def payload(i: int) -> tuple:
    """The (window, decision, info) a pipeline hands its sinks for decision i."""
    d = Decision(label=i % 10, scores=np.linspace(0, 1, 10), confidence=0.5, events=100 + i, spikes=(3, 4))
    return window(str(i), label=(i + 1) % 10), d, DecisionInfo(1.0, 0.5, "v1", CLASSES)


def test_classification_payload_schema():
    d = Decision(label=3, scores=np.array([0.1, 0.2, 0.9], dtype=np.float32), confidence=0.7, events=4681,
                 spikes=(10, 2))
    info = DecisionInfo(queue_ms=2.0, compute_ms=0.25, model_version="abc",
                        classes=("club", "diamond", "heart", "spade"), feed_ms=0.5)
    p = classification_payload(window(None), d, info, node_id="n")
    assert set(p) == set(FIELDS) and p["schema"] == SCHEMA_VERSION == 3
    assert (p["label"], p["label_name"], p["events"]) == (3, "spade", 4681)
    assert (p["t_start_us"], p["t_end_us"]) == (1000, 11000)
    assert p["scores"] == pytest.approx([0.1, 0.2, 0.9]) and p["sample"] is None and p["true_label"] is None
    assert p["spikes"] == [10, 2] and p["true_label_name"] is None
    assert (p["queue_ms"], p["feed_ms"], p["compute_ms"]) == (2.0, 0.5, 0.25) and p["latency_ms"] >= 0  # a new window
    assert info.latency_ms == 2.75  # the wait, feeding its last events, and the readout
    json.dumps(p)  # plain JSON types only
    # a replayed sample carries its true class by name (the dataset's); else the model's name for it
    p = classification_payload(window("7", label=1, label_name="diamond"), d, info, node_id="n")
    assert (p["sample"], p["true_label"], p["true_label_name"]) == ("7", 1, "diamond")
    p = classification_payload(window("7", label=0), d, DecisionInfo(0, 0, "v", ()), node_id="n")
    assert (p["label_name"], p["true_label_name"]) == ("3", "0")  # a model without names: the index as text


def test_settings_validation_and_repr():
    s = MqttSettings(node_id="cam1", username="u", password="hunter2-secret")
    assert s.prefix == "streamsnn/cam1" and s.topic("status") == "streamsnn/cam1/status"
    assert "hunter2-secret" not in repr(s) and "***" in repr(s)
    for kw, key in [({"qos": 3}, "mqtt.qos"), ({"port": 0}, "mqtt.port"), ({"prefix": "a/#"}, "mqtt.prefix"),
                    ({"outbox_size": 0}, "mqtt.outbox_size"), ({"node_id": "a/b"}, "mqtt.node_id"),
                    ({"password": "x"}, "mqtt.password"), ({"tls": {"ca_file": "/nonexistent/ca.crt"}},
                                                           "mqtt.tls.ca_file"),
                    ({"tls": {"cafile": "x"}}, "mqtt.tls")]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            MqttSettings(**kw)


async def test_decisions_status_and_clean_offline(mosquitto):
    s = settings(mosquitto)
    async with Collector(mosquitto.port, f"{s.prefix}/#") as c:
        async with MqttSink(s) as sink:
            for i in range(300):
                sink.publish_decision(*payload(i))
            await c.wait_for(lambda m: len(decision_ids(c, sink.topic_classification)) >= 300)
        assert sink.counters["published"] == 301 and not sink.outbox  # and the class names, once
        await c.wait_for(lambda m: c.payloads(sink.topic_status)[-1:] == [b"offline"])
    ids = decision_ids(c, sink.topic_classification)
    assert ids == [str(i) for i in range(300)]  # one connection, QoS 1: in order, no duplicates
    first = json.loads(c.payloads(sink.topic_classification)[0])
    assert set(first) == set(FIELDS) and first["true_label"] == 1 and first["events"] == 100
    assert c.payloads(sink.topic_status) == [b"online", b"offline"]
    # status is retained: a late subscriber sees the last state
    async with Collector(mosquitto.port, s.topic("status")) as late:
        await late.wait_for(lambda m: len(m) >= 1)
        assert late.messages[0][1:] == (b"offline", True)


async def test_last_will_after_kill_9(mosquitto):
    async with Collector(mosquitto.port, "streamsnn/victim/status") as c:
        proc = await asyncio.to_thread(spawn_sink, mosquitto.port, "victim")
        await c.wait_for(lambda m: b"online" in c.payloads())
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        await c.wait_for(lambda m: c.payloads()[-1:] == [b"offline"])
    async with Collector(mosquitto.port, "streamsnn/victim/status") as late:
        await late.wait_for(lambda m: len(m) >= 1)
        assert late.messages[0][1:] == (b"offline", True)


async def test_broker_outage_loses_no_decision(tmp_path):
    broker = Mosquitto(tmp_path / "broker", persistence=True).start()
    try:
        s = settings(broker)
        async with Collector(broker.port, s.topic("classification"), client_id="outage-sub", persistent=True) as c:
            async with MqttSink(s) as sink:
                for i in range(100):
                    sink.publish_decision(*payload(i))
                await c.wait_for(lambda m: len(m) >= 100)
                await c.sync()  # the broker has our acknowledgements: no redelivery of these 100
                await asyncio.to_thread(broker.stop)
                for i in range(100, 300):  # the daemon keeps classifying while the broker is away
                    sink.publish_decision(*payload(i))
                    await asyncio.sleep(0.01)
                assert not sink.connected.is_set() and len(sink.outbox) > 0
                await asyncio.to_thread(broker.start)
                await c.wait_for(lambda m: len(set(decision_ids(c, s.topic("classification")))) >= 300, 60)
            assert sink.counters["reconnects"] >= 1 and sink.counters["outbox_overflow"] == 0
        ids = decision_ids(c, s.topic("classification"))
        assert set(ids) == {str(i) for i in range(300)}
        # QoS 1 allows duplicates only for messages in flight when the connection broke
        assert len(ids) - len(set(ids)) <= s.inflight
    finally:
        broker.stop()


async def test_outbox_overflow_drops_oldest_and_counts(tmp_path, caplog):
    broker = Mosquitto(tmp_path / "broker")  # configured, not started yet: nothing listens on the port
    s = settings(broker, outbox_size=5)
    sink = MqttSink(s)
    await sink.start()  # the broker is down: start() returns and decisions wait in the outbox
    try:
        assert not sink.connected.is_set()
        for i in range(12):
            sink.publish_decision(*payload(i))
        assert sink.counters["outbox_overflow"] == 8 and len(sink.outbox) == 5  # 12 decisions, 1 class list
        # the log says messages are dropped (it said only "5 decision(s) buffered"), at 1, 2, 4 and 8 of them
        said = [r.getMessage() for r in caplog.records if "the outbox is full" in r.getMessage()]
        assert [int(m.split(": ")[1].split()[0]) for m in said] == [1, 2, 4, 8], said
        broker.start()
        async with Collector(broker.port, s.topic("classification")) as c:
            await c.wait_for(lambda m: len(m) >= 5)
            await sink.close()
            await asyncio.sleep(0.2)
        assert sorted(decision_ids(c, s.topic("classification")), key=int) == [str(i) for i in range(7, 12)]
    finally:
        await sink.close()
        broker.stop()


async def test_metrics_are_published_and_only_latest_kept_offline(tmp_path):
    broker = Mosquitto(tmp_path / "broker")
    s = settings(broker)
    sink = MqttSink(s)
    await sink.start()
    try:
        for i in range(5):
            sink.publish_metrics({"decisions": i, "rate": np.float32(2.5)})
        assert sink.counters["metrics_dropped"] == 4
        broker.start()
        async with Collector(broker.port, s.topic("metrics")) as c:
            await sink.connected.wait()
            await c.wait_for(lambda m: len(m) >= 1)
            sink.publish_metrics({"decisions": 9})
            await c.wait_for(lambda m: len(m) >= 2)
        got = [json.loads(p) for p in c.payloads()]
        assert got == [{"decisions": 4, "rate": 2.5}, {"decisions": 9}]
    finally:
        await sink.close()
        broker.stop()


async def test_feedback_is_handed_on_as_it_arrived_and_retained_is_marked(mosquitto):
    """The sink only receives: the pipeline checks and counts feedback (tests/test_feedback.py)."""
    import aiomqtt

    s = settings(mosquitto)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:  # left behind by someone, retained
        await client.publish(s.topic("feedback"), b'{"sample": "60002", "label": 1}', qos=1, retain=True)
    async with MqttSink(s, feedback_queue=3) as sink:
        first = await asyncio.wait_for(sink.feedback.get(), 20)
        assert first == Message(b'{"sample": "60002", "label": 1}', retained=True)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            for raw in (b"{not json", b'{"sample": "60001", "label": "seven"}', b"\xff", b"4", b"5"):
                await client.publish(sink.topic_feedback, raw, qos=1)
            await client.publish(s.topic("feedback"), b"", qos=1, retain=True)  # clear the retained one
        while sink.counters["feedback_received"] < 7:
            await asyncio.sleep(0.05)
        got = [sink.feedback.get_nowait() for _ in range(3)]
        assert [m.payload for m in got] == [b"{not json", b'{"sample": "60001", "label": "seven"}', b"\xff"]
        assert not any(m.retained for m in got)
        # the queue holds 3: "4", "5" and the empty message that cleared the retained one were dropped
        assert sink.counters["feedback_dropped"] == 3 and sink.stats()["feedback_dropped"] == 3


async def test_class_names_are_published_retained_and_again_when_they_change(mosquitto):
    s = settings(mosquitto)
    async with MqttSink(s) as sink:
        w, d, info = payload(0)
        sink.publish_decision(w, d, info)
        sink.publish_decision(w, d, info)
        sink.publish_decision(w, d, DecisionInfo(1.0, 0.5, "v2", CLASSES + ("new",)))
        assert await sink.flush(timeout=30)
    async with Collector(mosquitto.port, s.topic("classes")) as late:  # retained: a late subscriber gets them
        await late.wait_for(lambda m: len(m) >= 1)
        assert json.loads(late.messages[0][1]) == list(CLASSES) + ["new"] and late.messages[0][2]
    assert sink.counters["published"] == 5  # 3 decisions, the class names twice (not once per decision)


async def test_login_refused_is_one_clear_line_and_password_never_logged(tmp_path, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    secret, wrong = "correct-horse-battery", "wrong-staple-9183"
    with Mosquitto(tmp_path / "auth", users={"alice": secret}) as broker:
        bad = settings(broker, username="alice", password=wrong)
        with pytest.raises(ConfigError) as err:
            async with MqttSink(bad):
                pass
        msg = str(err.value)
        assert f"127.0.0.1:{broker.port}" in msg and "mqtt.password" in msg and "\n" not in msg
        assert wrong not in msg
        with pytest.raises(ConfigError, match="anonymous"):
            async with MqttSink(settings(broker)):
                pass
        good = settings(broker, username="alice", password=secret)
        async with Collector(broker.port, good.topic("classification"), username="alice", password=secret) as c:
            async with MqttSink(good) as sink:
                sink.publish_decision(*payload(1))
                await c.wait_for(lambda m: len(m) >= 1)
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert "connected to MQTT broker" in logged  # the log was captured at all levels
    assert secret not in logged and wrong not in logged


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    from mqtt_util import make_tls_files

    return make_tls_files(tmp_path_factory.mktemp("tls"))


async def test_tls_with_own_ca(tmp_path, tls):
    import aiomqtt

    with Mosquitto(tmp_path / "broker", tls=tls) as broker:
        s = settings(broker, tls={"ca_file": str(tls.ca_file)})
        params = aiomqtt.TLSParameters(ca_certs=str(tls.ca_file))
        async with Collector(broker.port, s.topic("classification"), tls_params=params) as c:
            async with MqttSink(s) as sink:
                sink.publish_decision(*payload(4))
                await c.wait_for(lambda m: len(m) >= 1)
        assert decision_ids(c, s.topic("classification")) == ["4"]
        # without our CA the broker's certificate cannot be verified: one clear configuration error
        with pytest.raises(ConfigError, match="TLS .*mqtt.tls"):
            async with MqttSink(settings(broker, tls={})):
                pass


async def test_unreachable_broker_does_not_block_start():
    s = MqttSettings(port=free_port(), node_id="lonely", reconnect_min=0.1, reconnect_max=0.2)
    sink = MqttSink(s)
    await sink.start()
    sink.publish_decision(*payload(0))
    assert not sink.connected.is_set() and len(sink.outbox) == 2 and sink.error is None  # classes, decision
    await sink.close(timeout=0.5)
    assert len(sink.outbox) == 2  # reported as undelivered, not silently dropped


async def test_flush_and_close_with_backlog_still_says_offline(mosquitto):
    s = settings(mosquitto, outbox_size=50_000)
    async with Collector(mosquitto.port, s.topic("status")) as c:
        sink = MqttSink(s)
        await sink.start()
        for i in range(50):
            sink.publish_decision(*payload(i))
        assert await sink.flush(timeout=30) and not sink.outbox
        assert sink.counters["published"] == 51  # and the class names
        for i in range(20_000):
            sink.publish_decision(*payload(i))
        await sink.close(timeout=0.05)  # gives up on whatever is left, but says goodbye properly
        await c.wait_for(lambda m: c.payloads()[-1:] == [b"offline"])
    assert sink.counters["published"] + len(sink.outbox) == 20_051


async def test_tls_client_certificate(tmp_path, tls):
    import aiomqtt

    with Mosquitto(tmp_path / "broker", tls=tls, require_certificate=True) as broker:
        with_cert = {"ca_file": str(tls.ca_file), "cert_file": str(tls.client_cert), "key_file": str(tls.client_key)}
        s = settings(broker, tls=with_cert)
        params = aiomqtt.TLSParameters(ca_certs=str(tls.ca_file), certfile=str(tls.client_cert),
                                       keyfile=str(tls.client_key))
        async with Collector(broker.port, s.topic("classification"), tls_params=params) as c:
            async with MqttSink(s) as sink:
                sink.publish_decision(*payload(8))
                await c.wait_for(lambda m: len(m) >= 1)
        assert decision_ids(c, s.topic("classification")) == ["8"]
        # the broker requires a client certificate: without one, one clear line saying so
        no_cert = settings(broker, tls={"ca_file": str(tls.ca_file)}, timeout=2.0)
        with pytest.raises(ConfigError, match="client certificate .*mqtt.tls.cert_file"):
            async with MqttSink(no_cert):
                pass


@pytest.mark.parametrize("qos", [0, 2])
async def test_other_qos_levels(mosquitto, qos):
    s = settings(mosquitto, qos=qos)
    async with Collector(mosquitto.port, s.topic("classification"), qos=qos) as c:
        async with MqttSink(s) as sink:
            for i in range(50):
                sink.publish_decision(*payload(i))
            assert await sink.flush(timeout=30)
        await c.wait_for(lambda m: len(m) >= 50)
    assert decision_ids(c, s.topic("classification")) == [str(i) for i in range(50)]


async def test_login_refused_after_a_good_start_keeps_retrying(tmp_path, caplog):
    good = Mosquitto(tmp_path / "good", users={"alice": "pw-one"}, persistence=True)
    changed = Mosquitto(tmp_path / "changed", port=good.port, users={"alice": "pw-two"})
    good.start()
    s = settings(good, username="alice", password="pw-one")
    try:
        # a persistent subscriber: what the sink publishes once `good` is back is queued for it
        async with Collector(good.port, s.topic("classification"), username="alice", password="pw-one",
                             client_id="refusal-sub", persistent=True) as c:
            async with MqttSink(s) as sink:
                await asyncio.to_thread(good.stop)
                await asyncio.to_thread(changed.start)  # same port, the password was changed on the broker

                async def refused():
                    while not any("refused the configured username" in r.getMessage() for r in caplog.records):
                        await asyncio.sleep(0.05)
                await asyncio.wait_for(refused(), 30)
                sink.publish_decision(*payload(42))
                assert sink.error is None and not sink.connected.is_set()
                await asyncio.to_thread(changed.stop)
                await asyncio.to_thread(good.start)
                await c.wait_for(lambda m: len(m) >= 1)
                assert sink.counters["reconnects"] >= 1
        assert decision_ids(c, s.topic("classification")) == ["42"]
    finally:
        good.stop()
        changed.stop()


async def test_tls_host_name_check_and_insecure(tmp_path):
    from mqtt_util import make_tls_files

    other = make_tls_files(tmp_path / "tls", san="DNS:broker.example.org")  # does not name 127.0.0.1
    with Mosquitto(tmp_path / "broker", tls=other) as broker:
        with pytest.raises(ConfigError, match="TLS .*mqtt.tls.insecure"):
            async with MqttSink(settings(broker, tls={"ca_file": str(other.ca_file)})):
                pass
        s = settings(broker, tls={"ca_file": str(other.ca_file), "insecure": True})
        async with MqttSink(s) as sink:  # chain still verified against our CA, host name not
            sink.publish_decision(*payload(5))
            assert await sink.flush(timeout=30) and sink.counters["published"] == 2


async def test_a_broker_that_stops_acknowledging_is_left_and_nothing_is_lost(mosquitto, caplog):
    """A frozen broker (SIGSTOP: the connection stays open, no PUBACK comes) ends the connection after
    `timeout`; the outbox keeps every decision and delivers it once the broker answers again."""
    s = settings(mosquitto, timeout=1.0, keepalive=60)
    async with Collector(mosquitto.port, s.topic("classification")) as c:
        async with MqttSink(s) as sink:
            mosquitto.proc.send_signal(signal.SIGSTOP)
            try:
                for i in range(5):
                    sink.publish_decision(*payload(i))
                while not any("not acknowledged within 1 s" in r.getMessage() for r in caplog.records):
                    await asyncio.sleep(0.05)
                assert len(sink.outbox) == 6 and not sink.connected.is_set()  # 5 decisions, the class names
            finally:
                mosquitto.proc.send_signal(signal.SIGCONT)
            await asyncio.wait_for(sink.connected.wait(), 30)  # flush() returns False at once while away
            assert await sink.flush(timeout=30)
            await c.wait_for(lambda m: set(decision_ids(c, s.topic("classification"))) >= {str(i) for i in range(5)})
        assert sink.counters["reconnects"] >= 1


async def test_a_stalled_event_loop_is_not_taken_for_a_broker_that_stopped_acknowledging(mosquitto):
    """The daemon's own event loop held up for longer than `timeout` (a busy machine, a long save, this
    test's time.sleep) leaves the PUBACKs unread in the socket: that is not an unanswering broker, so the
    connection stays up and nothing is sent twice."""
    s = settings(mosquitto, timeout=1.0)
    async with Collector(mosquitto.port, s.topic("classification")) as c:
        async with MqttSink(s) as sink:
            for i in range(5):
                sink.publish_decision(*payload(i))  # their publishes start now, the loop then stalls
            time.sleep(1.6)
            for i in range(5, 10):
                sink.publish_decision(*payload(i))  # wakes the outbox before the socket is read
            assert await sink.flush(timeout=30)
            await c.wait_for(lambda m: len(decision_ids(c, s.topic("classification"))) >= 10)
            await asyncio.sleep(0.3)  # a message sent twice would arrive by now
        assert sink.counters["connects"] == 1 and sink.counters["disconnects"] == 0
    assert decision_ids(c, s.topic("classification")) == [str(i) for i in range(10)]


async def test_a_defect_in_the_connection_task_is_reported_not_retried(mosquitto, monkeypatch):
    """Only MQTT and OS errors mean "reconnect"; anything else (e.g. an AttributeError after a library
    update) stops the sink and surfaces as one StageFailed line, instead of a retry loop forever."""
    from streamsnn.errors import StageFailed

    async def broken(self, client):
        raise AttributeError("'Client' object has no attribute '_gone'")

    monkeypatch.setattr(MqttSink, "_session", broken)
    sink = MqttSink(settings(mosquitto))
    with pytest.raises(StageFailed, match="AttributeError: 'Client' object has no attribute '_gone'") as err:
        await sink.start()
    assert "defect" in str(err.value) and "\n" not in str(err.value)
    assert sink.counters["connects"] == 1 and sink.counters["reconnects"] == 0
    await sink.close(timeout=1)


async def test_what_is_left_undelivered_at_shutdown_counts_decisions_apart(caplog):
    """With the broker away, 3 decisions wait with the class names: the shutdown line said "4 decision(s)"."""
    sink = MqttSink(MqttSettings(host="127.0.0.1", port=free_port(), node_id="n", timeout=1.0))
    await sink.start(wait=2)
    for i in range(3):
        sink.publish_decision(*payload(i))
    await sink.close(timeout=0.1)
    lines = [r.getMessage() for r in caplog.records if "left undelivered" in r.getMessage()]
    assert len(lines) == 1 and lines[0].endswith("3 decision(s) and 1 other message(s) left undelivered at shutdown")


async def test_only_the_feedback_topic_counts_as_feedback_whatever_the_broker_delivers():
    """The embedded broker (amqtt) hands a new subscriber retained messages of other topics while a client is
    subscribed to '#': the sink took another daemon's retained status for feedback (refused only as retained)."""
    import aiomqtt

    from streamsnn.mqtt.broker import EmbeddedBroker

    async with EmbeddedBroker(port=0) as broker:
        async with Collector(broker.port, "#"):
            async with aiomqtt.Client("127.0.0.1", broker.port) as other:
                await other.publish("streamsnn/a/status", b"online", qos=1, retain=True)
            s = MqttSettings(host="127.0.0.1", port=broker.port, node_id="b", feedback=True)
            async with MqttSink(s) as sink:
                await asyncio.sleep(1.5)
                assert sink.counters["feedback_received"] == 0 and sink.feedback.empty()
                async with aiomqtt.Client("127.0.0.1", broker.port) as teacher:
                    await teacher.publish(s.topic("feedback"), b'{"sample": "1", "label": 3}', qos=1)
                got = await asyncio.wait_for(sink.feedback.get(), 30)
    assert got == Message(b'{"sample": "1", "label": 3}', False) and sink.counters["feedback_received"] == 1


async def test_connection_attempts_that_time_out_on_a_frozen_broker_are_not_left_behind(mosquitto, caplog):
    """Attempts that timed out while the broker was frozen stayed open: when it woke, each one's CONNECT took the
    session over and was dropped again, the broker published the last will ("offline", retained) while the
    daemon was up, and asyncio logged "Future exception was never retrieved" at ERROR. Each is now ended with a
    DISCONNECT queued behind its CONNECT, and its futures are read."""
    import gc

    s = settings(mosquitto, timeout=1.0)
    async with Collector(mosquitto.port, s.topic("status")) as c:
        await asyncio.sleep(0.3)
        earlier = len(c.payloads())  # an earlier test's retained status
        mosquitto.proc.send_signal(signal.SIGSTOP)
        try:
            sink = MqttSink(s)
            await sink.start()
            while sum("unavailable" in r.getMessage() for r in caplog.records) < 2:  # two attempts timed out
                await asyncio.sleep(0.05)
        finally:
            mosquitto.proc.send_signal(signal.SIGCONT)
        try:
            await asyncio.wait_for(sink.connected.wait(), 30)
            await asyncio.sleep(3.0)  # the abandoned attempts' CONNECTs are read by now
            gc.collect()
            await asyncio.sleep(0.1)
            assert sink.connected.is_set() and sink.counters["disconnects"] == 0, sink.counters
        finally:
            await sink.close()
    # the attempts' CONNECTs still race one another when the broker wakes (one may take over another's session,
    # publishing its will: not asserted), but none is left open to take the daemon's own session over
    assert b"online" in c.payloads()[earlier:], c.payloads()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], errors
