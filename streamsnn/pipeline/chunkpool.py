"""More than one core at the live settings: segment.overlap "chunks" with the hop-long chunks computed on any worker.

With `pipeline.workers` > 1, a network without a leak or input delays (`inflight.eligible`) and overlapping
windows scored as chunks (segment.overlap "chunks", what "auto" picks when the window is a multiple of the hop),
each hop-long chunk of the stream is a state of its own from the reset state, so it can be computed anywhere:
`ChunkRouter` gives each chunk, when its first events arrive, to the worker with the fewest events waiting (the
main one or a copy, see `workers.InferencePool`), and sends it the chunk's events as they arrive, once, as compact
event arrays (`events.join_events`), `FEED_EVENTS` at a time, the last ones with the order to close it (when its
last event has arrived, or its window closed). The worker feeds them to that chunk's state (`run_ops`, the same
`inflight._Span` one worker uses) and, when it closes, sends back the last hidden layer's counts (a small vector)
and the spikes per layer. A window's decision is read out on the main worker, in window order, from the sum of
its chunks' counts (`inflight.InFlight._decision`, exactly as one worker does), so decisions, scores, the window
order and smoothing are those of one worker.

Which weights decided: a window is read out from its chunks only when every chunk was computed, from its first
event to its last, with the learner's weights as they are at the readout (same `model_version`); otherwise (a
copy not refreshed yet after the learner changed, learning between a chunk's events, a chunk lost with a dead
worker or not fed because the workers fell behind) every chunk of the window is computed again on the main
worker from the window's own events. So `DecisionInfo.model_version` is always the learner's version at the
readout, as with one worker. Windows the network learns from (labelled, `learn_from_labels`) go to the main
worker whole, test-then-train, in window order with the readouts.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np

from ..events import EVENT_DTYPE, EventBatch, join_events
from .channel import WorkerGone
from .inflight import MAX_STATES, InFlight, _Span, _weights
from .stages import DecisionInfo, class_names

log = logging.getLogger(__name__)
#: A chunk's events are sent to its worker once this many have arrived (and the rest when it closes): each
#: message costs a round trip, a chunk held until it closes costs its whole computation after the window closed.
FEED_EVENTS = 4096
#: Messages waiting per worker beyond which the router waits ("block") or stops feeding (the drop policies:
#: the chunks not fed are then computed on the main worker if their windows are decided).
BACKLOG = 8
#: The main worker takes a chunk only when each copy has this many more unanswered chunks than it: the main
#: process also reads the stream, cuts the windows, reads them out and publishes (at the live settings that is
#: more of its time than the network), so the copies take the chunks while they keep up.
MAIN_EXTRA = 2
#: Messages in flight per worker: the next one waits on its thread while the worker computes the current one,
#: so the worker starts on it as soon as it answered (no round trip through the event loop in between).
DEPTH = 2


# -- on a worker (the main one's network thread, or a copy's process) ---------------------------------------------
def run_ops(net, states: dict, ops: list) -> list:
    """Feed chunk states: `ops` are (key, events or None, close, sensor size); returns (key, finished _Span) for each
    closed one, its `weights` replaced by the `model_version` that computed it (None: the weights changed meanwhile, or
    its events were refused). Never raises."""
    weights = _weights(net)
    protos: dict = {}
    out = []
    for key, events, close, size in ops:
        st = states.get(key)
        if st is None:
            st = states[key] = _Span(net, weights)
        if events is not None and len(events):
            st.raw += len(events)
            if st.weights == weights and st.arrays is not None:
                try:
                    proto = protos.get(size) or protos.setdefault(size, EventBatch(np.zeros(0, EVENT_DTYPE), *size))
                    idx, _ = net.input_events(proto._trusted(events))
                    st.run(net, idx)
                    st.fed += len(idx)
                except Exception as exc:  # noqa: BLE001 - the window is then computed on the main worker
                    log.debug("chunk feed failed: %s: %s", type(exc).__name__, exc)
                    st.weights = None
            else:
                st.weights = None
        if close:
            del states[key]
            good = st.weights == weights
            try:
                st.finish(net)
            except Exception:  # noqa: BLE001
                good, st.arrays = False, None
            st.weights = net.model_version if good else None
            out.append((key, st))
    while len(states) > MAX_STATES:
        del states[min(states)]
    return out


async def _answer(sent):
    """The reply to a message a worker's thread sent (`sent`: the Future of the Future of the reply)."""
    return await asyncio.wrap_future(await asyncio.wrap_future(sent))


# -- on the main process (event loop) -----------------------------------------------------------------------------
class _Chunk:
    __slots__ = ("slot", "parts", "waiting", "future", "size")

    def __init__(self, slot, future):
        self.slot, self.parts, self.waiting, self.future, self.size = slot, [], 0, future, None


class ChunkRouter:
    """Routes a stream's chunks to the workers of `pool` (`workers.InferencePool`) and reads windows out; see the
    module. `route(pipe, pieces, windows)` on the reader, before `windows` are queued; `spans(w)` then, on the
    network thread, `read_out(w, spans)` for each window, in window order."""

    def __init__(self, pool, main):
        self.pool, self.main = pool, main
        self.open: dict[tuple[int, int], _Chunk] = {}
        self.done: dict[tuple[int, int], asyncio.Future] = {}  # every chunk not read out yet, by key
        self.main_states: dict = {}  # the main worker's chunk states (on its network thread)
        self.load: dict = {}  # chunks given and not answered yet, per worker
        self.outbox: dict = {}  # ops not sent yet, per worker
        self.busy: dict = {}  # messages in flight, per worker
        self.flushing: set = set()  # tasks sending what piled up while a worker was busy
        self.recompute = InFlight()  # no states: its `_chunks` computes a window's chunks from its events
        self._eased = asyncio.Event()  # a message was answered

    # -- the reader --------------------------------------------------------------------------------
    async def route(self, pipe, pieces: list, windows: list) -> None:
        ops: dict = {}
        for piece in pieces:
            self._piece(pipe, piece, ops)
        for w in windows:  # their chunks have all their events: close them
            if w.key is not None:
                epoch, _ = w.key
                for key, ch in list(self.open.items()):
                    if key[0] < epoch or (key[0] == epoch and key[1] < w.t_end_us):
                        self._close(key, ch, ops)
        await self._send(pipe, ops)

    def _piece(self, pipe, piece, ops: dict) -> None:
        ev = piece.batch.events
        if not len(ev):
            return
        size = piece.batch.sensor_size
        t = ev["t"]
        H, first, last = piece.hop_us, int(t[0]), int(t[-1])
        for key, ch in list(self.open.items()):  # chunks of an old grid, or over: closed
            if key[0] != piece.epoch or key[1] + H <= first:
                self._close(key, ch, ops)
        behind = self._behind() and pipe.settings.policy != "block"
        pipe.overlap["skipped" if behind else "fed"] += 1
        s = piece.origin + max(0, (first - piece.origin) // H) * H
        while s <= last:
            lo, hi = np.searchsorted(t, (s, s + H), side="left")
            if hi > lo:
                key = (piece.epoch, s)
                ch = self.open.get(key)
                if ch is None:
                    slot = self._pick()
                    self.load[slot] = self.load.get(slot, 0) + 1
                    ch = self.open[key] = _Chunk(slot, asyncio.get_running_loop().create_future())
                    self.done[key] = ch.future
                if behind:
                    self._unassign(ch)  # not fed: its windows are computed on the main worker
                elif ch.slot is not None:
                    ch.parts.append(ev[lo:hi])
                    ch.waiting += int(hi - lo)
                ch.size = size
                if last >= s + H:
                    self._close(key, ch, ops)
                elif ch.waiting >= FEED_EVENTS:
                    self._op(ch, key, False, ops)
            if hi < len(t):
                s = max(s + H, piece.origin + (int(t[hi]) - piece.origin) // H * H)
            else:
                break

    def _close(self, key, ch: _Chunk, ops: dict) -> None:
        del self.open[key]
        if ch.slot is None:
            if not ch.future.done():
                ch.future.set_result(None)
            return
        self._op(ch, key, True, ops)

    def _op(self, ch: _Chunk, key, close: bool, ops: dict) -> None:
        events = join_events(ch.parts) if len(ch.parts) > 1 else ch.parts[0] if ch.parts else None
        ch.parts, ch.waiting = [], 0
        ops.setdefault(ch.slot, []).append((key, events, close, ch.size))

    def _pick(self):
        """The worker with the fewest chunks not answered yet, the main one counted `MAIN_EXTRA` more."""
        slots = [*[p for p in self.pool.procs if p.channel is not None and not p.gone], self.main]
        return min(slots, key=lambda s: self.load.get(s, 0) + (MAIN_EXTRA if s is self.main else 0))

    def _behind(self) -> bool:
        return sum(self.load.values()) >= BACKLOG * (1 + len(self.pool.procs))

    async def _send(self, pipe, ops: dict) -> None:
        """Queue `ops` per worker; a worker with fewer than `DEPTH` messages in flight gets its queue now, the others
        when they answer (so a busy worker gets what piled up in one message, an idle one each chunk at once)."""
        for slot, batch in ops.items():
            self.outbox.setdefault(slot, []).extend(batch)
        for slot in list(self.outbox):
            if self.busy.get(slot, 0) < DEPTH:
                await self._flush(pipe, slot)
        while self._behind() and pipe.settings.policy == "block":
            self._eased.clear()
            await self._eased.wait()

    async def _flush(self, pipe, slot) -> None:
        batch = self.outbox.pop(slot, None)
        if not batch:
            return
        if slot is not self.main and (slot.gone or slot.channel is None):
            return self._lost(slot, batch)
        self.busy[slot] = self.busy.get(slot, 0) + 1
        closes = sum(1 for op in batch if op[2])
        if slot is self.main:
            job = asyncio.wrap_future(pipe._worker.submit(run_ops, self.pool.net, self.main_states, batch))
            self.pool.counts["chunks_on_main"] += closes
        else:
            try:
                fresh = await self.pool._fresh(pipe, slot)
            except BaseException:
                self.busy[slot] -= 1
                self._lost(slot, batch)
                raise
            sent = slot.thread.submit(slot.post, ("chunks", batch), fresh)  # sent on the worker's thread
            job = asyncio.ensure_future(_answer(sent))
            self.pool.counts["chunks_on_copies"] += closes
        asyncio.ensure_future(job).add_done_callback(lambda f: self._answered(f, pipe, slot, batch))

    def _answered(self, f, pipe, slot, batch: list) -> None:
        self.busy[slot] -= 1
        self._eased.set()
        exc = f.exception() if not f.cancelled() else asyncio.CancelledError()
        if exc is None:
            reply = f.result()
            if slot is not self.main:  # ("ok", results) from a copy
                reply = reply[1] if reply[0] == "ok" else []
            for key, st in reply:
                fut = self.done.get(key)
                if fut is not None and not fut.done():
                    fut.set_result(st)
        else:
            if isinstance(exc, WorkerGone) and not slot.gone:
                slot.gone = True
                self.pool.counts["died"] += 1
                log.warning("%s; its chunks go to the main worker%s", exc,
                            "" if self.pool._closing else ", restarting it")
                self.pool._restart(slot)
                for ch in self.open.values():
                    if ch.slot is slot:
                        self._unassign(ch)
        self._lost(slot, batch)  # closed chunks the reply did not answer; the load of every closed one
        if self.outbox.get(slot):
            task = asyncio.ensure_future(self._flush(pipe, slot))
            self.flushing.add(task)
            task.add_done_callback(self.flushing.discard)

    def _lost(self, slot, batch: list) -> None:
        for key, _, close, _ in batch:
            if close:
                self.load[slot] -= 1
                fut = self.done.get(key)
                if fut is not None and not fut.done():
                    fut.set_result(None)

    def _unassign(self, ch: _Chunk) -> None:
        """The chunk is not computed on its worker (lost, or not fed): its windows are computed on the main one."""
        if ch.slot is not None:
            self.load[ch.slot] -= 1
            ch.slot, ch.parts, ch.waiting = None, [], 0

    # -- the classifier ----------------------------------------------------------------------------
    async def spans(self, w) -> list:
        """The computed chunks of window `w` that had events (None: one lost), once they are all back."""
        epoch, start = w.key
        H = w.chunk_us
        n = max(1, -(-(int(w.t_end_us) - start) // H))
        for old in [k for k in self.done if k < w.key]:  # windows go in order: these are past
            del self.done[old]
        futs = [self.done.get((epoch, start + i * H)) for i in range(n)]
        return [await f for f in futs if f is not None]  # a chunk without events has none

    def read_out(self, w, spans: list):
        """On the network thread: the decision of window `w` from its chunks `spans` when they were all computed
        with the learner's weights now and hold all its events, else from its chunks computed here from its events."""
        net = self.pool.net
        start = time.monotonic()
        found = spans
        if (found and all(st is not None and st.weights == net.model_version for st in found)
                and sum(st.raw for st in found) == w.events):
            self.pool.counts["read"] += 1
        else:
            self.pool.counts["recomputed"] += 1
            found = self.recompute._chunks(net, w, _weights(net))
            self.recompute.clear()
        d = InFlight._decision(net, found)
        done = time.monotonic()
        w.fresh, w.learned = None, False
        return d, DecisionInfo(queue_ms=(start - w.ready) * 1000.0, compute_ms=(done - start) * 1000.0,
                               model_version=net.model_version, classes=class_names(net))
