"""The daemon learns a new class from MQTT feedback end to end: `streamsnn run` on the simulated camera's
sliding windows (unlabelled, as a camera's), a real Mosquitto, feedback naming a class the model does not
know; the class is added, announced on the retained `<prefix>/classes`, learned, and kept in the checkpoint."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import aiomqtt
import pytest
from daemon_util import Daemon, daemons  # noqa: F401 (fixture)
from mqtt_util import Collector, mosquitto  # noqa: F401 (fixture)

from streamsnn.snn import SpikingNetwork

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def payloads(col: Collector, node: str, topic: str) -> list:
    return [json.loads(p) for p in col.payloads(f"streamsnn/{node}/{topic}")]


async def test_feedback_over_mqtt_adds_a_class_that_is_announced_learned_and_saved(tmp_path, mosquitto, daemons):
    node, ckpt = "grow", tmp_path / "grow.npz"
    sets = {"source.speed": 1, "segment.label_windows": False, "model.hidden": 64, "model.checkpoint": ckpt,
            "model.new_classes": True, "model.max_classes": 11, "mqtt.broker": "127.0.0.1",
            "mqtt.port": mosquitto.port, "pipeline.node_id": node, "pipeline.metrics_every_s": 0.3,
            "liveview.enabled": False}
    async with Collector(mosquitto.port, f"streamsnn/{node}/#") as col:
        d = Daemon(tmp_path, ROOT / "pipelines" / "demo.toml", sets).start()
        daemons.append(d)
        await col.wait_for(lambda m: len(payloads(col, node, "classification")) >= 3, timeout=120)
        assert payloads(col, node, "classes")[-1] == [str(k) for k in range(10)]
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
            for n, name in enumerate(("star", "moon"), 1):  # the second new name is beyond model.max_classes = 11
                last = payloads(col, node, "classification")[-1]
                assert last["true_label"] is None  # a camera's windows: no label to contradict
                await pub.publish(f"streamsnn/{node}/feedback", json.dumps({"t_end_us": last["t_end_us"],
                                                                            "label": name}), qos=1)
                await col.wait_for(lambda m, n=n: any(x["feedback"]["received"] >= n
                                                      for x in payloads(col, node, "metrics")), timeout=30)
            await col.wait_for(lambda m: any(len(c["scores"]) == 11 for c in payloads(col, node, "classification")),
                               timeout=30)
            last = payloads(col, node, "classification")[-1]
            await pub.publish(f"streamsnn/{node}/feedback", json.dumps({"t_end_us": last["t_end_us"],
                                                                        "label": "star"}), qos=1)
            await col.wait_for(lambda m: any(x["feedback"]["learned"] == 2 for x in payloads(col, node, "metrics")),
                               timeout=30)

            def settled() -> bool:  # a snapshot taken between a window's decision (samples_seen) and its publishing
                x = payloads(col, node, "metrics")[-1]  # (decisions) is one apart: wait for one taken between windows
                return x["feedback"]["learned"] == 2 and x["samples_seen"] == x["decisions"]

            await col.wait_for(lambda m: settled(), timeout=30)  # taught windows are not counted again: they settle
        assert payloads(col, node, "classes")[-1] == [*map(str, range(10)), "star"]
        m = next(x for x in reversed(payloads(col, node, "metrics")) if x["feedback"]["learned"] == 2
                 and x["samples_seen"] == x["decisions"])
        assert m["classes"] == 11 and m["classes_added"] == 1 and m["feedback"]["unknown_class"] == 1
        assert m["feedback_accuracy"] is not None and m["samples_seen"] == m["decisions"]
        grown = [c for c in payloads(col, node, "classification") if len(c["scores"]) == 11]
        assert grown and all(c["model_version"] for c in grown)
    async with Collector(mosquitto.port, f"streamsnn/{node}/classes") as late:  # retained for newcomers
        await late.wait_for(lambda m: late.payloads(f"streamsnn/{node}/classes"), timeout=10)
        assert json.loads(late.payloads(f"streamsnn/{node}/classes")[-1])[-1] == "star"
    d.signal(signal.SIGTERM)
    assert await d.wait() == 0, d.text()[-3000:]
    assert "feedback added class 'star' (output 10; now 11 classes of at most 11)" in d.text()
    net = SpikingNetwork.load(ckpt)
    assert net.classes[-1] == "star" and net.n_classes == 11 and net.progressive_total == 2
