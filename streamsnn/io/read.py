"""`read_events`: one event file into an EventBatch, the reader chosen by extension, after the header checks."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..events import EventBatch
from .aedat2 import read_aedat2
from .aedat4 import read_aedat4
from .isolated import DecodeLimits
from .labellists import label_for_file
from .nmnist import read_nmnist
from .probe import check_file, empty_sample
from .prophesee import read_prophesee


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
            if sample is None and label is None:
                sample, label = label_for_file(path)
            batch = read_nmnist(path, sample=sample, label=label)
        elif ext == ".aedat4":
            batch = read_aedat4(path, limits=limits, cancel=cancel)
        elif ext == ".raw":
            batch = read_prophesee(path, limits=limits, cancel=cancel)
        else:
            batch = read_aedat2(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc}); check permissions and the disk") from None
    if not len(batch):
        raise empty_sample(path)
    if (sample is not None or label is not None) and (batch.sample, batch.label) != (sample, label):
        batch = batch.with_meta(sample=sample, label=label)
    return batch
