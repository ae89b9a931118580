"""Sources: unpaced replay throughput, real-time pacing accuracy, and DV network stream throughput."""

from __future__ import annotations

import asyncio
import socket
import time

import numpy as np

from .common import Context, NotMeasurable, Result

RECORDING = "recordings/tonic_sample.aedat4"


async def _replay_unpaced(root, limit):
    from streamsnn.sources.files import ReplaySource

    t = time.perf_counter()
    async with ReplaySource(root, speed=0, limit=limit) as src:
        async for _ in src:
            pass
    return time.perf_counter() - t, src.counters


async def _pacing(path, speed):
    """Wall-clock lateness of each chunk against its sensor-time deadline (ms), and the overall ratio."""
    from streamsnn.io import read_events
    from streamsnn.sources.files import ReplaySource

    rec = read_events(path)  # open() checks the header only; the replay decodes the file itself
    t0, span = rec.t_start, rec.duration_us
    src = ReplaySource(path, speed=speed)
    await src.open()
    late = []
    async for b in src:
        now = time.monotonic()
        end_us = min(((b.t_start - t0) // 10_000 + 1) * 10_000, span)  # the chunk's window end
        late.append((now - (src.pacer.start + end_us / 1e6 / speed)) * 1e3)
    start = src.pacer.start
    wall = time.monotonic() - start
    return np.array(late), wall, span / 1e6


async def _network_throughput(path, repeats):
    import dv_processing as dv

    from streamsnn.sources.dvstream import DvStreamSource

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    stream = dv.io.Stream.EventStream(0, "events", "bench", (320, 240))
    writer = dv.io.NetworkWriter("127.0.0.1", port, stream)
    _KEEP.append(writer)  # never destroyed: see streamsnn/sources/serve.py
    rec = dv.io.MonoCameraRecording(str(path))
    stores = []
    while rec.isRunning():
        st = rec.getNextEventBatch()
        if st is None:
            break
        stores.append(st)
    total = sum(len(s) for s in stores) * repeats
    async with DvStreamSource(f"127.0.0.1:{port}") as src:
        while writer.getClientCount() == 0:
            await asyncio.sleep(0.005)
        t = time.perf_counter()

        def write():
            for _ in range(repeats):
                for st in stores:
                    writer.writeEvents(st)

        w = asyncio.create_task(asyncio.to_thread(write))
        n = 0
        async for b in src:
            n += len(b)
            if n >= total:
                break
        dt = time.perf_counter() - t
        await w
    return total, dt


_KEEP: list = []


def run(ctx: Context) -> Result:
    r = Result("sources", "Sources: replay, pacing, DV network stream")
    root = ctx.nmnist
    path = ctx.data / RECORDING
    if not path.exists():
        raise NotMeasurable(f"{path} not found")
    limit = 200 if ctx.quick else None
    asyncio.run(_replay_unpaced(root, 1))  # warm up: the first N-MNIST read imports tonic (and torch)
    dt, c = asyncio.run(_replay_unpaced(root, limit))
    r.metric("replay speed=0, N-MNIST samples (load + validate + yield)", c["samples"] / dt, "samples/s")
    r.metric("replay speed=0, events", c["events"] / dt, "events/s")
    late, wall, sensor = asyncio.run(_pacing(path, 1.0))
    r.metric("pacing speed=1: wall time / sensor time (tonic_sample.aedat4, 59 chunks of 10 ms)", wall / sensor, "")
    r.metric("pacing speed=1: chunk lateness, median", float(np.median(late)), "ms")
    r.metric("pacing speed=1: chunk lateness, max", float(np.max(late)), "ms")
    total, dt = asyncio.run(_network_throughput(path, 5 if ctx.quick else 20))
    r.metric("DV stream NetworkWriter -> DvStreamSource, unpaced, one process", total / dt, "events/s")
    from streamsnn.io import read_events
    from streamsnn.sources._dv import array_to_store

    ev = read_events(path).events
    t = time.perf_counter()
    array_to_store(ev)
    r.metric("serve: EVENT_DTYPE -> dv.EventStore conversion", len(ev) / (time.perf_counter() - t), "events/s")
    r.note("Lateness = delivery time minus the chunk's sensor-time deadline (window end). Measured on a "
           "shared 2-core machine under load; a quiet machine gives lower lateness and higher throughput.")
    return r
