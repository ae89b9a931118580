"""End to end: `streamsnn run` replaying N-MNIST as fast as it can to a local Mosquitto, timed by a subscriber."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np

from .common import ROOT, Context, NotMeasurable, Result, percentile

NODE = "bench"
TOPIC = f"streamsnn/{NODE}/#"


def _require(*modules: str) -> None:
    from importlib.util import find_spec

    missing = [m for m in modules if find_spec(m) is None]
    if missing:
        raise NotMeasurable(f"{', '.join(missing)} not landed yet (needed by `streamsnn run`)")


def mosquitto(folder: Path):
    """A Mosquitto on a free loopback port, from the MQTT engineer's test helper."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from mqtt_util import Mosquitto
    except ImportError as exc:
        raise NotMeasurable(f"tests/mqtt_util.py not importable ({exc})") from exc
    try:
        return Mosquitto(folder).start()
    except BaseException as exc:  # pytest.skip (no mosquitto) is a BaseException
        raise NotMeasurable(f"cannot start Mosquitto: {exc}") from exc


def daemon_command(pipeline: str, port: int, overrides: list[str]) -> list[str]:
    """`streamsnn run PIPELINE` against the given Mosquitto, quiet, with `--set` overrides."""
    sets = ["mqtt.broker=127.0.0.1", f"mqtt.port={port}", f"pipeline.node_id={NODE}", "console.enabled=false",
            *overrides]
    cmd = [sys.executable, "-m", "streamsnn", "run", str(ROOT / pipeline), "-q"]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def shown(cmd: list[str], tmp: Path | None = None) -> str:
    """The command as a person would type it (paths shortened)."""
    text = "streamsnn " + " ".join(cmd[3:])
    text = re.sub(r"mqtt\.port=\d+", "mqtt.port=$PORT", text.replace(str(ROOT) + "/", ""))
    return text.replace(str(tmp), "$TMP") if tmp else text


class Subscriber:
    """Collects (receive time, topic, payload dict) for every message under TOPIC."""

    def __init__(self, port: int):
        self.port = port
        self.messages: list[tuple[float, str, dict]] = []
        self.ready = asyncio.Event()

    async def run(self) -> None:
        import aiomqtt

        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, identifier=f"bench-sub-{os.getpid()}") as c:
                    await c.subscribe(TOPIC, qos=1)
                    self.ready.set()
                    async for msg in c.messages:
                        now = time.time()
                        try:
                            payload = json.loads(msg.payload)
                        except (ValueError, TypeError):
                            payload = {"raw": str(msg.payload)[:80]}
                        self.messages.append((now, str(msg.topic), payload))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)

    def decisions(self) -> list[tuple[float, dict]]:
        return [(t, p) for t, topic, p in self.messages if topic.endswith("/classification")]

    def metrics(self) -> list[tuple[float, dict]]:
        return [(t, p) for t, topic, p in self.messages if topic.endswith("/metrics")]


@asynccontextmanager
async def subscribed(port: int):
    sub = Subscriber(port)
    task = asyncio.create_task(sub.run())
    try:
        await asyncio.wait_for(sub.ready.wait(), 15)
        yield sub
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def wait_process(proc: subprocess.Popen, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise NotMeasurable(f"`streamsnn run` did not finish within {timeout:.0f} s")
        await asyncio.sleep(0.1)
    return proc.returncode


def trained_checkpoint(ctx: Context, folder: Path) -> Path:
    """The online-trained 2312-800-10 network of this run, saved for the daemon to load."""
    from .bench_ops import inference_net

    net, _ = inference_net(ctx)
    path = folder / "model.npz"
    net.save(path)
    return path


# -- the benchmark ---------------------------------------------------------------------------------
async def one_run(ctx: Context, port: int, tmp: Path, model: Path, queue_size: int, speed: float) -> dict:
    overrides = [f"source.path={ctx.nmnist}", "source.split=train", f"source.speed={speed:g}", "source.shuffle=false",
                 f"model.checkpoint={model}", "model.learn_from_labels=false", "model.learn_from_feedback=false",
                 "model.save_every_s=0", f"pipeline.queue_size={queue_size}", "pipeline.metrics_every_s=1"]
    if ctx.quick:
        overrides.append("source.limit=600")
    cmd = daemon_command("pipelines/nmnist-replay.toml", port, overrides)
    async with subscribed(port) as sub:
        proc = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        code = await wait_process(proc, 900)
        await asyncio.sleep(1.0)  # let the last messages arrive
    if code != 0:
        raise NotMeasurable(f"`{shown(cmd, tmp)}` exited {code}: {proc.stderr.read().strip()[-300:]}")
    dec = sub.decisions()
    if len(dec) < 3:
        raise NotMeasurable(f"the subscriber received {len(dec)} decisions from `{shown(cmd, tmp)}`")
    # Start-up left out: the daemon loads its kernels on the first window, so that decision and every
    # window that was already waiting when it came out are late for a reason a running daemon never has.
    first = dec[0][1]["time"]
    left_out = max(1, sum(p["time"] - p["latency_ms"] / 1000.0 < first for _, p in dec))
    dec = dec[left_out:]
    if len(dec) < 3:
        raise NotMeasurable(f"fewer than 3 decisions after start-up in `{shown(cmd, tmp)}`")
    recv = np.array([t for t, _ in dec])
    events = np.array([p.get("events") or 0 for _, p in dec])
    # When the window (the whole sample: its last event) entered the pipeline, in Unix time.
    ready = np.array([p["time"] - p["latency_ms"] / 1000.0 for _, p in dec])
    lat_ms = (recv - ready) * 1000.0
    span = recv[-1] - recv[0]
    return {"cmd": shown(cmd, tmp), "decisions": len(dec), "left_out": left_out, "events": int(events.sum()), "span_s": span,
            "events_per_s": events[1:].sum() / span, "decisions_per_s": (len(dec) - 1) / span,
            "lat": lat_ms, "net_ms": np.array([p["latency_ms"] for _, p in dec])}


def run(ctx: Context) -> Result:
    _require("streamsnn.daemon", "streamsnn.pipeline", "streamsnn.sources.files", "streamsnn.sinks.mqtt",
             "aiomqtt")
    r = Result("e2e", "End to end: replay -> network -> Mosquitto -> subscriber (loopback)")
    with tempfile.TemporaryDirectory(prefix="streamsnn-bench-") as name:
        tmp = Path(name)
        broker = mosquitto(tmp / "mosquitto")
        try:
            model = trained_checkpoint(ctx, tmp)
            train = ctx.samples("train")
            sensor_rate = sum(len(b) for b in train) / sum(b.duration_us for b in train) * 1e6
            runs = [(64, 0.0, "as fast as possible, queue 64 (pipeline file's default)"),
                    (1, 0.0, "as fast as possible, queue 1")]
            while runs:
                queue_size, speed, label = runs.pop(0)
                res = asyncio.run(one_run(ctx, broker.port, tmp, model, queue_size, speed))
                if speed == 0 and queue_size == 64:  # then offer about 30 % of that rate, paced
                    paced = max(1.0, round(0.3 * res["events_per_s"] / sensor_rate))
                    runs.append((64, paced, f"paced at speed {paced:g} (about 30 % of the rate above)"))
                lat = res["lat"]
                r.metric(f"[{label}] sustained input events/s", res["events_per_s"], "events/s",
                         target=">= 1,000,000", met=res["events_per_s"] >= 1e6)
                r.metric(f"[{label}] decisions/s", res["decisions_per_s"], "1/s")
                r.metric(f"[{label}] latency p50", percentile(lat, 50), "ms")
                r.metric(f"[{label}] latency p99", percentile(lat, 99), "ms", target="< 5 ms",
                         met=percentile(lat, 99) < 5)
                r.metric(f"[{label}] latency max", float(lat.max()), "ms")
                r.metric(f"[{label}] of which queue + network (daemon's latency_ms), p50 / p99",
                         f"{percentile(res['net_ms'], 50):.3g} / {percentile(res['net_ms'], 99):.3g}", "ms")
                if not r.notes:
                    r.note(f"Command (first run): `{res['cmd']}`; the others differ in "
                           "pipeline.queue_size and source.speed only.")
                r.note(f"[{label}] {res['decisions']:,} decisions with {res['events']:,} events received "
                       f"over {res['span_s']:.2f} s (start-up left out: {res['left_out']} decision(s), the first one "
                       "and those whose window was already waiting when it came out; "
                       "rates from the first to the last decision received).")
        finally:
            broker.stop()
    r.note("Latency = subscriber receive time - (payload `time` - payload `latency_ms`), i.e. from the moment "
           "the whole sample (its last event) was handed to the pipeline until the subscriber has its "
           "classification; both clocks are this machine's. Payload `time` has 1 ms resolution. "
           "As fast as possible means the queue ahead of the network stays full, so queueing is included: "
           "the 'queue 1' run shows it without a deep queue, the paced run below capacity. Speed k plays the "
           f"recordings k times faster than real time (they hold about {sensor_rate:,.0f} events per second "
           "of sensor time).")
    r.note("Network: 2312-800-10 trained online in this run (inference only, learning off); QoS 1; the "
           "daemon and the subscriber share the 2 cores with Mosquitto.")
    return r
