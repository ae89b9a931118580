"""The pipeline's run counters (`Counters`) and its metrics: the dict sinks get, and when they get it (`Metrics`)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from .outputs import Outputs
from .runtime import BoundedQueue
from .segment import Segmenter
from .stages import Classifier

log = logging.getLogger(__name__)

#: every refusal reason `feedback.judge` and `feedback.parse` give starts at 0 in the metrics
FEEDBACK_COUNTS = ("received", "learned", "ignored", "disabled", "duplicate", "contradicts_label", "rate_limited",
                   "bad_class_name")


@dataclass
class Counters:
    """What the pipeline has done in this run (the network keeps its own lifetime counters).

    Each part writes its own: the streaming loop `events_in` .. `bad_batches`; the feedback teacher
    `feedback`, `feedback_scored`, `feedback_correct`; class growth `classes_added`; checkpoints
    `checkpoints`, `checkpoint_errors`."""

    events_in: int = 0
    windows: int = 0
    decisions: int = 0
    labelled: int = 0
    correct: int = 0
    bad_windows: int = 0
    bad_batches: int = 0
    #: received, learned, ignored (refused for any reason), disabled, and the count of each refusal reason
    feedback: dict = field(default_factory=lambda: dict.fromkeys(FEEDBACK_COUNTS, 0))
    #: decisions taught by feedback, and how many of those the published prediction had right
    feedback_scored: int = 0
    feedback_correct: int = 0
    classes_added: int = 0
    rehearsed: int = 0  # kept examples replayed after taught windows (snn.memory)
    fitted: int = 0  # taught windows after which a class added by feedback had its unit fit (teacher, classedit)
    imprinted: int = 0  # classes added by feedback whose unit was imprinted from their first window (classedit)
    kept_live: int = 0  # confidently decided windows kept as rehearsal examples (livekeep)
    checkpoints: int = 0
    checkpoint_errors: int = 0
    started: float = field(default_factory=time.monotonic)


class Metrics:
    """The metrics of a run (`snapshot()`) from the counters, the network, the window queue, the segmenter
    and the outputs (the windows in flight: `overlap()`), plus `extra()` (e.g. the source's and the MQTT
    connection's counters); handed to every sink every `every_s` seconds (`loop()`) and once at the end
    (`final()`)."""

    def __init__(self, counters: Counters, net: Classifier, windows: BoundedQueue, segmenter: Segmenter,
                 outputs: Outputs, *, extra: Callable[[], dict] | None = None,
                 clock: Callable[[], float] = time.monotonic, overlap: Callable[[], dict] | None = None):
        self.counters, self.net, self.windows, self.segmenter = counters, net, windows, segmenter
        self.overlap = overlap
        self.outputs, self.extra, self.clock = outputs, extra, clock
        self._last_rate = (clock(), 0)

    def snapshot(self) -> dict:
        """The metrics now; `events_per_s` is the rate since the previous snapshot."""
        c, net = self.counters, self.net
        now = self.clock()
        t_last, ev_last = self._last_rate
        self._last_rate = (now, c.events_in)
        m = {
            "events": c.events_in,
            "events_per_s": round((c.events_in - ev_last) / max(now - t_last, 1e-9), 1),
            "windows": c.windows,
            "decisions": c.decisions,
            "drops": self.windows.dropped,
            "queues": {"windows": self.windows.qsize()},  # decisions go straight to the sinks: no queue
            "accuracy": round(c.correct / c.labelled, 4) if c.labelled else None,
            "progressive_accuracy": _round(net.progressive_accuracy),
            "progressive_scored": int(getattr(net, "progressive_total", 0)),  # what it is over (0: not counted)
            "feedback_accuracy": round(c.feedback_correct / c.feedback_scored, 4) if c.feedback_scored else None,
            "classes": len(net.classes),
            "classes_added": c.classes_added,
            "rehearsed": c.rehearsed,
            "imprinted": c.imprinted,
            "fitted": c.fitted,
            "kept_live": c.kept_live,
            "samples_seen": int(net.samples_seen),
            "events_seen": int(net.events_seen),
            "updates": int(net.updates),
            "nonfinite": int(getattr(net, "nonfinite", 0)),  # this run: updates undone, decisions withheld (guard)
            "lr_backoff": float(getattr(net, "lr_backoff", 1.0)),  # halved at each; learning stops near 2**-30
            "silent_windows": int(getattr(net, "silent_windows", 0)),  # in a row without a last-layer spike (decide)
            "revivals": int(getattr(net, "revivals", 0)),  # this run: back to the last healthy weights (revive)
            "scene_changes": int(getattr(net, "scene_changes", 0)),  # this run: a trigger the copy shared (revive)
            "labels_stopped": bool(getattr(net, "labels_stopped", False)),  # kept failing: no longer learns from labels
            "model_version": net.model_version,
            "feedback": dict(c.feedback),
            "checkpoints": c.checkpoints,
            "checkpoint_errors": c.checkpoint_errors,
            "bad_windows": c.bad_windows,
            "bad_batches": c.bad_batches,
            "segment": dict(self.segmenter.counters),
            **({"overlap": self.overlap()} if self.overlap is not None else {}),
            "uptime_s": round(now - c.started, 1),
        }
        m.update(self.outputs.counters())
        if self.extra is not None:
            m.update(self.extra())
        return m

    def publish(self) -> None:
        self.outputs.metrics(self.snapshot())

    async def loop(self, every_s: float) -> None:
        """Publish every `every_s` seconds until cancelled; a failure is logged and the next try goes on."""
        while True:
            await asyncio.sleep(every_s)
            try:
                self.publish()
            except Exception as exc:  # noqa: BLE001 - metrics must not end (or silently stop) the run
                log.warning("metrics not published: %s: %s", type(exc).__name__, exc)

    async def final(self, flush_s: float = 5.0) -> None:
        """After the checkpoint: let the sinks deliver what they hold, then publish the metrics of the
        whole run (so they count every delivered decision and the last checkpoint)."""
        for sink in self.outputs.sinks:
            try:
                await sink.flush(flush_s)
            except Exception as exc:  # noqa: BLE001 - the metrics still go out
                log.warning("%s did not flush: %s: %s", type(sink).__name__, type(exc).__name__, exc)
        self.publish()


def _round(x):
    return None if x is None else round(float(x), 4)
