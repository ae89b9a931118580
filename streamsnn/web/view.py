"""Live view: a small web page served from the daemon's event loop showing frames, decisions and metrics.

`LiveView` is a sink (`pipeline.stages.Sink`: `publish_decision(window, decision, info)`, `publish_metrics(dict)`,
`check()`, `flush()`, `close()`) that also receives the raw event batches (`publish_events(batch)`, or wrap the
source with `tap(source, live.publish_events)`). It serves, on a plain asyncio server in the same loop:

- `GET /`             the page (streamsnn/web/index.html)
- `GET /events`       server-sent events: `hello` ({title, classes, model}), `classes` ({classes}, when
                      they change), `frame` ({seq, width, height, png: base64}: the camera now),
                      `decided` (the newest decision drawn, with `frame` {width, height, png} of the
                      window's own events: what the decision was made on), `decisions` (every decision
                      since the last message, at most `KEEP`, with window times and wall time) and `metrics`
- `GET /frame.png`    the latest accumulated frame (ON events green, OFF events red, fading)
- `GET /metrics.json` the latest metrics, last decision, frame number, connection and teaching counts
- `POST /teach`       a feedback message naming what a recent window shows (`teach.Teaching`: off unless
                      `teach`; with a token beyond loopback), answered with learned or refused and why

Events are histogrammed with NumPy as they arrive, each fading with its age (time constant `decay_ms`),
onto a canvas of at most `MAX_CANVAS_SIDE` pixels a side (a larger sensor is binned by a whole factor,
so any accepted sensor costs at most a few MB); `frame` messages give the canvas size;
a frame is rendered at most `fps` times a second, only while somebody is watching, in a worker thread
(PNG encoding by Pillow). The class names go out in `hello` and, when they change, in a `classes` event
({classes: [...]}); decisions carry their class name only.

The pipeline never waits for a page: `publish_decision` and `publish_metrics` serialise their message
once into shared state (the last `KEEP` decisions, the latest frame, decision, metrics and class list)
and touch no client, whatever the number of clients. Each client's own task sends, at most `fps`
times a second, what changed since its last send; a slow client skips frames (it always receives the
newest one) and decisions beyond the last `KEEP`, and holds at most one such round beyond its socket's
buffer. At most `max_clients` connections are served at once (beyond: HTTP 503 with Retry-After); a
request must arrive within `HEADER_TIMEOUT_S`, and a client that accepts no data for `SEND_TIMEOUT_S`
is dropped, so no connection holds a slot forever.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import time
from collections import deque

import numpy as np

from ..errors import ConfigError
from .frames import MAX_CANVAS_SIDE, canvas_bin, event_counts, render_png, window_png  # noqa: F401
from .server import (  # noqa: F401 - public here too
    HEADER_TIMEOUT_S,
    KEEP,
    KEEPALIVE_S,
    MAX_CLIENTS,
    MAX_REQUEST,
    RETRY_AFTER_S,
    SEND_TIMEOUT_S,
    LiveServer,
    _Client,
    _json,
    _Message,
)
from .teach import Teaching

log = logging.getLogger("streamsnn.liveview")


class Tapped:
    """A source whose batches are also passed to `fn` (e.g. the live view); everything else is the source's."""

    def __init__(self, source, fn):
        self._source, self._fn, self._it = source, fn, None
        self.errors = 0

    def __getattr__(self, name):
        return getattr(self._source, name)

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self._it is None:
            self._it = self._source.__aiter__()
        batch = await self._it.__anext__()
        try:
            self._fn(batch)
        except Exception as exc:  # noqa: BLE001 - a view that fails must not end the source
            self.errors += 1
            if self.errors <= 5:
                log.warning("live view skipped a batch: %s: %s", type(exc).__name__, exc)
        return batch

    async def open(self) -> None:
        await self._source.open()

    async def aclose(self) -> None:
        await self._source.aclose()


def tap(source, fn) -> Tapped:
    return Tapped(source, fn)


class LiveView(LiveServer):
    """The live web page of one daemon. `await start()` binds host:port (port 0: any free port, see `url`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8080, *, fps: float = 10.0, decay_ms: float = 50.0,
                 classes: list[str] | None = None, title: str = "streamsnn", model: str = "",
                 max_clients: int = MAX_CLIENTS, header_timeout_s: float = HEADER_TIMEOUT_S,
                 send_timeout_s: float = SEND_TIMEOUT_S, teach: bool = False, teach_token: str = ""):
        if not max_clients >= 1:
            raise ConfigError(f"liveview.max_clients must be at least 1, got {max_clients}")
        self.host, self.port, self.fps, self.decay_s = host, port, fps, decay_ms / 1000.0
        self.max_clients, self.header_timeout_s, self.send_timeout_s = max_clients, header_timeout_s, send_timeout_s
        self.classes, self.title = classes or [str(k) for k in range(10)], title
        self.model = model                             # the network's layers, shown beside the title
        self.size: tuple[int, int] | None = None      # sensor (width, height)
        self._bin = 1                                  # sensor pixels per canvas pixel, per side
        self._frame: np.ndarray | None = None          # (2, h, w) canvas: event counts, each fading with its age
        self._faded_at = time.monotonic()
        self._new = False                              # events arrived since the last render
        self._dark = False                             # the last rendered frame showed nothing
        self.frame_png: bytes | None = None
        self.frame_size = (34, 34)                     # (width, height) of frame_png
        self.frame_seq = 0
        self.metrics: dict | None = None
        self.metrics_seq = 0
        self.last_decision: dict | None = None
        self.decided: dict | None = None              # the latest decision drawn, with the frame of its events
        self.decided_seq = 0
        self._undrawn: tuple | None = None             # (decision, window batch) not drawn yet
        self.decisions = 0
        self.events = 0
        self._rate = None                              # (monotonic, decisions) at the last metrics
        self._recent: deque[tuple[int, bytes]] = deque(maxlen=KEEP)  # (seq, JSON) of the newest decisions
        self._latest: dict[str, _Message] = {}         # the latest frame, decided, metrics and classes messages
        self._clients: set[_Client] = set()            # open event streams
        self._open = 0                                 # connections being served (at most max_clients)
        self._writers: set[asyncio.StreamWriter] = set()  # open connections
        self._closing = False
        self.refused = 0                               # connections answered 503 (the view was full)
        self.dropped = 0                               # clients dropped: no request in time, or not reading
        self._refused_logged = -math.inf
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._render_task: asyncio.Task | None = None
        self._wanted = asyncio.Event()
        self.teaching = Teaching(teach, teach_token, host)  # POST /teach; the daemon connects its Teacher

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> LiveView:
        try:
            self._server = await asyncio.start_server(self._handle, self.host, self.port, limit=MAX_REQUEST)
        except OSError as exc:
            raise ConfigError(f"live view cannot listen on {self.host}:{self.port} ({exc.strerror or exc}); "
                              "set liveview.port (streamsnn demo: --port) to a free port (0 = any) "
                              "or liveview.enabled = false") from None
        self.port = self._server.sockets[0].getsockname()[1]
        self._render_task = asyncio.create_task(self._render_loop(), name="liveview-render")
        return self

    @property
    def url(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}/"

    async def close(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
        for t in [self._render_task, *self._tasks]:
            if t is not None:
                t.cancel()
        await asyncio.gather(*[t for t in [self._render_task, *self._tasks] if t is not None],
                             return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # -- sink -------------------------------------------------------------------------------------
    def publish_events(self, batch) -> None:
        """Add a batch of events to the frame being accumulated (a NumPy histogram; no rendering here)."""
        ev = batch.events
        self.events += len(ev)
        w, h = int(batch.width), int(batch.height)
        if self.size != (w, h):
            self.size = (w, h)
            self._bin = canvas_bin(w, h)
            self._frame = np.zeros((2, -(-h // self._bin), -(-w // self._bin)), np.float32)
        if len(ev):
            self._fade()
            self._frame += event_counts(ev, self._frame.shape, self._bin)
            self._new = True

    def publish_decision(self, window, decision, info) -> None:
        from ..pipeline.stages import true_label_index, true_label_name

        self.decisions += 1
        if info.classes:
            self.publish_classes(info.classes)  # sent to the pages only when they changed
        label = int(decision.label)
        slim = {"label": label, "label_name": info.name(label),
                "scores": [round(float(x), 4) for x in decision.scores],
                "confidence": round(float(decision.confidence), 4), "true_label": true_label_index(window, info),
                "true_label_name": true_label_name(window, info), "sample": window.sample,
                "source": window.source,
                "events": int(decision.events), "spikes": [int(s) for s in decision.spikes],
                "queue_ms": round(info.queue_ms, 2), "feed_ms": round(info.feed_ms, 2),
                "compute_ms": round(info.compute_ms, 2), "t_start_us": int(window.t_start_us),
                "t_end_us": int(window.t_end_us), "time": round(time.time(), 3), "seq": self.decisions}
        self.last_decision = slim
        self._undrawn = (slim, window.batch)  # drawn with its own events by the render loop
        self._recent.append((self.decisions, _json(slim).encode()))  # once, whatever the number of clients

    def publish_classes(self, classes) -> None:
        """The model's class names (e.g. a class was added): a `classes` event to every page, when they changed."""
        names = [str(c) for c in classes]
        if names != self.classes:
            self.classes = names
            self._put("classes", {"classes": names})

    def publish_metrics(self, m: dict) -> None:
        now = time.monotonic()
        m = dict(m)
        if self._rate is not None and now > self._rate[0]:
            m["decisions_per_s"] = round((m.get("decisions", 0) - self._rate[1]) / (now - self._rate[0]), 2)
        self._rate = (now, m.get("decisions", 0))
        self.metrics = m
        self.metrics_seq += 1
        self._put("metrics", m, self.metrics_seq)

    def _put(self, event: str, data, seq: int | None = None) -> None:
        """The latest `event` message (`data`, or a function making it), serialised once when first sent."""
        seq = (self._latest[event].seq + 1 if event in self._latest else 1) if seq is None else seq
        self._latest[event] = _Message(seq, event, data)

    def check(self) -> None:
        """Nothing can go wrong here that should end the run (a page that fails is logged)."""

    async def flush(self, timeout: float | None = None) -> bool:
        return True

    # -- frames -----------------------------------------------------------------------------------
    def _fade(self) -> None:
        """Age the counts to now (events less than 5 ms apart fade together)."""
        now = time.monotonic()
        if now - self._faded_at >= 0.005:
            self._frame *= math.exp(-(now - self._faded_at) / self.decay_s)
            self._faded_at = now

    def _step(self) -> np.ndarray | None:
        """The counts as of now, each event weighted by exp(-age / decay); None before the first batch."""
        if self._frame is None:
            return None
        self._fade()
        self._new = False
        return self._frame.copy()

    async def _render_loop(self) -> None:
        period = 1.0 / self.fps
        while True:
            if not self._clients:  # nobody watching: don't spend CPU (frame.png renders on request)
                self._wanted.clear()
                await self._wanted.wait()
            await self.render()
            await self.render_decision()
            await asyncio.sleep(period)

    async def render(self) -> bytes | None:
        """Render the current frame to PNG (in a worker thread); unchanged when nothing is visible or new."""
        if self._dark and self.frame_png is not None and not self._new:  # a dark frame stays dark
            return self.frame_png
        frame = self._step()
        if frame is None:
            return self.frame_png
        self._dark = bool(frame.max() < 0.3)
        try:
            self.frame_png = await asyncio.to_thread(render_png, frame)
            self.frame_size = (int(frame.shape[2]), int(frame.shape[1]))
        except Exception as exc:  # a frame that fails to render must not stop the view
            log.warning("live view frame not rendered: %s", exc)
            return self.frame_png
        self.frame_seq += 1
        w, h = self.frame_size
        png, seq = self.frame_png, self.frame_seq
        self._put("frame", lambda: {"seq": seq, "width": w, "height": h,
                                    "png": base64.b64encode(png).decode("ascii")}, seq)
        return self.frame_png

    async def render_decision(self) -> dict | None:
        """Draw the newest decision's own window (the events it was made on; in a worker thread), at most
        once per render; decisions in between are in the strip of recent decisions only."""
        if self._undrawn is None:
            return self.decided
        slim, batch = self._undrawn
        self._undrawn = None
        try:
            w, h, png = await asyncio.to_thread(window_png, batch)
        except Exception as exc:  # a frame that fails to render must not stop the view
            log.warning("live view decision frame not rendered: %s", exc)
            return self.decided
        self.decided = {**slim, "frame": {"width": w, "height": h, "png": base64.b64encode(png).decode("ascii")}}
        self.decided_seq += 1
        self._put("decided", self.decided, self.decided_seq)
        return self.decided

    @property
    def canvas(self) -> tuple[int, int] | None:
        """(width, height) of the frames drawn: the sensor's, binned to at most MAX_CANVAS_SIDE."""
        return None if self._frame is None else (int(self._frame.shape[2]), int(self._frame.shape[1]))

    def snapshot(self) -> dict:
        return {"title": self.title, "classes": self.classes, "model": self.model, "frame": self.frame_seq,
                "sensor": list(self.size) if self.size else None,
                "canvas": list(self.canvas) if self.canvas else None, "events": self.events,
                "decisions": self.decisions, "decision": self.last_decision, "metrics": self.metrics,
                "decided": {k: v for k, v in (self.decided or {}).items() if k != "frame"} or None,
                "clients": {"open": self._open, "streams": len(self._clients), "max": self.max_clients,
                            "refused": self.refused, "dropped": self.dropped},
                "teach": {**self.teaching.public(), **self.teaching.counts}}
