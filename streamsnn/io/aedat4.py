"""AEDAT4 recordings from iniVation cameras, read with dv-processing (events only; other streams ignored)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..events import EventBatch, make_events


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    # dv-processing errors carry a C++ location line and a stack trace: keep the informative line.
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("/") and not line.startswith("Stacktrace"):
            return line
    return type(exc).__name__


def read_aedat4(path: str | Path) -> EventBatch:
    """Read every event of an AEDAT4 file; the sensor size comes from the recording's event stream."""
    import dv_processing as dv

    path = Path(path)
    try:
        rec = dv.io.MonoCameraRecording(str(path))
        if not rec.isEventStreamAvailable():
            raise InputError(f"{path}: AEDAT4 recording has no event stream; record events, not only frames/IMU")
        width, height = rec.getEventResolution()
        parts = []
        while rec.isRunning():
            batch = rec.getNextEventBatch()
            if batch is not None and len(batch):
                parts.append(batch.numpy())
    except RuntimeError as exc:
        raise InputError(
            f"{path}: not a readable AEDAT4 file ({_first_line(exc)}); check that it is a complete "
            "recording saved by DV or dv-processing"
        ) from None
    if parts:
        raw = np.concatenate(parts)
    else:
        raw = np.empty(0, dtype=[("timestamp", "<i8"), ("x", "<i2"), ("y", "<i2"), ("polarity", "i1")])
    t = raw["timestamp"]
    if t.size > 1 and np.any(np.diff(t) < 0):
        # Packets from DV are time-ordered, but a file written by other tools may not be: a stable
        # sort keeps the recorded order of events that share a timestamp.
        raw = raw[np.argsort(t, kind="stable")]
    events = make_events(raw["timestamp"], raw["x"], raw["y"], raw["polarity"])
    return EventBatch(events, int(width), int(height), source=str(path),
                      meta={"format": "AEDAT4", "camera": rec.getCameraName()})
