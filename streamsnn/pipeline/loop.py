"""The streaming loop: source -> segmenter -> network (one worker thread) -> sinks, with bounded queues."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Callable

from ..errors import StageFailed, StreamsnnError
from ..textsafe import printable, shown
from .ahead import FeedAhead
from .checkpoints import Checkpoints
from .decide import Decider, temporal, true_output
from .feedback import Recent
from .growth import Growth
from .livekeep import LiveKeeper
from .metrics import Counters, Metrics
from .outputs import Outputs
from .runtime import _END, BoundedQueue, _low_latency_runtime
from .segment import Segmenter, Window
from .settings import PipelineSettings
from .stages import Classifier, DecisionInfo, Sink, Source, class_names
from .teacher import Teacher
from .watchdog import watchdog, watchdog_period
from .workers import InferencePool

log = logging.getLogger(__name__)
LOG_FIRST = 20  # skipped batches and windows logged at WARNING; further ones at DEBUG


def _one_line(stage: str, exc: BaseException) -> BaseException:
    """A user-facing error stays as it is; anything else becomes one line naming the stage."""
    if isinstance(exc, StreamsnnError):
        return exc
    log.debug("%s failed", stage, exc_info=exc)
    return StageFailed(f"{stage} failed: {type(exc).__name__}: {exc}; this is a defect, please report it "
                       "(run with -v for the traceback)")


class Pipeline:
    """Runs one source through the network into the sinks until the source ends or `stop()` is called.

    All calls into the network (predict, learn, save) run on one worker thread, in order, so the event
    loop keeps serving MQTT while numba works. `source` follows `stages.Source`, `net` `stages.Classifier`;
    each of `sinks` (`stages.Sink`) receives `publish_decision(window, decision, info)` with a
    `DecisionInfo` (queue and compute time, model version, class names), `publish_metrics(dict)` and
    `publish_classes(names)`, all non-blocking; at the end the pipeline saves the checkpoint, lets the
    sinks `flush()`, and publishes the final metrics; the caller closes the sinks.
    `settings` (`PipelineSettings`; keyword arguments, when given, replace its fields) say how it runs.
    `segmenter` cuts batches into windows; `decider` (`decide.Decider`) turns a window into a decision,
    smoothing stream windows' evidence when it has a time constant (the same step `eval --stream` uses).
    A temporal network (`decide.temporal`: it carries its state across calls) gets each stream event
    once, as it arrives: the pipeline makes its segmenter `continuous` and the decider feeds the network
    only each window's new events, reading its evidence out at every window's end (`decide.continuous`).
    `feedback` is an asyncio.Queue of feedback messages, taught by `teacher.Teacher` (classes added by
    `growth.Growth`; `clock` is its rate limit's); `pool` (`workers.InferencePool`, made from
    `settings.workers` when not given) spreads windows over worker processes, decisions still published in
    window order; `extra_metrics()` adds to the metrics
    (`metrics.Metrics`); the checkpoint is written by `checkpoints.Checkpoints`.

    Bad input never stalls the run: a batch the segmenter refuses, or a window the network cannot
    take, is logged (one line), counted (`bad_batches`, `bad_windows`) and skipped; a sink that
    raises while publishing is counted and retried later while the others go on (`outputs.Outputs`);
    an error of the source, or a sink's fatal error (`check()`), ends the run with one line
    (`StageFailed` for an unexpected one), after what was read is classified and published.
    """

    def __init__(self, source: Source, net: Classifier, sinks: list[Sink], settings: PipelineSettings | None = None,
                 *, segmenter: Segmenter | None = None, decider: Decider | None = None,
                 feedback: asyncio.Queue | None = None, extra_metrics: Callable[[], dict] | None = None,
                 clock: Callable[[], float] = time.monotonic, pool=None, **options):
        settings = settings or PipelineSettings()
        if options:  # the same settings, some fields given by keyword (checked again)
            settings = replace(settings, **options)
        self.settings = s = settings
        self.source, self.net, self.sinks = source, net, sinks
        self.segmenter = segmenter or Segmenter()
        if temporal(net):
            self.segmenter.continuous = True  # each stream event reaches the network once (decide.continuous)
            self.segmenter.overlap = "repeat"  # its own state carries: no windows in flight
        self.decider = decider or Decider()
        self.windows = BoundedQueue(s.queue_size, s.policy, on_drop=self._unfed)
        self.learn_from_labels = s.learn_from_labels
        # windows in flight (segment.overlap): each accepted batch is fed on the worker as it arrives; not while
        # every window learns from its label (each is then decided alone, its state would be stale)
        # (nor with workers: the copies decide whole windows, the main network's states would go unread)
        self._feeding = self.segmenter.overlap != "repeat" and hasattr(self.decider, "feed") and not (
            s.learn_from_labels and self.segmenter.label_windows) and s.workers <= 1
        self.overlap = {"fed": 0, "skipped": 0}  # batches fed as they arrived, and skipped (queue full)
        self.recent = Recent(s.recent, s.recent_events)
        self.feedback = feedback
        self.counters = Counters()
        self.outputs = Outputs(sinks)  # each sink isolated: its errors are counted and retried
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamsnn-net")
        # the batches handed to the worker as they arrive, fed to the windows in flight (`ahead.FeedAhead`)
        self.ahead = FeedAhead(self._worker, lambda piece: self.decider.feed(self.net, piece), s.queue_size, s.policy,
                               self.overlap)
        self.growth = Growth(net, self.counters, enabled=s.new_classes, max_classes=s.max_classes,
                             lr_boost=s.new_class_lr)
        self.keeper = LiveKeeper(net, self.counters, s, self._worker, clock)  # rehearsal from what it decides now
        self.teacher = Teacher(net, self.recent, self.counters, s, self.growth, self.in_worker,
                               self.outputs.classes, clock, self.keeper.scene)
        # -- workers (pipeline/workers.py): `pool`, an InferencePool started by the caller, else made here --
        self.pool = pool if pool is not None else InferencePool(net, s.workers, s.refresh_s) if s.workers > 1 else None
        if self.pool is not None:
            extra_metrics = _with_pool(extra_metrics, self.pool)
        # overlap "chunks": the chunks spread over the workers as their events arrive (pipeline/chunkpool.py)
        self._router = self.pool.chunking(self.segmenter) if self.pool is not None else None
        # -- end workers --
        inflight = getattr(self.decider, "inflight", None)
        self.stats = Metrics(self.counters, net, self.windows, self.segmenter, self.outputs, extra=extra_metrics,
                             overlap=(lambda: {**self.overlap, **inflight.counters}) if inflight is not None else None)
        self.checkpoints = (Checkpoints(net, s.checkpoint, self.counters, self.in_worker)
                            if s.checkpoint is not None else None)
        self._stopping = asyncio.Event()
        self.exit_saved = False  # the checkpoint was written when the run ended

    # -- control --------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the pipeline to stop reading, drain what it holds and return (safe from a signal handler)."""
        self._stopping.set()

    async def in_worker(self, fn, *args):
        """Run fn(*args) on the network's worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    async def run(self) -> Counters:
        with _low_latency_runtime():
            return await self._run()

    async def _run(self) -> Counters:
        if self.pool is not None:  # workers: started before the first window (a no-op when the caller did)
            await self.pool.start()
        reader = asyncio.create_task(self._read(), name="read")
        stopper = asyncio.create_task(self._stopping.wait(), name="stop")
        s = self.settings
        side = [asyncio.create_task(self.stats.loop(s.metrics_every_s), name="metrics")]
        if self.checkpoints is not None and s.save_every_s > 0:
            side.append(asyncio.create_task(self.checkpoints.loop(s.save_every_s), name="checkpoint"))
        if self.feedback is not None:
            side.append(asyncio.create_task(self.teacher.loop(self.feedback), name="feedback"))
        if (period := watchdog_period()) is not None:  # systemd's WatchdogSec: beats only while it progresses
            side.append(asyncio.create_task(watchdog(self, period), name="watchdog"))
        classify = asyncio.create_task(self._classify(), name="classify")
        try:
            await asyncio.wait([reader, stopper, classify], return_when=asyncio.FIRST_COMPLETED)
            # classify ends early only on a fatal error (e.g. a refused login)
            if classify.done() and classify.exception() is not None:
                raise _one_line("publishing", classify.exception())
            if not reader.done():  # stop requested: stop the source, keep what was read
                log.info("stopping: closing the source and draining the queues")
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
                await self._finish_reading()
            try:
                await classify  # drain (the reader always queues the end marker); a fatal sink error ends the run
            except Exception as exc:
                raise _one_line("publishing", exc) from None
            if not reader.cancelled() and reader.exception() is not None:
                # a source error ends the run, after what it delivered is published
                raise _one_line("reading the source", reader.exception())
        finally:
            stopper.cancel()
            for t in side + [reader, classify]:
                t.cancel()
            await asyncio.gather(stopper, *side, reader, classify, return_exceptions=True)
            try:
                if self.checkpoints is not None:
                    self.exit_saved = await self.checkpoints.save_logged("at exit")
            finally:
                if self.pool is not None:  # workers: stopped after the windows in flight were published
                    await self.pool.close()
                # waited for off the event loop: a long job still on the worker (a teaching fit) leaves the
                # loop free to answer a second signal and the web server's last requests
                await asyncio.to_thread(self._worker.shutdown, True)
                await self.stats.final()
        return self.counters

    # -- stages -------------------------------------------------------------------------------
    async def _read(self) -> None:
        try:
            async for batch in self.source:
                self.counters.events_in += len(batch)
                try:
                    windows = self.segmenter.feed(batch)
                except StreamsnnError as exc:  # a duplicated, late or inconsistent batch: skip it
                    self._bad_batch(str(exc))
                    continue
                except Exception as exc:  # noqa: BLE001 - a defect: skip the batch, start the segmenter afresh
                    self._bad_batch(f"{type(exc).__name__}: {exc}; segmenter state reset")
                    log.debug("segmenter error", exc_info=True)
                    self.segmenter.reset()
                    continue
                pieces = self.segmenter.take_pieces()
                if self._router is not None:  # before its windows: their chunks get this batch first, on the workers
                    await self._router.route(self, pieces, windows)
                elif self._feeding and (pieces or self.ahead.later):
                    await self.ahead.hand_over(pieces, windows)  # before its windows: their states get it first
                for w in windows:
                    self.counters.windows += 1
                    await self.windows.put(w)
        finally:
            if not self._stopping.is_set():
                await self._finish_reading()

    def _bad_batch(self, detail: str) -> None:
        self.counters.bad_batches += 1
        level = logging.WARNING if self.counters.bad_batches <= LOG_FIRST else logging.DEBUG
        log.log(level, "batch skipped: %s", printable(detail))

    async def _finish_reading(self) -> None:
        """Close the source, queue what the segmenter still holds, then the end marker (always)."""
        try:
            try:
                await self.source.aclose()
            except Exception as exc:  # a source that fails to close must not block the shutdown
                log.warning("closing the source failed: %s", exc)
            await self.ahead.flush()  # the last batch's events after its last window: the flushed window holds them
            try:
                windows = self.segmenter.flush()
            except Exception as exc:  # noqa: BLE001 - never lose the end marker
                log.warning("windows still open at the end were dropped: %s: %s", type(exc).__name__, exc)
                windows = []
            if self._router is not None:
                await self._router.route(self, [], windows)
            for w in windows:
                self.counters.windows += 1
                await self.windows.put(w)
        finally:
            await self.windows.put(_END)

    def _unfed(self, w: Window) -> None:
        """A window dropped from the full queue: the events a temporal network would have been fed with it (`fresh`)
        never reach it; counted with the segmenter's (`segment.unfed` in the metrics)."""
        if w.fresh is not None and len(w.fresh):
            self.segmenter.counters["unfed"] = self.segmenter.counters.get("unfed", 0) + len(w.fresh)

    def _decide(self, w: Window) -> tuple:
        """On the worker: the decision and how long it waited and took (DecisionInfo)."""
        taken = time.monotonic()
        if self._feeding:
            self.ahead.feed_now()  # the window's own batches, if the feeding job has not taken them yet
        start = time.monotonic()
        d = self.decider(self.net, w, learn=self.learn_from_labels)
        done = time.monotonic()
        w.fresh = None  # fed: a window kept for feedback holds only its own events
        w.learned = true_output(self.net, w) is not None and self.learn_from_labels and not getattr(
            self.decider, "stopped", False)  # a network that kept failing no longer learns from labels (revive)
        info = DecisionInfo(queue_ms=(taken - w.ready) * 1000.0, compute_ms=(done - start) * 1000.0,
                            model_version=self.net.model_version, classes=class_names(self.net),
                            feed_ms=(start - taken) * 1000.0)
        return d, info

    async def _classify(self) -> None:
        if self.pool is not None and self.pool.active:  # workers: windows spread over processes, same publishing
            return await self.pool.classify(self)
        while (w := await self.windows.get()) is not _END:
            try:
                d, info = await self.in_worker(self._decide, w)
            except Exception as exc:  # noqa: BLE001 - a window the network cannot take: log, count, go on
                self._skipped(w, exc)
                continue
            self._publish(w, d, info)

    def _skipped(self, w: Window, exc: BaseException) -> None:
        """A window the network could not take: logged (one line) and counted."""
        self.counters.bad_windows += 1
        text = str(exc) if isinstance(exc, StreamsnnError) else f"{type(exc).__name__}: {exc}"
        level = logging.WARNING if self.counters.bad_windows <= LOG_FIRST else logging.DEBUG
        where = shown(w.sample) if w.sample is not None else f"{w.t_start_us}..{w.t_end_us} us"
        log.log(level, "window %s skipped: %s", where, printable(text))

    def _publish(self, w: Window, d, info: DecisionInfo) -> None:
        """Count one decision, keep it for feedback and hand it to the sinks."""
        w.predicted = int(d.label)  # what feedback on this window will score
        self.recent.add(w)
        self.keeper.seen(w, d)
        c = self.counters
        c.decisions += 1
        truth = true_output(self.net, w)  # by class name: the model's order may differ from the dataset's
        if truth is not None:
            c.labelled += 1
            c.correct += int(d.label == truth)
        # Sinks never block (the MQTT sink queues into its outbox), so the decision goes out from
        # here: no further queue hop between the network and the sinks.
        # A sink that raises is counted and retried later; check() raises the sink's fatal error
        # (e.g. a broker that now refuses the login), which ends the run.
        self.outputs.decision(w, d, info)

    # -- the parts, for callers and tests ------------------------------------------------------
    @property
    def learn_from_feedback(self) -> bool:
        return self.teacher.enabled

    @learn_from_feedback.setter
    def learn_from_feedback(self, on: bool) -> None:
        self.teacher.enabled = bool(on)

    async def apply_feedback(self, msg) -> bool:
        """Teach one feedback message (`teacher.Teacher.apply`); True when it learned."""
        return await self.teacher.apply(msg)

    def metrics(self) -> dict:
        """The metrics now (`metrics.Metrics.snapshot`)."""
        return self.stats.snapshot()

    async def publish_metrics(self) -> None:
        self.stats.publish()

    async def save(self) -> None:
        """Write the checkpoint now (raises what the save raised)."""
        await self.checkpoints.save()


def _with_pool(extra: Callable[[], dict] | None, pool) -> Callable[[], dict]:
    """The caller's extra metrics plus the workers' counters (`workers.InferencePool.metrics`)."""
    return lambda: {**(extra() if extra is not None else {}), **pool.metrics()}
