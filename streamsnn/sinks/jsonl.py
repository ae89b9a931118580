"""JSON-lines sink: appends every decision (and optionally metrics) as one JSON object per line."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..stages import true_label_index, true_label_name


def record(window, decision, info) -> dict:
    """One decision as a JSON-ready dict: where it came from, the class (index and name), scores, timing."""
    label = int(decision.label)
    return {
        "source": window.source, "sample": window.sample, "t_start_us": int(window.t_start_us),
        "t_end_us": int(window.t_end_us), "label": label, "label_name": info.name(label),
        "confidence": round(float(decision.confidence), 6), "scores": [round(float(x), 6) for x in decision.scores],
        "events": int(decision.events), "true_label": true_label_index(window, info),
        "true_label_name": true_label_name(window, info),
        "queue_ms": round(info.queue_ms, 3), "compute_ms": round(info.compute_ms, 3),
        "model_version": info.model_version, "time": round(time.time(), 6),
    }


class JsonlSink:
    """Appends one JSON object per decision to `path` (see `record`), flushed after each line."""

    def __init__(self, path: str | Path, *, metrics: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = self.path.open("a", encoding="utf-8")
        self.metrics = metrics

    def _line(self, obj: dict) -> None:
        self._f.write(json.dumps(obj, separators=(",", ":")) + "\n")
        self._f.flush()

    def publish_decision(self, window, decision, info) -> None:
        self._line(record(window, decision, info))

    def publish_metrics(self, m: dict) -> None:
        if self.metrics:
            self._line({"metrics": m})

    def check(self) -> None:
        """Write errors raise from publish_decision itself."""

    async def flush(self, timeout: float | None = None) -> bool:
        return True

    async def close(self) -> None:
        self._f.close()
