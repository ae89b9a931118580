"""Serve a recording as a live DV network stream (dv-processing NetworkWriter), paced in real time.

What `streamsnn serve FILE` runs: the file is read with `streamsnn.io.read_events`, cut into 10 ms
chunks and written to a `dv_processing.io.NetworkWriter` when each chunk's sensor time has elapsed,
so a client (DvStreamSource, the DV software, dv-processing's NetworkReader) sees it exactly as
a camera published by the DV software. Timestamps are the recording's own; with `loop`, later passes
are shifted so time keeps increasing.

NetworkWriter objects are never destroyed here: in dv-processing 2.0.4 the destructor deadlocks while
a client is connected (it holds the GIL while its IO thread waits to report the disconnect through a
Python callback). Writers are therefore kept until the process exits and the OS closes the sockets.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, InputError, first_line
from ..events import EventBatch
from ._dv import array_to_store
from ._pacing import Pacer
from .files import CHUNK_US, time_chunks

log = logging.getLogger("streamsnn.serve")

#: Writers kept alive for the life of the process (see the module docstring).
_WRITERS: list = []


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class StreamServer:
    """One DV event stream served on TCP `host:port` or a UNIX socket `unix` (a path).

    `write(batch)` queues a batch for every connected client; `clients` counts them;
    `flush()` waits until the queue has gone out. Raises InputError when the address cannot be bound.
    """

    def __init__(self, width: int, height: int, *, host: str = "127.0.0.1", port: int = 7777,
                 unix: str | Path | None = None, camera_name: str = "streamsnn") -> None:
        import dv_processing as dv

        self.width, self.height = width, height
        stream = dv.io.Stream.EventStream(0, "events", camera_name, (width, height))
        if unix is not None:
            self.address = f"unix:{unix}"
            if os.path.exists(unix):
                raise InputError(f"cannot serve on {self.address}: the file exists; remove it if no server "
                                 "uses it, or choose another --unix path")
            where = (str(unix),)
        else:
            try:
                ip = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)[0][4][0]
            except OSError:
                raise InputError(f"cannot serve on host {host!r}: unknown host; use an IP address such as "
                                 "127.0.0.1 or 0.0.0.0") from None
            if port == 0:
                port = free_port(ip)
            if not 0 < port < 65536:
                raise ConfigError(f"--port {port} is out of range; use 1-65535 (or 0 for any free port)")
            shown = f"[{ip}]" if ":" in ip else ip
            self.address = f"tcp://{shown}:{port}"
            self.host, self.port = ip, port
            where = (ip, port)
        try:
            self._writer = dv.io.NetworkWriter(*where, stream)
        except Exception as exc:
            raise InputError(f"cannot serve on {self.address} ({first_line(exc)}); choose another "
                             f"{'--unix path' if unix is not None else '--port or --host'}") from None
        _WRITERS.append(self._writer)

    @property
    def clients(self) -> int:
        return int(self._writer.getClientCount())

    @staticmethod
    def prepare(batch: EventBatch):
        """The batch as a dv.EventStore (the slow part of writing; do it before the deadline)."""
        return array_to_store(batch.events)

    def send(self, store) -> None:
        if not store.isEmpty():
            self._writer.writeEvents(store)

    def write(self, batch: EventBatch) -> None:
        self.send(self.prepare(batch))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until queued packets have been sent (True) or `timeout` seconds passed (False)."""
        end = time.monotonic() + timeout
        while self._writer.getQueuedPacketCount() > 0:
            if time.monotonic() > end:
                return False
            time.sleep(0.005)
        return True


def dataset_as_stream(path: str | Path, *, split: str | None = None, limit: int | None = None) -> EventBatch:
    """The samples of a dataset folder back to back as one recording (each shifted to follow the last).

    A sample that cannot be read (corrupt, empty) is logged in one line and left out, as replay does;
    `meta["skipped"]` counts them.
    """
    import numpy as np

    from ..io import open_dataset

    ds = open_dataset(path)
    if split:
        ds = ds.split(split)
    parts, offset, sensor, skipped = [], 0, ds.sensor_size, 0
    for sample in ds.samples[:limit]:
        try:
            b = sample.load()
        except InputError as exc:
            skipped += 1
            log.warning("skipped a sample: %s", exc)
            continue
        sensor = sensor or b.sensor_size  # headers did not tell it: the first sample does
        if b.sensor_size != sensor:
            raise InputError(f"{sample.path}: its {b.width}x{b.height} sensor differs from the {sensor[0]}x{sensor[1]} "
                             "of the other samples; one stream has one sensor, serve them separately")
        ev = b.events.copy()
        ev["t"] += offset - ev["t"][0]
        offset = int(ev["t"][-1]) + 1
        parts.append(ev)
    if not parts:
        raise InputError(f"{path}: no events in the chosen samples"
                         f"{f' ({skipped} unreadable, see the lines above)' if skipped else ''}; nothing to serve")
    return EventBatch(np.concatenate(parts), *sensor, source=str(path),
                      meta={"format": f"{ds.format} dataset, {len(parts)} samples", "skipped": skipped})


@dataclass
class ServeStats:
    events: int = 0
    chunks: int = 0
    passes: int = 0
    late: int = 0
    clients: int = 0  # the most clients connected at once while streaming (they may have left since)
    started: float = field(default_factory=time.monotonic)


def prepare_chunks(server: StreamServer, recording: EventBatch, chunk_us: int = CHUNK_US) -> list:
    """The recording as (dv.EventStore, end offset us, event count) packets, converted ahead of time."""
    return [(server.prepare(c), end, len(c)) for c, end in time_chunks(recording, chunk_us)]


def serve_recording(server: StreamServer, recording: EventBatch, *, speed: float = 1.0, loop: bool = False,
                    chunk_us: int = CHUNK_US, wait_for_client: bool = True,
                    stop: threading.Event | None = None, stats: ServeStats | None = None,
                    first_pass: list | None = None) -> ServeStats:
    """Write the recording to the server in paced chunks until done (or `stop` is set); blocking.

    With `wait_for_client`, pacing starts when the first client connects, so it sees the recording
    from its first event; otherwise it streams at once, like a camera that nobody watches yet.
    `first_pass` (from `prepare_chunks`) saves converting during the first pass, which keeps pace
    with recordings of high event rates; later passes of a loop are shifted in time and converted
    on the fly. `stats.late` counts packets sent more than 10 ms after their time.
    """
    stop = stop or threading.Event()
    stats = stats or ServeStats()
    while wait_for_client and server.clients == 0:
        if stop.wait(0.02):
            return stats
    stats.clients = server.clients
    pacer = Pacer(speed)
    span = recording.duration_us + chunk_us  # one pass, with one chunk of silence before the next
    while not stop.is_set():
        if stats.passes == 0 and first_pass is not None:
            packets = iter(first_pass)
        else:
            events = recording.events.copy()
            events["t"] += stats.passes * span
            packets = ((server.prepare(c), end, len(c))
                       for c, end in time_chunks(recording.with_events(events), chunk_us))
        for store, end, n in packets:
            if not pacer.wait_blocking(stats.passes * span + end, stop):
                break
            server.send(store)
            stats.clients = max(stats.clients, server.clients)
            stats.events += n
            stats.chunks += 1
        else:
            stats.passes += 1
        if not loop:
            break
    stats.late = pacer.late
    return stats
