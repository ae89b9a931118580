"""File formats as plain functions: N-MNIST (tonic), AEDAT4 (dv-processing), Prophesee EVT (expelliarmus), AEDAT 2.0."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..events import EventBatch
from .dataset import Dataset, Sample, open_dataset

#: File extension -> format read by `read_events`.
SUPPORTED_EXTENSIONS = {
    ".bin": "N-MNIST",
    ".bs2": "N-MNIST",
    ".aedat4": "AEDAT4",
    ".raw": "Prophesee EVT2/EVT3",
    ".aedat": "AEDAT2 (DVS128)",
}

__all__ = ["read_events", "open_dataset", "check_file", "Dataset", "Sample", "SUPPORTED_EXTENSIONS"]


def check_file(path: str | Path) -> Path:
    """The path as a Path if it is a non-empty file with a supported extension, else InputError."""
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
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty; re-copy or re-record it")
    return path


def read_events(path: str | Path) -> EventBatch:
    """Read all events of one file, choosing the reader by extension.

    `.bin`/`.bs2` N-MNIST (34x34; `sample` and `label` set when the file sits in a dataset folder),
    `.aedat4` (dv-processing), `.raw` Prophesee EVT 2.0/3.0 (expelliarmus), `.aedat` jAER AEDAT 2.0
    from a DVS128. `source` is `str(path)`; `meta["format"]` names the format.
    """
    path = check_file(path)
    ext = path.suffix.lower()
    try:
        if ext in (".bin", ".bs2"):
            from .dataset import label_for_file
            from .nmnist import read_nmnist

            sample, label = label_for_file(path)
            return read_nmnist(path, sample=sample, label=label)
        if ext == ".aedat4":
            from .aedat4 import read_aedat4

            return read_aedat4(path)
        if ext == ".raw":
            from .prophesee import read_prophesee

            return read_prophesee(path)
        from .aedat2 import read_aedat2

        return read_aedat2(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc}); check permissions and the disk") from None
