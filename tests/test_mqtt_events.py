"""Events over MQTT: real N-MNIST samples published as packets, shared subscriptions, bad packets skipped."""

import asyncio

import aiomqtt
import numpy as np
import pytest
from conftest import need
from mqtt_util import Mosquitto, mosquitto  # noqa: F401 (fixture)

from streamsnn.errors import ConfigError
from streamsnn.events import EventBatch
from streamsnn.mqtt.broker import EmbeddedBroker
from streamsnn.mqtt.publisher import MqttEventPublisher
from streamsnn.mqtt.settings import MqttSettings
from streamsnn.mqtt.source import MqttEventSource

TOPIC = "streamsnn/events/test"


def real_samples(n: int) -> list[EventBatch]:
    from streamsnn.io.dataset import open_dataset

    ds = open_dataset(need("nmnist_small")).split("test")
    out = []
    for s in ds.samples[:n]:
        b = s.load()
        out.append(EventBatch(b.events, b.width, b.height, sample=b.sample, label=b.label, source=b.source,
                              meta={"end_of_sample": True}))
    return out


def settings(port: int, node: str) -> MqttSettings:
    return MqttSettings(port=port, node_id=node, reconnect_min=0.2, reconnect_max=1.0)


async def collect(source: MqttEventSource, into: list, stop: asyncio.Event) -> None:
    async for batch in source:
        into.append(batch)
        stop.set()


async def test_one_consumer_gets_every_sample_intact(mosquitto):
    samples = real_samples(10)
    source = MqttEventSource(settings(mosquitto.port, "rx"), TOPIC, idle_timeout=3.0)
    await source.start()
    await asyncio.wait_for(source.subscribed.wait(), 10)
    async with MqttEventPublisher(settings(mosquitto.port, "tx"), TOPIC) as pub:
        for s in samples:
            await pub.publish(s)
    got = [b async for b in source]  # ends after 3 s without packets
    assert [b.sample for b in got] == [s.sample for s in samples]
    for a, b in zip(samples, got):
        assert np.array_equal(a.events, b.events) and a.label == b.label and b.meta["end_of_sample"]
    assert source.counters["packets"] == 10 and source.counters["bad_packets"] == 0


async def test_shared_subscription_splits_stream_exactly_once(mosquitto):
    samples = real_samples(40)
    consumers = [MqttEventSource(settings(mosquitto.port, f"worker{i}"), TOPIC, shared_group="snn")
                 for i in range(2)]
    received: list[list[EventBatch]] = [[], []]
    for c in consumers:
        await c.start()
        await asyncio.wait_for(c.subscribed.wait(), 10)
    changed = asyncio.Event()
    tasks = [asyncio.create_task(collect(c, r, changed)) for c, r in zip(consumers, received)]
    async with MqttEventPublisher(settings(mosquitto.port, "camera"), TOPIC) as pub:
        n = await pub.publish_source(_aiter(samples))
    assert n == 40
    async def all_in():
        while sum(map(len, received)) < 40:
            changed.clear()
            await changed.wait()
    await asyncio.wait_for(all_in(), 30)
    await asyncio.sleep(0.5)  # give a wrongly duplicated packet the chance to show up
    for c in consumers:
        await c.aclose()
    await asyncio.gather(*tasks)
    ids = [b.sample for r in received for b in r]
    assert sorted(ids) == sorted(s.sample for s in samples)  # every packet exactly once across the group
    assert all(len(r) > 0 for r in received), [len(r) for r in received]


async def _aiter(items):
    for x in items:
        yield x


async def test_bad_packets_are_counted_and_skipped(mosquitto):
    samples = real_samples(2)
    source = MqttEventSource(settings(mosquitto.port, "rx"), TOPIC, idle_timeout=2.0)
    await source.start()
    await asyncio.wait_for(source.subscribed.wait(), 10)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as raw:
        async with MqttEventPublisher(settings(mosquitto.port, "tx"), TOPIC) as pub:
            await pub.publish(samples[0])
            await raw.publish(TOPIC, b'{"not": "a packet"}', qos=1)
            from streamsnn.mqtt.packets import encode
            await raw.publish(TOPIC, encode(samples[1])[:-5], qos=1)  # truncated
            await raw.publish(TOPIC, b"", qos=1)
            await pub.publish(samples[1])
    got = [b async for b in source]
    assert [b.sample for b in got] == [samples[0].sample, samples[1].sample]
    assert source.counters["bad_packets"] == 3


async def test_large_batch_is_split_into_packets(mosquitto):
    from streamsnn.io import read_events

    batch = read_events(need("recordings/tonic_sample.aedat4"))
    batch = EventBatch(batch.events, batch.width, batch.height, source="aedat4", meta={"end_of_sample": True})
    source = MqttEventSource(settings(mosquitto.port, "rx"), TOPIC, idle_timeout=3.0)
    await source.start()
    await asyncio.wait_for(source.subscribed.wait(), 10)
    async with MqttEventPublisher(settings(mosquitto.port, "tx"), TOPIC, max_events_per_packet=50_000) as pub:
        assert await pub.publish(batch) == 3
    got = [b async for b in source]
    assert len(got) == 3 and [b.meta.get("end_of_sample", False) for b in got] == [False, False, True]
    assert np.array_equal(EventBatch.concatenate(got).events, batch.events)


async def test_events_through_embedded_broker():
    samples = real_samples(3)
    async with EmbeddedBroker(port=0) as broker:
        source = MqttEventSource(settings(broker.port, "rx"), TOPIC, idle_timeout=2.0)
        await source.start()
        await asyncio.wait_for(source.subscribed.wait(), 10)
        async with MqttEventPublisher(settings(broker.port, "tx"), TOPIC) as pub:
            await pub.publish_source(_aiter(samples))
        got = [b async for b in source]
    assert [b.sample for b in got] == [s.sample for s in samples]


def test_topic_and_group_validation():
    s = MqttSettings(node_id="x")
    with pytest.raises(ConfigError, match="wildcards"):
        MqttEventSource(s, "a/#")
    with pytest.raises(ConfigError, match="group"):
        MqttEventSource(s, "a/b", shared_group="g/1")


async def test_source_reconnects_after_broker_restart(tmp_path):
    samples = real_samples(4)
    broker = Mosquitto(tmp_path / "broker").start()
    source = MqttEventSource(settings(broker.port, "rx"), TOPIC)
    try:
        await source.start()
        await asyncio.wait_for(source.subscribed.wait(), 10)
        async with MqttEventPublisher(settings(broker.port, "tx"), TOPIC) as pub:
            await pub.publish(samples[0])
        first = await asyncio.wait_for(source.__anext__(), 10)
        await asyncio.to_thread(broker.stop)
        async def noticed():
            while not source.counters["disconnects"]:
                await asyncio.sleep(0.05)
        await asyncio.wait_for(noticed(), 30)
        assert not source.subscribed.is_set()
        await asyncio.to_thread(broker.start)  # same port, fresh broker: the source must subscribe again
        await asyncio.wait_for(source.subscribed.wait(), 30)
        async with MqttEventPublisher(settings(broker.port, "tx"), TOPIC) as pub:
            for s in samples[1:]:
                await pub.publish(s)
        rest = [await asyncio.wait_for(source.__anext__(), 10) for _ in range(3)]
        assert [b.sample for b in [first, *rest]] == [s.sample for s in samples]
        assert source.counters["connects"] >= 2 and source.counters["disconnects"] >= 1
    finally:
        await source.aclose()
        broker.stop()


async def test_a_consumer_that_lags_holds_a_bounded_number_of_packets(mosquitto):
    """aiomqtt's incoming queue is bounded (settings.incoming): what does not fit is dropped and counted."""
    samples = real_samples(2)
    s = MqttSettings(port=mosquitto.port, node_id="slow", incoming=4, reconnect_min=0.2)
    source = MqttEventSource(s, TOPIC, queue_size=1)
    await source.start()
    await asyncio.wait_for(source.subscribed.wait(), 10)
    async with MqttEventPublisher(settings(mosquitto.port, "tx"), TOPIC) as pub:
        for i in range(40):  # nobody reads the source meanwhile
            await pub.publish(samples[i % 2])
    # 1 batch waits in the source's queue, 1 more decoded waits to be put there, 4 in aiomqtt's queue
    async def dropped(n: int) -> None:
        while source.counters["dropped"] < n:
            await asyncio.sleep(0.05)
    await asyncio.wait_for(dropped(40 - 1 - 1 - 4), 30)
    got = [await asyncio.wait_for(source.__anext__(), 10) for _ in range(6)]  # what was kept is still read
    assert [b.sample for b in got] == [samples[i % 2].sample for i in range(6)]
    assert source.counters == {**source.counters, "packets": 6, "dropped": 34, "bad_packets": 0}
    await source.aclose()


def test_no_private_names_of_the_mqtt_libraries_are_used():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "streamsnn"
    for path in (root / "mqtt").glob("*.py"):  # the embedded broker too (mqtt/broker.py)
        text = path.read_text()
        for private in ("_client", "_pending_publishes", "_sock", "_logger", "_servers", "_connected_once"):
            assert not re.search(rf"(?<!self)\.{private}\b", text), f"{path.name} uses {private}"
