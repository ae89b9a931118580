"""AEDAT4 recordings from iniVation cameras: header checked in Python, events decoded by dv-processing in a worker.

File layout: `#!AER-DAT4.0\\r\\n`, an int32 size and that many bytes of IOHeader (a FlatBuffer holding
the compression, the position of the packet index and an XML description of the streams), then
packets of (int32 stream id, int32 size, compressed body), then the packet index. Everything up to
the packet bodies is checked here before dv-processing sees the file, so an impossible header size
or sensor size is refused in one line instead of allocating gigabytes or hanging; what can still go
wrong inside a damaged packet (dv-processing can spin forever in LZ4F_decompress) is contained by
running the decode in `streamsnn.io.isolated`'s worker, under a deadline and a memory limit.
"""

from __future__ import annotations

import logging
import mmap
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..events import MAX_SENSOR_SIDE, EventBatch, make_events
from .isolated import DecodeFailed, decode

log = logging.getLogger(__name__)

MAGIC = b"#!AER-DAT4.0\r\n"
#: Largest IOHeader accepted; real ones hold a few KB of XML per stream.
MAX_HEADER_BYTES = 1 << 20
COMPRESSIONS = ("none", "LZ4", "LZ4 high", "Zstd", "Zstd high")


@dataclass
class Header:
    """What the IOHeader says: event sensor size, compression, packet index position, streams by id."""

    width: int
    height: int
    compression: str
    data_table: int
    streams: dict[int, str] = field(default_factory=dict)
    data_start: int = 0
    cut_at: int | None = None  # an interrupted recording (no packet index): where its last packet is cut off


def _corrupt(path: Path, what: str) -> InputError:
    return InputError(f"{path}: not a readable AEDAT4 file ({what}); check that it is a complete "
                      "recording saved by DV or dv-processing")


def _flatbuffer_fields(buf: bytes, path: Path) -> tuple[int, int, str]:
    """(compression, dataTablePosition, infoNode) of an IOHeader FlatBuffer, every offset bounds-checked."""
    def unpack(fmt: str, at: int):
        if at < 0 or at + struct.calcsize(fmt) > len(buf):
            raise _corrupt(path, "IOHeader offsets point outside the header")
        return struct.unpack_from(fmt, buf, at)[0]

    table = unpack("<I", 0)
    vtable = table - unpack("<i", table)
    vt_size = unpack("<H", vtable)
    slots = [unpack("<H", vtable + 4 + 2 * i) if 4 + 2 * i < vt_size else 0 for i in range(3)]
    compression = unpack("<i", table + slots[0]) if slots[0] else 0
    position = unpack("<q", table + slots[1]) if slots[1] else -1
    if not slots[2]:
        raise _corrupt(path, "IOHeader has no stream description")
    text_at = table + slots[2] + unpack("<I", table + slots[2])
    length = unpack("<I", text_at)
    if text_at + 4 + length > len(buf):
        raise _corrupt(path, "IOHeader stream description runs past the header")
    try:
        return compression, position, buf[text_at + 4:text_at + 4 + length].decode("utf-8")
    except UnicodeDecodeError:
        raise _corrupt(path, "stream description is not text") from None


def _streams(xml: str, path: Path) -> tuple[dict[int, str], tuple[int, int]]:
    """Stream id -> type identifier, and the event stream's (sizeX, sizeY), from the description XML."""
    if "<!" in xml:  # no DOCTYPE, no entities: nothing in the description may expand
        raise _corrupt(path, "stream description holds a DTD")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise _corrupt(path, f"stream description XML: {exc}") from None
    streams, size = {}, None
    for node in root.iter("node"):
        attrs = {a.get("key"): a.text for a in node.findall("attr")}
        kind, name = attrs.get("typeIdentifier"), node.get("name", "")
        if kind is None or not name.isdigit():
            continue
        streams[int(name)] = kind
        if kind == "EVTS" and size is None:
            info = {a.get("key"): (a.text or "").strip() for a in node.findall("node[@name='info']/attr")}
            sides = [info.get("sizeX", ""), info.get("sizeY", "")]
            if not all(s.isdigit() and 0 < int(s) <= MAX_SENSOR_SIDE for s in sides):
                raise _corrupt(path, f"event sensor size {sides[0] or '?'}x{sides[1] or '?'} is not within "
                                     f"1..{MAX_SENSOR_SIDE} pixels")
            size = (int(sides[0]), int(sides[1]))
    if size is None:
        raise InputError(f"{path}: AEDAT4 recording has no event stream; record events, not only frames/IMU")
    return streams, size


def _walk_packets(mm, start: int, end: int, streams: dict[int, str], indexed: bool, path: Path) -> int | None:
    """Check that packet headers tile [start, end) and name declared streams.

    A recording without a packet index was interrupted while being written: its last packet may be
    cut off (dv-processing then reads the complete ones); that packet's offset is returned.
    """
    pos, k = start, 0
    while pos < end:
        sid, size = struct.unpack_from("<ii", mm, pos) if pos + 8 <= end else (None, 0)
        if sid is not None and sid in streams and size > 0 and pos + 8 + size <= end:
            pos, k = pos + 8 + size, k + 1
            continue
        if not indexed and (sid is None or (sid in streams and size > 0)):
            return pos  # cut off by the end of the file
        if sid is None or (sid in streams and size > 0):
            raise _corrupt(path, f"packet {k} at byte {pos} runs past the packet index at byte {end}")
        raise _corrupt(path, f"packet {k} at byte {pos} has stream {sid} and size {size}")
    return None


def read_header(path: str | Path) -> Header:
    """Check everything before the packet bodies and return what the header says (InputError if corrupt)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(len(MAGIC) + 4)
        if not head.startswith(MAGIC):
            raise _corrupt(path, "no '#!AER-DAT4.0' magic at the start")
        n = int.from_bytes(head[len(MAGIC):], "little", signed=True) if len(head) == len(MAGIC) + 4 else -1
        if not 0 < n <= min(size - len(head), MAX_HEADER_BYTES):
            raise _corrupt(path, f"header size {n} bytes is impossible in a {size}-byte file")
        compression, table, xml = _flatbuffer_fields(f.read(n), path)
        if not 0 <= compression < len(COMPRESSIONS):
            raise _corrupt(path, f"unknown compression {compression}")
        start = len(head) + n
        if table != -1 and not start <= table < size:
            raise _corrupt(path, f"the packet index at byte {table} lies outside the {size}-byte file, "
                                 "which is truncated")
        streams, (width, height) = _streams(xml, path)
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            second = mm.find(MAGIC, start)
            if second >= 0:
                raise InputError(f"{path}: a second AEDAT4 header at byte {second}: two recordings were joined "
                                 "into one file; split it there")
            cut = _walk_packets(mm, start, size if table == -1 else table, streams, table != -1, path)
    return Header(width, height, COMPRESSIONS[compression], table, streams, start, cut)


def decode_native(path: str) -> tuple[np.ndarray, dict]:
    """Every event of an AEDAT4 file, decoded by dv-processing (run this in the decoder worker)."""
    import dv_processing as dv

    rec = dv.io.MonoCameraRecording(path)
    if not rec.isEventStreamAvailable():
        raise ValueError("AEDAT4 recording has no event stream")
    width, height = rec.getEventResolution()
    parts = []
    while rec.isRunning():
        batch = rec.getNextEventBatch()
        if batch is not None and len(batch):
            parts.append(batch.numpy())
    if parts:
        raw = np.concatenate(parts)
        t = raw["timestamp"]
        if t.size > 1 and np.any(np.diff(t) < 0):
            # Packets from DV are time-ordered, but a file written by other tools may not be: a stable
            # sort keeps the recorded order of events that share a timestamp.
            raw = raw[np.argsort(t, kind="stable")]
        if raw["x"].min() < 0 or raw["y"].min() < 0:
            raise ValueError("negative pixel coordinates")
        events = make_events(raw["timestamp"], raw["x"], raw["y"], raw["polarity"])
    else:
        events = make_events(np.empty(0, np.int64), [], [], [])
    return events, {"width": int(width), "height": int(height), "camera": rec.getCameraName()}


def read_aedat4(path: str | Path, *, limits=None, cancel=None) -> EventBatch:
    """Read every event of an AEDAT4 file; the sensor size comes from the recording's event stream."""
    path = Path(path)
    header = read_header(path)
    try:
        events, info, _ = decode("aedat4", path, limits=limits, cancel=cancel)
    except DecodeFailed as exc:
        raise _corrupt(path, str(exc)) from None
    width, height = info.get("width", header.width), info.get("height", header.height)
    batch = EventBatch(events, int(width), int(height), source=str(path),
                       meta={"format": "AEDAT4", "camera": info.get("camera")})
    if header.cut_at is not None:  # after every check, so never before an error line
        log.warning("%s: recording was interrupted: its last packet, at byte %d, is cut off; read the complete "
                    "ones", path, header.cut_at)
    return batch
