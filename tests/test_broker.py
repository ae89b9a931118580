"""Embedded amqtt broker: publish/subscribe, retained messages, last will, the sink on top, busy port."""

import asyncio
import signal

import aiomqtt
import pytest
from mqtt_util import Collector, spawn_sink

from streamsnn.errors import ConfigError
from streamsnn.mqtt import MqttSettings, MqttSink
from streamsnn.mqtt.broker import EmbeddedBroker


async def test_publish_subscribe_and_retained():
    async with EmbeddedBroker(port=0) as broker:
        assert broker.port and broker.port != 1883
        async with aiomqtt.Client("127.0.0.1", broker.port) as pub:
            await pub.publish("a/retained", b"kept", qos=1, retain=True)
            async with Collector(broker.port, "a/#") as c:
                await c.wait_for(lambda m: len(m) >= 1)  # the retained message, on subscribing
                await pub.publish("a/live", b"fresh", qos=1)
                await c.wait_for(lambda m: len(m) >= 2)
        assert c.messages == [("a/retained", b"kept", True), ("a/live", b"fresh", False)]


async def test_last_will_from_killed_sink():
    async with EmbeddedBroker(port=0) as broker:
        async with Collector(broker.port, "streamsnn/crashy/status") as c:
            proc = await asyncio.to_thread(spawn_sink, broker.port, "crashy")
            await c.wait_for(lambda m: b"online" in c.payloads())
            proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(proc.wait)
            await c.wait_for(lambda m: c.payloads()[-1:] == [b"offline"])


async def test_sink_through_embedded_broker():
    async with EmbeddedBroker(port=0) as broker:
        s = MqttSettings(port=broker.port, node_id="emb")
        async with Collector(broker.port, "streamsnn/emb/#") as c:
            async with MqttSink(s) as sink:
                for i in range(20):
                    sink.publish(sink.topic_classification, str(i).encode())
                await c.wait_for(lambda m: len(c.payloads(sink.topic_classification)) >= 20)
            await c.wait_for(lambda m: c.payloads(sink.topic_status)[-1:] == [b"offline"])
        assert sink.counters["published"] == 20


async def test_port_in_use_is_a_clear_error():
    async with EmbeddedBroker(port=0) as first:
        with pytest.raises(ConfigError, match=f"127.0.0.1:{first.port} is already in use"):
            async with EmbeddedBroker(port=first.port):
                pass
