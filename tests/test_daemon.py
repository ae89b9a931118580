"""The daemon end to end, as users run it: `streamsnn run PIPELINE --set ...` subprocesses against a real
Mosquitto (or the embedded amqtt broker), real N-MNIST samples and the real numba network."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import need
from daemon_util import Daemon, daemons  # noqa: F401 (fixture)
from mqtt_util import Collector, Mosquitto, free_port, mosquitto  # noqa: F401 (fixture)

from streamsnn.io import open_dataset
from streamsnn.mqtt.schema import FIELDS
from streamsnn.pipeline.feedback import FEEDBACK_LR_SCALE
from streamsnn.snn import SpikingNetwork

ROOT = Path(__file__).resolve().parent.parent
REPLAY = ROOT / "pipelines" / "nmnist-replay.toml"
HIDDEN = 64  # a small network keeps the tests quick; the pipeline does not care about its size

pytestmark = pytest.mark.slow


def replay_sets(nmnist_dir: Path, port: int, node: str, ckpt: Path, **extra) -> dict:
    sets = {"source.path": nmnist_dir, "source.split": "test", "source.shuffle": False, "source.speed": 0,
            "model.hidden": HIDDEN, "model.checkpoint": ckpt, "mqtt.broker": "127.0.0.1", "mqtt.port": port,
            "pipeline.node_id": node, "pipeline.metrics_every_s": 0.5, "console.decisions": False}
    sets.update({k.replace("__", "."): v for k, v in extra.items()})
    return sets


def classifications(col: Collector, node: str) -> list[dict]:
    return [json.loads(p) for p in col.payloads(f"streamsnn/{node}/classification")]


def metrics(col: Collector, node: str) -> list[dict]:
    return [json.loads(p) for p in col.payloads(f"streamsnn/{node}/metrics")]


def status(col: Collector, node: str) -> list[str]:
    return [p.decode() for p in col.payloads(f"streamsnn/{node}/status")]


@pytest.fixture(scope="module")
def test_samples():
    return {s.sample_id: s.load() for s in open_dataset(need("nmnist_small")).split("test").samples}


async def test_replay_of_100_test_samples_publishes_100_classifications(tmp_path, nmnist_dir, mosquitto,
                                                                         daemons, test_samples):
    node, ckpt = "replay", tmp_path / "model.npz"
    async with Collector(mosquitto.port, f"streamsnn/{node}/#") as col:
        d = Daemon(tmp_path, REPLAY, replay_sets(nmnist_dir, mosquitto.port, node, ckpt,
                                                 model__learn_from_labels=False))
        daemons.append(d.start())
        assert await d.wait() == 0, d.text()[-3000:]
        await col.wait_for(lambda m: len(classifications(col, node)) >= 100 and "offline" in status(col, node))
    msgs = classifications(col, node)
    assert len(msgs) == 100
    assert sorted(m["sample"] for m in msgs) == sorted(test_samples)
    # the labels are those of the model the daemon used (saved at exit; learning was off, so it is
    # also exactly the fresh seeded network)
    net = SpikingNetwork.load(ckpt)
    fresh = SpikingNetwork((2312, HIDDEN, 10), seed=0)
    np.testing.assert_array_equal(net.W1, fresh.W1)
    for m in msgs:
        assert set(m) == set(FIELDS), m
        batch = test_samples[m["sample"]]
        ref = fresh.predict_one(batch)
        assert m["label"] == ref.label
        np.testing.assert_allclose(m["scores"], ref.scores, rtol=1e-5, atol=1e-5)
        assert m["true_label"] == batch.label and m["events"] == len(batch) == m["events"]
        assert (m["t_start_us"], m["t_end_us"]) == (batch.t_start, batch.t_end)
        assert m["node"] == node and m["latency_ms"] >= 0 and m["model_version"] == net.model_version
        assert m["latency_ms"] >= m["queue_ms"] + m["feed_ms"] + m["compute_ms"] - 0.003 and m["compute_ms"] > 0
        assert m["feed_ms"] >= 0  # whole samples: nothing in flight to feed
        assert (m["label_name"], m["true_label_name"]) == (str(m["label"]), batch.meta["label_name"])
    # and `streamsnn eval` on the same model agrees: same confusion matrix, same accuracy
    ev = subprocess.run([sys.executable, "-m", "streamsnn", "eval", "--data", str(nmnist_dir), "--model", str(ckpt),
                         "--json"], capture_output=True, text=True, timeout=300)
    assert ev.returncode == 0, ev.stderr
    report = json.loads(ev.stdout)
    confusion = np.zeros((10, 10), int)
    for m in msgs:
        confusion[m["true_label"], m["label"]] += 1
    assert report["samples"] == 100
    np.testing.assert_array_equal(np.array(report["confusion"]), confusion)
    assert status(col, node)[-1] == "offline"
    final = metrics(col, node)[-1]
    assert final["decisions"] == 100 and final["drops"] == 0
    # the last metrics message is the run's: every decision delivered (and the class names), the
    # checkpoint saved at exit counted
    assert (final["mqtt"]["published"], final["mqtt"]["outbox"], final["checkpoints"]) == (101, 0, 1)
    assert final["accuracy"] == pytest.approx(np.mean([m["label"] == m["true_label"] for m in msgs]))


async def test_broker_outage_loses_no_decision(tmp_path, nmnist_dir, daemons):
    broker = Mosquitto(tmp_path / "broker", persistence=True).start()
    node, n = "outage", 30
    try:
        async with Collector(broker.port, f"streamsnn/{node}/classification", persistent=True) as col:
            d = Daemon(tmp_path, REPLAY, replay_sets(nmnist_dir, broker.port, node, tmp_path / "m.npz",
                                                     source__speed=1.0, source__limit=n))
            daemons.append(d.start())
            await col.wait_for(lambda m: len(m) >= 3, timeout=120)
            broker.stop()
            seen_before = {m["sample"] for m in classifications(col, node)}
            await asyncio.sleep(4)  # decisions made now wait in the daemon's outbox
            broker.start()
            assert await d.wait() == 0, d.text()[-3000:]
            await col.wait_for(lambda m: len({json.loads(p)["sample"] for _, p, _ in m}) >= n, timeout=60)
    finally:
        broker.stop()
    samples = [m["sample"] for m in classifications(col, node)]
    assert len(seen_before) < n
    assert len(set(samples)) == n  # every decision arrived ...
    assert len(samples) - n <= 20  # ... and at most one in-flight batch (QoS 1) twice
    assert "unavailable" in d.text()  # the outage really happened while the daemon was running


async def test_malformed_feedback_is_counted_and_ignored(tmp_path, nmnist_dir, mosquitto, daemons, test_samples):
    import aiomqtt

    node, ckpt = "fb", tmp_path / "model.npz"
    async with Collector(mosquitto.port, f"streamsnn/{node}/#") as col:
        d = Daemon(tmp_path, REPLAY, replay_sets(nmnist_dir, mosquitto.port, node, ckpt, source__speed=1.0,
                                                 source__loop=True, model__learn_from_labels=False))
        daemons.append(d.start())
        await col.wait_for(lambda m: len(classifications(col, node)) >= 1, timeout=120)
        known = classifications(col, node)[0]
        bad = [b"{not json", b"\xff\xfe", json.dumps({"sample": known["sample"], "label": 10}).encode(),
               json.dumps({"sample": known["sample"], "label": -3}).encode(),
               json.dumps({"sample": known["sample"], "label": "seven"}).encode(),
               json.dumps({"sample": known["sample"], "label": 2.5}).encode(),
               json.dumps({"sample": ["x"], "label": 1}).encode(), json.dumps([1, 2]).encode(),
               json.dumps({"t_end_us": "late", "label": 1}).encode(),
               json.dumps({"sample": "999999", "label": 1}).encode(),
               json.dumps({"sample": known["sample"], "label": 1, "pad": "x" * 200_000}).encode()]
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
            for payload in bad:
                await pub.publish(f"streamsnn/{node}/feedback", payload, qos=1)

        def rejected(msgs) -> int:
            ms = metrics(col, node)
            return ms[-1]["feedback"]["ignored"] if ms else 0

        await col.wait_for(lambda m: rejected(m) >= len(bad), timeout=60)
        # one valid message after the bad ones (a label that contradicts the sample's known true label
        # would be refused): the network learns exactly that, nothing else
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
            await pub.publish(f"streamsnn/{node}/feedback",
                              json.dumps({"sample": known["sample"], "label": known["true_label"]}).encode(), qos=1)
        await col.wait_for(lambda m: metrics(col, node) and metrics(col, node)[-1]["feedback"]["learned"] >= 1)
        d.signal(signal.SIGTERM)
        assert await d.wait() == 0, d.text()[-3000:]
    assert rejected(None) == len(bad)
    assert "Traceback" not in d.text()
    saved = SpikingNetwork.load(ckpt)
    ref = SpikingNetwork((2312, HIDDEN, 10), seed=0)
    ref.learn_one(test_samples[known["sample"]], known["true_label"], lr_scale=FEEDBACK_LR_SCALE)  # feedback's rate
    assert saved.updates == 1
    for name in ("W1", "W2", "b2"):
        np.testing.assert_array_equal(getattr(saved, name), getattr(ref, name))


async def test_sigterm_checkpoints_and_restart_resumes_counters(tmp_path, nmnist_dir, mosquitto, daemons):
    node, ckpt = "term", tmp_path / "model.npz"
    sets = replay_sets(nmnist_dir, mosquitto.port, node, ckpt, source__speed=1.0, source__loop=True,
                       model__save_every_s=0)
    async with Collector(mosquitto.port, f"streamsnn/{node}/#") as col:
        d = Daemon(tmp_path, REPLAY, sets, name="first")
        daemons.append(d.start())
        await col.wait_for(lambda m: len(classifications(col, node)) >= 3, timeout=120)
        assert not ckpt.exists()  # only written at shutdown here
        d.signal(signal.SIGTERM)
        assert await d.wait() == 0, d.text()[-3000:]
        await col.wait_for(lambda m: status(col, node)[-1:] == ["offline"])
        published = classifications(col, node)
    net = SpikingNetwork.load(ckpt)
    # every decision made before the signal was published, and the checkpoint counts exactly those
    assert net.samples_seen == len(published) == net.updates
    assert published[-1]["model_version"] == net.model_version
    async with Collector(mosquitto.port, f"streamsnn/{node}/status") as late:  # a late subscriber
        await late.wait_for(lambda m: len(m) >= 1)
        assert late.messages[0][1] == b"offline" and late.messages[0][2] is True  # retained
    async with Collector(mosquitto.port, f"streamsnn/{node}/#") as col:
        d2 = Daemon(tmp_path, REPLAY, sets, name="second")
        daemons.append(d2.start())
        await col.wait_for(lambda m: any(x["decisions"] >= 2 for x in metrics(col, node)), timeout=120)
        d2.signal(signal.SIGTERM)
        assert await d2.wait() == 0, d2.text()[-3000:]
    m = next(x for x in metrics(col, node) if x["decisions"] >= 2)
    assert m["samples_seen"] == net.samples_seen + m["decisions"]
    assert SpikingNetwork.load(ckpt).samples_seen > net.samples_seen


async def test_kill_9_during_checkpointing_never_corrupts_the_checkpoint(tmp_path, nmnist_dir, daemons):
    ckpt = tmp_path / "model.npz"
    sets = replay_sets(nmnist_dir, 1, "k9", ckpt, mqtt__enabled=False, source__loop=True,
                       source__split="train", model__save_every_s=0.05, model__hidden=HIDDEN)
    seen = []
    rng = np.random.default_rng(0)
    for i in range(4):
        d = Daemon(tmp_path, REPLAY, sets, name=f"k9-{i}")
        daemons.append(d.start())
        start = SpikingNetwork.load(ckpt).samples_seen if ckpt.exists() else 0
        while True:  # until this run has saved progress of its own
            await asyncio.sleep(0.2)
            assert d.proc.poll() is None, d.text()[-3000:]
            try:
                if ckpt.exists() and SpikingNetwork.load(ckpt).samples_seen > start:
                    break
            except Exception as exc:  # a half-written file would show up here
                pytest.fail(f"checkpoint unreadable while the daemon runs: {exc}")
        await asyncio.sleep(float(rng.uniform(0, 0.5)))
        d.signal(signal.SIGKILL)
        await d.wait()
        net = SpikingNetwork.load(ckpt)  # raises CheckpointError if the kill left a broken file
        seen.append(net.samples_seen)
    assert seen == sorted(seen) and seen[-1] > seen[0]  # each run resumed where the last checkpoint was


async def test_embedded_broker_default_end_to_end(tmp_path, nmnist_dir, daemons):
    port, node = free_port(), "embedded"
    sets = replay_sets(nmnist_dir, port, node, tmp_path / "m.npz", mqtt__broker="embedded", source__speed=1.0,
                       source__loop=True, mqtt__ha_discovery=True)
    d = Daemon(tmp_path, REPLAY, sets)
    daemons.append(d.start())
    # retries until the daemon's broker is up
    async with Collector(port, [f"streamsnn/{node}/#", "homeassistant/#"]) as col:
        await col.wait_for(lambda m: len(classifications(col, node)) >= 3 and metrics(col, node), timeout=120)
        assert "online" in status(col, node)
        assert json.loads(col.payloads(f"streamsnn/{node}/classes")[-1]) == [str(k) for k in range(10)]
        d.signal(signal.SIGTERM)
        assert await d.wait() == 0, d.text()[-3000:]
    for m in classifications(col, node):
        assert set(m) == set(FIELDS) and m["true_label"] is not None
    # mqtt.ha_discovery = true: the Home Assistant configs of this node (tests/test_mqtt_discovery.py checks them)
    configs = {t for t, _, _ in col.messages if t.startswith("homeassistant/sensor/streamsnn_embedded/")}
    assert "homeassistant/sensor/streamsnn_embedded/classification/config" in configs and len(configs) == 6
    assert "progressive" in d.text()  # the console progress line


async def test_two_daemons_share_one_stream_each_packet_classified_once(tmp_path, mosquitto, daemons, test_samples):
    from streamsnn.mqtt.publisher import MqttEventPublisher
    from streamsnn.mqtt.settings import MqttSettings

    nodes, topic = ("w1", "w2"), "test/events"
    async with Collector(mosquitto.port, "streamsnn/+/#") as col:
        for node in nodes:
            sets = {"mqtt.port": mosquitto.port, "pipeline.node_id": node, "model.hidden": HIDDEN,
                    "source.topic": topic, "source.group": "workers", "pipeline.metrics_every_s": 0.3,
                    "console.decisions": False}
            d = Daemon(tmp_path, ROOT / "pipelines" / "mqtt-events.toml", sets, name=node)
            daemons.append(d.start())

        def subscribed(node):
            ms = metrics(col, node)
            return bool(ms) and ms[-1]["source"]["subscribed"]

        await col.wait_for(lambda m: all(subscribed(n) for n in nodes), timeout=120)
        samples = list(test_samples.values())[:40]
        async with MqttEventPublisher(MqttSettings(port=mosquitto.port, node_id="producer"), topic) as pub:
            for batch in samples:  # whole samples, as ReplaySource sends them: each closes its sample
                await pub.publish(replace(batch, meta={"end_of_sample": True}))

        def all_classified(m):
            return sum(len(classifications(col, n)) for n in nodes) >= len(samples)

        await col.wait_for(all_classified, timeout=120)
        for d in daemons:
            d.signal(signal.SIGTERM)
        for d in daemons:
            assert await d.wait() == 0, d.text()[-3000:]
    per_node = {n: classifications(col, n) for n in nodes}
    got = [m["sample"] for msgs in per_node.values() for m in msgs]
    assert sorted(got) == sorted(b.sample for b in samples)  # each packet exactly once
    assert all(per_node[n] for n in nodes)  # and the work was shared
    fresh = SpikingNetwork((2312, HIDDEN, 10), seed=0)
    for msgs in per_node.values():
        for m in msgs:
            assert m["label"] == fresh.predict_one(test_samples[m["sample"]]).label


async def test_dv_stream_pipeline_classifies_a_served_recording(tmp_path, recordings_dir, mosquitto, daemons):
    port, node = free_port(), "dv"
    server = subprocess.Popen([sys.executable, "-m", "streamsnn", "serve", str(recordings_dir / "tonic_sample.aedat4"),
                               "--port", str(port), "--loop", "--quiet"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    try:
        assert b"127.0.0.1" in server.stdout.readline()  # it prints its address once listening
        sets = {"source.address": f"127.0.0.1:{port}", "mqtt.broker": "127.0.0.1", "mqtt.port": mosquitto.port,
                "pipeline.node_id": node, "model.hidden": HIDDEN, "model.checkpoint": tmp_path / "dv.npz",
                "pipeline.metrics_every_s": 0.5}
        async with Collector(mosquitto.port, f"streamsnn/{node}/#") as col:
            d = Daemon(tmp_path, ROOT / "pipelines" / "dv-stream.toml", sets)
            daemons.append(d.start())
            await col.wait_for(lambda m: len(classifications(col, node)) >= 12, timeout=120)
            # a live deployment learns from feedback naming a recent window by its end time
            import aiomqtt

            recent = classifications(col, node)[-1]
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
                await pub.publish(f"streamsnn/{node}/feedback",
                                  json.dumps({"t_end_us": recent["t_end_us"], "label": 3}), qos=1)
            await col.wait_for(lambda m: any(x["feedback"]["learned"] for x in metrics(col, node)), timeout=60)
            d.signal(signal.SIGTERM)
            assert await d.wait() == 0, d.text()[-3000:]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    msgs = classifications(col, node)
    for m in msgs:
        assert set(m) == set(FIELDS) and m["sample"] is None and m["true_label"] is None
        assert m["t_end_us"] - m["t_start_us"] == 100_000 and m["events"] >= 200
        assert isinstance(m["source"], str) and m["source"]
    starts = [m["t_start_us"] for m in msgs]
    assert all((b - a) % 50_000 == 0 and b > a for a, b in zip(starts, starts[1:]))  # hop 50 ms, in order
    assert SpikingNetwork.load(tmp_path / "dv.npz").updates == 1  # no labels in a stream: only the feedback taught it


async def test_live_camera_pipeline_without_a_camera_exits_2_in_one_line(tmp_path):
    out = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "streamsnn", "run", str(ROOT / "pipelines" / "live-camera.toml"),
                         "--set", "mqtt.port=0", "--set", f"model.checkpoint={tmp_path / 'c.npz'}"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("streamsnn: error: no iniVation camera found")
    assert "Traceback" not in out.stderr and not (tmp_path / "c.npz").exists()


async def test_refused_login_exits_2_without_showing_the_password(tmp_path, nmnist_dir):
    broker = Mosquitto(tmp_path / "broker", users={"alice": "right-password-456"}).start()
    try:
        sets = replay_sets(nmnist_dir, broker.port, "login", tmp_path / "m.npz", mqtt__username="alice",
                           mqtt__password="wrong-secret-123")
        d = Daemon(tmp_path, REPLAY, sets)
        d.start()
        assert await d.wait(120) == 2
        assert not (tmp_path / "m.npz").exists()  # nothing ran, nothing saved
        # the right password, from the environment rather than the file or the command line, works
        async with Collector(broker.port, "streamsnn/login/classification", username="alice",
                             password="right-password-456") as col:
            ok = Daemon(tmp_path, REPLAY, {**sets, "mqtt.password": "", "source.limit": 3}, name="ok",
                        env={"STREAMSNN_MQTT_PASSWORD": "right-password-456"})
            ok.start()
            assert await ok.wait(120) == 0, ok.text()[-3000:]
            await col.wait_for(lambda m: len(m) >= 3)
        assert "right-password-456" not in ok.text()
    finally:
        broker.stop()
    text = d.text()
    assert "wrong-secret-123" not in text and "Traceback" not in text
    assert text.strip().splitlines()[-1].startswith("streamsnn: error: MQTT broker")
