"""Facts about event files that cost no decoding: format by extension, the header check `probe`, exact event counts."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError


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


def probe(path: str | Path) -> tuple[str, tuple[int, int] | None]:
    """(format, sensor size) from a file's header alone, nothing decoded; InputError if the header is bad.

    This is the one header check every reader runs before a native decoder sees the file (magic,
    header sizes, geometry, packet layout, files joined to themselves). The sensor size is None for
    a Prophesee file whose header does not state it.
    """
    from . import check_file

    path = check_file(path)
    ext = path.suffix.lower()
    try:
        if ext in (".bin", ".bs2"):
            from . import nmnist

            nmnist.check_size(path)
            return "N-MNIST", (nmnist.WIDTH, nmnist.HEIGHT)
        if ext == ".aedat4":
            from .aedat4 import read_header

            h = read_header(path)
            return "AEDAT4", (h.width, h.height)
        if ext == ".raw":
            from .prophesee import check_header

            _, encoding, size, _ = check_header(path)
            return f"Prophesee {encoding.upper()}", size
        from .aedat2 import HEIGHT, WIDTH, check_header

        check_header(path)
        return "AEDAT2 (DVS128)", (WIDTH, HEIGHT)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc}); check permissions and the disk") from None
