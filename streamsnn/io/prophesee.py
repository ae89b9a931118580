"""Prophesee EVT 2.0 / EVT 3.0 `.raw` recordings: header checked in Python, events decoded by expelliarmus in a worker.

expelliarmus skips every leading line that starts with '%' up to its newline, and spins forever
when the file ends inside such a line; it prints its errors on the C stderr and returns None. So
the header is scanned here exactly as expelliarmus will scan it, refused when it is unfinished,
overlong, binary, or announces an impossible sensor, and the decode itself runs in
`streamsnn.io.isolated`'s worker, whose own stderr collects what expelliarmus prints.
"""

from __future__ import annotations

import logging
import mmap
import re
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..events import MAX_SENSOR_SIDE, EventBatch, make_events
from .isolated import DecodeFailed, decode

log = logging.getLogger(__name__)

#: Sensor geometry of Prophesee HAL plugins, for files whose header has no `% geometry` line
#: (older Metavision recordings name only the plugin). Keys are substrings of `plugin_name`.
PLUGIN_GEOMETRY = {
    "gen41": (1280, 720),   # Gen4.1 / IMX636 evaluation kits
    "imx636": (1280, 720),
    "gen31": (640, 480),    # Gen3.1 VGA
    "gen3": (640, 480),     # Gen3 VGA (ATIS/CD)
}
#: Bytes per event word of each encoding: the data after the header are whole words.
WORD_BYTES = {"evt2": 4, "evt3": 2}
#: Longest text header accepted (Metavision writes well under 1 KB).
MAX_HEADER_BYTES = 1 << 16
_BINARY = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def scan_header(path: str | Path) -> tuple[list[str], int]:
    """The '%' header lines (without '%' and newline) and the offset of the first data byte.

    Scans as expelliarmus does: every line that starts with '%' belongs to the header. Raises
    InputError when the file ends inside a header line, the header is overlong or holds binary bytes.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        buf = f.read(MAX_HEADER_BYTES + 1)
    lines, pos = [], 0
    while pos < len(buf) and buf[pos] == 0x25:  # '%'
        end = buf.find(b"\n", pos)
        if end < 0:
            if len(buf) < size:
                raise InputError(f"{path}: Prophesee text header is longer than {MAX_HEADER_BYTES} bytes; "
                                 "the file is corrupt")
            raise InputError(f"{path}: file ends inside its Prophesee text header (line {len(lines) + 1} has no "
                             "end); the file is truncated")
        line = buf[pos + 1:end]
        if _BINARY.search(line):
            raise InputError(f"{path}: Prophesee header line {len(lines) + 1} holds binary bytes; the header "
                             "is corrupt")
        lines.append(line.decode("utf-8", "replace").strip())
        pos = end + 1
    return lines, pos


def read_header(path: str | Path) -> dict[str, str]:
    """The `% key value` lines at the top of a .raw file up to `% end`, as a dict (empty if none)."""
    return _facts(scan_header(path)[0])


def _facts(lines: list[str]) -> dict[str, str]:
    header: dict[str, str] = {}
    for text in lines:
        if text == "end":
            break
        key, _, value = text.partition(" ")
        header[key.lower()] = value.strip()
    return header


def encoding_of(header: dict[str, str], path: Path) -> str:
    """'evt2' or 'evt3' from the header's `evt` or `format` line."""
    evt = header.get("evt", "")
    fmt = header.get("format", "").upper()
    if evt.startswith("3") or fmt.startswith("EVT3"):
        return "evt3"
    if evt.startswith("2") or fmt.startswith("EVT2"):
        return "evt2"
    raise InputError(
        f"{path}: no Prophesee '% evt' or '% format' header line, so EVT 2.0 vs 3.0 is unknown; "
        "only EVT 2.0/3.0 .raw files from Metavision are supported"
    )


def geometry_of(header: dict[str, str]) -> tuple[tuple[int, int] | None, str]:
    """((width, height), where from): `% geometry WxH`, `% format ...;width=W;height=H`, or the plugin."""
    m = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", header.get("geometry", ""))
    if m:
        return (int(m.group(1)), int(m.group(2))), "geometry"
    fmt = header.get("format", "")
    w, h = re.search(r"width=(\d+)", fmt), re.search(r"height=(\d+)", fmt)
    if w and h:
        return (int(w.group(1)), int(h.group(1))), "format"
    plugin = header.get("plugin_name", "").lower()
    for key, size in PLUGIN_GEOMETRY.items():
        if key in plugin:
            return size, "plugin_name"
    return None, "events"


def check_header(path: str | Path) -> tuple[dict[str, str], str, tuple[int, int] | None, int]:
    """(header, encoding, sensor size or None, data offset) of a .raw file, or InputError naming the fault."""
    path = Path(path)
    lines, start = scan_header(path)
    header = _facts(lines)
    encoding = encoding_of(header, path)
    if "geometry" in header and geometry_of({"geometry": header["geometry"]})[0] is None:
        raise InputError(f"{path}: header geometry {header['geometry'][:40]!r} is not WIDTHxHEIGHT; the header "
                         "is corrupt")
    size, origin = geometry_of(header)
    if size is not None and not all(0 < side <= MAX_SENSOR_SIDE for side in size):
        raise InputError(f"{path}: header {origin} says {size[0]}x{size[1]} pixels, not within 1..{MAX_SENSOR_SIDE} "
                         "per side; the header is corrupt")
    data = path.stat().st_size - start
    word = WORD_BYTES[encoding]
    if data % word:
        raise InputError(f"{path}: its {data:,} bytes of {encoding.upper()} data end inside a {word}-byte event word: "
                         "the file was cut short (an interrupted copy or recording); copy it again")
    if lines and data > 0:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            first = mm[:mm.find(b"\n") + 1]  # the header's first line, exactly as written
            second = mm.find(first, start) if len(first) >= 8 else -1
        if second >= 0:
            raise InputError(f"{path}: a second Prophesee header at byte {second}: two recordings were joined "
                             "into one file; split it there")
    return header, encoding, size, start


def decode_native(path: str, encoding: str) -> tuple[np.ndarray, dict]:
    """Every CD event of an EVT 2.0/3.0 file, decoded by expelliarmus (run this in the decoder worker)."""
    from expelliarmus import Wizard

    raw = Wizard(encoding=encoding, fpath=path).read()
    if raw is None:  # expelliarmus printed why (or the file has a header and no events)
        return make_events(np.empty(0, np.int64), [], [], []), {"refused": True}
    if raw.size and (raw["x"].min() < 0 or raw["y"].min() < 0):
        raise ValueError(f"decoded negative coordinates; the file is corrupt or not {encoding.upper()}")
    if raw.size > 1 and np.any(np.diff(raw["t"]) < 0):
        # EVT streams are time-ordered; a stable sort repairs rare out-of-order packets while
        # keeping the file order of events with equal timestamps.
        raw = raw[np.argsort(raw["t"], kind="stable")]
    return make_events(raw["t"], raw["x"], raw["y"], raw["p"]), {"refused": False}


def _one_line(text: str) -> str:
    return " ".join(text.split()).removeprefix("ERROR: ")[:300]


def read_prophesee(path: str | Path, *, limits=None, cancel=None) -> EventBatch:
    """Read every CD event of an EVT 2.0/3.0 file (polarity 1 = ON, timestamps in us)."""
    path = Path(path)
    header, encoding, size, start = check_header(path)
    name = f"Prophesee {encoding.upper()}"
    meta = {"format": name, "sensor_size_from": geometry_of(header)[1], "plugin": header.get("plugin_name")}
    if start >= path.stat().st_size:  # a header and no events: nothing for the decoder to do
        return EventBatch(make_events([], [], [], []), *(size or (1, 1)), source=str(path), meta=meta)
    try:
        events, info, said = decode(encoding, path, limits=limits, cancel=cancel)
    except DecodeFailed as exc:
        raise InputError(f"{path}: cannot decode as {name} ({_one_line(str(exc))}); check that the file is "
                         "complete") from None
    if info.get("refused") and said.strip():
        raise InputError(f"{path}: cannot decode as {name} ({_one_line(said)}); the data do not match the "
                         "header's event format, or the file is corrupt")
    guessed = size is None
    if guessed:
        size = (int(events["x"].max()) + 1, int(events["y"].max()) + 1) if len(events) else (1, 1)
    batch = EventBatch(events, size[0], size[1], source=str(path), meta=meta)
    # notes only after the events passed every check: never a note before an error line
    if guessed:
        log.warning("%s: header names no sensor geometry; using the event extent %dx%d", path, *size)
    if said.strip():
        log.info("%s: the decoder noted: %s", path, _one_line(said))
    return batch
