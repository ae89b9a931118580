"""MQTT under misconfiguration and hostile traffic, on a real Mosquitto: TLS mix-ups stop the start in one
line, retained feedback is refused where MQTT lets us see it, the README's broker ACL keeps strangers'
feedback away, and hostile event packets are counted and skipped by the source."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import aiomqtt
import numpy as np
import pytest
from conftest import need
from mqtt_util import Mosquitto, free_port, hostile_packet, make_tls_files, mosquitto  # noqa: F401 (fixture)

from streamsnn.errors import ConfigError
from streamsnn.mqtt import MqttSettings, MqttSink, packets, probe
from streamsnn.mqtt.publisher import MqttEventPublisher
from streamsnn.mqtt.source import MqttEventSource
from streamsnn.pipeline.feedback import Message

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def settings(port: int, **kw) -> MqttSettings:
    kw.setdefault("node_id", "hostile")
    return MqttSettings(host="127.0.0.1", port=port, reconnect_min=0.2, reconnect_max=0.5, **kw)


def test_tls_files_that_are_not_pem_are_a_config_error(tmp_path, tls):
    junk = tmp_path / "ca.crt"
    junk.write_text("this is not a certificate\n")
    with pytest.raises(ConfigError, match=r"mqtt\.tls\.ca_file: .*ca\.crt holds no usable certificate") as err:
        settings(8883, tls={"ca_file": str(junk)})
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"mqtt\.tls\.cert_file/key_file: .*not a matching PEM"):
        settings(8883, tls={"ca_file": str(tls.ca_file), "cert_file": str(tls.client_cert), "key_file": str(junk)})
    with pytest.raises(ConfigError, match="not a matching PEM"):  # a key that belongs to another certificate
        settings(8883, tls={"ca_file": str(tls.ca_file), "cert_file": str(tls.client_cert),
                            "key_file": str(tls.key_file)})


async def test_plain_mqtt_to_a_tls_port_stops_the_start_in_one_line(tmp_path, tls):
    with Mosquitto(tmp_path / "broker", tls=tls) as broker:
        for make in (lambda: MqttSink(settings(broker.port, timeout=2.0)),
                     lambda: MqttEventSource(settings(broker.port, timeout=2.0), "ev/t")):
            with pytest.raises(ConfigError, match=f"127.0.0.1:{broker.port} answers with TLS.*mqtt.tls_ca") as err:
                await _start(make())
            assert "\n" not in str(err.value)
        with pytest.raises(ConfigError, match=f"127.0.0.1:{broker.port} answers with TLS"):  # `streamsnn publish`
            async with MqttEventPublisher(settings(broker.port, timeout=2.0), "ev/t"):
                pass


async def test_tls_to_a_plain_port_stops_the_start_in_one_line(mosquitto, tls):
    s = settings(mosquitto.port, tls={"ca_file": str(tls.ca_file)}, timeout=2.0)
    for thing in (MqttSink(s), MqttEventSource(s, "ev/t")):
        with pytest.raises(ConfigError, match=f"127.0.0.1:{mosquitto.port} speaks plain MQTT, not TLS"):
            await _start(thing)


def test_the_probe_reads_the_alert_of_a_broker_that_requires_a_client_certificate(tmp_path, tls, mosquitto):
    """Under TLS 1.3 a client without a certificate sees its handshake succeed and the broker's alert after it,
    which the reset following the client's CONNECT may swallow; the probe, sending nothing, reads the alert."""
    no_cert = {"ca_file": str(tls.ca_file)}
    with Mosquitto(tmp_path / "strict", tls=tls, require_certificate=True) as strict:
        assert probe.demands_certificate("127.0.0.1", strict.port)
        err = probe.tls_mismatch(settings(strict.port, tls=no_cert))
        assert err is not None and "requires a client certificate" in str(err) and "mqtt.tls.cert_file" in str(err)
        assert "\n" not in str(err)
        with_cert = {**no_cert, "cert_file": str(tls.client_cert), "key_file": str(tls.client_key)}
        assert probe.tls_mismatch(settings(strict.port, tls=with_cert)) is None  # it has one: not the probe's case
    with Mosquitto(tmp_path / "lenient", tls=tls) as lenient:  # TLS without a client certificate required
        assert not probe.demands_certificate("127.0.0.1", lenient.port)
        assert probe.tls_mismatch(settings(lenient.port, tls=no_cert)) is None
    assert not probe.demands_certificate("127.0.0.1", mosquitto.port)  # a plain port
    assert not probe.demands_certificate("127.0.0.1", free_port(), timeout=0.5)  # nothing listening


async def test_a_broker_that_is_down_is_still_retried(tmp_path, tls):
    for n, use_tls in enumerate((None, tls)):
        port = free_port()
        s = settings(port, timeout=2.0, **({"tls": {"ca_file": str(tls.ca_file)}} if use_tls else {}))
        sink = MqttSink(s)
        await sink.start()  # returns: decisions wait in the outbox until the broker comes up
        try:
            await asyncio.sleep(1.0)
            assert sink.error is None and sink.counters["connects"] == 0
            with Mosquitto(tmp_path / f"late{n}", port=port, tls=use_tls):  # the broker comes up later
                async def connected(sink: MqttSink) -> None:
                    while sink.counters["connects"] < 1:
                        await asyncio.sleep(0.05)
                await asyncio.wait_for(connected(sink), 30)  # a retry after the outage reached it
                assert sink.error is None
        finally:
            await sink.close(timeout=0.2)


async def _start(thing) -> None:
    """Start a sink, or iterate a source until it ends (a ConfigError ends it)."""
    if isinstance(thing, MqttSink):
        await thing.start()
        await thing.close(timeout=0.2)
        return
    try:
        await asyncio.wait_for(thing.__anext__(), 30)
    finally:
        await thing.aclose()


async def test_retained_feedback_is_ordinary_when_live_and_refused_when_replayed(mosquitto):
    s = settings(mosquitto.port)
    fb = b'{"sample": "60004", "label": 4}'
    async with MqttSink(s) as sink:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
            await pub.publish(sink.topic_feedback, fb, qos=1, retain=True)
        # delivered live, the broker clears the retain flag (MQTT 3.1.1, 3.3.1.3): ordinary feedback
        assert await asyncio.wait_for(sink.feedback.get(), 20) == Message(fb, retained=False)
    async with MqttSink(settings(mosquitto.port, node_id="hostile")) as restarted:
        # replayed on subscribing, with the flag: marked, and refused by feedback.parse (reason `retained`)
        assert await asyncio.wait_for(restarted.feedback.get(), 20) == Message(fb, retained=True)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:  # clear it
        await pub.publish(s.topic("feedback"), b"", qos=1, retain=True)


def test_the_readme_shows_the_acl_file_it_ships():
    acl = (ROOT / "pipelines" / "mosquitto.acl").read_text()
    readme = (ROOT / "docs" / "protecting-feedback.md").read_text()  # the README's "Protecting feedback", now in docs/
    assert acl.strip() in readme


async def test_broker_acl_keeps_feedback_of_other_users_away(tmp_path):
    acl = ROOT / "pipelines" / "mosquitto.acl"
    users = {"streamsnn": "daemon-pw-1", "operator": "operator-pw-2", "viewer": "viewer-pw-3"}
    with Mosquitto(tmp_path / "broker", users=users, acl=acl) as broker:
        s = settings(broker.port, node_id="cam1", username="streamsnn", password=users["streamsnn"])
        async with MqttSink(s) as sink:
            topic = sink.topic_feedback

            async def publish(user: str, sample: str) -> None:
                async with aiomqtt.Client("127.0.0.1", broker.port, username=user, password=users[user]) as c:
                    await c.publish(topic, json.dumps({"sample": sample, "label": 1}), qos=1)

            # the viewer may log in and read, but its feedback is dropped by the broker; the operator's arrives
            await publish("viewer", "from-viewer-1")
            await publish("operator", "from-operator-1")
            await publish("viewer", "from-viewer-2")
            await publish("operator", "from-operator-2")
            got = [await asyncio.wait_for(sink.feedback.get(), 20) for _ in range(2)]
            assert [json.loads(m.payload)["sample"] for m in got] == ["from-operator-1", "from-operator-2"]
            assert sink.feedback.empty() and sink.counters["feedback_received"] == 2
            # and the viewer cannot publish decisions in the daemon's name either
            async with aiomqtt.Client("127.0.0.1", broker.port, username="viewer", password=users["viewer"]) as v:
                async with aiomqtt.Client("127.0.0.1", broker.port, username="operator",
                                          password=users["operator"]) as reader:
                    await reader.subscribe(s.topic("classification"), qos=1)
                    await v.publish(s.topic("classification"), b'{"label": 6}', qos=1)
                    sink.publish(sink.topic_classification, b'{"label": 2}')
                    msg = await asyncio.wait_for(anext(aiter(reader.messages)), 20)
                    assert json.loads(msg.payload) == {"label": 2}


async def test_hostile_packets_are_counted_and_skipped_by_the_source(mosquitto, caplog):
    from streamsnn.io import read_events

    rec = read_events(need("recordings/tonic_sample.aedat4"))
    good = rec.slice_count(0, 2000).with_meta(meta={"end_of_sample": True})
    big = rec.slice_count(0, 5001)
    hostile = [hostile_packet(good, width=65535, height=65535), hostile_packet(good, t0=2**63 - 10),
               hostile_packet(good, n=2**32 - 1), packets.encode(big), b"SSEV" + b"\xff" * 60]
    source = MqttEventSource(settings(mosquitto.port), "ev/hostile", idle_timeout=2.0, max_events=5000)
    await source.start()
    await asyncio.wait_for(source.subscribed.wait(), 10)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
        for p in hostile:
            await pub.publish("ev/hostile", p, qos=1)
        await pub.publish("ev/hostile", packets.encode(good), qos=1)
    got = [b async for b in source]
    assert len(got) == 1 and np.array_equal(got[0].events, good.events)
    assert source.counters["bad_packets"] == len(hostile) and source.counters["connects"] == 1
    lines = [r.getMessage() for r in caplog.records if "bad event packet" in r.getMessage()]
    assert len(lines) == len(hostile) and all("\n" not in x for x in lines)
    assert any(re.search("65535x65535 sensor", x) for x in lines) and any("more than the 5000" in x for x in lines)
