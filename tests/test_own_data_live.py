"""pipelines/live-camera.toml with a model trained on POKER-DVS (128x128), fed by a DV network stream.

The daemon reads the stream through the model's input map: its decisions are the ones the same
windows get offline, named by class; a stream from a sensor of another size is refused in one line.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time

import numpy as np
import pytest
from conftest import ROOT, need
from daemon_util import Daemon, daemons  # noqa: F401  (fixture)
from dv_util import event_writer, free_port, wait_for_client

from streamsnn.cli import main
from streamsnn.io.dataset import open_dataset
from streamsnn.learn.streameval import make_stream
from streamsnn.pipeline.segment import Segmenter
from streamsnn.snn import SpikingNetwork

CLASSES = ["club", "diamond", "spade"]
WINDOW = {"segment.window_us": 20000, "segment.hop_us": 10000, "segment.min_events": 50}
T0 = 1_000_000  # the stream's clock starts here


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    out = tmp_path_factory.mktemp("live") / "poker.npz"
    assert main(["train", "--data", str(need("poker_dvs_inverted")), "--epochs", "10", "--out", str(out),
                 "--quiet"]) == 0
    return out


def poker_stream():
    """The POKER-DVS test recordings back to back (128x128), as batches of 10 ms, clock from T0."""
    samples = [s.load() for s in open_dataset(need("poker_dvs_inverted")).split("test").samples]
    stream = make_stream(samples)
    for b in stream.batches:
        b.events["t"] += T0
    return stream.batches


def offline(model, batches) -> dict:
    """t_start_us -> class name of every window, by the daemon's segmenter and the model, in this process."""
    net = SpikingNetwork.load(model)
    seg = Segmenter("window", WINDOW["segment.window_us"], WINDOW["segment.hop_us"], WINDOW["segment.min_events"])
    out = {}
    for b in batches:
        for w in seg.feed(b):
            out[w.t_start_us] = net.classes[net.predict_one(w.batch).label]
    return out


def live_daemon(tmp_path, model, port) -> tuple[Daemon, object]:
    ckpt = tmp_path / "model.npz"
    ckpt.write_bytes(model.read_bytes())
    jsonl = tmp_path / "decisions.jsonl"
    sets = {"source.kind": "dvstream", "source.address": f"127.0.0.1:{port}", "model.checkpoint": ckpt,
            "model.learn_from_feedback": False, "mqtt.enabled": False, "console.enabled": False,
            "jsonl.path": jsonl, "pipeline.policy": "block", "segment.overlap": "inflight",  # each window alone
            **WINDOW}  # no drops on a busy test machine
    return Daemon(tmp_path, ROOT / "pipelines" / "live-camera.toml", sets), jsonl


async def test_live_stream_decisions_match_offline_and_carry_class_names(tmp_path, model, daemons):  # noqa: F811
    import dv_processing as dv

    batches = poker_stream()
    port = free_port()
    writer = event_writer(("127.0.0.1", port), 128, 128)
    d, jsonl = live_daemon(tmp_path, model, port)
    daemons.append(d.start())
    await asyncio.to_thread(wait_for_client, writer, 60)
    for b in batches:
        store = dv.EventStore()
        for t, x, y, p in zip(b.events["t"].tolist(), b.events["x"].tolist(), b.events["y"].tolist(),
                              b.events["p"].tolist()):
            store.push_back(t, x, y, bool(p))
        writer.writeEvents(store)
    want = offline(model, batches)
    end = time.monotonic() + 120
    rows = []
    while time.monotonic() < end and len(rows) < len(want) - 2:  # the last windows close when the stream does
        await asyncio.sleep(0.2)
        rows = [json.loads(x) for x in jsonl.read_text().splitlines()] if jsonl.exists() else []
    d.signal(signal.SIGTERM)
    assert await d.wait(60) == 0, d.text()[-2000:]
    assert len(rows) >= len(want) - 2 and len(want) > 5
    got = {r["t_start_us"]: r["label_name"] for r in rows}
    assert set(got) <= set(want)
    assert got == {t: want[t] for t in got}  # the same windows, the same decisions as offline
    assert set(got.values()) <= set(CLASSES) and len(set(got.values())) >= 2


async def test_a_stream_from_another_sensor_size_is_refused_in_one_line(tmp_path, model, daemons):  # noqa: F811
    port = free_port()
    event_writer(("127.0.0.1", port), 320, 240)
    d, _ = live_daemon(tmp_path, model, port)
    daemons.append(d.start())
    assert await d.wait(60) == 2
    err = [x for x in d.text().splitlines() if x.startswith("streamsnn: error")]
    assert len(err) == 1 and "320x240 sensor" in err[0] and "128x128 sensor" in err[0], d.text()[-2000:]
