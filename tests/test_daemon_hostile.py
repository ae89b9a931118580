"""The daemon against hostile input, as users run it (`streamsnn run pipelines/mqtt-events.toml`, a real
Mosquitto, real recordings): bad packets are counted and skipped, a valid sample is still classified
afterwards, SIGTERM still ends it; a TLS mix-up stops the start with one line and exit status 2."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import urllib.request
from pathlib import Path

import aiomqtt
import pytest
from conftest import need
from daemon_util import Daemon, daemons  # noqa: F401 (fixture)
from mqtt_util import Collector, hostile_packet, make_tls_files, mosquitto  # noqa: F401 (fixture)

from streamsnn.events import MAX_SENSOR_SIDE, EventBatch
from streamsnn.io import open_dataset, read_events
from streamsnn.mqtt import packets

ROOT = Path(__file__).resolve().parent.parent
MQTT_EVENTS = ROOT / "pipelines" / "mqtt-events.toml"

pytestmark = pytest.mark.slow


def metrics(col: Collector, node: str) -> list[dict]:
    return [json.loads(p) for p in col.payloads(f"streamsnn/{node}/metrics")]


def classifications(col: Collector, node: str) -> list[dict]:
    return [json.loads(p) for p in col.payloads(f"streamsnn/{node}/classification")]


async def test_hostile_packets_leave_a_daemon_that_classifies_and_stops(tmp_path, mosquitto, daemons):
    node, topic = "hostile", "test/hostile-events"
    sets = {"mqtt.port": mosquitto.port, "pipeline.node_id": node, "model.hidden": 64, "source.topic": topic,
            "source.group": "", "source.max_packet_events": 50_000, "pipeline.metrics_every_s": 0.3,
            "console.decisions": False, "liveview.enabled": True, "liveview.port": 0}
    rec = read_events(need("recordings/tonic_sample.aedat4"))
    stream = [c.with_meta(source=None) for c in rec.split_time(10_000)]  # a camera without sample ids
    test = open_dataset(need("nmnist_small")).split("test").samples
    part = test[0].load().slice_count(0, 1500)
    moved = EventBatch(part.events, 64, 64, sample=part.sample)  # the same sample id, another sensor size
    big = EventBatch(stream[5].events.copy(), MAX_SENSOR_SIDE, MAX_SENSOR_SIDE)  # accepted: the largest sensor
    big.events["x"] *= 12
    big.events["y"] *= 16
    valid = test[1].load().with_meta(sample="valid-after-attack", meta={"end_of_sample": True})
    hostile = [
        packets.encode(stream[0]), packets.encode(stream[0]), packets.encode(stream[20]),  # duplicate, +200 ms
        packets.encode(stream[19]),                      # 20 ms back: a late packet
        packets.encode(stream[2]),                       # far back: a new stream
        packets.encode(part), packets.encode(part),      # a sample's part twice
        packets.encode(moved),                           # the sample changes sensor size
        hostile_packet(stream[3], t0=2**63 - 100),              # timestamps that wrap in int64
        hostile_packet(stream[3], width=65535, height=65535),   # a 65535x65535 sensor
        hostile_packet(stream[3], n=2**32 - 1),                 # a header announcing 4 G events
        packets.encode(rec.with_meta(source=None)),      # 111,954 real events in one packet: over the limit
        packets.encode(big),
    ]
    async with Collector(mosquitto.port, f"streamsnn/{node}/#") as col:
        d = Daemon(tmp_path, MQTT_EVENTS, sets)
        daemons.append(d.start())
        await col.wait_for(lambda m: any(x["source"]["subscribed"] for x in metrics(col, node)), timeout=120)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
            for payload in hostile + [packets.encode(valid)]:
                await pub.publish(topic, payload, qos=1)
        # before the fix, the duplicate killed the reader: nothing after it was ever classified
        await col.wait_for(lambda m: any(c["sample"] == valid.sample for c in classifications(col, node)),
                           timeout=120)
        # the live view draws the largest sensor on a bounded canvas (before: 2 x 4096^2 floats per frame)
        url = re.search(r"live view: open (http://\S+)", d.text()).group(1)
        later = big.with_events(big.events.copy())
        later.events["t"] += 1_000_000
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
            await pub.publish(topic, packets.encode(later), qos=1)
        for _ in range(600):
            snap = json.loads(await asyncio.to_thread(
                lambda: urllib.request.urlopen(url + "metrics.json", timeout=10).read()))
            if snap["sensor"] == [MAX_SENSOR_SIDE] * 2:
                break
            await asyncio.sleep(0.1)
        assert snap["sensor"] == [MAX_SENSOR_SIDE] * 2 and max(snap["canvas"]) <= 640
        await col.wait_for(lambda m: metrics(col, node)[-1]["source"]["bad_packets"] == 4, timeout=60)
        d.signal(signal.SIGTERM)
        assert await d.wait(60) == 0, d.text()[-3000:]
    final = metrics(col, node)[-1]
    assert final["source"]["bad_packets"] == 4  # t0, sensor, truncated, too many events
    assert final["bad_batches"] == 3  # the duplicate, the late packet, the sample's repeated part
    assert final["segment"]["restarts"] >= 3  # far back, the sample's new sensor, the big sensor
    decided = classifications(col, node)
    assert [c["sample"] for c in decided].count(valid.sample) == 1
    assert any(c["sample"] == part.sample for c in decided)  # the sample's part was classified too
    text = d.text()
    assert "Traceback" not in text and "timestamps decrease" not in text
    assert "skipped a bad event packet" in text and "batch skipped" in text


async def test_tls_to_a_plain_port_exits_2_in_one_line(tmp_path, mosquitto):
    tls = make_tls_files(tmp_path / "tls")
    sets = {"mqtt.port": mosquitto.port, "mqtt.tls_ca": tls.ca_file, "pipeline.node_id": "tlsmix",
            "model.hidden": 64, "source.group": ""}
    d = Daemon(tmp_path, MQTT_EVENTS, sets).start()
    try:
        assert await d.wait(120) == 2
    finally:
        d.stop()
    lines = d.text().strip().splitlines()
    assert lines[-1].startswith(f"streamsnn: error: MQTT broker 127.0.0.1:{mosquitto.port} speaks plain MQTT, not TLS")
    assert "Traceback" not in d.text()
