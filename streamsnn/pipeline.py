"""The streaming pipeline: source -> segmenter -> network (one worker thread) -> sinks, with bounded queues."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import classnames
from .decide import Decider, true_output
from .errors import ConfigError, StageFailed, StreamsnnError
from .feedback import (
    FEEDBACK_LR_SCALE,
    MAX_CLASSES,
    MAX_FEEDBACK_BYTES,
    NEW_CLASS_LR,
    RECENT_EVENTS,
    Recent,
    Refused,
    TokenBucket,
    judge,
    parse,
)
from .outputs import Outputs
from .runtime import _END, POLICIES, BoundedQueue, _low_latency_runtime  # noqa: F401 - public here too
from .segment import Segmenter, Window
from .stages import DecisionInfo, Sink, Source, class_names
from .textsafe import printable, shown
from .watchdog import watchdog, watchdog_period

log = logging.getLogger(__name__)
LOG_FIRST = 20  # skipped batches and windows logged at WARNING; further ones at DEBUG


def _one_line(stage: str, exc: BaseException) -> BaseException:
    """A user-facing error stays as it is; anything else becomes one line naming the stage."""
    if isinstance(exc, StreamsnnError):
        return exc
    log.debug("%s failed", stage, exc_info=exc)
    return StageFailed(f"{stage} failed: {type(exc).__name__}: {exc}; this is a defect, please report it "
                       "(run with -v for the traceback)")


@dataclass
class Counters:
    """What the pipeline has done in this run (the network keeps its own lifetime counters)."""

    events_in: int = 0
    windows: int = 0
    decisions: int = 0
    labelled: int = 0
    correct: int = 0
    #: received, learned, ignored (refused for any reason), disabled, and the count of each refusal reason
    feedback: dict = field(default_factory=lambda: {"received": 0, "learned": 0, "ignored": 0, "disabled": 0,
                                                    "duplicate": 0, "contradicts_label": 0, "rate_limited": 0,
                                                    "bad_class_name": 0})
    #: decisions taught by feedback, and how many of those the published prediction had right
    feedback_scored: int = 0
    feedback_correct: int = 0
    classes_added: int = 0
    checkpoints: int = 0
    checkpoint_errors: int = 0
    bad_windows: int = 0
    bad_batches: int = 0
    started: float = field(default_factory=time.monotonic)


class Pipeline:
    """Runs one source through the network into the sinks until the source ends or `stop()` is called.

    All calls into the network (predict, learn, save) run on one worker thread, in order, so the event
    loop keeps serving MQTT while numba works. `source` follows `stages.Source`; each of `sinks`
    (`stages.Sink`) receives `publish_decision(window, decision, info)` with a `DecisionInfo`
    (queue and compute time, model version, class names) and `publish_metrics(dict)`, both
    non-blocking; at the end the pipeline saves the checkpoint, lets the sinks `flush()`, and
    publishes the final metrics; the caller closes the sinks.
    `decider` (`decide.Decider`) turns a window into a decision, smoothing stream windows' evidence
    when it has a time constant (the same step `eval --stream` uses).
    `feedback` is an asyncio.Queue of feedback messages (`feedback.Message`, raw JSON, a dict or a
    `feedback.Feedback`), each checked by `feedback.parse` and `feedback.judge` and counted once,
    by reason, in `counters.feedback`. Feedback teaches a decision at most once (later labels:
    reason `duplicate`), never against the window's known true label (`contradicts_label`), and at
    most `feedback_per_s` times a second on average with bursts of `feedback_burst` (`rate_limited`;
    `feedback_per_s = 0`: no limit). A feedback label scores the prediction published for the window
    (delayed progressive validation; the window is not counted twice) and is learned with the
    learning rates times `feedback_lr_scale`. A class name the model does not know adds an output
    unit when `new_classes` is on and the model has fewer than `max_classes` classes (the unit's
    output learning rate times `new_class_lr`); otherwise it is refused (`unknown_class`).

    Bad input never stalls the run: a batch the segmenter refuses, or a window the network cannot
    take, is logged (one line), counted (`bad_batches`, `bad_windows`) and skipped; a sink that
    raises while publishing is counted and retried later while the others go on (`outputs.Outputs`);
    an error of the source, or a sink's fatal error (`check()`), ends the run with one line
    (`StageFailed` for an unexpected one), after what was read is classified and published.
    """

    def __init__(self, source: Source, net, sinks: list[Sink], *, segmenter: Segmenter | None = None,
                 queue_size: int = 64, policy: str = "block",
                 learn_from_labels: bool = True, learn_from_feedback: bool = True, recent: int = 128,
                 metrics_every_s: float = 5.0, checkpoint: Path | None = None, save_every_s: float = 0.0,
                 feedback: asyncio.Queue | None = None, max_feedback_bytes: int = MAX_FEEDBACK_BYTES,
                 extra_metrics: Callable[[], dict] | None = None, feedback_per_s: float = 10.0,
                 feedback_burst: int = 20, clock: Callable[[], float] = time.monotonic,
                 recent_events: int = RECENT_EVENTS, feedback_lr_scale: float = FEEDBACK_LR_SCALE,
                 new_classes: bool = False, max_classes: int = 32, new_class_lr: float = NEW_CLASS_LR,
                 decider: Decider | None = None):
        numbers = dict(feedback_lr_scale=feedback_lr_scale, new_class_lr=new_class_lr, feedback_per_s=feedback_per_s,
                       metrics_every_s=metrics_every_s, save_every_s=save_every_s, max_classes=max_classes)
        if not (all(v >= 0 and math.isfinite(v) for v in numbers.values()) and new_class_lr > 0
                and metrics_every_s > 0 and max_classes >= 2):
            raise ConfigError(f"pipeline settings must be finite and >= 0 (new_class_lr, metrics_every_s > 0, "
                              f"max_classes >= 2), got {numbers}")
        if max_classes > MAX_CLASSES:
            raise ConfigError(f"max_classes must be at most {MAX_CLASSES}, got {max_classes}")
        self.source, self.net, self.sinks = source, net, sinks
        self.segmenter = segmenter or Segmenter()
        self.decider = decider or Decider()
        self.windows = BoundedQueue(queue_size, policy)
        self.learn_from_labels, self.learn_from_feedback = learn_from_labels, learn_from_feedback
        self.recent = Recent(recent, recent_events)
        self.metrics_every_s, self.checkpoint, self.save_every_s = metrics_every_s, checkpoint, save_every_s
        self.feedback, self.max_feedback_bytes, self.extra_metrics = feedback, max_feedback_bytes, extra_metrics
        self.counters = Counters()
        self.feedback_bucket = TokenBucket(feedback_per_s, feedback_burst, clock)
        self.feedback_lr_scale, self.new_class_lr = float(feedback_lr_scale), float(new_class_lr)
        self.new_classes, self.max_classes = bool(new_classes), int(max_classes)
        self.outputs = Outputs(sinks)  # each sink isolated: its errors are counted and retried
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamsnn-net")
        self._stopping = asyncio.Event()
        self.exit_saved = False  # the checkpoint was written when the run ended
        self._last_rate = (time.monotonic(), 0)

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
        reader = asyncio.create_task(self._read(), name="read")
        stopper = asyncio.create_task(self._stopping.wait(), name="stop")
        side = [asyncio.create_task(self._metrics_loop(), name="metrics")]
        if self.checkpoint is not None and self.save_every_s > 0:
            side.append(asyncio.create_task(self._checkpoint_loop(), name="checkpoint"))
        if self.feedback is not None:
            side.append(asyncio.create_task(self._feedback_loop(), name="feedback"))
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
                if self.checkpoint is not None:
                    self.exit_saved = await self._save_logged("at exit")
            finally:
                self._worker.shutdown(wait=True)
                await self._final_metrics()
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
            try:
                windows = self.segmenter.flush()
            except Exception as exc:  # noqa: BLE001 - never lose the end marker
                log.warning("windows still open at the end were dropped: %s: %s", type(exc).__name__, exc)
                windows = []
            for w in windows:
                self.counters.windows += 1
                await self.windows.put(w)
        finally:
            await self.windows.put(_END)

    def _decide(self, w: Window) -> tuple:
        """On the worker: the decision and how long it waited and took (DecisionInfo)."""
        start = time.monotonic()
        d = self.decider(self.net, w, learn=self.learn_from_labels)
        done = time.monotonic()
        w.learned = true_output(self.net, w) is not None and self.learn_from_labels
        info = DecisionInfo(queue_ms=(start - w.ready) * 1000.0, compute_ms=(done - start) * 1000.0,
                            model_version=self.net.model_version, classes=class_names(self.net))
        return d, info

    async def _classify(self) -> None:
        while (w := await self.windows.get()) is not _END:
            try:
                d, info = await self.in_worker(self._decide, w)
            except Exception as exc:  # noqa: BLE001 - a window the network cannot take: log, count, go on
                self.counters.bad_windows += 1
                text = str(exc) if isinstance(exc, StreamsnnError) else f"{type(exc).__name__}: {exc}"
                level = logging.WARNING if self.counters.bad_windows <= LOG_FIRST else logging.DEBUG
                where = shown(w.sample) if w.sample is not None else f"{w.t_start_us}..{w.t_end_us} us"
                log.log(level, "window %s skipped: %s", where, printable(text))
                continue
            w.predicted = int(d.label)  # what feedback on this window will score
            self.recent.add(w)
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

    # -- feedback -----------------------------------------------------------------------------
    async def _feedback_loop(self) -> None:
        while True:
            fb = await self.feedback.get()
            try:
                await self.apply_feedback(fb)
            except Exception as exc:  # never let a message end the daemon
                self._ignore("error", f"{type(exc).__name__}: {exc}")

    async def apply_feedback(self, msg) -> bool:
        """Teach the network the true label of a recent decision (see `feedback.parse` and `feedback.judge`);
        True when it learned. Every message is counted once: learned, disabled, or ignored by reason."""
        c = self.counters.feedback
        c["received"] += 1
        if not self.learn_from_feedback:
            c["disabled"] += 1
            return False
        try:
            fb = parse(msg, self.max_feedback_bytes)
            classes = class_names(self.net)
            may_add = self.new_classes and len(classes) < self.max_classes
            w, label = judge(fb, self.recent, classes, self.feedback_bucket, may_add)
        except Refused as exc:
            if exc.reason == "unknown_class" and self.new_classes:
                exc = Refused(exc.reason, f"{exc}; the model has model.max_classes = {self.max_classes} classes")
            return self._ignore(exc.reason, str(exc))
        w.learned = True  # before the worker runs: another message meanwhile is a duplicate
        if label == len(classes):
            names = await self.in_worker(self._add_class, str(fb.label))
            self.outputs.classes(names)  # the new class list goes out now, not with the next decision
        d = await self.in_worker(self._learn_feedback, w, label)
        c["learned"] += 1
        self.counters.feedback_scored += 1
        self.counters.feedback_correct += int((w.predicted if w.predicted is not None else d.label) == label)
        return True

    def _learn_feedback(self, w: Window, label: int):
        """On the worker: learn the label of a decided window, scoring the prediction published for it."""
        return self.net.learn_one(w.batch, label, prediction=w.predicted, lr_scale=self.feedback_lr_scale)

    def _add_class(self, name: str) -> tuple[str, ...]:
        """On the worker: a new output unit for `name`; returns the class names now."""
        if classnames.find(name, self.net.classes) is not None:  # added meanwhile (feedback from two tasks)
            return class_names(self.net)
        index = self.net.add_class(name, lr_boost=self.new_class_lr)
        self.counters.classes_added += 1
        names = class_names(self.net)
        log.info("feedback added class '%s' (output %d; now %d classes of at most %d)", shown(name), index,
                 len(names), self.max_classes)
        return names

    # -- metrics and checkpoints ----------------------------------------------------------------
    def metrics(self) -> dict:
        c, net = self.counters, self.net
        now = time.monotonic()
        t_last, ev_last = self._last_rate
        self._last_rate = (now, c.events_in)
        m = {
            "events": c.events_in,
            "events_per_s": round((c.events_in - ev_last) / max(now - t_last, 1e-9), 1),
            "windows": c.windows,
            "decisions": c.decisions,
            "drops": self.windows.dropped,
            "queues": {"windows": self.windows.qsize(), "decisions": 0},  # decisions go straight to the sinks
            "accuracy": round(c.correct / c.labelled, 4) if c.labelled else None,
            "progressive_accuracy": _round(net.progressive_accuracy),
            "feedback_accuracy": round(c.feedback_correct / c.feedback_scored, 4) if c.feedback_scored else None,
            "classes": len(class_names(net)),
            "classes_added": c.classes_added,
            "samples_seen": int(net.samples_seen),
            "events_seen": int(net.events_seen),
            "updates": int(net.updates),
            "model_version": net.model_version,
            "feedback": dict(c.feedback),
            "checkpoints": c.checkpoints,
            "checkpoint_errors": c.checkpoint_errors,
            "bad_windows": c.bad_windows,
            "bad_batches": c.bad_batches,
            "segment": dict(self.segmenter.counters),
            "uptime_s": round(now - c.started, 1),
        }
        m.update(self.outputs.counters())
        if self.extra_metrics is not None:
            m.update(self.extra_metrics())
        return m

    async def publish_metrics(self) -> None:
        self.outputs.metrics(self.metrics())

    async def _final_metrics(self, flush_s: float = 5.0) -> None:
        """After the checkpoint: let the sinks deliver what they hold, then publish the metrics of the
        whole run (so they count every delivered decision and the last checkpoint)."""
        for sink in self.sinks:
            try:
                await sink.flush(flush_s)
            except Exception as exc:  # noqa: BLE001 - the metrics still go out
                log.warning("%s did not flush: %s: %s", type(sink).__name__, type(exc).__name__, exc)
        await self.publish_metrics()

    async def _metrics_loop(self) -> None:
        while True:
            await asyncio.sleep(self.metrics_every_s)
            try:
                await self.publish_metrics()
            except Exception as exc:  # noqa: BLE001 - metrics must not end (or silently stop) the run
                log.warning("metrics not published: %s: %s", type(exc).__name__, exc)

    async def save(self) -> None:
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        await self.in_worker(self.net.save, self.checkpoint)
        self.counters.checkpoints += 1

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(self.save_every_s)
            await self._save_logged("periodic")

    async def _save_logged(self, when: str) -> bool:
        """Save; a failure (a full disk, a network with non-finite weights, which is never written over the
        last good checkpoint) is counted and logged in one line, and the run goes on. True when saved."""
        try:
            await self.save()
            return True
        except Exception as exc:  # noqa: BLE001 - the classification, and the file already there, must survive
            self.counters.checkpoint_errors += 1
            log.warning("checkpoint not saved (%s): %s", when, str(exc).splitlines()[0] if str(exc) else
                        type(exc).__name__)
            return False


    def _ignore(self, reason: str, detail: str) -> bool:
        c = self.counters.feedback
        c["ignored"] += 1
        c[reason] = c.get(reason, 0) + 1
        level = logging.WARNING if c[reason] <= LOG_FIRST else logging.DEBUG
        log.log(level, "feedback ignored (%s): %s", reason, printable(detail))
        return False


def _round(x):
    return None if x is None else round(float(x), 4)
