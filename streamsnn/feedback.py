"""Which feedback may teach the network: recent decisions, each once, never against a known label, at a bounded rate."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable

from .segment import Window


class Refused(Exception):
    """Feedback that must not teach the network: `reason` (a counter name) and a one-line `detail`."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


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


#: Default bound on the events the recent windows hold together (about 52 MB).
RECENT_EVENTS = 4_000_000


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


def judge(fb, recent: Recent, n_classes: int, bucket: TokenBucket) -> tuple[Window, int]:
    """The window a feedback item teaches and its label, or Refused with the reason.

    `fb` has `label` and `sample` or `t_end_us` (a dict or an object). Reasons, in the order they are
    checked: `invalid`, `unknown_sample` (not among the recent decisions), `contradicts_label` (the
    window's true label is known and differs), `duplicate` (the window was learned from already: its
    label or an earlier feedback), `rate_limited` (the bucket is empty). The caller marks the window
    `learned` when it teaches it.
    """
    sample, t_end, label = _field(fb, "sample"), _field(fb, "t_end_us"), _field(fb, "label")
    if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < n_classes:
        raise Refused("invalid", f"label must be an integer 0..{n_classes - 1}, got {label!r}")
    if sample is not None:
        if isinstance(sample, bool) or not isinstance(sample, (str, int)):
            raise Refused("invalid", f"sample must be a string, got {sample!r}")
        w = recent.find(sample=str(sample))
        what = f"sample {sample}"
    elif isinstance(t_end, int) and not isinstance(t_end, bool):
        w = recent.find(t_end_us=t_end)
        what = f"t_end_us {t_end}"
    else:
        raise Refused("invalid", f"needs 'sample' or an integer 't_end_us', got {fb!r}")
    if w is None:
        raise Refused("unknown_sample", f"no recent decision for {what} (the last {recent.size} are kept)")
    if w.label is not None and label != w.label:
        raise Refused("contradicts_label", f"label {label} for {what}, whose true label is {w.label}")
    if w.learned:
        raise Refused("duplicate", f"{what} was learned from already; a decision is taught once")
    if not bucket.take():
        raise Refused("rate_limited", f"label {label} for {what}: more than {bucket.rate:g} a second "
                                      "(model.feedback_per_s)")
    return w, label


def _field(fb, name: str):
    return fb.get(name) if isinstance(fb, dict) else getattr(fb, name, None)
