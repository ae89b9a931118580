"""The pipeline's sinks kept apart: one sink's errors are counted, logged once per interval and retried later.

A sink whose `publish_decision`, `publish_metrics` or `publish_classes` (`stages.Sink`) raises (a full
disk, a FIFO whose reader left, a console whose pipe closed), or that lacks one of them, does not stop
the others nor the pipeline: the error is counted per sink (`sink_errors` in the metrics), logged at
WARNING the first time and then at most once every `log_every_s` seconds with how many errors there
were meanwhile, and the sink
is left out for a backoff (1 s, doubling up to 60 s; what it misses is counted in `sink_skipped`)
before it is tried again. A call that succeeds again ends the backoff and is logged once.
A sink's deliberate fatal error still ends the run: `check()` is called outside this isolation
(e.g. the MQTT sink raising a refused login).
"""

from __future__ import annotations

import logging
import time
from typing import Callable

log = logging.getLogger(__name__)
BACKOFF_S = (1.0, 60.0)  # first wait after an error, longest wait
LOG_EVERY_S = 60.0


def sink_name(sink) -> str:
    """A short name for metrics and logs: `sink.name` when it is a string, else the class name without
    "Sink", lower case (JsonlSink -> jsonl, MqttSink -> mqtt, LiveView -> liveview)."""
    name = getattr(sink, "name", None)
    if isinstance(name, str) and name:
        return name
    cls = type(sink).__name__
    return (cls[:-4] if cls.endswith("Sink") and len(cls) > 4 else cls).lower()


class _State:
    def __init__(self, name: str):
        self.name = name
        self.errors = 0  # calls that raised
        self.skipped = 0  # calls left out while waiting to retry
        self.retry_at = 0.0  # monotonic time before which the sink is left out
        self.backoff = 0.0
        self.logged_at: float | None = None
        self.unlogged = 0  # errors since the last log line
        self.last: str = ""


class Outputs:
    """Hands decisions, metrics and class lists to every sink, each isolated (see the module)."""

    def __init__(self, sinks: list, *, clock: Callable[[], float] = time.monotonic,
                 backoff_s: tuple[float, float] = BACKOFF_S, log_every_s: float = LOG_EVERY_S):
        self.sinks = sinks  # the pipeline's own list: a sink added later is handled too
        self.clock, self.backoff_s, self.log_every_s = clock, backoff_s, log_every_s
        self._state: dict[int, _State] = {}

    def _st(self, sink) -> _State:
        st = self._state.get(id(sink))
        if st is None:
            st = self._state[id(sink)] = _State(sink_name(sink))
        return st

    def _call(self, sink, method: str, *args) -> None:
        st = self._st(sink)
        now = self.clock()
        if now < st.retry_at:
            st.skipped += 1
            return
        try:
            getattr(sink, method)(*args)  # a `stages.Sink` method (one it lacks fails like one that raises)
        except Exception as exc:  # noqa: BLE001 - one sink's error never stops the others or the run
            self._failed(st, exc, now)
            return
        if st.backoff:
            log.warning("output %s works again after %d errors (%d calls skipped meanwhile)", st.name, st.errors,
                        st.skipped)
            st.backoff = 0.0

    def _failed(self, st: _State, exc: Exception, now: float) -> None:
        st.errors += 1
        st.unlogged += 1
        st.last = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        first, longest = self.backoff_s
        st.backoff = first if not st.backoff else min(st.backoff * 2, longest)
        st.retry_at = now + st.backoff
        if st.logged_at is None or now - st.logged_at >= self.log_every_s:
            more = f" ({st.unlogged} errors since the last report, {st.errors} in all)" if st.logged_at else ""
            log.warning("output %s failed: %s%s; the other outputs go on, retrying in %.0f s", st.name, st.last,
                        more, st.backoff)
            st.logged_at, st.unlogged = now, 0

    # -- what the pipeline calls ----------------------------------------------------------------
    def decision(self, window, decision, info) -> None:
        """Every sink gets the decision; then each sink's `check()` may raise its fatal error."""
        for sink in self.sinks:
            self._call(sink, "publish_decision", window, decision, info)
            sink.check()

    def metrics(self, m: dict) -> None:
        for sink in self.sinks:
            self._call(sink, "publish_metrics", m)

    def classes(self, names) -> None:
        for sink in self.sinks:
            self._call(sink, "publish_classes", names)

    def counters(self) -> dict:
        """{"sink_errors": {name: calls that raised}, "sink_skipped": {name: calls left out while waiting to
        retry}}, for the sinks that had any."""
        states = list(self._state.values())
        return {"sink_errors": {s.name: s.errors for s in states if s.errors},
                "sink_skipped": {s.name: s.skipped for s in states if s.skipped}}
