"""LiveSource: the open-then-read shape shared by the camera and DV network stream sources."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

from ..events import EventBatch
from ._dv import PacketReader
from .base import Source


class LiveSource(Source):
    """A dv-processing input opened in a worker thread and read by a PacketReader thread.

    Subclasses implement `_open()` (blocking; returns the dv-processing input object, or raises
    InputError). `async with source` opens it straight away, so an absent camera or a refused stream
    fails there; plain `async for` opens it on the first batch. `width`/`height` are known once open.
    Batches are the packets as the device or stream delivers them (no labels, `sample` None).
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
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

    async def __aenter__(self) -> "LiveSource":
        await self.open()
        return self

    async def _batches(self) -> AsyncIterator[EventBatch]:
        await self.open()
        self._reader = PacketReader(self.input, width=self.width, height=self.height, name=self.name,
                                    counters=self.counters)
        try:
            while (batch := await self._reader.get()) is not None:
                yield batch
        finally:
            await self._reader.stop()

    async def aclose(self) -> None:
        await super().aclose()
        if self._reader is not None:
            await self._reader.stop()
        self.input = None  # dropping a camera or NetworkReader closes it (safe, unlike NetworkWriter)
