"""The pipeline's settings in one object: `PipelineSettings`, built from a configuration in one place."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .. import defaults as d
from ..errors import ConfigError
from .feedback import MAX_CLASSES

#: Most worker processes a pipeline may start (pipeline.workers).
MAX_WORKERS = 64


@dataclass(frozen=True)
class PipelineSettings:
    """How a `Pipeline` runs; checked when made (a bad value is a ConfigError naming it).

    Streaming: `queue_size` windows wait for the network at most, `policy` says what a full queue does
    (`runtime.POLICIES`); `learn_from_labels`: labelled windows teach the network test-then-train.
    Feedback (`teacher.Teacher`): `learn_from_feedback`; the last `recent` decisions (holding at most
    `recent_events` events) may be taught; messages of at most `max_feedback_bytes`; at most
    `feedback_per_s` a second on average with bursts of `feedback_burst` (0: no limit); learned at the
    learning rates times `feedback_lr_scale`. Class growth (`growth.Growth`): with `new_classes`, an
    unknown class name adds an output while the model has fewer than `max_classes` classes, its
    output learning `new_class_lr` times faster. Rehearsal (`snn.memory`): after each taught window
    `rehearse` kept examples of the other classes are replayed, from at most `memory_per_class` per class;
    with `imprint` a class added by feedback starts from its first taught window (`snn.classedit.imprint`); with
    `new_class_fit` it teaches only its output unit, fit against the old classes and the scene (`scene.Scene`);
    every `keep_every`-th window decided with a score margin of at least `keep_margin` (0: measured on the
    kept training examples) joins the memory as an example of its decided class (`livekeep.LiveKeeper`).
    Metrics every `metrics_every_s`; the checkpoint
    `checkpoint` (None: not saved) every `save_every_s` (0: only at exit). `workers` processes decide
    windows, the copies refreshed from the learner at most every `refresh_s` seconds (`workers.InferencePool`).
    """

    queue_size: int = d.QUEUE_SIZE
    policy: str = d.POLICY
    learn_from_labels: bool = True
    learn_from_feedback: bool = True
    recent: int = d.RECENT
    recent_events: int = d.RECENT_EVENTS
    max_feedback_bytes: int = d.MAX_FEEDBACK_BYTES
    feedback_per_s: float = d.FEEDBACK_PER_S
    feedback_burst: int = d.FEEDBACK_BURST
    feedback_lr_scale: float = d.FEEDBACK_LR_SCALE
    new_classes: bool = False
    max_classes: int = d.MAX_CLASSES_GROWN
    new_class_lr: float = d.NEW_CLASS_LR
    rehearse: int = d.REHEARSE
    memory_per_class: int = d.MEMORY_PER_CLASS
    imprint: bool = d.IMPRINT
    new_class_fit: bool = d.NEW_CLASS_FIT
    keep_every: int = d.KEEP_EVERY
    keep_margin: float = d.KEEP_MARGIN
    metrics_every_s: float = d.METRICS_EVERY_S
    checkpoint: Path | None = None
    save_every_s: float = 0.0
    workers: int = d.WORKERS  # pipeline/workers.py
    refresh_s: float = d.REFRESH_S

    def __post_init__(self) -> None:
        numbers = dict(feedback_lr_scale=self.feedback_lr_scale, new_class_lr=self.new_class_lr,
                       feedback_per_s=self.feedback_per_s, metrics_every_s=self.metrics_every_s,
                       save_every_s=self.save_every_s, max_classes=self.max_classes, rehearse=self.rehearse,
                       memory_per_class=self.memory_per_class, refresh_s=self.refresh_s,
                       keep_every=self.keep_every, keep_margin=self.keep_margin)
        if not (all(v >= 0 and math.isfinite(v) for v in numbers.values()) and self.new_class_lr > 0
                and self.metrics_every_s > 0 and self.max_classes >= 2):
            raise ConfigError(f"pipeline settings must be finite and >= 0 (new_class_lr, metrics_every_s > 0, "
                              f"max_classes >= 2), got {numbers}")
        if not (0 <= self.rehearse <= 64 and 0 <= self.memory_per_class <= 1000 and 0 <= self.keep_every <= 10**6):
            raise ConfigError(f"rehearse must be 0..64, memory_per_class 0..1000 and keep_every 0..1000000, got "
                              f"{self.rehearse}, {self.memory_per_class} and {self.keep_every}")
        if not (isinstance(self.workers, int) and 1 <= self.workers <= MAX_WORKERS):
            raise ConfigError(f"pipeline.workers must be a whole number from 1 to {MAX_WORKERS}, got {self.workers!r}")
        if self.max_classes > MAX_CLASSES:
            raise ConfigError(f"max_classes must be at most {MAX_CLASSES}, got {self.max_classes}")

    @classmethod
    def from_config(cls, cfg, *, checkpoint: Path | None = None,
                    max_feedback_bytes: int = d.MAX_FEEDBACK_BYTES) -> PipelineSettings:
        """The settings of `streamsnn run` from a `config.Config` ([pipeline] and [model]); `checkpoint` is
        the file the model was loaded from or will be saved to, `max_feedback_bytes` the MQTT bound."""
        p, m = cfg.pipeline, cfg.model
        return cls(queue_size=p.queue_size, policy=p.policy, metrics_every_s=p.metrics_every_s,
                   learn_from_labels=m.learn_from_labels, learn_from_feedback=m.learn_from_feedback,
                   recent=m.recent, recent_events=m.recent_events, max_feedback_bytes=max_feedback_bytes,
                   feedback_per_s=m.feedback_per_s, feedback_burst=m.feedback_burst,
                   feedback_lr_scale=m.feedback_lr_scale, new_classes=m.new_classes, max_classes=m.max_classes,
                   new_class_lr=m.new_class_lr, rehearse=m.rehearse, memory_per_class=m.memory_per_class,
                   imprint=m.imprint, new_class_fit=m.new_class_fit, keep_every=m.keep_every, keep_margin=m.keep_margin,
                   checkpoint=checkpoint, save_every_s=m.save_every_s, workers=p.workers, refresh_s=p.refresh_s)
