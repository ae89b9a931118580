"""Home Assistant MQTT discovery on a real Mosquitto: the retained configs a daemon leaves, their fields, their
templates rendered (Jinja2, as Home Assistant does) on a real classification and real metrics, and their removal."""

from __future__ import annotations

import asyncio
import json

import pytest
from conftest import need
from mqtt_util import Collector, mosquitto  # noqa: F401 (fixture)

from streamsnn.io import open_dataset
from streamsnn.mqtt.discovery import SENSORS, Discovery, ha_id
from streamsnn.mqtt.settings import MqttSettings
from streamsnn.mqtt.sink import MqttSink
from streamsnn.pipeline import Pipeline
from streamsnn.pipeline.segment import Window
from streamsnn.pipeline.stages import DecisionInfo, class_names
from streamsnn.snn import SpikingNetwork

jinja2 = pytest.importorskip("jinja2", reason="jinja2 (the test extra) renders Home Assistant's templates")


def render(template: str, payload: dict) -> str:
    return jinja2.Environment().from_string(template).render(value_json=payload)


async def retained(port: int, topic: str, quiet_s: float = 1.0) -> dict[str, bytes]:
    """The retained messages under `topic` a new subscriber gets (waits until none came for quiet_s)."""
    async with Collector(port, topic) as c:
        seen = -1
        while seen != len(c.messages):
            seen = len(c.messages)
            await asyncio.sleep(quiet_s)
    return {t: p for t, p, kept in c.messages if kept}


async def test_discovery_configs_describe_a_device_whose_templates_resolve_and_can_be_removed(mosquitto):
    settings = MqttSettings(host="127.0.0.1", port=mosquitto.port, node_id="cam.1", reconnect_min=0.2)
    net = SpikingNetwork((2312, 32, 10), seed=1)
    sample = open_dataset(need("nmnist_small")).split("test").samples[0].load()
    window = Window(sample, sample.t_start, sample.t_end, sample.sample, sample.label, source="test")
    decision = net.predict_one(sample)
    prefix = settings.prefix
    async with Collector(mosquitto.port, [f"{prefix}/classification", f"{prefix}/metrics"]) as got:
        async with MqttSink(settings, discovery=Discovery(settings)) as sink:
            sink.publish_decision(window, decision, DecisionInfo(0.4, 1.2, net.model_version, class_names(net)))
            pipe = Pipeline(None, net, [sink], extra_metrics=lambda: {"mqtt": sink.stats()})
            sink.publish_metrics(pipe.metrics())
            pipe._worker.shutdown()
            assert await sink.flush(30)
            await got.wait_for(lambda m: len(m) >= 2)
            configs = await retained(mosquitto.port, "homeassistant/#")
    classification = json.loads(got.payloads(f"{prefix}/classification")[0])
    metrics = json.loads(got.payloads(f"{prefix}/metrics")[0])

    dev = ha_id("cam.1")  # "cam.1" is not a Home Assistant id: streamsnn_cam_1_<hash>
    assert dev.startswith("streamsnn_cam_1_")
    assert set(configs) == {f"homeassistant/sensor/{dev}/{oid}/config" for oid, *_ in SENSORS}
    by_id = {t.split("/")[-2]: json.loads(p) for t, p in configs.items()}
    for oid, cfg in by_id.items():
        assert cfg["unique_id"] == f"{dev}_{oid}"
        assert cfg["availability"] == [{"topic": f"{prefix}/status", "payload_available": "online",
                                        "payload_not_available": "offline"}]
        assert cfg["device"]["identifiers"] == [dev] and cfg["device"]["name"] == "streamsnn cam.1"
        assert cfg["state_topic"] in (f"{prefix}/classification", f"{prefix}/metrics")
    # the templates, rendered as Home Assistant renders them, on what the daemon really published
    main = by_id["classification"]
    assert main["state_topic"] == main["json_attributes_topic"] == f"{prefix}/classification"
    assert render(main["value_template"], classification) == classification["label_name"] == str(decision.label)
    attributes = json.loads(render(main["json_attributes_template"], classification))
    assert attributes["confidence"] == classification["confidence"] and len(attributes["scores"]) == 10
    assert attributes["true_label_name"] == sample.meta["label_name"]
    assert float(render(by_id["confidence"]["value_template"], classification)) == \
        round(classification["confidence"] * 100, 1)
    assert float(render(by_id["events_per_s"]["value_template"], metrics)) == round(metrics["events_per_s"])
    assert render(by_id["decisions"]["value_template"], metrics) == str(metrics["decisions"])
    assert render(by_id["outbox"]["value_template"], metrics) == str(metrics["mqtt"]["outbox"])
    assert render(by_id["progressive_accuracy"]["value_template"], metrics) == "None"  # nothing learned yet
    assert render(by_id["progressive_accuracy"]["value_template"], {"progressive_accuracy": 0.6374}) == "63.7"
    # the same daemon with discovery off removes its device: no retained config is left
    async with MqttSink(settings, discovery=Discovery(settings, enabled=False)) as sink:
        while len(sink.discovery.removed) < len(SENSORS):
            await asyncio.sleep(0.05)
        assert await sink.flush(30)
    assert await retained(mosquitto.port, "homeassistant/#") == {}
