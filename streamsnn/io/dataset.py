"""`open_dataset`: a folder in any layout (or `tonic:<Class>:<folder>`) as a Dataset, without decoding a sample.

Layouts: class folders `Train|Test/<class>/<file>` (N-MNIST's digit folders are one case, `folders`),
flat folders with `train*.txt`/`test*.txt` label lists (`flat`), long recordings cut by
`<name>_labels.csv` files (`labelled`), datasets on disk through tonic (`tonicdata`), and folders of
unlabelled recordings (`folders`). Opening a dataset lists files and reads label files only.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .flat import open_flat
from .folders import class_dirs, open_class_folders, open_recordings, own_split, split_dirs
from .labelled import open_labelled, recording_pairs
from .labellists import label_lists
from .probe import extensions, is_event_name
from .samples import Dataset
from .tonicdata import is_spec, open_tonic


def open_dataset(path: str | Path) -> Dataset:
    """Open a dataset without decoding any sample.

    `path` is a folder in one of these layouts (tried in this order), or `tonic:<Class>:<folder>`:
    - flat: event files beside `train*.txt` / `test*.txt` label lists (`<sample> <class>` per line);
    - labelled recordings: `<name>.<ext>` beside `<name>_labels.csv` (`class,start_us,end_us` rows),
      directly or in `Train/` and `Test/`; see `streamsnn.io.labelled`;
    - class folders: `Train|train/<class>/<file>` and `Test|test/<class>/<file>`, or the class
      folders of one split alone;
    - unlabelled recordings: event files directly in the folder (for `info` and replay);
    - a folder holding one of the above in its only subfolder or in `NMNIST/` (tonic's download).
    """
    spec = str(path)
    if is_spec(spec):
        return open_tonic(spec)
    root = Path(path)
    if not root.exists():
        raise InputError(f"{root}: no such folder; check the path")
    if not root.is_dir():
        raise InputError(f"{root}: is a file, not a dataset folder; pass the folder that holds the samples")
    ds = _open_folder(root)
    ds.name = spec
    return ds


def _open_folder(root: Path) -> Dataset:
    lists = label_lists(root)
    if lists:
        return open_flat(root, lists)
    if recording_pairs(root):
        return open_labelled(root)
    dirs = split_dirs(root)
    if dirs:
        if any(recording_pairs(d) for _, d in dirs):
            return open_labelled(root)
        return open_class_folders(root, dirs)
    loose = [p for p in root.iterdir() if is_event_name(p.name) and p.is_file()]
    if not loose and class_dirs(root):
        # One split on its own (e.g. NMNIST/Test, or <class>/ folders with no split above them).
        return open_class_folders(root, [(own_split(root), root)])
    if loose:
        return open_recordings(root, loose)
    subdirs = [c for c in root.iterdir() if c.is_dir()]
    wrapped = [c for c in subdirs if c.name.lower() == "nmnist"] or (subdirs if len(subdirs) == 1 else [])
    if wrapped:
        # tonic.datasets.NMNIST(save_to=root) downloads into root/NMNIST/{Train,Test}.
        try:
            return _open_folder(wrapped[0])
        except InputError:
            pass
    raise InputError(f"{root}: not a dataset folder: no event files ({' '.join(extensions())}) in it, in "
                     "Train/ or Test/ class folders, or in <class>/ subfolders; point at such a folder, "
                     "at a single event file, or at tonic:<DatasetClass>:<folder>")
