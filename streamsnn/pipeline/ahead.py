"""Feeding stream batches to the windows in flight as they arrive (segment.overlap "inflight"/"chunks", one worker).

The pipeline's reader hands each accepted batch's pieces to `FeedAhead` before it queues the windows that batch
closes; a job on the network's worker thread feeds them (`feed`, the decider's `feed(net, piece)`), so that when a
window's decision comes only its last events remain to be fed (`feed_now`, called by the decision first).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

from .inflight import merged, split_at

log = logging.getLogger(__name__)
#: Batches handed to the worker wait until they hold this many events (or a window closes) before a job feeds
#: them: each feed costs ~0.1 ms of Python and kernel calls whatever its size, which a sparse sensor's small
#: packets (tens of events) would pay once each; fewer events than this take the network well under a ms.
FEED_EVENTS = 1024


class FeedAhead:
    """The batches handed to the network's worker and not fed yet, and the job feeding them.

    `worker`: the network's one-thread executor; `feed(piece)`: feeds one piece to the windows in flight (on the
    worker); `queue_size` and `policy`: the pipeline's window queue (how far behind the worker may fall, and what
    a full one does); `overlap`: the counters `fed` and `skipped` (batches), shared with the pipeline's metrics."""

    def __init__(self, worker: ThreadPoolExecutor, feed: Callable, queue_size: int, policy: str, overlap: dict):
        self.worker, self.feed, self.queue_size, self.policy, self.overlap = worker, feed, queue_size, policy, overlap
        self.pending: list = []  # handed over, not fed yet, taken all at once by one job on the worker
        self.later: list = []  # pieces after the last window closed, handed over with the next batch
        self.pending_events = 0  # events in `pending`
        self.unfed_events = 0  # events handed over and not fed yet (in `pending` or being fed)
        self.lock = threading.Lock()
        self.unfed: list[int] = []  # sensor time (us) from the first to the last event of the batches not fed yet
        self.job: Future | None = None  # the worker's job feeding `pending`, while there is one

    async def hand_over(self, pieces: list, windows: list) -> None:
        """Hand this batch's pieces to the worker (`feed_ahead`), except its events from the end of the last
        window it closes on: those go with the next batch, after that window's decision was submitted, so the
        decision does not wait for them (they belong to later windows only)."""
        count = len(pieces)  # this batch's (the ones held back were counted with theirs)
        pieces, self.later = self.later + pieces, []
        if windows:
            pieces, self.later = split_at(pieces, max(int(w.t_end_us) for w in windows))
        if pieces:
            await self.feed_ahead(pieces, count)
        else:
            self.overlap["fed"] += count

    async def flush(self) -> None:
        """At the end of the stream: hand over what was held back (the flushed window holds it)."""
        if self.later:
            later, self.later = self.later, []
            await self.feed_ahead(later, 0)

    async def feed_ahead(self, pieces: list, count: int) -> None:
        """Hand accepted batches to the worker as they arrive (`inflight.InFlight`) while those not fed yet span
        less than `queue_size` hops: beyond that the reader waits ("block"), or the batch is not fed ahead (the
        drop policies: its windows are then decided from their own events, as the states no longer hold all of
        them).

        A job on the worker feeds the batches handed over so far (`feed_pending`) once they hold `FEED_EVENTS`,
        those that piled up joined into one feed (`inflight.merged`): no event-loop round trip per batch, and
        small packets or a worker that fell behind pay the per-call cost once for the pile. It queues itself
        again while `FEED_EVENTS` are left, behind the decisions submitted meanwhile; each decision first feeds
        what is still pending (`feed_now`), so it waits for the pile in progress and what is pending, never for
        a feeding job that keeps finding new batches."""
        while self.behind(pieces) and (job := self.job) is not None:
            if self.policy != "block":
                self.overlap["skipped"] += count
                return
            await asyncio.wrap_future(job)
        self.overlap["fed"] += count
        with self.lock:
            self.pending += pieces
            n = sum(len(p.batch) for p in pieces)
            self.pending_events += n
            self.unfed_events += n
            self.unfed = [self.unfed[0] if self.unfed else pieces[0].batch.t_start, pieces[-1].batch.t_end]
            if self.job is None and self.pending_events >= FEED_EVENTS:
                self.job = self.worker.submit(self.feed_pending)

    def feed_pending(self) -> None:
        """On the worker: feed the batches handed over, then queue again behind what was submitted meanwhile
        while batches are left (never raises)."""
        self.feed_now()
        with self.lock:
            try:
                more = self.pending_events >= FEED_EVENTS
                self.job = self.worker.submit(self.feed_pending) if more else None
            except RuntimeError:  # the worker is shutting down: what is left is fed by the decisions, if any
                self.job = None

    def feed_now(self) -> None:
        """On the worker: feed the batches handed over so far to the windows in flight (never raises)."""
        with self.lock:
            pieces, taken, self.pending, self.pending_events = self.pending, self.pending_events, [], 0
        if not pieces:
            return
        try:
            for piece in merged(pieces):
                self.feed(piece)
        except Exception:  # noqa: BLE001 - a defect: the windows are then decided from their own events
            log.debug("feeding batches ahead failed", exc_info=True)
        finally:
            with self.lock:
                self.unfed = [self.pending[0].batch.t_start, self.unfed[1]] if self.pending else []
                self.unfed_events -= taken

    def behind(self, pieces: list) -> bool:
        """Whether the batches not fed yet span `queue_size` hops of sensor time or more (the stream the window
        queue holds) and hold `FEED_EVENTS` or more (not a sparse stream's batches left waiting on purpose): a
        worker that far behind is not handed more (skipping a batch costs its windows a recomputation from their
        own events, so only this far behind)."""
        unfed = self.unfed
        return (bool(unfed) and unfed[1] - unfed[0] >= self.queue_size * pieces[0].hop_us
                and self.unfed_events >= FEED_EVENTS)
