"""More than one core: `pipeline.workers` > 1 spreads a stream's windows over copies of the network in worker processes.

One learner, copies refreshed: the daemon's own network (the "main worker", on the pipeline's network
thread) is the only one that learns; it also decides windows like any worker. `workers - 1` processes
(multiprocessing, spawn) each hold a copy of it and only predict. A window goes to whichever worker is
free first; a window the network learns from (a labelled window with `learn_from_labels`) always goes to
the main worker, test-then-train as with one worker. Decisions are published in window order, and the
smoothing of consecutive windows (`decide.Decider`) is applied in that order, so what a subscriber sees
does not depend on which worker decided. Copies are refreshed from the learner: before a window is handed
to a copy, when the learner's `model_version` has changed and `refresh_s` seconds have passed since the last
snapshot (at once when its class list changed), a snapshot of the learner is taken on the network thread and
sent with the copy's next window. So a copy decides with the learner's weights as they were at most
`refresh_s` seconds before the window was handed over (plus the updates still running on the learner then);
each `DecisionInfo.model_version` names the weights that decided.

A worker that dies (killed, crashed) is logged in one line and counted (`workers.died`); its window is
decided by the main worker and the process is restarted (at most `MAX_RESTARTS` times, then its windows go
to the main worker). A worker that cannot start is one line (`WorkerError`). Stopping drains: the windows
in flight are decided and published, then each worker is told to stop, joined, and killed if it hangs.
A temporal network (its state carries from window to window) is not split: it runs on the main worker.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import pickle
import signal
import time
from concurrent.futures import Future, ThreadPoolExecutor

from ..errors import StreamsnnError
from .channel import Channel
from .channel import WorkerGone as _WorkerGone
from .chunkpool import ChunkRouter, run_ops
from .decide import temporal, true_output
from .inflight import eligible
from .runtime import _END
from .stages import DecisionInfo, class_names

log = logging.getLogger(__name__)
#: How long a worker may take to start (load the copy, load or compile the kernels), in seconds.
START_TIMEOUT_S = 120.0
#: Restarts of one worker after it died; then its windows go to the main worker.
MAX_RESTARTS = 10
#: How long a worker may take to stop before it is killed, in seconds.
STOP_TIMEOUT_S = 5.0
MAIN = "main"


class WorkerError(StreamsnnError):
    """An inference worker process that could not start (exit status 1)."""

    exit_code = 1


# -- the worker process ------------------------------------------------------------------------------
def _child(conn, snapshot: bytes) -> None:
    """A worker: load the copy, say ready, then decide each window it is sent until told to stop."""
    # the daemon stops its workers itself, after draining: a terminal's Ctrl-C or a service manager's
    # SIGTERM to the whole group must not kill them first (a closed pipe, i.e. a dead parent, ends them)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        net = pickle.loads(snapshot)
        net.warm_up()
        conn.send(("ready", os.getpid()))
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    states: dict = {}  # segment.overlap "chunks": the chunks this copy computes (chunkpool.py)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if msg is None:
            return
        batch, fresh = msg
        if fresh is not None:
            net = pickle.loads(fresh)
        if isinstance(batch, tuple):  # ("chunks", ops): chunk states fed, the closed ones sent back (chunkpool.py)
            conn.send(("ok", run_ops(net, states, batch[1])))
            continue
        start = time.monotonic()
        try:
            d = net.predict_one(batch)
        except Exception as exc:  # noqa: BLE001 - a window this copy cannot take: the parent counts it
            reply = ("fail", exc if isinstance(exc, StreamsnnError) else f"{type(exc).__name__}: {exc}")
        else:
            reply = ("ok", d, (time.monotonic() - start) * 1000.0, net.model_version)
        conn.send(reply)


class _Proc:
    """One worker process, the thread that sends it messages and its pipe (`channel.Channel`)."""

    def __init__(self, index: int):
        self.index, self.process, self.conn, self.channel = index, None, None, None
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"streamsnn-w{index}")
        self.version: str | None = None  # the learner's snapshot this copy holds, and its class names
        self.classes: tuple[str, ...] = ()
        self.restarts = 0
        self.gone = False  # died, not restarted yet (chunkpool.py)

    def __repr__(self) -> str:
        pid = self.process.pid if self.process is not None else None
        return f"inference worker {self.index} (pid {pid})"

    def start(self, snapshot: bytes, version: str, classes: tuple[str, ...] = ()) -> None:
        """Start the process with the copy `snapshot`; blocks until it is ready; WorkerError when it is not."""
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self.process = ctx.Process(target=_child, args=(child, snapshot), name=f"streamsnn-worker-{self.index}",
                                   daemon=True)
        self.process.start()
        child.close()
        self.conn, self.version, self.classes = parent, version, classes
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while not parent.poll(0.1):
                if not self.process.is_alive():
                    raise WorkerError(f"{self!r} exited with code {self.process.exitcode} before it was ready; "
                                      "set pipeline.workers = 1 to run in one process")
                if time.monotonic() > deadline:
                    raise WorkerError(f"{self!r} was not ready within {START_TIMEOUT_S:.0f} s; "
                                      "set pipeline.workers = 1 to run in one process")
            kind, detail = parent.recv()
        except (EOFError, OSError):
            kind, detail = "error", f"exited with code {self.process.exitcode}"
        except WorkerError:
            self.stop()
            raise
        if kind != "ready":
            self.stop()
            raise WorkerError(f"inference worker {self.index} failed to start: {detail}; "
                              "set pipeline.workers = 1 to run in one process")
        self.channel = Channel(parent, f"streamsnn-w{self.index}", lambda p=self.process: _WorkerGone(
            f"inference worker {self.index} (pid {p.pid}) died (exit code {p.exitcode})"))
        self.gone = False  # only now: a chunk sent to it while it starts would find no channel and kill it again

    def call(self, batch, fresh: tuple | None):
        """Blocking: send one window (and a fresh copy first, when given); its reply. _WorkerGone: it is gone."""
        return self.post(batch, fresh).result()

    def post(self, payload, fresh: tuple | None) -> Future:
        """Send one message (and a fresh copy first, when given) without waiting for the reply: its Future."""
        if self.channel is None:  # stopped, being restarted: as a dead worker
            raise _WorkerGone(f"{self!r} is not running")
        fut = self.channel.post((payload, fresh[0] if fresh is not None else None))
        if fresh is not None:
            self.version, self.classes = fresh[1], fresh[2]
        return fut

    def stop(self) -> None:
        """Blocking: ask the process to stop, wait, then terminate and kill it if it hangs."""
        p = self.process
        if p is None:
            return
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        p.join(STOP_TIMEOUT_S)
        if p.is_alive():
            p.terminate()
            p.join(STOP_TIMEOUT_S)
        if p.is_alive():
            p.kill()
            p.join()
        if self.channel is not None:
            self.channel.close()  # its thread has seen the pipe close
        self.conn.close()
        self.process, self.channel = None, None


def _snapshot(net) -> tuple[bytes, str, tuple[str, ...]]:
    """On the network thread: the learner as bytes, its version and class names."""
    return pickle.dumps(net, protocol=pickle.HIGHEST_PROTOCOL), net.model_version, class_names(net)


def _count(net, events: int) -> None:
    """On the network thread: a window a copy decided counts in the learner's lifetime counters, as it would alone."""
    net.samples_seen += 1
    net.events_seen += int(events)


class InferencePool:
    """`workers` deciders for one pipeline: the main worker plus `workers - 1` processes with copies (see the module).

    `start()` starts the processes (blocking until they are ready, WorkerError otherwise); `classify(pipe)`
    replaces the pipeline's one-at-a-time loop; `close()` stops the processes; `metrics()` their counters.
    """

    def __init__(self, net, workers: int, refresh_s: float, clock=time.monotonic):
        self.net, self.n, self.refresh_s, self.clock = net, int(workers), float(refresh_s), clock
        self.procs = [_Proc(i) for i in range(1, self.n)]
        self.active = self.n > 1 and not temporal(net)
        self.snap: tuple[bytes, str, tuple[str, ...]] | None = None
        self._snap_at = 0.0
        self.counts = {"died": 0, "restarted": 0, "refreshes": 0, "bad_windows": 0, "on_main": 0, "on_copies": 0,
                       "chunks_on_main": 0, "chunks_on_copies": 0, "read": 0, "recomputed": 0}
        self.router: ChunkRouter | None = None  # segment.overlap "chunks": chunks spread over the workers
        self._free: asyncio.Queue | None = None
        self._closing = False
        self._restarting: set[asyncio.Task] = set()
        self.started = False

    async def start(self) -> None:
        if self.started or not self.active:
            if self.n > 1 and not self.active and not self.started:
                log.info("pipeline.workers = %d: the model carries its state from window to window, so it runs "
                         "on the main worker only", self.n)
            self.started = True
            return
        self.started = True
        self.snap = _snapshot(self.net)
        self._snap_at = self.clock()
        results = await asyncio.gather(*(asyncio.to_thread(p.start, *self.snap) for p in self.procs),
                                       return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self.close()
            raise errors[0] if isinstance(errors[0], WorkerError) else WorkerError(
                f"inference workers failed to start: {type(errors[0]).__name__}: {errors[0]}; "
                "set pipeline.workers = 1 to run in one process")
        log.info("inference on %d workers: the main one (learns) and %d copies (pids %s), refreshed every %g s",
                 self.n, len(self.procs), ", ".join(str(p.process.pid) for p in self.procs), self.refresh_s)

    def chunking(self, segmenter) -> ChunkRouter | None:
        """For a pipeline whose `segmenter` scores windows as chunks, with a network that can take them: the
        router that spreads the chunks over the workers (chunkpool.py), else None (whole windows)."""
        if self.active and segmenter.overlap == "chunks" and eligible(self.net):
            self.router = ChunkRouter(self, MAIN)
        return self.router

    def pids(self) -> list[int]:
        return [p.process.pid for p in self.procs if p.process is not None and p.process.pid is not None]

    def metrics(self) -> dict:
        return {"workers": {"count": self.n, "alive": len(self.pids()) + 1, **self.counts,
                            "copy_version": self.snap[1] if self.snap else None}}

    # -- the loop ---------------------------------------------------------------------------------
    async def classify(self, pipe) -> None:
        """Take the pipeline's windows, decide them on the free workers, publish in window order."""
        self._free = asyncio.Queue()
        for slot in [MAIN, *[p for p in self.procs if p.process is not None]]:
            self._free.put_nowait(slot)
        inflight: asyncio.Queue = asyncio.Queue(maxsize=2 * self.n)
        publisher = asyncio.create_task(self._publish(pipe, inflight), name="publish")
        tasks: set[asyncio.Future] = set()

        async def hand_over(item) -> None:  # a publisher that ended (a sink's fatal error) ends the run here
            put = asyncio.ensure_future(inflight.put(item))
            await asyncio.wait({put, publisher}, return_when=asyncio.FIRST_COMPLETED)
            if not put.done():
                put.cancel()
                publisher.result()

        try:
            while (w := await pipe.windows.get()) is not _END:
                if publisher.done():
                    publisher.result()
                learn = pipe.learn_from_labels and true_output(self.net, w) is not None
                if self.router is not None and (learn or (w.key is not None and w.chunk_us)):
                    # chunks (chunkpool.py): learning and readouts submitted to the learner in window order
                    spans = [] if learn else await self.router.spans(w)
                    self.counts["on_main"] += 1
                    job = (self._decide_main, w, True, pipe.decider) if learn else (self.router.read_out, w, spans)
                    task = asyncio.wrap_future(pipe._worker.submit(*job))
                elif learn:
                    task = asyncio.ensure_future(self._on_main(pipe, w))  # learning: the learner only
                else:
                    slot = await self._free.get()
                    task = asyncio.ensure_future(self._on(slot, pipe, w))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                await hand_over((w, task))
            await hand_over(None)
            await publisher
        finally:
            for t in [publisher, *tasks]:
                t.cancel()
            await asyncio.gather(publisher, *tasks, return_exceptions=True)

    async def _publish(self, pipe, inflight: asyncio.Queue) -> None:
        while (item := await inflight.get()) is not None:
            w, task = item
            try:
                d, info = await task
            except Exception as exc:  # noqa: BLE001 - a window the network cannot take: logged, counted, skipped
                pipe._skipped(w, exc)
                continue
            pipe._publish(w, pipe.decider.smoothed(w, d), info)

    def _decide_main(self, w, learn: bool, decider):
        """On the network thread: the learner's decision (learning when labelled), unsmoothed (`Decider.alone`)."""
        start = time.monotonic()
        d = decider.alone(self.net, w, learn)
        done = time.monotonic()
        w.fresh = None
        w.learned = learn and not decider.stopped and true_output(self.net, w) is not None
        return d, DecisionInfo(queue_ms=(start - w.ready) * 1000.0, compute_ms=(done - start) * 1000.0,
                               model_version=self.net.model_version, classes=class_names(self.net))

    async def _on_main(self, pipe, w):
        self.counts["on_main"] += 1
        return await pipe.in_worker(self._decide_main, w, pipe.learn_from_labels, pipe.decider)

    async def _on(self, slot, pipe, w):
        if slot is MAIN:
            try:
                return await self._on_main(pipe, w)
            finally:
                self._free.put_nowait(MAIN)
        loop = asyncio.get_running_loop()
        try:
            fresh = await self._fresh(pipe, slot)
            reply = await loop.run_in_executor(slot.thread, slot.call, w.batch, fresh)
        except _WorkerGone as exc:
            self.counts["died"] += 1
            log.warning("%s; its window goes to the main worker%s", exc,
                        "" if self._closing else ", restarting it")
            self._restart(slot)
            return await self._on_main(pipe, w)
        except BaseException:
            self._free.put_nowait(slot)
            raise
        self._free.put_nowait(slot)
        if reply[0] == "fail":
            self.counts["bad_windows"] += 1
            raise reply[1] if isinstance(reply[1], Exception) else StreamsnnError(reply[1])
        _, d, compute_ms, version = reply
        self.counts["on_copies"] += 1
        w.fresh, w.learned = None, False
        pipe._worker.submit(_count, self.net, d.events)  # in order with the learner's own counting
        total_ms = (time.monotonic() - w.ready) * 1000.0
        return d, DecisionInfo(queue_ms=max(total_ms - compute_ms, 0.0), compute_ms=compute_ms,
                               model_version=version, classes=slot.classes)

    async def _fresh(self, pipe, slot) -> tuple | None:
        """A newer snapshot of the learner for this copy, when it is due (see the module), else None."""
        net = self.net
        changed = net.model_version != self.snap[1]
        grown = tuple(str(c) for c in net.classes) != self.snap[2]
        if grown or (changed and self.clock() - self._snap_at >= self.refresh_s):
            self.snap = await pipe.in_worker(_snapshot, net)
            self._snap_at = self.clock()
            self.counts["refreshes"] += 1
        return self.snap if slot.version != self.snap[1] else None

    def _restart(self, slot: _Proc) -> None:
        if self._closing or slot.restarts >= MAX_RESTARTS:
            if not self._closing:
                log.warning("%s died %d times: not restarted, its windows go to the main worker", slot, slot.restarts)
            return
        slot.restarts += 1

        async def again():
            old = slot.process
            await asyncio.to_thread(slot.stop)
            try:
                await asyncio.to_thread(slot.start, *self.snap)
            except WorkerError as exc:
                log.warning("%s; its windows go to the main worker", exc)
                return
            self.counts["restarted"] += 1
            log.info("inference worker %d restarted (pid %s, was %s)", slot.index, slot.process.pid,
                     old.pid if old is not None else None)
            if self._closing:
                return
            self._free.put_nowait(slot)

        task = asyncio.create_task(again(), name=f"restart-worker-{slot.index}")
        self._restarting.add(task)
        task.add_done_callback(self._restarting.discard)

    async def close(self) -> None:
        """Stop every worker process (after the windows in flight were decided); no process is left behind.
        Safe to call again."""
        self._closing = True
        for t in list(self._restarting):
            await asyncio.gather(t, return_exceptions=True)
        await asyncio.gather(*(asyncio.to_thread(p.stop) for p in self.procs), return_exceptions=True)
        for p in self.procs:
            p.thread.shutdown(wait=True)


async def start_pool(net, workers: int, refresh_s: float) -> InferencePool | None:
    """The started pool for `pipeline.workers` > 1 (WorkerError when a worker cannot start), else None."""
    if workers <= 1:
        return None
    pool = InferencePool(net, workers, refresh_s)
    await pool.start()
    return pool
