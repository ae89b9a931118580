"""What the camera showed before a class was named: the last-layer counts of recent decided windows, as negatives.

A class added by feedback is taught with windows of it only; what tells its output unit where to stop is what the
camera showed before: windows of the old classes, the scene. So a few unlabelled decided windows a second
(`defaults.SCENE_PER_S`, by the pipeline's clock) have their last-layer spike counts computed on the network's
worker, after the decision went out, and the last `defaults.SCENE_WINDOWS` are kept (features only, not events).
When feedback adds a class, the windows seen until `defaults.SCENE_GAP_S` before are that class's negatives
(`negatives`; the last seconds before someone names a thing are likely that thing already); its unit is then fit to
tell its taught windows from them (`snn.classedit.fit_class`, `Teacher`). A class's negatives are kept on the network's
memory (`snn.fitkeep`) and saved in its checkpoint, so a restarted daemon fits the class against the same scene; so
are the recent windows themselves (`FitKeep.recent`): a class added after a restart has the scene decided before it as
well as since, the windows from before the restart counting as older than `gap_s`.
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor
from typing import Callable

import numpy as np

from .. import defaults as d
from ..snn import classedit
from ..snn.fitkeep import FitKeep
from .segment import Window

log = logging.getLogger(__name__)


class Scene:
    """The recent windows' last-layer counts (see the module); `seen` runs on the event loop, the counting on
    `worker`. `enabled`: feedback may add classes and the network's scores are its last layer's counts times the
    output weights (`classedit.imprints`: no leak, not learning "timing"; other networks teach a new class the
    whole way, with the replay)."""

    def __init__(self, net, worker: Executor, clock: Callable[[], float], *, enabled: bool,
                 size: int = d.SCENE_WINDOWS, per_s: float = d.SCENE_PER_S, gap_s: float = d.SCENE_GAP_S):
        self.net, self.worker, self.clock = net, worker, clock
        self.enabled = bool(enabled) and classedit.imprints(net) and hasattr(net, "input_events") and size > 0
        self.every_s, self.gap_s = 1.0 / per_s if per_s > 0 else 0.0, float(gap_s)
        self._next = -np.inf
        memory = getattr(net, "memory", None)
        self._fit = memory.fit if memory is not None else FitKeep()  # the classes' negatives, saved with the memory
        self._fit.keep_recent(size)  # (time, counts) of the recent windows, saved with the memory too

    def seen(self, w: Window) -> None:
        """A decision on `w` was published: every `1 / per_s` seconds at most, its counts are kept (on the worker)."""
        if not self.enabled or w.label is not None or w.batch is None or not len(w.batch):
            return
        now = self.clock()
        if now < self._next:
            return
        self._next = now + self.every_s
        try:
            self.worker.submit(self._keep, w, now)
        except RuntimeError:  # the worker is shutting down
            pass

    def _keep(self, w: Window, now: float) -> None:
        """On the worker: the window's last-layer counts on a fresh state (the running state is kept)."""
        try:
            h = self.net.features(*self.net.input_events(w.batch))
        except Exception as exc:  # noqa: BLE001 - keeping the scene must never disturb the daemon
            log.debug("keeping a scene window failed: %s: %s", type(exc).__name__, exc)
            return
        if w.learned:  # feedback taught it meanwhile: not the scene
            return
        self._fit.recent.append((now, np.asarray(h, np.float32)))

    def added(self, label: int) -> None:
        """On the worker: class `label` was just added; the windows kept until `gap_s` before now are its negatives."""
        until = self.clock() - self.gap_s
        rows = [h for t, h in self._fit.recent if t <= until]
        if rows and len({len(h) for h in rows}) == 1:
            self._fit.set_scene(label, np.stack(rows))

    def negatives(self, label: int) -> np.ndarray | None:
        """The scene before class `label` was added (None: none was kept)."""
        return self._fit.scene(label)

    def __len__(self) -> int:
        return len(self._fit.recent)
