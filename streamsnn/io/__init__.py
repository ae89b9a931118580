"""File formats as plain functions: N-MNIST (tonic), AEDAT4 (dv-processing), Prophesee EVT (expelliarmus), AEDAT 2.0.

Every reader checks a file's header in Python before any native decoder sees it; the native
decoders run in a worker process with a deadline and a memory limit (`streamsnn.io.isolated`).
A file ends in an EventBatch or in one InputError line naming it, within the deadline.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..events import EventBatch
from .dataset import Dataset, Sample, open_dataset
from .isolated import DecodeLimits
from .probe import probe

#: File extension -> format read by `read_events`.
SUPPORTED_EXTENSIONS = {
    ".bin": "N-MNIST",
    ".bs2": "N-MNIST",
    ".aedat4": "AEDAT4",
    ".raw": "Prophesee EVT2/EVT3",
    ".aedat": "AEDAT2 (DVS128)",
}

__all__ = ["read_events", "probe", "open_dataset", "check_file", "empty_sample", "Dataset", "Sample",
           "DecodeLimits", "SUPPORTED_EXTENSIONS"]


def empty_sample(path: str | Path) -> InputError:
    """The one error for a file or sample without events, wherever it is met (info, eval, train, replay)."""
    return InputError(f"{path}: empty sample: the file holds no events; re-copy or re-record it, or remove it")


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
        raise empty_sample(path)
    return path


def read_events(path: str | Path, *, sample: str | None = None, label: int | None = None,
                limits: DecodeLimits | None = None, cancel=None) -> EventBatch:
    """Read all events of one file, choosing the reader by extension.

    `.bin`/`.bs2` N-MNIST (34x34; `sample` and `label` found from the dataset folder the file sits
    in, unless given), `.aedat4` (dv-processing), `.raw` Prophesee EVT 2.0/3.0 (expelliarmus),
    `.aedat` jAER AEDAT 2.0 from a DVS128. `source` is `str(path)`; `meta["format"]` names the format.
    A file without events is refused (`empty_sample`). Native decoders run under `limits` (default:
    `DecodeLimits.from_env()`) and stop early when `cancel` (a threading.Event) is set.
    """
    path = check_file(path)
    ext = path.suffix.lower()
    try:
        if ext in (".bin", ".bs2"):
            from .dataset import label_for_file
            from .nmnist import read_nmnist

            if sample is None and label is None:
                sample, label = label_for_file(path)
            batch = read_nmnist(path, sample=sample, label=label)
        elif ext == ".aedat4":
            from .aedat4 import read_aedat4

            batch = read_aedat4(path, limits=limits, cancel=cancel)
        elif ext == ".raw":
            from .prophesee import read_prophesee

            batch = read_prophesee(path, limits=limits, cancel=cancel)
        else:
            from .aedat2 import read_aedat2

            batch = read_aedat2(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc}); check permissions and the disk") from None
    if not len(batch):
        raise empty_sample(path)
    if (sample is not None or label is not None) and (batch.sample, batch.label) != (sample, label):
        batch = batch.with_meta(sample=sample, label=label)
    return batch
