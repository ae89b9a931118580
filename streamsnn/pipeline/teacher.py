"""Feedback teaching: each message checked (`feedback.parse`, `feedback.judge`), counted once, rate-limited, learned."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import numpy as np

from .. import classnames, defaults
from ..learn.training import Augment
from ..snn import classedit
from ..snn.guard import NonFinite
from ..snn.memory import at_most
from ..textsafe import printable
from .feedback import Recent, Refused, TokenBucket, judge, parse
from .growth import Growth
from .livekeep import window_key
from .metrics import Counters
from .scene import Scene
from .segment import Window
from .settings import PipelineSettings
from .stages import Classifier, class_names

log = logging.getLogger(__name__)
LOG_FIRST = 20  # refusals of one reason logged at WARNING; further ones at DEBUG


@dataclass(frozen=True)
class Outcome:
    """What one feedback message did: `learned`, else the refusal's `reason` (a counter name) and `detail`.

    When learned: `label` is the class name taught, `added` whether it added that class, and `window`
    the window it taught (e.g. to record it too)."""

    learned: bool
    reason: str | None = None
    detail: str = ""
    label: str | None = None
    added: bool = False
    window: Window | None = field(default=None, repr=False, compare=False)


class Teacher:
    """Teaches `net` the true labels that feedback gives for the decisions in `recent`.

    A message (`feedback.Message`, raw JSON, a dict or a `feedback.Feedback`) is counted once in
    `counters.feedback`: `learned`, `disabled` (`enabled` is off: model.learn_from_feedback), or
    `ignored` with its reason (see `feedback.judge`; `undone`: the update made the weights non-finite or huge, so the
    guard put them back and halved the learning rates, `snn.guard`). Feedback teaches a decision at most once, never
    against the window's known true label, at most `feedback_per_s` times a second on average with
    bursts of `feedback_burst` (a `TokenBucket` on `clock`). It scores the prediction published for the
    window (delayed progressive validation) and learns with the learning rates times
    `feedback_lr_scale`, then replays `rehearse` kept examples of the other classes (`snn.memory`: teaching one
    class does not erase the others; counted in `counters.rehearsed`). A class name the model lacks goes to
    `growth`; the new class list is handed to `on_classes` at once, and with `imprint` the new unit first takes
    its weights from the window (`snn.classedit.imprint`; counted in `counters.imprinted`). With `new_class_fit`, a
    window naming a class added by feedback teaches only the output layer and, instead of the replay, that class's
    unit is fit to tell its windows from the other classes' kept examples and from `scene` (the windows seen before
    it was added: `scene.Scene`; counted in `counters.fitted`), so it does not take the old classes' windows. A
    window kept as a live example (`livekeep`) leaves the memory when feedback teaches it. All network calls go through
    `in_worker` (the network's worker thread).
    """

    def __init__(self, net: Classifier, recent: Recent, counters: Counters, settings: PipelineSettings,
                 growth: Growth, in_worker: Callable[..., Awaitable], on_classes: Callable[[tuple], None],
                 clock: Callable[[], float] = time.monotonic, scene: Scene | None = None):
        self.net, self.recent, self.counters, self.growth = net, recent, counters, growth
        self.in_worker, self.on_classes = in_worker, on_classes
        self.enabled = bool(settings.learn_from_feedback)
        self.max_bytes = settings.max_feedback_bytes
        self.lr_scale = float(settings.feedback_lr_scale)
        self.rehearse = int(settings.rehearse)
        self.imprint = bool(settings.imprint)
        self.fit, self.scene = bool(settings.new_class_fit), scene
        self._vary, self._rng = Augment(**defaults.AUGMENT), np.random.default_rng(22)
        memory = getattr(net, "memory", None)
        if memory is not None:
            memory.per_class = int(settings.memory_per_class)
        self.bucket = TokenBucket(settings.feedback_per_s, settings.feedback_burst, clock)

    async def loop(self, queue: asyncio.Queue) -> None:
        """Apply every message of `queue` until cancelled; no message can end it."""
        while True:
            msg = await queue.get()
            try:
                await self.apply(msg)
            except Exception as exc:  # noqa: BLE001 - never let a message end the daemon
                self._ignore("error", f"{type(exc).__name__}: {exc}")

    async def apply(self, msg) -> bool:
        """Teach the network the true label of a recent decision; True when it learned (see the class)."""
        return (await self.teach(msg)).learned

    async def teach(self, msg) -> Outcome:
        """`apply`, saying what happened: learned (which class, added or not), or refused and why."""
        c = self.counters.feedback
        c["received"] += 1
        if not self.enabled:
            c["disabled"] += 1
            return Outcome(False, "disabled", "this daemon does not learn from feedback "
                                              "(model.learn_from_feedback = false)")
        try:
            fb = parse(msg, self.max_bytes)
            classes = class_names(self.net)
            w, label = judge(fb, self.recent, classes, self.bucket, self.growth.may_add())
        except Refused as exc:
            exc = self.growth.refusal(exc)
            self._ignore(exc.reason, str(exc))
            return Outcome(False, exc.reason, str(exc))
        w.learned = True  # before the worker runs: another message meanwhile is a duplicate
        added = label == len(classes)
        if added:
            try:  # on the worker, in turn: another message may have added a class since `judge`
                classes = await self.in_worker(self.growth.add, str(fb.label))
            except Refused as exc:  # the model filled up meanwhile
                w.learned = False
                self._ignore(exc.reason, str(exc))
                return Outcome(False, exc.reason, str(exc))
            label = classnames.find(str(fb.label), classes)  # its index now (another may have come first)
            self.on_classes(classes)  # the new class list goes out now, not with the next decision
        try:
            d = await self.in_worker(self._learn, w, label, added)
        except NonFinite as exc:  # the guard undid the update and halved the rates: refused, the model intact
            self._ignore("undone", str(exc))
            return Outcome(False, "undone", str(exc), label=str(classes[label]), added=added, window=w)
        c["learned"] += 1
        self.counters.feedback_scored += 1
        self.counters.feedback_correct += int((w.predicted if w.predicted is not None else d.label) == label)
        return Outcome(True, label=str(classes[label]), added=added, window=w,
                       detail=f"learned '{classes[label]}'" + (" (a new class)" if added else ""))

    def _learn(self, w: Window, label: int, added: bool = False):
        """On the worker: learn the label of a decided window, scoring the prediction published for it (a class
        it just `added` first imprinted from it); then replay `rehearse` kept examples of the other classes and
        keep this window as an example of its class (instead of as a live example of the decided one)."""
        memory = getattr(self.net, "memory", None)
        if memory is None:
            return self.net.learn_one(w.batch, label, prediction=w.predicted, lr_scale=self.lr_scale)
        idx, t = self.net.input_events(w.batch)  # once: for learning and for the memory
        memory.forget(window_key(w))
        if added and self.imprint and classedit.imprints(self.net):
            typical = memory.typical_margin(self.net)  # a training example's lead over its runner-up
            self.counters.imprinted += int(classedit.imprint(
                self.net, label, self.net.features(idx, t), margin=defaults.IMPRINT_MARGIN * (typical or 1.0),
                centre=memory.centre(self.net, label)))
        if added and self.scene is not None:
            self.scene.added(label)
        # a class added by feedback, on a network whose scores are its last layer's counts x weights: only its unit
        new = self.fit and float(self.net.class_lr[label]) > 1 and classedit.imprints(self.net) and self._fits(label)
        d = self.net.learn_indices(idx, label, t, self.lr_scale, prediction=w.predicted, hidden=not new)
        if new:  # the hidden layers did not move: nothing to replay; the unit is fit instead
            self._fit(label, self.net.last_features, idx, t)
        else:
            self.counters.rehearsed += memory.rehearse(self.net, label, self.rehearse, self.lr_scale)
        memory.add(idx, t if getattr(self.net, "tau_us", None) is not None else None, label)
        return d

    def _fits(self, label: int) -> bool:
        """Whether class `label`'s unit has something to be told apart from: kept examples of other classes or a scene
        before it was added (a model without kept examples, e.g. model.memory_per_class = 0 or an older checkpoint,
        teaches a new class the whole way, with the replay, instead of moving one unit at the feedback rate)."""
        memory = self.net.memory
        if any(y != label and y < self.net.n_classes for y in memory.labels):
            return True
        return self.scene is not None and self.scene.negatives(label) is not None

    def _fit(self, label: int, h, idx: np.ndarray, t: np.ndarray) -> None:
        """Fit class `label`'s unit to tell its windows from the other classes' kept examples and the scene before it
        was added (`classedit.fit_class`). Its windows: its kept examples, and the last FIT_POOL windows taught (this
        one's counts `h`, of events `idx` at times `t`), each with FIT_AUGMENT copies varied as training varies a
        sample (`_copies`), so that a few examples stand for the shifts and losses of the windows to come; those taught
        before the hidden layers last learned (feedback on another class) are dropped, as their counts are stale.
        Without a scene the copies would let the unit reach into the old classes' windows (the kept examples alone do
        not say where to stop): its windows are then its kept examples and the window just taught."""
        memory = self.net.memory
        mine = [k for k, y in enumerate(memory.labels) if y == label]
        others = [k for k, y in enumerate(memory.labels) if y != label and y < self.net.n_classes]
        negatives = [memory.features_of(self.net, others)]
        scene = self.scene.negatives(label) if self.scene is not None else None
        if scene is None or scene.shape[1:] != negatives[0].shape[1:]:  # no scene: the kept examples and this window
            own = [np.asarray(h, np.float32).reshape(1, -1)]
        else:
            negatives.append(scene)
            # the counts of its last taught windows and their copies, emptied when the hidden layers learned since
            # (the network's `hidden_updates`); kept on the memory, so a checkpoint holds them (`snn.fitkeep`)
            own = memory.fit.pool(label, self.net.hidden_updates, defaults.FIT_POOL)
            own.append(self._copies(h, idx, t))
        positives = np.concatenate([memory.features_of(self.net, mine), *own])
        self.counters.fitted += int(classedit.fit_class(
            self.net, label, positives, np.concatenate(negatives), steps=defaults.FIT_STEPS, rate=defaults.FIT_RATE,
            weight=defaults.FIT_NEGATIVE_WEIGHT))

    def _copies(self, h, idx: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The counts `h` of a taught window, then those of FIT_AUGMENT copies of its events (`idx`, `t`; at most
        MAX_EXAMPLE_EVENTS of them, evenly spaced, as the memory keeps an example) shifted, thinned and jittered as
        `train` augments its samples (`learn.training.Augment`), one row each."""
        rows = [np.asarray(h, np.float32).reshape(1, -1)]
        if defaults.FIT_AUGMENT > 0 and len(idx):
            idx, t = at_most(idx, t)
            for _ in range(defaults.FIT_AUGMENT):
                a, b = self._vary(idx, t, self.net.input_shape, self._rng)
                rows.append(np.asarray(self.net.features(a, b), np.float32).reshape(1, -1))
        return np.concatenate(rows)

    def _ignore(self, reason: str, detail: str) -> bool:
        c = self.counters.feedback
        c["ignored"] += 1
        c[reason] = c.get(reason, 0) + 1
        level = logging.WARNING if c[reason] <= LOG_FIRST else logging.DEBUG
        log.log(level, "feedback ignored (%s): %s", reason, printable(detail))
        return False
