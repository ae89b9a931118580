"""LiveSource: the open-then-read shape shared by the camera and DV network stream sources."""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

from ..errors import InputError
from ..events import EventBatch
from ._dv import PacketReader
from .base import SourceBase

log = logging.getLogger("streamsnn.sources")

#: Reconnection delays: first retry after RETRY_MIN_S, doubling up to RETRY_MAX_S.
RETRY_MIN_S, RETRY_MAX_S = 0.2, 5.0


class LiveSource(SourceBase):
    """A dv-processing input opened in a worker thread and read by a PacketReader thread.

    Subclasses implement `_open()` (blocking; returns the dv-processing input object, or raises
    InputError). `async with source` opens it straight away, so an absent camera or a refused stream
    fails there; plain `async for` opens it on the first batch. `width`/`height` are known once open.
    Batches are the packets as the device or stream delivers them (no labels, `sample` None); the
    first batch of each connection has `meta["stream_start"] = True`.

    Iteration ends when the camera is unplugged or the stream closes, unless `reconnect=True`: then
    the source logs the outage, retries with backoff (0.2 s doubling to 5 s) until it can read again,
    and counts `counters["reconnects"]`. The first connection always fails loudly.
    """

    def __init__(self, *, reconnect: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reconnect = reconnect
        self.counters["reconnects"] = 0
        self.input = None
        self.width: int | None = None
        self.height: int | None = None
        self._reader: PacketReader | None = None
        self._open_lock = asyncio.Lock()

    def _open(self):  # pragma: no cover - abstract
        raise NotImplementedError

    async def open(self) -> None:
        """Connect to the device or stream (idempotent)."""
        async with self._open_lock:
            if self.input is None:
                self.input = await asyncio.to_thread(self._open)
                self.width, self.height = (int(v) for v in self.input.getEventResolution())

    async def __aenter__(self) -> LiveSource:
        await self.open()
        return self

    async def _reopen(self) -> bool:
        """Retry opening until it works (True) or the source is closed (False)."""
        delay, told = RETRY_MIN_S, False
        while not self._closed:
            try:
                await self.open()
                log.info("%s: reading again", self.name)
                return True
            except InputError as exc:
                if not told:
                    log.warning("%s: %s; retrying every few seconds", self.name, exc)
                    told = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
        return False

    async def _batches(self) -> AsyncIterator[EventBatch]:
        await self.open()
        while True:
            self._reader = PacketReader(self.input, width=self.width, height=self.height, name=self.name,
                                        counters=self.counters)
            first = True
            try:
                while (batch := await self._reader.get()) is not None:
                    if first:
                        batch.meta["stream_start"] = True
                        first = False
                    yield batch
            except InputError as exc:
                if not self.reconnect:
                    raise
                log.warning("%s", exc)
            finally:
                await self._reader.stop()
                self.input = None  # dropping a camera or NetworkReader closes it (unlike NetworkWriter)
            if self._closed:
                return
            if not self.reconnect:
                log.warning("%s: stream ended (closed by the other end, or the camera unplugged); the run ends here "
                            "(source.reconnect = true waits for it to come back)", self.name)
                return
            log.warning("%s: stream ended; reconnecting", self.name)
            if not await self._reopen():
                return
            self.counters["reconnects"] += 1

    async def aclose(self) -> None:
        await super().aclose()
        if self._reader is not None:
            await self._reader.stop()
        self.input = None
