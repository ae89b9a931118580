"""N-MNIST event files (`.bin`, and `.bs2` which is byte-for-byte the same format), read with tonic."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..events import EventBatch, make_events

#: N-MNIST was recorded with an ATIS sensor cropped to 34x34 pixels.
WIDTH = HEIGHT = 34
#: Each event is 5 bytes: x, y, polarity bit + 23-bit timestamp (big-endian, microseconds).
RECORD_BYTES = 5

_TONIC_DTYPE = np.dtype([("x", "<i4"), ("y", "<i4"), ("t", "<i8"), ("p", "<i4")])
#: Largest file accepted: real samples are 5-100 KB (a few thousand events over 0.3 s).
MAX_BYTES = 64 << 20


def count_events(path: str | Path) -> int:
    """Number of 5-byte records in the file, from its size alone (no decoding).

    Exact for N-MNIST: its files hold no timestamp-overflow records (checked on all 1,100 samples
    of nmnist_small, where the decoded count equals size / 5 for every file).
    """
    return Path(path).stat().st_size // RECORD_BYTES


def check_size(path: Path) -> None:
    """InputError unless the file size fits an N-MNIST sample (whole 5-byte records, at most MAX_BYTES)."""
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise InputError(f"{path}: {size >> 20} MB is far too large for an N-MNIST sample (they are under 1 MB); "
                         "this is not an N-MNIST file")
    if size % RECORD_BYTES:
        raise InputError(
            f"{path}: truncated N-MNIST file ({size} bytes is not a multiple of {RECORD_BYTES}); "
            "re-download or re-copy the file"
        )


def read_nmnist(path: str | Path, *, sample: str | None = None, label: int | None = None) -> EventBatch:
    """Read one N-MNIST sample into a 34x34 EventBatch (polarity 1 = ON, timestamps in us)."""
    import io

    import tonic.io

    path = Path(path)
    check_size(path)
    data = path.read_bytes()
    # Checked before tonic decodes: a y of 240 marks a timestamp-overflow record, which tonic
    # unwraps one at a time (quadratic on random bytes); N-MNIST's 34x34 sensor never has one.
    xy = np.frombuffer(data, np.uint8).reshape(-1, RECORD_BYTES)[:, :2]
    bad = np.flatnonzero((xy[:, 0] >= WIDTH) | (xy[:, 1] >= HEIGHT))
    if bad.size:
        i = int(bad[0])
        raise InputError(
            f"{path}: event {i} at x={int(xy[i, 0])}, y={int(xy[i, 1])} is outside the 34x34 "
            "N-MNIST sensor; this is not an N-MNIST file"
        )
    raw = tonic.io.read_mnist_file(io.BytesIO(data), dtype=_TONIC_DTYPE, is_stream=True)
    # Timestamps are non-decreasing within a sample in N-MNIST; EventBatch validates this.
    events = make_events(raw["t"], raw["x"], raw["y"], raw["p"])
    return EventBatch(events, WIDTH, HEIGHT, sample=sample, label=label, source=str(path),
                      meta={"format": "N-MNIST"})
