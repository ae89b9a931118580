"""The live view's HTTP side: a bounded number of connections, request and send deadlines, event streams.

`LiveServer` is mixed into `view.LiveView`, which holds the state it serves (`render`, `snapshot`,
`frame_png`, `last_decision`, the shared `_recent` decisions and `_latest` messages). Connections
beyond `max_clients` are answered `503 Service Unavailable` with `Retry-After` and closed; a request
line and headers must arrive within `header_timeout_s` (else `408`); a client that takes no data for
`send_timeout_s` is cut. Each event stream runs in its connection's own task and sends, at most `fps`
times a second, the messages it has not had yet, each serialised once for every client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from importlib import resources

import numpy as np

from .frames import render_png

log = logging.getLogger("streamsnn.liveview")

KEEP = 16              # decisions kept for clients between two messages
MAX_REQUEST = 8192     # bytes of request line and headers accepted
KEEPALIVE_S = 15.0     # SSE comment sent to idle clients (detects closed connections)
MAX_CLIENTS = 32       # connections served at once (liveview.max_clients)
HEADER_TIMEOUT_S = 5.0  # the request line and headers must arrive within this
SEND_TIMEOUT_S = 30.0  # a client that accepts no data for this long is dropped
RETRY_AFTER_S = 10     # told to clients refused because the view is full
REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 409: "Conflict", 411: "Length Required", 413: "Content Too Large",
           429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


class _Client:
    """What one event stream has been sent: the newest decision's seq and each latest message's seq."""

    def __init__(self, decision_seq: int, seen: dict[str, int]):
        self.decision_seq, self.seen = decision_seq, seen


class _Message:
    """The latest message of one event: its seq, and its SSE bytes, built when first sent (once for all clients)."""

    __slots__ = ("seq", "event", "_data", "_sse")

    def __init__(self, seq: int, event: str, data):
        self.seq, self.event, self._data, self._sse = seq, event, data, None

    @property
    def sse(self) -> bytes:
        if self._sse is None:
            data = self._data() if callable(self._data) else self._data
            self._sse, self._data = _sse(self.event, data), None
        return self._sse


class LiveServer:
    """The HTTP handlers of `LiveView` (see the module docstring)."""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        self._writers.add(writer)
        full = self._open >= self.max_clients
        self._open += not full
        abort = False
        try:
            if full:
                return await self._refuse(reader, writer)
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.header_timeout_s)
                method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            except TimeoutError:
                self.dropped += 1
                return await self._reply(writer, 408, "text/plain", b"no request within the time allowed\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                return await self._reply(writer, 400, "text/plain", b"bad request\n")
            path = target.split("?", 1)[0]
            if path == "/teach":
                if method != "POST":
                    return await self._reply(writer, 405, "text/plain", b"only POST\n", extra="Allow: POST\r\n")
                return await self._teach(head, reader, writer)
            if method not in ("GET", "HEAD"):
                return await self._reply(writer, 405, "text/plain", b"only GET\n", head_only=False)
            head_only = method == "HEAD"
            if path in ("/", "/index.html"):
                page = resources.files("streamsnn.web").joinpath("index.html").read_bytes()
                await self._reply(writer, 200, "text/html; charset=utf-8", page, head_only)
            elif path == "/frame.png":
                png = await self.render() if not self._clients else self.frame_png
                png = png or await asyncio.to_thread(render_png, np.zeros((2, 34, 34), np.float32))
                await self._reply(writer, 200, "image/png", png, head_only)
            elif path == "/metrics.json":
                await self._reply(writer, 200, "application/json", _json(self.snapshot()).encode(), head_only)
            elif path == "/events" and not head_only:
                await self._stream(reader, writer)
            else:
                await self._reply(writer, 404, "text/plain",
                                  b"not found: try /, /events, /frame.png, /metrics.json, POST /teach\n")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:  # the view closes: end quietly (asyncio logs a handler that is cancelled)
            abort = True
        except TimeoutError:  # the client took no data for send_timeout_s: it loses its connection
            self.dropped += 1
            abort = True
            log.debug("live view dropped a client that took no data for %g s", self.send_timeout_s)
        finally:
            self._open -= not full
            self._tasks.discard(task)
            await self._close(writer, abort or self._closing, 1.0 if full else self.send_timeout_s)
            self._writers.discard(writer)

    async def _teach(self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """POST /teach: the body is a feedback message, handed to the daemon by `teach.Teaching`."""
        headers = {}
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        status, answer = await self.teaching.handle(headers, reader, self.header_timeout_s, lambda: self.classes)
        await self._reply(writer, status, "application/json", _json(answer).encode(),
                          extra="Retry-After: 1\r\n" if status == 429 else "")

    async def _close(self, writer: asyncio.StreamWriter, abort: bool, timeout: float) -> None:
        """Close the connection; one that does not take what is left to send within `timeout` is cut."""
        if not abort:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), timeout)
                return
            except (TimeoutError, ConnectionError, asyncio.CancelledError):
                pass
        writer.transport.abort()

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The view is full: read the request (briefly), answer 503 with Retry-After, close."""
        self.refused += 1
        now = time.monotonic()
        if now - self._refused_logged >= 60:  # one line a minute at most
            self._refused_logged = now
            log.warning("live view full (%d connections; liveview.max_clients = %d): refusing clients "
                        "(%d so far)", self._open, self.max_clients, self.refused)
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), min(1.0, self.header_timeout_s))
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        await self._reply(writer, 503, "text/plain", b"the live view has too many clients; try again later\n",
                          extra=f"Retry-After: {RETRY_AFTER_S}\r\n")

    async def _reply(self, writer, status: int, ctype: str, body: bytes, head_only: bool = False,
                     extra: str = "") -> None:
        writer.write(f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: {ctype}\r\n"
                     f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n{extra}Connection: close\r\n\r\n"
                     .encode("latin-1"))
        if not head_only:
            writer.write(body)
        await asyncio.wait_for(writer.drain(), self.send_timeout_s)

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
                     b"Connection: keep-alive\r\n\r\nretry: 1000\n\n")
        writer.write(_sse("hello", {"title": self.title, "classes": self.classes, "model": self.model,
                                    "teach": self.teaching.public()}))
        if self.last_decision is not None:
            writer.write(_sse("decisions", [self.last_decision]))
        if "decided" in self._latest:
            writer.write(self._latest["decided"].sse)
        client = _Client(self.decisions, {k: self._latest[k].seq for k in ("classes", "decided") if k in self._latest})
        await asyncio.wait_for(writer.drain(), self.send_timeout_s)
        self._clients.add(client)
        self._wanted.set()
        period = 1.0 / self.fps
        sent_at = time.monotonic()
        try:
            while True:
                await asyncio.sleep(period)  # at most fps messages a second
                if reader.at_eof():  # the page was closed: its slot is free at once
                    return
                out = self._news(client)
                if not out:
                    if time.monotonic() - sent_at < KEEPALIVE_S:
                        continue
                    out = [b": keep-alive\n\n"]
                sent_at = time.monotonic()
                writer.writelines(out)
                # a slow client waits here (its own task only); meanwhile newer messages replace older ones
                await asyncio.wait_for(writer.drain(), self.send_timeout_s)
        finally:
            self._clients.discard(client)

    def _news(self, client: _Client) -> list[bytes]:
        """What `client` was not sent yet: class names, decisions, the latest decision drawn, frame, metrics."""
        out = []
        new = [js for seq, js in self._recent if seq > client.decision_seq]
        if new:
            client.decision_seq = self._recent[-1][0]
        for event in ("classes", "decisions", "decided", "frame", "metrics"):
            if event == "decisions":
                if new:
                    out.append(b"event: decisions\ndata: [" + b",".join(new) + b"]\n\n")
            elif event in self._latest and self._latest[event].seq != client.seen.get(event):
                client.seen[event] = self._latest[event].seq
                out.append(self._latest[event].sse)
        return out


def _json(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), default=str)


def _sse(event: str, data) -> bytes:
    return f"event: {event}\ndata: {_json(data)}\n\n".encode()
