"""Writing samples: N-MNIST files (5 bytes per event) with a `#sample #class` list; AEDAT4 files of any sensor."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..events import EventBatch

#: N-MNIST timestamps have 23 bits (microseconds): at most ~8.4 s per file.
MAX_T = (1 << 23) - 1
#: tonic's reader takes y == 240 as a timestamp-overflow record, so coordinates must stay below it.
MAX_XY = 239


def encode_nmnist(events: np.ndarray) -> bytes:
    """The N-MNIST encoding of events: per event x, y, then polarity (bit 7) and a 23-bit timestamp,
    big-endian. Raises InputError when an event does not fit (x or y > 239, t outside 0..2^23-1)."""
    ev = np.asarray(events)
    if ev.size and (int(ev["x"].max()) > MAX_XY or int(ev["y"].max()) > MAX_XY):
        raise InputError("N-MNIST files hold x and y up to 239; these events come from a larger sensor")
    t = ev["t"].astype(np.int64)
    if t.size and (int(t.min()) < 0 or int(t.max()) > MAX_T):
        raise InputError(f"N-MNIST timestamps must lie in 0..{MAX_T} us; got {int(t.min())}..{int(t.max())}")
    out = np.empty((ev.shape[0], 5), np.uint8)
    out[:, 0] = ev["x"]
    out[:, 1] = ev["y"]
    out[:, 2] = ((ev["p"].astype(np.int64) > 0) << 7) | (t >> 16)
    out[:, 3] = (t >> 8) & 0xFF
    out[:, 4] = t & 0xFF
    return out.tobytes()


def write_nmnist(path: str | Path, batch: EventBatch) -> None:
    """Write one sample as an N-MNIST `.bin` file (via a temporary file, then renamed)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(encode_nmnist(batch.events))
    os.replace(tmp, path)


def write_label_list(path: str | Path, labels: dict[str, int]) -> None:
    """A label list as in N-MNIST: header `#sample #class`, tab separated, CRLF line endings."""
    lines = ["#sample #class"] + [f"{sample}\t{label}" for sample, label in labels.items()]
    Path(path).write_bytes(("\r\n".join(lines) + "\r\n").encode())


def write_aedat4(path: str | Path, batch: EventBatch, camera: str = "streamsnn-synth", *,
                 tmp: str | Path | None = None) -> None:
    """Write one sample as an AEDAT4 file (dv-processing; the header holds the sensor size), via a
    temporary file (`tmp`, default `.<name>` beside it; removed when writing fails), then renamed."""
    import dv_processing as dv

    path = Path(path)
    # dv-processing wants the .aedat4 ending; hidden: never read as a sample
    tmp = Path(tmp) if tmp is not None else path.with_name(f".{path.name}")
    ev = batch.events
    store = dv.EventStore()
    for t, x, y, p in zip(ev["t"].tolist(), ev["x"].tolist(), ev["y"].tolist(), (ev["p"] > 0).tolist()):
        store.push_back(t, x, y, p)
    config = dv.io.MonoCameraWriter.EventOnlyConfig(camera, (batch.width, batch.height))
    config.compression = dv.CompressionType.ZSTD  # about half the size of the default LZ4
    try:
        writer = dv.io.MonoCameraWriter(str(tmp), config)
        writer.writeEvents(store)
        del writer  # closes the file
        os.replace(tmp, path)
    except BaseException:  # Ctrl-C or a full disk while writing: no half-written file stays behind
        tmp.unlink(missing_ok=True)
        raise
