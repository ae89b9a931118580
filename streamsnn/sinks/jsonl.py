"""JSON-lines sink: appends every decision (and optionally metrics) as one JSON object per line."""

from __future__ import annotations

import json
from pathlib import Path


class JsonlSink:
    """Appends decision messages to `path`, one JSON object per line, flushed after each line."""

    def __init__(self, path: str | Path, *, metrics: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = self.path.open("a", encoding="utf-8")
        self.metrics = metrics

    def publish_decision(self, msg: dict) -> None:
        self._f.write(json.dumps(msg, separators=(",", ":")) + "\n")
        self._f.flush()

    def publish_metrics(self, m: dict) -> None:
        if self.metrics:
            self.publish_decision({"metrics": m})

    async def close(self) -> None:
        self._f.close()
