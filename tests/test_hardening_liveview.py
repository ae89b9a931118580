"""Issue 17, item 6: the live view serves a bounded number of connections, refuses more politely (503 with
Retry-After), frees the slots of clients that send nothing or read nothing, and its publish path does the
same work whatever the number of clients, so no page can hold up the pipeline."""

from __future__ import annotations

import asyncio
import base64
import socket
import sys

import numpy as np
from test_liveview import Sse, decided, until

from streamsnn.events import EVENT_DTYPE, EventBatch
from streamsnn.web.frames import render_png
from streamsnn.web.view import KEEP, MAX_CLIENTS, LiveView

GET_EVENTS = b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"


async def response_head(port: int, request: bytes = GET_EVENTS):
    """Open a connection, send `request`; (reader, writer, status, headers) of the response."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode("latin-1")
    lines = head.strip().split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
    return reader, writer, int(lines[0].split()[1]), headers


def idle_socket(port: int, request: bytes | None = GET_EVENTS) -> socket.socket:
    """A connected socket with a small receive buffer that never reads (after sending `request`)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    if request:
        sock.sendall(request)
    return sock


def noise(side: int = 256, n: int = 60_000, seed: int = 0) -> EventBatch:
    """Random events: frames that do not compress (a few hundred KB per PNG)."""
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, EVENT_DTYPE)
    ev["x"], ev["y"], ev["p"] = rng.integers(0, side, n), rng.integers(0, side, n), rng.integers(0, 2, n)
    ev["t"] = np.arange(n)
    return EventBatch(ev, side, side)


async def test_connections_beyond_max_clients_are_refused_with_503_and_retry_after():
    lv = await LiveView("127.0.0.1", 0).start()
    assert lv.max_clients == MAX_CLIENTS == 32
    conns = []
    try:
        for _ in range(40):
            conns.append(await response_head(lv.port))
        statuses = [status for _, _, status, _ in conns]
        assert statuses == [200] * 32 + [503] * 8
        assert len(lv._clients) == 32 and lv.refused == 8
        for reader, _, _, headers in conns[32:]:
            assert headers["retry-after"].isdigit() and headers["content-type"].startswith("text/plain")
            body = await asyncio.wait_for(reader.read(), 10)  # then the server closes the connection
            assert len(body) == int(headers["content-length"]) and b"too many clients" in body
        # closing pages frees their slots: new pages are served again, up to the limit
        for _, writer, _, _ in conns[:5]:
            writer.close()
        await until(lambda: len(lv._clients) == 27, what="closed pages leaving")
        again = [await response_head(lv.port) for _ in range(6)]
        conns += again
        assert [status for _, _, status, _ in again] == [200] * 5 + [503]
    finally:
        for _, writer, _, _ in conns:
            writer.close()
        await lv.close()


async def test_a_connection_that_sends_no_request_loses_its_slot():
    lv = await LiveView("127.0.0.1", 0, max_clients=4, header_timeout_s=0.5).start()
    silent = [idle_socket(lv.port, request=None) for _ in range(4)]
    try:
        await until(lambda: lv._open == 4, what="4 connections open")
        _, writer, status, _ = await response_head(lv.port)  # the view is full of silent connections
        writer.close()
        assert status == 503
        def read_all(sock: socket.socket) -> bytes:
            sock.settimeout(10)
            got = b""
            while chunk := sock.recv(4096):
                got += chunk
            return got

        for sock in silent:  # each is answered 408 and closed after header_timeout_s
            assert (await asyncio.to_thread(read_all, sock)).startswith(b"HTTP/1.1 408")
        _, writer, status, _ = await response_head(lv.port)
        writer.close()
        assert status == 200 and lv.dropped == 4
    finally:
        for sock in silent:
            sock.close()
        await lv.close()


def calls_made(fn) -> int:
    """How many Python and C functions `fn()` calls (a measure of work that does not depend on timing)."""
    count = 0

    def profile(frame, event, arg):
        nonlocal count
        count += event in ("call", "c_call")

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count


async def test_publishing_a_decision_does_the_same_work_whatever_the_number_of_clients():
    lv = await LiveView("127.0.0.1", 0, max_clients=64).start()
    socks = []
    try:
        def publish_50():
            for k in range(50):
                lv.publish_decision(*decided(k % 10, [0.1] * 10, 0.5, sample=f"s{k}"))
            lv.publish_metrics({"decisions": lv.decisions})

        publish_50()  # the first metrics message starts the rate: later ones do a little more
        alone = calls_made(publish_50)
        socks = [idle_socket(lv.port) for _ in range(40)]
        await until(lambda: len(lv._clients) == 40, what="40 event streams")
        watched = calls_made(publish_50)
        assert watched == alone, "the publish path does work per client"
        assert lv.decisions == 150
    finally:
        for sock in socks:
            sock.close()
        await lv.close()


async def test_clients_that_never_read_neither_hold_up_publishing_nor_buffer_without_bound():
    lv = await LiveView("127.0.0.1", 0, fps=50, decay_ms=20, max_clients=64).start()
    socks = [idle_socket(lv.port) for _ in range(40)]
    try:
        async with Sse(lv.port) as reading:
            await until(lambda: len(lv._clients) == 41, what="41 event streams")
            for k in range(200):  # frames of noise fill the idle clients' sockets at once
                lv.publish_events(noise(seed=k))
                lv.publish_decision(*decided(k % 10, [0.1] * 10, 0.5, sample=f"s{k}"))
                if k % 10 == 0:
                    await asyncio.sleep(0.05)  # let frames render and streams send
            assert lv.decisions == 200  # every decision was taken at once, none waited for a client
            seqs = []  # the reading client gets the newest decision...
            while not seqs or seqs[-1] < 200:
                _, ds = await reading.next("decisions")
                seqs += [d["seq"] for d in ds]
            assert seqs == sorted(set(seqs)) and seqs[-1] == 200
            newest = lv.frame_seq  # ...and the newest frame, though 40 clients never read
            while (await reading.next("frame"))[1]["seq"] < newest:
                pass
            # what a client that never reads costs is bounded: its socket's buffer (64 KiB before a send
            # waits) and one round of messages (a frame, decision drawn, metrics, KEEP decisions). The frame a
            # round held may be larger than the last one (a loaded machine renders several bursts into one
            # frame): count the largest a 256x256 frame can be, every pixel lit at random levels, its PNG in base64
            # plus 200 B for the message's event line and other fields
            worst_frame = len(base64.b64encode(render_png(np.random.default_rng(0).random((2, 256, 256)) * 10))) + 200
            one_round = sum(len(m.sse) for k, m in lv._latest.items() if k != "frame") + worst_frame \
                + sum(len(js) for _, js in lv._recent)
            buffered = [w.transport.get_write_buffer_size() for w in lv._writers]
            print(f"buffered per client: at most {max(buffered)} B; one round {one_round} B")
            assert len(buffered) == 41 and max(buffered) <= (1 << 16) + 2 * one_round, (max(buffered), one_round)
            assert len(lv._recent) == KEEP and lv.dropped == 0
    finally:
        for sock in socks:
            sock.close()
        await lv.close()


async def test_a_client_that_takes_no_data_is_dropped_after_the_send_timeout():
    lv = await LiveView("127.0.0.1", 0, fps=50, max_clients=2, send_timeout_s=1.0).start()
    sock = idle_socket(lv.port)
    try:
        await until(lambda: len(lv._clients) == 1, what="the event stream")
        # frames until its socket buffers are full and it has taken nothing for 1 s; published until then
        # rather than a fixed number, as a loaded machine renders fewer of them a second
        for k in range(1200):
            if lv.dropped:
                break
            lv.publish_events(noise(seed=k % 40))
            await asyncio.sleep(0.05)
        await until(lambda: lv.dropped == 1 and not lv._clients and lv._open == 0, what="the client dropped")
    finally:
        sock.close()
        await lv.close()


async def test_max_clients_comes_from_the_pipeline_file():
    import pytest

    from streamsnn.config import build_config
    from streamsnn.daemon import _start_liveview
    from streamsnn.errors import ConfigError
    from streamsnn.snn import SpikingNetwork

    with pytest.raises(ConfigError, match=r"liveview\.max_clients must be at least 1"):
        build_config({"liveview": {"max_clients": 0}})
    cfg = build_config({"liveview": {"port": 0, "max_clients": 3}})
    sinks: list = []
    await _start_liveview(cfg, None, sinks, "n", SpikingNetwork((2312, 8, 10), seed=0), quiet=True)
    lv = sinks[0]
    conns = []
    try:
        assert lv.max_clients == 3
        conns = [await response_head(lv.port) for _ in range(4)]
        assert [status for _, _, status, _ in conns] == [200, 200, 200, 503]
    finally:
        for _, writer, _, _ in conns:
            writer.close()
        await lv.close()
