"""dv-processing glue shared by the camera and DV-stream sources and `streamsnn serve`.

Converts `dv.EventStore` <-> EVENT_DTYPE arrays, and runs the packet read loop that both a live
camera and a `NetworkReader` need (they share dv-processing's `InputBase` interface), in a
dedicated thread feeding an asyncio queue so the event loop never waits on the device or socket.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import numpy as np

from ..errors import InputError
from ..events import EVENT_DTYPE, EventBatch

log = logging.getLogger("streamsnn.sources")

#: How long the reader thread sleeps when the device or socket has no packet ready (seconds).
POLL_S = 0.001


def store_to_array(store) -> np.ndarray:
    """A dv.EventStore as an EVENT_DTYPE array (fields timestamp/x/y/polarity -> t/x/y/p)."""
    raw = store.numpy()  # structured: timestamp <i8, x <i2, y <i2, polarity i1
    out = np.empty(raw.shape[0], dtype=EVENT_DTYPE)
    out["t"] = raw["timestamp"]
    out["x"] = raw["x"]
    out["y"] = raw["y"]
    out["p"] = raw["polarity"]
    return out


def array_to_store(events: np.ndarray):
    """An EVENT_DTYPE array as a dv.EventStore (dv-processing has no bulk constructor; ~1.6 us/event)."""
    import dv_processing as dv

    store = dv.EventStore()
    push = store.push_back
    for t, x, y, p in zip(events["t"].tolist(), events["x"].tolist(), events["y"].tolist(),
                          events["p"].tolist()):
        push(t, x, y, bool(p))
    return store


class PacketReader:
    """Polls a dv-processing input (camera or NetworkReader) in its own thread, queueing EventBatches.

    The thread ends when the input stops running (camera unplugged, stream closed), when `stop()` is
    called, or on an error, which it hands to the consumer. Packets that fail validation are logged,
    counted in `counters["bad_packets"]` and skipped. The queue is bounded: when the consumer lags, the
    thread waits, and the device's or socket's own buffering (TCP flow control) takes the slack.
    """

    _END = object()

    def __init__(self, reader, *, width: int, height: int, name: str, counters: dict, maxsize: int = 256):
        self.reader, self.width, self.height, self.name = reader, width, height, name
        self.counters = counters
        self.queue: asyncio.Queue = asyncio.Queue(maxsize)
        self._loop = asyncio.get_running_loop()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"read {name}", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        """Hand an item to the event loop, waiting while the queue is full; False once stopped."""
        while not self._stop.is_set():
            fut = asyncio.run_coroutine_threadsafe(self.queue.put(item), self._loop)
            try:
                fut.result(timeout=0.2)
                return True
            except TimeoutError:
                if not fut.cancel() and not fut.cancelled() and fut.exception() is None:
                    return True  # the put completed just as the wait timed out
            except RuntimeError:  # the event loop is closed
                return False
        return False

    def _run(self) -> None:
        reader = self.reader
        try:
            while not self._stop.is_set():
                store = reader.getNextEventBatch()
                if store is None:
                    if not reader.isRunning():
                        break
                    time.sleep(POLL_S)
                    continue
                if store.isEmpty():
                    continue
                try:
                    batch = EventBatch(store_to_array(store), self.width, self.height, source=self.name)
                except InputError as exc:
                    self.counters["bad_packets"] += 1
                    log.warning("%s: skipped a bad packet: %s", self.name, exc)
                    continue
                if not self._put(batch):
                    return
        except Exception as exc:  # a device or socket failure: pass it on as one line
            self._put(InputError(f"{self.name}: reading failed ({str(exc).splitlines()[0]}); "
                                 "check the camera or stream and restart"))
            return
        self._put(self._END)

    async def get(self) -> EventBatch | None:
        """The next batch, or None when the input has ended."""
        item = await self.queue.get()
        if item is self._END:
            return None
        if isinstance(item, Exception):
            raise item
        return item

    async def stop(self) -> None:
        """Stop the thread and wait for it (it notices within a poll interval)."""
        self._stop.set()
        while not self.queue.empty():  # unblock a pending put
            self.queue.get_nowait()
        self.queue.put_nowait(self._END)  # and end a consumer waiting in get()
        await asyncio.to_thread(self._thread.join, 2.0)
