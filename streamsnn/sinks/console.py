"""Console sink: one line per decision (optional), progress (a tqdm bar on a terminal), a summary, on stderr."""

from __future__ import annotations

import sys

from ..pipeline.revive import SILENT_WINDOWS
from ..pipeline.stages import true_label_name
from ..textsafe import shown


def _fmt_acc(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


class ConsoleSink:
    """Prints decisions and metrics for people watching a run; `decisions=False` keeps only the progress.

    On a terminal the progress is a tqdm bar (over `total` decisions when known, e.g. a replay) with
    the accuracy in its postfix; elsewhere (a log file, a pipe) it is one progress line per metrics
    period. `bar=None` decides by whether the stream is a terminal. A decision line names the class,
    the confidence, the events, and the time the window waited in the queue and spent in the network.
    """

    def __init__(self, *, decisions: bool = True, stream=None, bar: bool | None = None, total: int | None = None):
        self.show_decisions = decisions
        self.stream = stream or sys.stderr
        self.use_bar = self.stream.isatty() if bar is None else bar
        self.total = total
        self.last_metrics: dict | None = None
        self._bar = None

    def _progress(self):
        if self._bar is None and self.use_bar:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, file=self.stream, unit="decision", dynamic_ncols=True)
        return self._bar

    def _write(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def publish_decision(self, window, decision, info) -> None:
        bar = self._progress()
        if bar is not None:
            bar.update(1)
        if self.show_decisions:
            self._write(self.decision_line(window, decision, info))

    @staticmethod
    def decision_line(window, decision, info) -> str:
        where = f"sample {shown(window.sample, 40)}" if window.sample is not None else \
            f"t {window.t_start_us}..{window.t_end_us} us"
        truth = true_label_name(window, info)
        right = truth == info.name(int(decision.label))  # by class name: the dataset's order may differ
        mark = "" if truth is None else f"  (true {shown(truth)} {'ok' if right else 'MISS'})"
        network = info.feed_ms + info.compute_ms  # feeding the window's last events, then the readout
        return (f"{where:>24}: {shown(info.name(int(decision.label)))}  conf {float(decision.confidence):.2f}  "
                f"{int(decision.events)} ev  queue {info.queue_ms:.1f} ms + network {network:.1f} ms{mark}")

    def publish_metrics(self, m: dict) -> None:
        self.last_metrics = m
        bar = self._progress()
        if bar is not None:
            bar.set_postfix_str(f"accuracy {_fmt_acc(m.get('accuracy'))}, progressive "
                                f"{_fmt_acc(m.get('progressive_accuracy'))}, {m.get('events_per_s', 0):,.0f} ev/s, "
                                f"drops {m.get('drops', 0)}")
        else:
            self._write(self.progress_line(m))

    def publish_classes(self, classes) -> None:
        """Nothing to print: each decision line names its class."""

    @staticmethod
    def progress_line(m: dict) -> str:
        q = m.get("queues", {})
        line = (f"[streamsnn] decisions {m.get('decisions', 0)}  events/s {m.get('events_per_s', 0):,.0f}  "
                f"accuracy {_fmt_acc(m.get('accuracy'))}  progressive {_fmt_acc(m.get('progressive_accuracy'))}  "
                f"drops {m.get('drops', 0)}  queue {q.get('windows', 0)}  "
                f"samples seen {m.get('samples_seen', 0)}")
        mq = m.get("mqtt")
        if mq:
            line += f"  mqtt {'up' if mq.get('connected') else 'DOWN'} outbox {mq.get('outbox', 0)}"
        return line

    def check(self) -> None:
        """A console cannot fail in a way that should end the run."""

    async def flush(self, timeout: float | None = None) -> bool:
        return True

    async def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        m = self.last_metrics
        if m is not None:
            fb = m.get("feedback", {})
            print(f"[streamsnn] done: {m.get('decisions', 0)} decisions on {m.get('events', 0):,} events, "
                  f"run accuracy {_fmt_acc(m.get('accuracy'))}, progressive accuracy "
                  f"{_fmt_acc(m.get('progressive_accuracy'))} over {m.get('progressive_scored', 0)} samples, "
                  f"{m.get('drops', 0)} dropped, feedback learned {fb.get('learned', 0)} / ignored "
                  f"{fb.get('ignored', 0)}{_health(m)}", file=self.stream, flush=True)


def _health(m: dict) -> str:
    """What went wrong with the learning in this run, for the done line: updates refused (the guard), revivals
    (`pipeline/revive.py`), a network silent at the end (SILENT_WINDOWS windows or more); "" when nothing did."""
    parts = [f"{m[k]} {what}" for k, what in (("nonfinite", "updates refused or decisions withheld as non-finite"),
                                               ("revivals", "revivals of the learning network")) if m.get(k)]
    if m.get("silent_windows", 0) >= SILENT_WINDOWS:  # a last window or two of a few events is no news
        parts.append(f"silent for the last {m['silent_windows']} windows")
    return "; " + ", ".join(parts) if parts else ""
