"""SourceBase: the async-iterator shape shared by all event sources (iteration, aclose, async with, counters)."""

from __future__ import annotations

from typing import AsyncIterator, Callable

from ..errors import ConfigError
from ..events import EventBatch


def check_playback(what: str, speed: float, limit: int | None, chunk_us: int | None) -> None:
    """Raise ConfigError naming `what` (e.g. "replay") for a bad speed, sample limit or chunk length."""
    if not speed >= 0:
        raise ConfigError(f"{what} speed must be >= 0 (1 = real time, 0 = as fast as possible), got {speed}")
    if limit is not None and limit < 0:
        raise ConfigError(f"{what} limit must be >= 0 (or None for no limit), got {limit}")
    if chunk_us is not None and chunk_us <= 0:
        raise ConfigError(f"{what} chunk_us must be positive, got {chunk_us}")


class SourceBase:
    """An async iterator of EventBatch. Subclasses write `_batches()` as an async generator.

    Use it as `async for batch in source` or `async with source: ...`; `aclose()` stops it and releases
    what it holds (threads, sockets, devices). `counters` counts what was emitted (`batches`,
    `events`, `samples`) and what was skipped (`bad_packets`); `progress`, when given, is called with
    each batch before it is yielded.
    """

    #: A short name for logs, e.g. a path, "camera:DVXplorer_DXA00093" or "tcp://127.0.0.1:7777".
    name: str = "source"

    def __init__(self, *, progress: Callable[[EventBatch], None] | None = None) -> None:
        self.progress = progress
        self.counters = {"batches": 0, "events": 0, "samples": 0, "bad_packets": 0}
        self._agen: AsyncIterator[EventBatch] | None = None
        self._closed = False

    async def open(self) -> None:
        """Get ready to read (open a device, a stream, a dataset); a no-op unless a subclass needs it."""

    def _batches(self) -> AsyncIterator[EventBatch]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __aiter__(self) -> SourceBase:
        return self

    async def __anext__(self) -> EventBatch:
        if self._closed:
            raise StopAsyncIteration
        if self._agen is None:
            self._agen = self._batches()
        batch = await self._agen.__anext__()
        self.counters["batches"] += 1
        self.counters["events"] += len(batch)
        if batch.meta.get("end_of_sample"):
            self.counters["samples"] += 1
        if self.progress is not None:
            self.progress(batch)
        return batch

    async def aclose(self) -> None:
        """Stop the source and release its resources; iteration then ends. Safe to call twice."""
        self._closed = True
        agen, self._agen = self._agen, None
        if agen is not None:
            try:
                await agen.aclose()
            except RuntimeError:  # another task is inside __anext__; it stops at its next step
                pass

    async def __aenter__(self) -> SourceBase:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
