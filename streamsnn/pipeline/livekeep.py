"""Rehearsal from what the camera sees now: windows decided with a clear margin kept as examples of their class.

The rehearsal memory (`snn.memory`) starts with training samples; after a change of camera or scene they no
longer look like what the daemon is asked about, and replaying them protects the old classes less. So every
`keep_every`-th published decision whose best score leads the second by at least the threshold
(`model.keep_margin`, or when 0 the median margin of the kept training examples the network decides right,
`Memory.margins`, measured again after each kept window) is kept as an example of the decided class
(`Memory.add_live`: at most `defaults.KEEP_SHARE` of a class's slots), on the network's worker after the
decision went out, never in its way. Windows that carry a true label are not kept (they learn it already); a
daemon that does not learn from feedback (`model.learn_from_feedback = false`) keeps none.
Feedback on a kept window drops it (`Teacher._learn` calls `Memory.forget` with `window_key`): it then joins as
a taught window if the label agrees, and not at all if it names another class. Counted in `kept_live`.
It also hands every published decision to its `scene.Scene` (what a class added by feedback is told apart from).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Executor
from typing import Callable

import numpy as np

from .. import defaults as d
from .metrics import Counters
from .scene import Scene
from .segment import Window
from .settings import PipelineSettings

log = logging.getLogger(__name__)
#: While no threshold can be measured (no kept example is decided right), try again after this many decisions.
REMEASURE = 256
#: The threshold needs the kept examples' last-layer counts: all are computed once when the pipeline starts (on the
#: worker, before its first window), later ones (taught windows) at most WARM_STEP per try, so the network's worker is
#: never held up for long mid-stream (all at once held it for 120-315 ms on N-MNIST's 100 examples).
WARM_STEP = 4


def window_key(w: Window) -> tuple:
    """What names a decided window in the memory while feedback may still refer to it."""
    return id(w), w.sample, int(w.t_start_us), int(w.t_end_us)


def margin(scores) -> float:
    """The best score minus the second best (0 with fewer than two)."""
    s = np.asarray(scores, np.float64).reshape(-1)
    if len(s) < 2:
        return 0.0
    top = np.partition(s, len(s) - 2)[-2:]
    return float(top[1] - top[0])


class LiveKeeper:
    """Keeps confidently decided windows of `net` in its memory (see the module); `seen` is called on the event
    loop for every published decision and only counts and compares; the keeping runs on `worker`."""

    def __init__(self, net, counters: Counters, settings: PipelineSettings, worker: Executor,
                 clock: Callable[[], float] = time.monotonic):
        self.net, self.counters, self.worker = net, counters, worker
        #: What the camera shows, for the unit of a class added by feedback to tell its windows from (scene.py).
        self.scene = Scene(net, worker, clock, enabled=settings.new_class_fit and settings.new_classes
                           and settings.learn_from_feedback)
        self.memory = getattr(net, "memory", None)
        self.every = int(settings.keep_every)
        self.fixed = float(settings.keep_margin) if settings.keep_margin > 0 else None
        self.enabled = (self.every > 0 and self.memory is not None and settings.memory_per_class > 0
                        and settings.learn_from_feedback and hasattr(net, "input_events"))  # rehearsal serves feedback
        self.threshold: float | None = self.fixed
        self._confident = 0
        self._wait = 0  # decisions until the next try at measuring the threshold (0: one may be submitted)
        if self.enabled and self.fixed is None:
            self._wait = REMEASURE
            self._submit(self._start)

    def seen(self, w: Window, d) -> None:
        """A decision `d` on `w` was published: count it if confident; every `every`-th is kept on the worker."""
        self.scene.seen(w)
        if not self.enabled or w.label is not None or w.batch is None or not len(w.batch):
            return
        if self.threshold is None:
            self._wait -= 1
            if self._wait <= 0:
                self._wait = REMEASURE
                self._submit(self._measure)
            return
        if not margin(d.scores) >= self.threshold:
            return
        self._confident += 1
        if self._confident % self.every == 0:
            self._submit(self._keep, w, int(d.label))

    def _submit(self, fn, *args) -> None:
        try:
            self.worker.submit(self._quiet, fn, *args)
        except RuntimeError:  # the worker is shutting down: nothing more is kept
            pass

    @staticmethod
    def _quiet(fn, *args) -> None:
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - keeping an example must never disturb the daemon
            log.debug("keeping a live example failed: %s: %s", type(exc).__name__, exc)

    def _start(self) -> None:
        """On the worker, before the first window: every kept example's counts, then the threshold."""
        self.memory.warm(self.net, len(self.memory))
        self._measure()

    def _measure(self) -> None:
        """On the worker: the threshold from the kept examples' margins (when not fixed)."""
        if self.fixed is not None or self.memory.warm(self.net, WARM_STEP):
            return  # fixed, or more kept examples to see first (a later decision tries again)
        self.threshold = self.memory.typical_margin(self.net, d.KEEP_QUANTILE)

    def _keep(self, w: Window, label: int) -> None:
        """On the worker: keep `w` as an example of output `label` (if the class still exists)."""
        if not 0 <= label < self.net.n_classes or w.learned:
            return
        idx, t = self.net.input_events(w.batch)
        t = t if getattr(self.net, "tau_us", None) is not None else None
        if self.memory.add_live(idx, t, label, window_key(w), d.KEEP_SHARE):
            self.counters.kept_live += 1
        self._measure()
