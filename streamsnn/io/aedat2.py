"""jAER AEDAT 2.0 recordings from a DVS128 (128x128): a small NumPy decoder of the documented layout.

File: text header lines starting with '#' (the first is '#!AER-DAT2.0'), then 8-byte records of a
big-endian 32-bit address and a big-endian 32-bit timestamp (microseconds).
DVS128 address (as jAER's DVS128 extractor reads it): bit 0 = raw polarity (0 = ON, 1 = OFF),
bits 1-7 = column counted from the right, bits 8-14 = row counted from the bottom, bit 15 (or the
sign bit) = external/special event, which carries no pixel and is dropped.
We return image coordinates like the other readers: x from the left, y from the top.
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..events import EventBatch, make_events

WIDTH = HEIGHT = 128
RECORD_DTYPE = np.dtype([("address", ">u4"), ("t", ">u4")])
SPECIAL_BITS = 0x8000_8000
#: jAER chip classes with the DVS128 address layout (the header's '# AEChip:' line names the class).
CHIPS = ("DVS128", "Tmpdiff128")
MAGIC = b"#!AER-DAT"
#: Longest text header accepted (jAER writes a few KB of comments at most).
MAX_HEADER_BYTES = 1 << 20
#: Largest forward step between consecutive events (half the 32-bit clock's range, 35.8 minutes).
MAX_STEP_US = 1 << 31


def read_header(path: str | Path) -> tuple[dict[str, str], int]:
    """(header facts, offset of the first event record). Facts: 'version', and 'chip' and
    'interface' when the header names them (jAER's '# AEChip:' and '# HardwareInterface:' lines)."""
    with open(path, "rb") as f:
        first = f.readline(MAX_HEADER_BYTES)
        if not first.startswith(MAGIC):
            raise InputError(f"{path}: no '#!AER-DAT' header line; not a jAER AEDAT file")
        facts = {"version": first[2:].decode("ascii", "replace").strip()}
        while True:
            pos = f.tell()
            if pos > MAX_HEADER_BYTES:
                raise InputError(f"{path}: AEDAT header is longer than {MAX_HEADER_BYTES >> 20} MB; "
                                 "the file is corrupt")
            line = f.readline(MAX_HEADER_BYTES)
            if not line.startswith(b"#"):
                return facts, pos
            text = line[1:].decode("ascii", "replace").strip()
            for key, prefix in (("chip", "AEChip:"), ("interface", "HardwareInterface:")):
                if text.startswith(prefix):
                    facts[key] = text[len(prefix):].strip()


def check_header(path: str | Path) -> tuple[dict[str, str], int]:
    """(header facts, data offset) of a DVS128 AEDAT 2.0 file whose layout holds together, else InputError."""
    path = Path(path)
    facts, start = read_header(path)
    if not facts["version"].startswith("AER-DAT2"):
        raise InputError(f"{path}: header says {facts['version']!r}; only AEDAT 2.0 (jAER, DVS128) is supported "
                         "by the .aedat reader; convert AEDAT 3.x/4 files with DV to .aedat4")
    chip = facts.get("chip", "DVS128")
    if not any(name in chip for name in CHIPS):
        raise InputError(f"{path}: recorded with {chip}, whose address layout differs from the DVS128's; "
                         "only DVS128 AEDAT 2.0 files are supported (convert others with DV to .aedat4)")
    body = path.stat().st_size - start
    if body > 0:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            second = mm.find(MAGIC, start)
        if second >= 0:
            raise InputError(f"{path}: a second '#!AER-DAT' header at byte {second}: two recordings were joined "
                             "into one file; split it there")
    if body % RECORD_DTYPE.itemsize:
        raise InputError(f"{path}: truncated AEDAT 2.0 file ({body} data bytes is not a multiple of 8); "
                         "re-copy the recording")
    return facts, start


def read_aedat2(path: str | Path) -> EventBatch:
    """Read a DVS128 AEDAT 2.0 file into a 128x128 EventBatch (polarity 1 = ON, timestamps in us)."""
    path = Path(path)
    facts, start = check_header(path)
    rec = np.fromfile(path, dtype=RECORD_DTYPE, offset=start)
    rec = rec[(rec["address"] & SPECIAL_BITS) == 0]
    addr = rec["address"]
    t = rec["t"].astype(np.int64)
    # Timestamps are 32-bit: unwrap where the counter overflowed (a backward jump of more than 2^31 us).
    # A step forward of more than 2^31 us cannot be told from a backward step across the wrap, and a
    # DVS128 never goes 35.8 minutes without an event: such a file's clock is corrupt (a "wrap storm"
    # of 0xFFFFFFFF, 0, 0xFFFFFFFF, ... would otherwise read as months), so it is refused.
    if t.size > 1:
        step = np.diff(t)
        leaps = int(np.count_nonzero(step > MAX_STEP_US))
        if leaps:
            wraps = int(np.count_nonzero(step < -MAX_STEP_US))
            raise InputError(f"{path}: timestamps jump ahead by more than {MAX_STEP_US / 6e7:.1f} minutes {leaps} "
                             f"times (and wrap {wraps} times); a DVS128's 32-bit clock wraps once every "
                             f"{(1 << 32) / 6e7:.1f} minutes, so the timestamps are corrupt; re-export the recording")
        t[1:] += np.cumsum(step < -MAX_STEP_US, dtype=np.int64) << 32
    if t.size > 1 and np.any(np.diff(t) < 0):
        # jAER writes events in arrival order, which is time order for one DVS128; a stable sort
        # repairs small inversions (e.g. merged streams) and keeps the order of equal timestamps.
        order = np.argsort(t, kind="stable")
        addr, t = addr[order], t[order]
    x = (WIDTH - 1) - ((addr >> 1) & 0x7F)
    y = (HEIGHT - 1) - ((addr >> 8) & 0x7F)
    p = 1 - (addr & 1)
    return EventBatch(make_events(t, x, y, p), WIDTH, HEIGHT, source=str(path),
                      meta={"format": "AEDAT2 (DVS128)", "camera": facts.get("interface")})
