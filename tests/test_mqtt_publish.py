"""`streamsnn publish`: a dataset published as event packets arrives whole, labelled, once; bad input exits 2."""

import asyncio
import subprocess
import sys

from conftest import ROOT, need
from mqtt_util import free_port, mosquitto  # noqa: F401 (fixture)

from streamsnn.mqtt.settings import MqttSettings
from streamsnn.mqtt.source import MqttEventSource


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamsnn", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


async def test_publish_dataset_split(mosquitto):
    from streamsnn.io.dataset import open_dataset

    data = need("nmnist_small")
    expected = {s.sample_id: s.label for s in open_dataset(data).split("test").samples[:12]}
    source = MqttEventSource(MqttSettings(port=mosquitto.port, node_id="rx"), "lab/events", idle_timeout=3.0)
    await source.start()
    await asyncio.wait_for(source.subscribed.wait(), 10)
    done = await asyncio.to_thread(cli, "publish", str(data), "--split", "test", "--limit", "12", "--speed", "0",
                                   "--broker", f"127.0.0.1:{mosquitto.port}", "--topic", "lab/events")
    assert done.returncode == 0, done.stderr
    assert "published 12 batches" in done.stdout
    got = [b async for b in source]
    assert {b.sample: b.label for b in got} == expected and len(got) == 12
    assert all(b.meta.get("end_of_sample") and b.sensor_size == (34, 34) and len(b) > 1000 for b in got)


def test_unreachable_broker_and_bad_arguments_exit_2():
    data = need("nmnist_small")
    done = cli("publish", str(data), "--limit", "1", "--speed", "0", "--broker", f"127.0.0.1:{free_port()}")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("streamsnn: error: cannot reach MQTT broker mqtt://127.0.0.1:")
    done = cli("publish", str(data), "--broker", "nohost:notaport")
    assert done.returncode == 2 and "--broker 'nohost:notaport'" in done.stderr
    done = cli("publish", "/nonexistent/recording.aedat4")
    assert done.returncode == 2 and "/nonexistent/recording.aedat4" in done.stderr
    done = cli("publish", str(data), "--limit", "0", "--broker", f"127.0.0.1:{free_port()}")  # was: 1 sample
    assert done.returncode == 2 and "argument --limit: give a whole number of 1 or more, not '0'" in done.stderr
