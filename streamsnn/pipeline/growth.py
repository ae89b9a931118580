"""Class growth: a feedback label naming a class the model lacks adds an output unit, up to `max_classes`."""

from __future__ import annotations

import logging

from .. import classnames
from ..textsafe import shown
from .feedback import Refused
from .metrics import Counters
from .stages import Classifier, class_names

log = logging.getLogger(__name__)


class Growth:
    """Adds classes to `net` when `enabled` (model.new_classes) and it has fewer than `max_classes`; the new
    output learns `lr_boost` times faster (model.new_class_lr). Counts `classes_added` in `counters`."""

    def __init__(self, net: Classifier, counters: Counters, *, enabled: bool, max_classes: int, lr_boost: float):
        self.net, self.counters = net, counters
        self.enabled, self.max_classes, self.lr_boost = bool(enabled), int(max_classes), float(lr_boost)

    def may_add(self) -> bool:
        """Whether a label naming an unknown class may add it now."""
        return self.enabled and len(self.net.classes) < self.max_classes

    def refusal(self, exc: Refused) -> Refused:
        """The refusal of an unknown class, saying the bound when growth is on but the model is full."""
        if exc.reason == "unknown_class" and self.enabled:
            return Refused(exc.reason, f"{exc}; the model has model.max_classes = {self.max_classes} classes")
        return exc

    def add(self, name: str) -> tuple[str, ...]:
        """On the network's worker: a new output unit for `name`; returns the class names now.

        Checked again here, in the worker's order: a class added meanwhile (feedback from two tasks, e.g.
        MQTT and the live view) is found, not added twice; a model that filled up meanwhile refuses."""
        if classnames.find(name, self.net.classes) is not None:
            return class_names(self.net)
        if not self.may_add():
            raise self.refusal(Refused("unknown_class", f"label '{shown(name, 40)}' is not a class of the model"))
        index = self.net.add_class(name, lr_boost=self.lr_boost)
        self.counters.classes_added += 1
        names = class_names(self.net)
        log.info("feedback added class '%s' (output %d; now %d classes of at most %d)", shown(name), index,
                 len(names), self.max_classes)
        return names
