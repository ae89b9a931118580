"""Facts about event files that cost no decoding: format by extension, file and header checks, exact event counts."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from . import aedat2, aedat4, nmnist, prophesee

#: File extension -> format read by `read_events`.
SUPPORTED_EXTENSIONS = {
    ".bin": "N-MNIST",
    ".bs2": "N-MNIST",
    ".aedat4": "AEDAT4",
    ".raw": "Prophesee EVT2/EVT3",
    ".aedat": "AEDAT2 (DVS128)",
}


def extensions() -> dict[str, str]:
    """File extension -> format name, for every format `streamsnn.io.read_events` reads."""
    return SUPPORTED_EXTENSIONS


def format_of(path: str | Path) -> str | None:
    """The format a file's extension names, or None when streamsnn does not read it."""
    return extensions().get(Path(path).suffix.lower())


def is_event_name(name: str) -> bool:
    """True when a file name has an extension streamsnn reads and is not hidden (no file access)."""
    dot = name.rfind(".")
    return dot > 0 and not name.startswith(".") and name[dot:].lower() in extensions()


def empty_sample(path: str | Path) -> InputError:
    """The one error for a file or sample without events, wherever it is met (info, eval, train, replay)."""
    return InputError(f"{path}: empty sample: the file holds no events; re-copy or re-record it, or remove it")


def check_file(path: str | Path) -> Path:
    """The path as a Path if it is a non-empty regular file with a supported extension, else InputError."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder; check the path")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not an event file; open it as a dataset (open_dataset) "
                         "or pass one of its files")
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise InputError(f"{path}: unsupported file type {ext or '(no extension)'!r}; "
                         f"supported: {', '.join(SUPPORTED_EXTENSIONS)}")
    if not path.is_file():  # a pipe or a device has size 0: it is not an empty recording
        raise InputError(f"{path}: it is not a regular file (a pipe or a device); give a recording file")
    if path.stat().st_size == 0:
        raise empty_sample(path)
    return path


def exact_events(path: str | Path) -> int | None:
    """Number of events from the file size where that is exact (N-MNIST: 5 bytes per event), else None."""
    path = Path(path)
    if path.suffix.lower() not in (".bin", ".bs2"):
        return None  # AEDAT4 is compressed; AEDAT 2.0 and EVT words include non-pixel records
    try:
        size = path.stat().st_size
    except OSError:
        return None
    return size // nmnist.RECORD_BYTES if size % nmnist.RECORD_BYTES == 0 else None


def probe(path: str | Path) -> tuple[str, tuple[int, int] | None]:
    """(format, sensor size) from a file's header alone, nothing decoded; InputError if the header is bad.

    This is the one header check every reader runs before a native decoder sees the file (magic,
    header sizes, geometry, packet layout, files joined to themselves). The sensor size is None for
    a Prophesee file whose header does not state it.
    """
    path = check_file(path)
    ext = path.suffix.lower()
    try:
        if ext in (".bin", ".bs2"):
            nmnist.check_size(path)
            return "N-MNIST", (nmnist.WIDTH, nmnist.HEIGHT)
        if ext == ".aedat4":
            h = aedat4.read_header(path)
            return "AEDAT4", (h.width, h.height)
        if ext == ".raw":
            _, encoding, size, _ = prophesee.check_header(path)
            return f"Prophesee {encoding.upper()}", size
        aedat2.check_header(path)
        return "AEDAT2 (DVS128)", (aedat2.WIDTH, aedat2.HEIGHT)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc}); check permissions and the disk") from None
