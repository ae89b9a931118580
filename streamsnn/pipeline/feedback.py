"""Feedback, checked in this one place: the message (`parse`), then which decision it may teach (`judge`).

A feedback message is JSON `{"sample": "60001", "label": 3}` or `{"t_end_us": 123456, "label": "club"}`:
the label is a class index or a class name. `parse` checks the message alone, `judge` checks it
against the recent decisions and the model's classes; both raise `Refused(reason, detail)`, and
the pipeline counts each refusal once, by reason. Feedback teaches recent decisions, each once,
never against a known label, at a bounded rate.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

from .. import classnames, defaults
from ..textsafe import shown
from .decide import true_class
from .segment import Window

#: Keys a feedback message may hold.
FEEDBACK_KEYS = frozenset({"sample", "t_end_us", "label"})
# Defaults from streamsnn/defaults.py, under the names callers use.
MAX_FEEDBACK_BYTES, FEEDBACK_LR_SCALE, NEW_CLASS_LR = (defaults.MAX_FEEDBACK_BYTES, defaults.FEEDBACK_LR_SCALE,
                                                       defaults.NEW_CLASS_LR)
#: Most classes a model may grow to through feedback (the upper bound of model.max_classes): every decision
#: carries one score per class, and the class list goes to each page and to the retained MQTT message.
MAX_CLASSES = 256


class Refused(Exception):
    """Feedback that must not teach the network: `reason` (a counter name) and a one-line `detail`."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Feedback:
    """A true label (class index or name) for a recent decision, named by sample id or by the window's end."""

    label: int | str
    sample: str | None = None
    t_end_us: int | None = None


@dataclass(frozen=True)
class Message:
    """One feedback message as it arrived (e.g. over MQTT): raw bytes, and whether it came retained."""

    payload: bytes
    retained: bool = False


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def parse(msg: Message | bytes | str | dict | Feedback, max_bytes: int = MAX_FEEDBACK_BYTES) -> Feedback:
    """Validate one feedback message on its own; Refused(reason, detail) when it is not acceptable.

    Reasons: retained (a retained message replayed on subscribing: it would be applied again after
    every reconnect), oversized, bad_json (not UTF-8 JSON, or nested too deeply), not_object,
    unknown_keys, missing_label, missing_target (neither or both of sample / t_end_us), wrong_type,
    bad_class_name (a label name that is not a class name: see `classnames`; a good one comes back
    normalised).
    """
    if isinstance(msg, Feedback):
        return _named(msg)
    if isinstance(msg, Message):
        if msg.retained:
            raise Refused("retained", "publish feedback without the retain flag")
        msg = msg.payload
    if not isinstance(msg, dict):
        raw = msg.encode() if isinstance(msg, str) else bytes(msg or b"")
        if len(raw) > max_bytes:
            raise Refused("oversized", f"{len(raw)} bytes, more than {max_bytes}")
        try:
            msg = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise Refused("bad_json", f"not JSON: {str(exc)[:80]}") from None
        except RecursionError:
            raise Refused("bad_json", "JSON nested too deeply") from None
    if not isinstance(msg, dict):
        raise Refused("not_object", f"expected a JSON object, got {type(msg).__name__}")
    unknown = sorted(set(msg) - FEEDBACK_KEYS)
    if unknown:
        raise Refused("unknown_keys", f"unknown key(s) {', '.join(repr(shown(k, 40)) for k in unknown[:5])}; "
                                      "allowed: sample or t_end_us, and label")
    if "label" not in msg:
        raise Refused("missing_label", "no 'label'")
    if ("sample" in msg) == ("t_end_us" in msg):
        raise Refused("missing_target", "give exactly one of 'sample' and 't_end_us'")
    label = msg["label"]
    if not (_is_int(label) or isinstance(label, str)):
        raise Refused("wrong_type", f"'label' must be a class index or a class name, got {type(label).__name__}")
    if isinstance(label, str) and len(label) > 4 * classnames.MAX_LENGTH:  # not worth normalising to refuse it
        raise Refused("bad_class_name", f"class name of {len(label)} characters, more than {classnames.MAX_LENGTH}")
    if "sample" in msg:
        sample = msg["sample"]
        if not (isinstance(sample, str) or _is_int(sample)) or sample == "":
            raise Refused("wrong_type", f"'sample' must be a non-empty string or integer, got {type(sample).__name__}")
        return _named(Feedback(label=label, sample=str(sample)))
    t_end = msg["t_end_us"]
    if not _is_int(t_end):
        raise Refused("wrong_type", f"'t_end_us' must be an integer, got {type(t_end).__name__}")
    return _named(Feedback(label=label, t_end_us=t_end))


def _named(fb: Feedback) -> Feedback:
    """The feedback with its label name normalised (`classnames.normalise`), or Refused("bad_class_name")."""
    if not isinstance(fb.label, str):
        return fb
    try:
        name = classnames.normalise(fb.label)
    except ValueError as exc:
        raise Refused("bad_class_name", str(exc)) from None
    return fb if name == fb.label else Feedback(label=name, sample=fb.sample, t_end_us=fb.t_end_us)


def resolve_label(label: int | str, classes: tuple[str, ...] | list[str], may_add: bool = False) -> int:
    """The output index of a label given by index or by class name; Refused when the model has no such class.

    A name is matched as `classnames.find` does (the exact name, else regardless of case). With
    `may_add`, a name the model does not know resolves to `len(classes)`: the unit to add for it.
    """
    if _is_int(label):
        if not 0 <= label < len(classes):
            raise Refused("label_out_of_range", f"label {label} is outside 0..{len(classes) - 1}")
        return int(label)
    index = classnames.find(str(label), classes)
    if index is not None:
        return index
    if may_add:
        return len(classes)
    names = ", ".join(shown(c, 40) for c in classes[:20]) + (", ..." if len(classes) > 20 else "")
    raise Refused("unknown_class", f"label '{shown(label, 40)}' is not a class of the model ({names}); "
                                   "model.new_classes = true lets feedback add classes, up to "
                                   "model.max_classes")


class TokenBucket:
    """At most `burst` at once and `rate` per second on average; `rate <= 0` means no limit."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.clock = float(rate), max(1, int(burst)), clock
        self._tokens, self._at = float(self.burst), clock()

    def take(self) -> bool:
        """Use one token if there is one (True), else False."""
        if self.rate <= 0:
            return True
        now = self.clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


RECENT_EVENTS = defaults.RECENT_EVENTS


class Recent:
    """The last `size` classified windows, found by sample id or by window end (µs), for feedback.

    They hold at most `max_events` events together (the oldest go first; the newest window always
    stays), so big windows cannot make the ring hold gigabytes.
    """

    def __init__(self, size: int, max_events: int = RECENT_EVENTS):
        self.size, self.max_events = size, max_events
        self._items: OrderedDict[int, Window] = OrderedDict()
        self._by_sample: dict[str, int] = {}
        self._by_end: dict[int, int] = {}
        self._n = 0
        self.events = 0

    def add(self, w: Window) -> None:
        self._n += 1
        self._items[self._n] = w
        self.events += w.events
        if w.sample is not None:
            self._by_sample[w.sample] = self._n
        self._by_end[w.t_end_us] = self._n
        while len(self._items) > self.size or (self.events > self.max_events and len(self._items) > 1):
            key, old = self._items.popitem(last=False)
            self.events -= old.events
            if old.sample is not None and self._by_sample.get(old.sample) == key:
                del self._by_sample[old.sample]
            if self._by_end.get(old.t_end_us) == key:
                del self._by_end[old.t_end_us]

    def find(self, sample: str | None = None, t_end_us: int | None = None) -> Window | None:
        key = self._by_sample.get(sample) if sample is not None else self._by_end.get(t_end_us)
        return self._items.get(key) if key is not None else None

    def __len__(self) -> int:
        return len(self._items)


def judge(fb: Feedback, recent: Recent, classes: tuple[str, ...] | list[str],
          bucket: TokenBucket, may_add: bool = False) -> tuple[Window, int]:
    """The window a parsed feedback item teaches and its label index, or Refused with the reason.

    With `may_add` (new classes allowed, and room for one more), a class name the model does not
    have gets the index `len(classes)`: the caller adds that class before learning.
    Reasons, in the order they are checked: `label_out_of_range`, `unknown_class` (a name the model
    does not have), `unknown_sample` (not among the recent decisions), `contradicts_label` (the
    window's true label is known and differs), `duplicate` (the window was learned from already: its
    label or an earlier feedback), `rate_limited` (the bucket is empty). The caller marks the window
    `learned` when it teaches it.
    """
    label = resolve_label(fb.label, classes, may_add)
    if fb.sample is not None:
        w = recent.find(sample=fb.sample)
        what = f"sample '{shown(fb.sample)}'"
    else:
        w = recent.find(t_end_us=fb.t_end_us)
        what = f"t_end_us {fb.t_end_us}"
    if w is None:
        raise Refused("unknown_sample", f"no recent decision for {what} (the last {recent.size} are kept)")
    truth = true_class(classes, w)  # by class identity: the dataset's label order may differ from the model's
    claimed = classes[label] if label < len(classes) else str(fb.label)
    if truth is not None and classnames.key(claimed) != classnames.key(truth):
        raise Refused("contradicts_label", f"label {claimed!r} for {what}, whose true label is {truth!r}")
    if w.learned:
        raise Refused("duplicate", f"{what} was learned from already; a decision is taught once")
    if not bucket.take():
        raise Refused("rate_limited", f"label {label} for {what}: more than {bucket.rate:g} a second "
                                      "(model.feedback_per_s)")
    return w, label
