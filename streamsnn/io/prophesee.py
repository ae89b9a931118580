"""Prophesee EVT 2.0 / EVT 3.0 `.raw` recordings, decoded with expelliarmus; sensor size from the header."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..events import EventBatch, make_events

log = logging.getLogger(__name__)

#: Sensor geometry of Prophesee HAL plugins, for files whose header has no `% geometry` line
#: (older Metavision recordings name only the plugin). Keys are substrings of `plugin_name`.
PLUGIN_GEOMETRY = {
    "gen41": (1280, 720),   # Gen4.1 / IMX636 evaluation kits
    "imx636": (1280, 720),
    "gen31": (640, 480),    # Gen3.1 VGA
    "gen3": (640, 480),     # Gen3 VGA (ATIS/CD)
}


def read_header(path: str | Path) -> dict[str, str]:
    """The `% key value` lines at the top of a .raw file, as a dict (empty if there are none)."""
    header: dict[str, str] = {}
    with open(path, "rb") as f:
        while True:
            pos = f.tell()
            line = f.readline()
            if not line.startswith(b"%"):
                f.seek(pos)
                break
            text = line[1:].decode("ascii", "replace").strip()
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


_FD2_LOCK = threading.Lock()


@contextlib.contextmanager
def _captured_c_stderr(sink: list[str]):
    """Collect what C code writes to file descriptor 2 (expelliarmus reports decode errors there).

    Everything captured is appended to `sink`; the caller re-emits it or folds it into an error, so
    nothing another thread logged meanwhile is lost, only delayed.
    """
    with _FD2_LOCK, tempfile.TemporaryFile(mode="w+b") as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            sink.append(tmp.read().decode("utf-8", "replace"))


def read_prophesee(path: str | Path) -> EventBatch:
    """Read every CD event of an EVT 2.0/3.0 file (polarity 1 = ON, timestamps in us)."""
    from expelliarmus import Wizard

    path = Path(path)
    header = read_header(path)
    encoding = encoding_of(header, path)
    said: list[str] = []
    try:
        with _captured_c_stderr(said):
            raw = Wizard(encoding=encoding, fpath=str(path)).read()
    except (RuntimeError, ValueError, MemoryError) as exc:
        raise InputError(f"{path}: cannot decode as Prophesee {encoding.upper()} ({exc}); "
                         "check that the file is complete") from None
    message = " ".join("".join(said).split())
    if raw is None and message:
        # expelliarmus prints the reason to stderr and returns None on words it cannot decode.
        reason = message.removeprefix("ERROR: ")
        raise InputError(f"{path}: cannot decode as Prophesee {encoding.upper()} ({reason}); "
                         "the data do not match the header's event format, or the file is corrupt")
    if message:
        sys.stderr.write("".join(said))
    if raw is None:  # a header and no events
        raw = np.empty(0, dtype=[("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")])
    if raw.size > 1 and np.any(np.diff(raw["t"]) < 0):
        # EVT streams are time-ordered; a stable sort repairs rare out-of-order packets while
        # keeping the file order of events with equal timestamps.
        raw = raw[np.argsort(raw["t"], kind="stable")]
    size, origin = geometry_of(header)
    if size is None:
        size = (int(raw["x"].max()) + 1, int(raw["y"].max()) + 1) if raw.size else (1, 1)
        log.warning("%s: header names no sensor geometry; using the event extent %dx%d", path, *size)
    if raw.size and (raw["x"].min() < 0 or raw["y"].min() < 0):
        raise InputError(f"{path}: decoded negative coordinates; the file is corrupt or not {encoding.upper()}")
    events = make_events(raw["t"], raw["x"], raw["y"], raw["p"])
    return EventBatch(events, size[0], size[1], source=str(path),
                      meta={"format": f"Prophesee {encoding.upper()}", "sensor_size_from": origin,
                            "plugin": header.get("plugin_name")})
