"""Facts about event files that cost no decoding: format by extension, sensor size from headers, exact event counts."""

from __future__ import annotations

import re
import struct
from pathlib import Path

#: Largest AEDAT4 header read when looking for the sensor size (real headers are a few KB).
AEDAT4_HEADER_MAX = 1 << 20
_AEDAT4_MAGIC = b"#!AER-DAT4.0\r\n"


def extensions() -> dict[str, str]:
    """File extension -> format name, for every format `streamsnn.io.read_events` reads."""
    from . import SUPPORTED_EXTENSIONS

    return SUPPORTED_EXTENSIONS


def format_of(path: str | Path) -> str | None:
    """The format a file's extension names, or None when streamsnn does not read it."""
    return extensions().get(Path(path).suffix.lower())


def is_event_name(name: str) -> bool:
    """True when a file name has an extension streamsnn reads and is not hidden (no file access)."""
    dot = name.rfind(".")
    return dot > 0 and not name.startswith(".") and name[dot:].lower() in extensions()


def exact_events(path: str | Path) -> int | None:
    """Number of events from the file size where that is exact (N-MNIST: 5 bytes per event), else None."""
    path = Path(path)
    if path.suffix.lower() not in (".bin", ".bs2"):
        return None  # AEDAT4 is compressed; AEDAT 2.0 and EVT words include non-pixel records
    from .nmnist import RECORD_BYTES

    try:
        size = path.stat().st_size
    except OSError:
        return None
    return size // RECORD_BYTES if size % RECORD_BYTES == 0 else None


def sensor_of(path: str | Path) -> tuple[int, int] | None:
    """(width, height) of the sensor a file was recorded with, from its header alone; None if unknown.

    N-MNIST files are 34x34; AEDAT 2.0 files of a DVS128 are 128x128; AEDAT4 and Prophesee `.raw`
    files name the size in their header. Nothing is decoded, and a file that cannot be read gives None.
    """
    path = Path(path)
    ext = path.suffix.lower()
    try:
        if ext in (".bin", ".bs2"):
            from .nmnist import HEIGHT, WIDTH

            return WIDTH, HEIGHT
        if ext == ".aedat":
            from . import aedat2

            facts, _ = aedat2.read_header(path)
            chip = facts.get("chip", "DVS128")
            if facts["version"].startswith("AER-DAT2") and any(c in chip for c in aedat2.CHIPS):
                return aedat2.WIDTH, aedat2.HEIGHT
            return None
        if ext == ".aedat4":
            return aedat4_sensor(path)
        if ext == ".raw":
            from .prophesee import geometry_of, read_header

            size, _ = geometry_of(read_header(path))
            return size
    except Exception:  # a header we cannot read: the sensor stays unknown; decoding will say why
        return None
    return None


_ATTR = re.compile(rb'<attr key="(sizeX|sizeY|typeIdentifier)" type="\w+">([^<]*)</attr>')


def aedat4_sensor(path: str | Path) -> tuple[int, int] | None:
    """Event-stream resolution from an AEDAT4 header (its XML stream description), without dv-processing."""
    with open(path, "rb") as f:
        head = f.read(len(_AEDAT4_MAGIC) + 4)
        if len(head) < len(_AEDAT4_MAGIC) + 4 or not head.startswith(_AEDAT4_MAGIC):
            return None
        (size,) = struct.unpack("<i", head[len(_AEDAT4_MAGIC):])
        if not 0 < size <= AEDAT4_HEADER_MAX:
            return None
        header = f.read(size)
    # Streams are <node>s listing typeIdentifier, then sizeX/sizeY in their info node, in file order.
    kind, size_x = None, None
    for key, value in _ATTR.findall(header):
        if key == b"typeIdentifier":
            kind, size_x = value, None
        elif kind == b"EVTS" and key == b"sizeX":
            size_x = value
        elif kind == b"EVTS" and key == b"sizeY" and size_x is not None:
            try:
                w, h = int(size_x), int(value)
            except ValueError:
                return None
            from ..events import MAX_SENSOR_SIDE

            return (w, h) if 0 < w <= MAX_SENSOR_SIDE and 0 < h <= MAX_SENSOR_SIDE else None
    return None
