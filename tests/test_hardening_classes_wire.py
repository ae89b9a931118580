"""Issue 17, items 9 and 10 on the wire: Home Assistant device ids that never collide, `model.max_classes`
bounded, and class lists sent over MQTT only when they change."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from mqtt_util import Collector, mosquitto  # noqa: F401 (fixture)
from test_liveview_browser import browser  # noqa: F401 (fixture)

from streamsnn.config import build_config
from streamsnn.errors import ConfigError
from streamsnn.events import EVENT_DTYPE, EventBatch
from streamsnn.mqtt.discovery import SENSORS, Discovery, ha_id
from streamsnn.mqtt.settings import MqttSettings
from streamsnn.mqtt.sink import MqttSink
from streamsnn.pipeline import Pipeline
from streamsnn.pipeline.feedback import MAX_CLASSES
from streamsnn.pipeline.segment import Window
from streamsnn.pipeline.stages import DecisionInfo
from streamsnn.snn.network import Decision

# -- item 9: Home Assistant ids ---------------------------------------------------------------------------

NODES = ["cam.1", "cam_1", "cam-1", "cam:1", "cam..1", "cam_.1", "cam._1", "café", "cafe", "caf_", "cam 1",
         "Cam.1", "cam.1 ", "x" * 64 + ".", "x" * 64 + "_"]


def test_distinct_node_ids_give_distinct_device_ids_and_topics():
    ids = [ha_id(n) for n in NODES]
    assert len(set(ids)) == len(NODES), {n: i for n, i in zip(NODES, ids)}
    discoveries = [Discovery(MqttSettings(node_id=n)) for n in NODES if " " not in n]
    topics = [d.topic(oid) for d in discoveries for oid, *_ in SENSORS]
    assert len(set(topics)) == len(topics)
    assert len({d.pattern for d in discoveries}) == len(discoveries)
    for i in ids:  # every id is one Home Assistant accepts
        assert i.replace("_", "").replace("-", "").isascii() and i.replace("_", "").replace("-", "").isalnum()


def test_a_valid_node_id_keeps_its_device_id():
    for node in ("cam_1", "cam-1", "Kitchen-Cam2", "embedded", "a"):
        assert ha_id(node) == f"streamsnn_{node}"
    assert ha_id("cam.1") == ha_id("cam.1")  # stable: the same device on every start
    assert ha_id("cam.1").startswith("streamsnn_cam_1_")


async def test_a_daemon_with_discovery_off_clears_only_its_own_configs(mosquitto):
    """`cam.1` (discovery on) and `cam_1` (turning discovery off): cam_1 removes its own device only."""
    from test_mqtt_discovery import retained

    dot, under = (MqttSettings(host="127.0.0.1", port=mosquitto.port, node_id=n, reconnect_min=0.2)
                  for n in ("cam.1", "cam_1"))
    for settings in (under, dot):  # both leave their configs
        async with MqttSink(settings, discovery=Discovery(settings)) as sink:
            assert await sink.flush(30)
    left = await retained(mosquitto.port, "homeassistant/#")
    assert len(left) == 2 * len(SENSORS)
    async with MqttSink(under, discovery=Discovery(under, enabled=False)) as sink:
        while len(sink.discovery.removed) < len(SENSORS):
            await asyncio.sleep(0.05)
        assert await sink.flush(30)
        await asyncio.sleep(0.5)  # anything else it would clear has arrived by now
        removed = set(sink.discovery.removed)
    assert removed == {Discovery(under).topic(oid) for oid, *_ in SENSORS}
    assert set(await retained(mosquitto.port, "homeassistant/#")) == {Discovery(dot).topic(oid) for oid, *_ in SENSORS}


# -- item 10: max_classes bounded -------------------------------------------------------------------------

def test_max_classes_has_an_upper_bound_in_the_configuration():
    assert build_config({"model": {"max_classes": MAX_CLASSES}}).model.max_classes == MAX_CLASSES
    with pytest.raises(ConfigError, match=rf"model\.max_classes must be at most {MAX_CLASSES}, got 3000"):
        build_config({"model": {"max_classes": 3000}})
    with pytest.raises(ConfigError, match=rf"model\.max_classes must be at most {MAX_CLASSES}"):
        build_config({}, overrides=["model.max_classes=257"])


def test_max_classes_has_an_upper_bound_in_the_pipeline():
    from streamsnn.snn import SpikingNetwork

    net = SpikingNetwork((2312, 8, 10), seed=0)
    Pipeline(None, net, [], max_classes=MAX_CLASSES)._worker.shutdown()
    with pytest.raises(ConfigError, match=rf"max_classes must be at most {MAX_CLASSES}, got 3000"):
        Pipeline(None, net, [], max_classes=3000)


# -- item 10: class lists only when they change -------------------------------------------------------------

def decided(label: int, classes: tuple[str, ...], sample: str):
    ev = np.zeros(1, EVENT_DTYPE)
    w = Window(EventBatch(ev, 34, 34, sample=sample), 0, 1, sample=sample)
    d = Decision(label=label, scores=np.zeros(len(classes)), confidence=0.5, events=1)
    return w, d, DecisionInfo(1.0, 2.0, "v", classes)


async def test_mqtt_sink_sends_the_retained_class_list_only_when_it_changes():
    sink = MqttSink(MqttSettings(node_id="cam1"))  # not started: what it would send stays in its outbox
    names = tuple(f"class{k}" for k in range(MAX_CLASSES - 1))
    for k in range(50):
        sink.publish_decision(*decided(k % len(names), tuple(names), f"s{k}"))
    sink.publish_classes(names + ("new",))  # feedback added a class
    for k in range(50):
        sink.publish_decision(*decided(len(names), names + ("new",), f"t{k}"))
    sent = [(o.topic, o.payload, o.retain) for o in sink.outbox]
    classes = [(json.loads(p), r) for t, p, r in sent if t == sink.topic_classes]
    assert classes == [(list(names), True), (list(names) + ["new"], True)]
    decisions = [json.loads(p) for t, p, _ in sent if t == sink.topic_classification]
    assert len(decisions) == 100 and decisions[-1]["label_name"] == "new"
    assert all("classes" not in d for d in decisions)  # each decision names its class, never the whole list


async def test_live_view_sends_the_class_list_once_per_change_never_with_each_decision():
    from test_liveview import Sse

    from streamsnn.web.view import LiveView

    lv = await LiveView("127.0.0.1", 0, fps=50).start()
    names = tuple(f"class{k}" for k in range(MAX_CLASSES - 1))
    got: list[tuple[str, object]] = []

    async def read_until(seq: int) -> None:
        while True:
            got.append(await sse.next())
            if got[-1][0] == "decisions" and got[-1][1][-1]["seq"] == seq:
                return

    try:
        async with Sse(lv.port) as sse:
            for k in range(10):
                lv.publish_decision(*decided(k, names, f"s{k}"))
            await read_until(10)
            lv.publish_classes(names + ("new",))  # feedback added a class
            for k in range(10):
                lv.publish_decision(*decided(len(names), names + ("new",), f"t{k}"))
            await read_until(20)
        hello = [data for name, data in got if name == "hello"]
        lists = [data["classes"] for name, data in got if name == "classes"]
        decisions = [d for name, data in got if name == "decisions" for d in data]
        assert hello[0]["classes"] == [str(k) for k in range(10)]
        assert lists == [list(names), list(names) + ["new"]]  # once per change
        assert [d["seq"] for d in decisions] == list(range(1, 21)) and decisions[-1]["label_name"] == "new"
        assert all("classes" not in d for d in decisions)
        assert all("classes" not in data for name, data in got if name == "decided")
        assert got.index(("classes", {"classes": lists[1]})) < next(
            i for i, (name, data) in enumerate(got) if name == "decisions" and data[-1]["seq"] > 10)
    finally:
        await lv.close()


@pytest.mark.slow
async def test_the_page_takes_class_names_from_the_classes_event(browser):
    """In headless Chromium: the score bars are named from `hello`, then from `classes` when a class is added."""
    from streamsnn.web.view import LiveView

    lv = await LiveView("127.0.0.1", 0, fps=20).start()

    async def bars_show(*names: str) -> str:
        for _ in range(200):
            text = await asyncio.to_thread(lambda: browser.find_element("id", "bars").text)
            if all(n in text for n in names):
                return text
            await asyncio.sleep(0.1)
        raise AssertionError(f"the score bars never showed {names}: {text!r}")

    try:
        await asyncio.to_thread(browser.get, lv.url)
        for _ in range(100):  # the page connected: its event stream is open
            if lv._clients:
                break
            await asyncio.sleep(0.1)
        cards = ("club", "diamond", "heart", "spade")
        lv.publish_decision(*decided(2, cards, "a"))
        await bars_show(*cards)
        lv.publish_classes(cards + ("joker",))
        lv.publish_decision(*decided(4, cards + ("joker",), "b"))
        text = await bars_show(*cards, "joker")
        assert (await asyncio.to_thread(lambda: browser.find_element("id", "decision").text)) == "joker", text
    finally:
        await lv.close()
