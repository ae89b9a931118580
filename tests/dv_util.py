"""Test helpers for DV network streams: free ports (from ports.py) and NetworkWriters that are never destroyed.

dv-processing 2.0.4's NetworkWriter destructor deadlocks (it holds the GIL while its IO thread waits
to call the Python error callback for a client it is disconnecting), so writers made in tests are
kept alive in WRITERS until the test process exits; the OS then closes their sockets.
"""

from __future__ import annotations

import time

from ports import free_port  # noqa: F401 (re-exported: tests import it from here)

WRITERS: list = []


def event_writer(where, width: int, height: int, camera: str = "DVXplorer_test"):
    """A NetworkWriter of one event stream on ("127.0.0.1", port) or a UNIX socket path (str)."""
    import dv_processing as dv

    stream = dv.io.Stream.EventStream(0, "events", camera, (width, height))
    w = dv.io.NetworkWriter(where[0], where[1], stream) if isinstance(where, tuple) else \
        dv.io.NetworkWriter(where, stream)
    WRITERS.append(w)
    return w


def wait_for_client(writer, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while writer.getClientCount() == 0:
        if time.monotonic() > end:
            raise AssertionError("no client connected to the NetworkWriter")
        time.sleep(0.005)
