"""The live view without a browser: its HTTP endpoints, the server-sent event stream and the PNG frames,
fed with real N-MNIST events, over plain asyncio sockets and urllib."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from conftest import need
from PIL import Image

from streamsnn.errors import ConfigError
from streamsnn.events import EVENT_DTYPE, EventBatch
from streamsnn.io import read_events
from streamsnn.pipeline.segment import Window
from streamsnn.pipeline.stages import DecisionInfo
from streamsnn.snn.network import Decision
from streamsnn.web.view import KEEP, LiveView, tap


async def until(condition, timeout: float = 20.0, what: str = "condition") -> None:
    """Wait until `condition()` holds, checking every 50 ms; fail saying `what` after `timeout` seconds."""
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout} s")


def decided(label: int, scores=(), confidence: float = 0.0, true_label=None, sample=None, classes=(), **meta):
    """The (window, decision, info) the pipeline hands a sink."""
    ev = np.zeros(1, EVENT_DTYPE)
    w = Window(EventBatch(ev, 34, 34, sample=sample, label=true_label, meta=meta), 0, 1, sample=sample,
               label=true_label)
    d = Decision(label=label, scores=np.asarray(scores, float), confidence=confidence, events=1)
    return w, d, DecisionInfo(1.0, 2.0, "v", tuple(classes) or tuple(str(k) for k in range(10)))


def sample(name: str = "00004.bin"):
    folder = need("nmnist_small")
    files = sorted(folder.rglob("*.bin")) + sorted(folder.rglob("*.bs2"))
    assert files, f"no N-MNIST files in {folder}"
    return read_events(files[0])


async def get(url: str) -> tuple[int, str, bytes]:
    def fetch():
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.status, r.headers["Content-Type"], r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers["Content-Type"], e.read()
    return await asyncio.to_thread(fetch)


class Sse:
    """A minimal server-sent events client on an asyncio socket."""

    def __init__(self, port: int, sock=None, limit: int = 1 << 25):
        self.port, self.sock, self.limit = port, sock, limit  # asyncio reads ahead up to 2 * limit bytes

    async def __aenter__(self):
        where = {"sock": self.sock} if self.sock is not None else {"host": "127.0.0.1", "port": self.port}
        self.reader, self.writer = await asyncio.open_connection(**where, limit=self.limit)
        self.writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        await self.writer.drain()
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head
        return self

    async def __aexit__(self, *exc):
        self.writer.close()

    async def next(self, want: str | None = None, timeout: float = 10):
        """The next event (name, data), skipping others than `want`."""
        while True:
            block = (await asyncio.wait_for(self.reader.readuntil(b"\n\n"), timeout)).decode()
            fields = dict(line.split(": ", 1) for line in block.strip().splitlines() if ": " in line
                          and not line.startswith(":"))
            if "event" in fields and (want is None or fields["event"] == want):
                return fields["event"], json.loads(fields["data"])


@pytest.fixture
async def live():
    lv = await LiveView("127.0.0.1", 0, fps=20, decay_ms=600_000, classes=[str(k) for k in range(10)],
                        title="test").start()  # events do not fade during these tests
    yield lv
    await lv.close()


def decode(png: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG"
    return np.asarray(img.convert("RGB"))


async def test_frame_png_shows_on_and_off_events_where_they_happened(live):
    b = sample()
    live.publish_events(b)
    status, ctype, body = await get(f"{live.url}frame.png")
    assert status == 200 and ctype == "image/png"
    rgb = decode(body).astype(int)
    assert rgb.shape == (b.height, b.width, 3)
    ev = b.events
    on = np.zeros((b.height, b.width), bool)
    off = np.zeros((b.height, b.width), bool)
    on[ev["y"][ev["p"] > 0], ev["x"][ev["p"] > 0]] = True
    off[ev["y"][ev["p"] == 0], ev["x"][ev["p"] == 0]] = True
    silent = ~on & ~off
    assert silent.any() and on.any() and off.any()
    # green only where ON events fell, red only where OFF events fell; background stays dark
    assert rgb[..., 1][silent].max() <= 20 and rgb[..., 0][silent].max() <= 20
    assert rgb[..., 1][on].mean() > 60 and rgb[..., 0][off].mean() > 60
    assert rgb[..., 1][on].min() >= 50 and rgb[..., 0][off].min() >= 50  # one event is visible


async def test_any_accepted_sensor_is_drawn_on_a_bounded_canvas(live):
    from streamsnn.events import MAX_SENSOR_SIDE
    from streamsnn.web.view import MAX_CANVAS_SIDE

    rec = read_events(need("recordings/tonic_sample.aedat4")).slice_count(0, 20_000)
    # the largest sensor streamsnn accepts, events spread over it (a packet may announce that)
    ev = rec.events.copy()
    ev["x"] = (ev["x"].astype(np.int64) * (MAX_SENSOR_SIDE // rec.width)).astype(np.uint16)
    ev["y"] = (ev["y"].astype(np.int64) * (MAX_SENSOR_SIDE // rec.height)).astype(np.uint16)
    big = EventBatch(ev, MAX_SENSOR_SIDE, MAX_SENSOR_SIDE)
    live.publish_events(big)
    assert live._frame.nbytes <= 2 * 4 * MAX_CANVAS_SIDE**2  # a few MB, not 2 x 4096^2 floats
    status, _, body = await get(f"{live.url}frame.png")
    rgb = decode(body)
    scale = -(-MAX_SENSOR_SIDE // MAX_CANVAS_SIDE)  # a whole number of sensor pixels per canvas pixel
    side = -(-MAX_SENSOR_SIDE // scale)
    assert status == 200 and rgb.shape == (side, side, 3) and side <= MAX_CANVAS_SIDE
    lit = rgb[..., :2].max(axis=2) >= 50
    # the events land where they were, scaled: the lit canvas pixels are exactly the binned event positions
    expected = np.zeros((side, side), bool)
    expected[ev["y"] // scale, ev["x"] // scale] = True
    assert np.array_equal(lit, expected)
    snap = json.loads((await get(f"{live.url}metrics.json"))[2])
    assert snap["sensor"] == [MAX_SENSOR_SIDE, MAX_SENSOR_SIDE] and snap["canvas"] == [side, side]
    # a small sensor afterwards is drawn at its own size again, and the stream says so
    async with Sse(live.port) as sse:
        live.publish_events(sample())
        while True:
            _, frame = await sse.next("frame")
            if (frame["width"], frame["height"]) == (34, 34):
                break
        assert decode(base64.b64decode(frame["png"])).shape == (34, 34, 3)


async def test_page_metrics_json_and_errors(live):
    status, ctype, body = await get(live.url)
    assert status == 200 and ctype.startswith("text/html")
    assert b"EventSource" in body and b'id="decision"' in body
    live.publish_metrics({"decisions": 0, "events_per_s": 10.0})
    live.publish_decision(*decided(3, [0.0] * 10, 0.9, true_label=3))
    status, ctype, body = await get(f"{live.url}metrics.json")
    snap = json.loads(body)
    assert ctype == "application/json" and snap["decision"]["label"] == 3 and snap["decisions"] == 1
    assert snap["metrics"]["events_per_s"] == 10.0
    assert (await get(f"{live.url}nope"))[0] == 404
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    writer.write(b"POST / HTTP/1.1\r\n\r\n")
    assert (await reader.read()).startswith(b"HTTP/1.1 405")
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    writer.write(b"garbage\r\n\r\n")
    assert (await reader.read()).startswith(b"HTTP/1.1 400")


async def test_sse_streams_frames_decisions_and_metrics(live):
    async with Sse(live.port) as sse:
        name, hello = await sse.next()
        assert name == "hello" and hello["classes"][3] == "3" and hello["title"] == "test"
        b = sample()
        live.publish_events(b)
        _, frame = await sse.next("frame")
        assert (frame["width"], frame["height"]) == (b.width, b.height)
        rgb = decode(base64.b64decode(frame["png"]))
        assert rgb.shape == (b.height, b.width, 3) and rgb.std() > 5
        scores = [0.1 * k for k in range(10)]
        live.publish_decision(*decided(9, scores, 0.5, true_label=1, sample="x"))
        _, ds = await sse.next("decisions")
        assert ds[-1]["label"] == 9 and ds[-1]["scores"] == pytest.approx(scores) and ds[-1]["true_label"] == 1
        assert (ds[-1]["label_name"], ds[-1]["true_label_name"]) == ("9", "1")
        # class names by name, and the dataset's name of the true class
        poker = ("club", "diamond", "heart", "spade")
        live.publish_decision(*decided(3, [0, 0, 0, 1], 0.9, true_label=1, sample="y", classes=poker,
                                       label_name="diamond"))
        _, names = await sse.next("classes")  # the new class list, once, before the decisions that use it
        _, ds = await sse.next("decisions")
        assert (ds[-1]["label_name"], ds[-1]["true_label_name"], names["classes"]) == ("spade", "diamond", list(poker))
        assert "classes" not in ds[-1]
        assert ds[-1]["queue_ms"] == 1.0 and ds[-1]["compute_ms"] == 2.0
        live.publish_metrics({"decisions": 10, "progressive_accuracy": 0.5})
        await sse.next("metrics")
        await asyncio.sleep(0.2)
        live.publish_metrics({"decisions": 30, "progressive_accuracy": 0.6, "drops": 2})
        _, m = await sse.next("metrics")
        assert m["progressive_accuracy"] == 0.6 and m["drops"] == 2 and m["decisions_per_s"] > 0


async def test_a_client_behind_keeps_only_the_newest_decisions(live):
    async with Sse(live.port) as sse:
        await sse.next("hello")
        for k in range(200):  # all at once: the client cannot be sent them one by one
            live.publish_decision(*decided(k % 10, sample=f"s{k}"))
        _, ds = await sse.next("decisions")
        assert [d["sample"] for d in ds] == [f"s{k}" for k in range(200 - KEEP, 200)]


@pytest.mark.slow
async def test_a_slow_client_skips_frames_and_then_gets_the_newest():
    import socket

    lv = await LiveView("127.0.0.1", 0, fps=50, decay_ms=600_000).start()
    try:
        rng = np.random.default_rng(0)
        ev = np.zeros(250_000, EVENT_DTYPE)  # noise over a 512x512 sensor: ~0.25 MB per frame as sent
        ev["x"], ev["y"] = rng.integers(0, 512, len(ev)), rng.integers(0, 512, len(ev))
        ev["p"] = rng.integers(0, 2, len(ev))
        lv.publish_events(EventBatch(ev, 512, 512))
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)  # no receive-buffer autotuning
        sock.connect(("127.0.0.1", lv.port))
        async with Sse(lv.port, sock, limit=1 << 20) as sse:
            await sse.next("hello")
            # not reading while far more than the socket buffers (~4 MB) is rendered: 40 frames, ~10 MB
            # (waited for by count, not by time: a loaded machine renders fewer frames a second)
            await until(lambda: lv.frame_seq >= 40, 60.0, "40 frames rendered")
            newest = lv.frame_seq
            seqs = []
            while not seqs or seqs[-1] < newest:
                seqs.append((await sse.next("frame", timeout=30))[1]["seq"])
        assert seqs == sorted(set(seqs))
        print(f"slow client: sent {len(seqs)} of frames {seqs[0]}..{seqs[-1]}")
        assert len(seqs) < seqs[-1] - seqs[0] + 1, "every frame was sent to a client that did not read"
    finally:
        await lv.close()


async def test_tap_passes_batches_and_keeps_the_source_attributes(live):
    b = sample()

    class Src:
        counters = {"batches": 0}

        def __init__(self):
            self.closed = False

        def __aiter__(self):
            return self._gen()

        async def _gen(self):
            for _ in range(3):
                yield b

        async def aclose(self):
            self.closed = True

    src = Src()
    t = tap(src, live.publish_events)
    got = [x async for x in t]
    assert len(got) == 3 and live.events == 3 * len(b) and t.counters is src.counters
    await t.aclose()
    assert src.closed


async def test_busy_port_is_a_config_error(live):
    with pytest.raises(ConfigError, match=rf"127.0.0.1:{live.port}.*liveview.port"):
        await LiveView("127.0.0.1", live.port).start()


async def test_events_fade_from_the_frame():
    lv = await LiveView("127.0.0.1", 0, decay_ms=50).start()
    try:
        lv.publish_events(sample())
        assert decode(await lv.render()).max() > 50
        await asyncio.sleep(1.0)  # 20 time constants: every pixel below one event
        rgb = decode(await lv.render())
        assert rgb[..., 0].max() <= 20 and rgb[..., 1].max() <= 20
        # nobody rendered in between: old events still fade, the next frame shows only the new ones
        b = sample()
        lv.publish_events(b)
        await asyncio.sleep(1.0)
        few = b.events[:40]
        lv.publish_events(EventBatch(few, b.width, b.height))
        rgb = decode(await lv.render())
        lit = np.zeros((b.height, b.width), bool)
        lit[few["y"], few["x"]] = True
        assert rgb[..., :2][lit].max() >= 50 and rgb[..., :2][~lit].max() <= 20
    finally:
        await lv.close()


@pytest.mark.slow
async def test_daemon_serves_the_live_view_of_a_replay(tmp_path):
    """`streamsnn run` with [liveview] on: the SSE stream names the (convolutional) model and carries frames of
    the replayed sample and its decision with spikes per layer."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from mqtt_util import free_port

    nmnist = need("nmnist_small")
    port = free_port()
    root = Path(__file__).resolve().parent.parent
    cmd = [sys.executable, "-m", "streamsnn", "run", str(root / "pipelines" / "nmnist-replay.toml"), "-q"]
    for kv in (f"source.path={nmnist}", "source.split=test", "source.speed=1", "source.loop=true",
               "model.checkpoint=", "model.arch=conv:4:5:2:2,dense:32", "mqtt.enabled=false", "liveview.enabled=true",
               f"liveview.port={port}", "liveview.decay_ms=1000", "pipeline.metrics_every_s=0.5"):
        cmd += ["--set", kv]
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        for _ in range(600):  # the port opens once the network is loaded
            try:
                async with Sse(port) as sse:
                    _, hello = await sse.next("hello")
                    assert hello["model"] == "conv:4:5:2:2,dense:32 → 10 classes"  # a deep convolutional model
                    _, ds = await sse.next("decisions", timeout=60)
                    assert ds[-1]["sample"] and 0 <= ds[-1]["label"] <= 9 and ds[-1]["true_label"] in range(10)
                    assert len(ds[-1]["spikes"]) == 2 and len(ds[-1]["scores"]) == 10  # spikes per hidden layer
                    _, frame = await sse.next("frame", timeout=60)
                    assert decode(base64.b64decode(frame["png"])).std() > 5
                    _, m = await sse.next("metrics", timeout=60)
                    assert {"events_per_s", "progressive_accuracy", "drops"} <= set(m)
                break
            except (ConnectionRefusedError, OSError):
                assert proc.poll() is None, log.read_text()
                await asyncio.sleep(0.2)
        else:
            pytest.fail(f"live view never opened; log:\n{log.read_text()}")
        status, _, png = await get(f"http://127.0.0.1:{port}/frame.png")
        assert status == 200 and decode(png).shape == (34, 34, 3)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(proc.wait, 60)
    assert code == 0, log.read_text()


async def test_each_decision_is_drawn_with_the_events_it_was_made_on(live):
    """The camera frame shows what arrives now; the decision comes with the frame of its own window."""
    b = sample()
    ev = b.events
    left, right = ev[ev["x"] < 17], ev[ev["x"] >= 17]
    async with Sse(live.port) as sse:
        await sse.next("hello")
        live.publish_events(EventBatch(left, 34, 34))  # the camera now: the left half only
        w = Window(EventBatch(right, 34, 34), int(right["t"][0]), int(right["t"][-1]) + 1, sample="s7")
        d = Decision(label=4, scores=np.arange(10.0), confidence=0.5, events=len(right))
        live.publish_decision(w, d, DecisionInfo(1.0, 2.0, "v", tuple(str(k) for k in range(10))))
        _, decided = await sse.next("decided")
        _, frame = await sse.next("frame")
    assert (decided["label"], decided["sample"], decided["seq"]) == (4, "s7", 1)
    assert decided["t_end_us"] == w.t_end_us and decided["time"] > 0
    mine = decode(base64.b64decode(decided["frame"]["png"])).astype(int)
    now = decode(base64.b64decode(frame["png"])).astype(int)
    lit = lambda rgb: rgb.max(axis=2) > 40  # noqa: E731
    assert lit(mine)[:, 17:].any() and not lit(mine)[:, :17].any()  # the decision's window: right half
    assert lit(now)[:, :17].any() and not lit(now)[:, 17:].any()    # the camera now: left half
    snap = json.loads((await get(f"{live.url}metrics.json"))[2])
    assert snap["decided"]["seq"] == 1 and "frame" not in snap["decided"]
