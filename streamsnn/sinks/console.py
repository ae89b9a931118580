"""Console sink: one line per decision (optional), a periodic progress line and a final summary, on stderr."""

from __future__ import annotations

import sys


def _fmt_acc(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


class ConsoleSink:
    """Prints decisions and metrics for people watching a run; `decisions=False` keeps only progress lines."""

    def __init__(self, *, decisions: bool = True, stream=None):
        self.show_decisions = decisions
        self.stream = stream or sys.stderr
        self.last_metrics: dict | None = None

    def publish_decision(self, msg: dict) -> None:
        if not self.show_decisions:
            return
        where = f"sample {msg['sample']}" if msg.get("sample") is not None else \
            f"t {msg.get('t_start_us')}..{msg.get('t_end_us')} us"
        truth = msg.get("true_label")
        mark = "" if truth is None else (f"  (true {truth} {'ok' if truth == msg['label'] else 'MISS'})")
        print(f"{where:>24}: {msg['label']}  conf {msg.get('confidence', 0):.2f}  "
              f"{msg.get('events', 0)} ev  {msg.get('latency_ms', 0):.1f} ms{mark}", file=self.stream, flush=True)

    def publish_metrics(self, m: dict) -> None:
        self.last_metrics = m
        print(self.progress_line(m), file=self.stream, flush=True)

    @staticmethod
    def progress_line(m: dict) -> str:
        q = m.get("queues", {})
        line = (f"[streamsnn] decisions {m.get('decisions', 0)}  events/s {m.get('events_per_s', 0):,.0f}  "
                f"accuracy {_fmt_acc(m.get('accuracy'))}  progressive {_fmt_acc(m.get('progressive_accuracy'))}  "
                f"drops {m.get('drops', 0)}  queues {q.get('windows', 0)}/{q.get('decisions', 0)}  "
                f"samples seen {m.get('samples_seen', 0)}")
        mq = m.get("mqtt")
        if mq:
            line += f"  mqtt {'up' if mq.get('connected') else 'DOWN'} outbox {mq.get('outbox', 0)}"
        return line

    async def close(self) -> None:
        m = self.last_metrics
        if m is not None:
            fb = m.get("feedback", {})
            print(f"[streamsnn] done: {m.get('decisions', 0)} decisions on {m.get('events', 0):,} events, "
                  f"run accuracy {_fmt_acc(m.get('accuracy'))}, progressive accuracy "
                  f"{_fmt_acc(m.get('progressive_accuracy'))} over {m.get('samples_seen', 0)} samples, "
                  f"{m.get('drops', 0)} dropped, feedback learned {fb.get('learned', 0)} / ignored "
                  f"{fb.get('ignored', 0)}", file=self.stream, flush=True)
