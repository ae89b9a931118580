"""JSON-lines sink: each decision (and, if asked, metrics) as one JSON line, never waiting for a reader.

`jsonl.path` may name a regular file (created, parent folders too), a FIFO or a character device
(/dev/stdout, /dev/null); a folder, a socket, a block device or a folder that cannot be created is a
ConfigError at start-up (one line, exit 2). The file is opened non-blocking: a FIFO nobody reads
does not hold up the start or a signal (one line says so; lines are written once a reader opens it),
and a slow reader gets whole lines later, up to `max_pending` bytes behind; beyond that a line is
refused. A write error (a full disk, a reader that left) raises from `publish_decision` for the
pipeline to count and retry (`outputs.Outputs`: after 1 s, doubling up to a minute); the file is
opened again on the next try, so a FIFO reader that comes (back) later gets lines within a minute.
Lines are strict JSON: non-finite numbers (NaN, infinity) are written as null and counted.
Lines are written in the call, on the event loop: what the `pipeline.stages.Sink` contract allows for an encoded line
(a non-blocking write to a FIFO or terminal, an append to a regular file's page cache), so no thread is needed.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import math
import os
import stat
import time
from pathlib import Path

from ..errors import ConfigError
from ..pipeline.stages import true_label_index, true_label_name

log = logging.getLogger(__name__)
MAX_PENDING = 1 << 20  # bytes a slow reader may be behind before lines are refused


def record(window, decision, info) -> dict:
    """One decision as a JSON-ready dict: where it came from, the class (index and name), scores, timing."""
    label = int(decision.label)
    return {
        "source": window.source, "sample": window.sample, "t_start_us": int(window.t_start_us),
        "t_end_us": int(window.t_end_us), "label": label, "label_name": info.name(label),
        "confidence": round(float(decision.confidence), 6), "scores": [round(float(x), 6) for x in decision.scores],
        "events": int(decision.events), "true_label": true_label_index(window, info),
        "true_label_name": true_label_name(window, info),
        "queue_ms": round(info.queue_ms, 3), "feed_ms": round(info.feed_ms, 3),
        "compute_ms": round(info.compute_ms, 3),
        "model_version": info.model_version, "time": round(time.time(), 6),
    }


def finite(obj):
    """`obj` with every non-finite float (NaN, +-infinity) replaced by None, in nested dicts and lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def check_path(path: Path) -> None:
    """ConfigError unless `path` is (or can become) a regular file, or is a FIFO or a character device."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"jsonl.path {path}: its folder {path.parent} cannot be created "
                              f"({exc.strerror or exc}); name a file in a writable folder") from None
        return
    except OSError as exc:
        raise ConfigError(f"jsonl.path {path} cannot be used ({exc.strerror or exc}); name a writable file") from None
    if stat.S_ISDIR(mode):
        raise ConfigError(f"jsonl.path {path} is a folder; name a file in it, e.g. {path / 'decisions.jsonl'}")
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):
        kind = "a socket" if stat.S_ISSOCK(mode) else "a block device" if stat.S_ISBLK(mode) else "not a file"
        raise ConfigError(f"jsonl.path {path} is {kind}; name a regular file, a FIFO or a character device")


class JsonlSink:
    """Appends one JSON object per decision to `path` (see `record` and the module), written at once."""

    name = "jsonl"

    def __init__(self, path: str | Path, *, metrics: bool = False, max_pending: int = MAX_PENDING):
        self.path = Path(path).expanduser()
        self.metrics, self.max_pending = metrics, max_pending
        self.nonfinite = 0  # records whose non-finite numbers were written as null
        self._fd: int | None = None
        self._regular = True
        self._pending = bytearray()  # encoded lines not yet written (a slow FIFO or terminal reader)
        self._mid_line = False  # the file ends inside a line (a write failed half way)
        check_path(self.path)
        try:
            self._open()
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise ConfigError(f"jsonl.path {self.path} cannot be opened for writing ({exc.strerror or exc}); "
                                  "name a writable file") from None
            log.warning("jsonl.path %s is a FIFO nobody reads yet: decisions are written once a reader opens it",
                        self.path)

    def _open(self) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # O_NONBLOCK on a FIFO without a reader
                raise OSError(errno.ENXIO, f"{self.path} is a FIFO nobody reads") from None
            raise
        self._fd, self._regular = fd, stat.S_ISREG(os.fstat(fd).st_mode)
        if self._mid_line and self._regular:  # end the line a failed write left half written
            self._pending[:0] = b"\n"
        self._mid_line = False

    def _encode(self, obj: dict) -> bytes:
        try:
            text = json.dumps(obj, separators=(",", ":"), allow_nan=False)
        except ValueError:  # NaN or infinity: strict JSON has no such numbers
            self.nonfinite += 1
            level = logging.WARNING if self.nonfinite == 1 else logging.DEBUG
            log.log(level, "jsonl: a record held NaN or infinity, written as null (%d so far)", self.nonfinite)
            text = json.dumps(finite(obj), separators=(",", ":"), allow_nan=False)
        return (text + "\n").encode()

    def _line(self, obj: dict) -> None:
        data = self._encode(obj)
        if self._fd is None:
            self._open()
        if self._pending and len(self._pending) + len(data) > self.max_pending:
            self._write()
            if self._pending:
                raise BlockingIOError(errno.EAGAIN, f"{self.path}: the reader is {len(self._pending)} bytes behind; "
                                      "line dropped")
        self._pending += data
        self._write()

    def _write(self) -> None:
        """Write what is pending, as far as the file takes it now; a write error closes it and raises."""
        try:
            while self._pending:
                n = os.write(self._fd, self._pending)
                self._mid_line = self._pending[n - 1:n] != b"\n"
                del self._pending[:n]
        except BlockingIOError:
            return  # a slow reader: the rest goes with the next line or flush()
        except OSError:
            lost = self._pending.count(b"\n")
            self._pending.clear()
            self._close_fd()
            if lost > 1:
                log.debug("jsonl: %d pending lines dropped after a write error", lost - 1)
            raise

    def _close_fd(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def publish_decision(self, window, decision, info) -> None:
        self._line(record(window, decision, info))

    def publish_metrics(self, m: dict) -> None:
        if self.metrics:
            self._line({"metrics": m})

    def publish_classes(self, classes) -> None:
        """Nothing to write: every line names its class (`label_name`) in the model's classes of the time."""

    def check(self) -> None:
        """Write errors raise from publish_decision itself (the pipeline counts and retries them)."""

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait (at most `timeout` s) until a slow reader has taken every pending line; True when it has."""
        deadline = time.monotonic() + (timeout if timeout is not None else 5.0)
        while self._pending and self._fd is not None and time.monotonic() < deadline:
            try:
                self._write()
            except OSError:
                return False
            if self._pending:
                await asyncio.sleep(0.02)
        return not self._pending

    async def close(self) -> None:
        if self._pending and self._fd is not None:
            try:
                self._write()
            except OSError:
                pass
            if self._pending:
                log.warning("jsonl: %d lines not written to %s (its reader did not take them)",
                            self._pending.count(b"\n"), self.path)
        self._pending.clear()
        self._close_fd()
