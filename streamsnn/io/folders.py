"""Folder layouts: class folders (`Train|Test/<class>/<file>`, the ImageFolder convention), unlabelled recordings."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError
from .classes import class_name
from .probe import is_event_name
from .samples import Dataset, Sample, describe_format, describe_sensor, unique_ids

_SPLITS = ("train", "test")


def _sort_key(name: str):
    stem = name.rsplit(".", 1)[0]
    return (0, int(stem), name) if stem.isdigit() else (1, 0, name)


def own_split(folder: Path) -> str:
    """The split a folder's own name says: "train" or "test" for `Train`/`Test` (any case), else "all"."""
    name = folder.name.lower()
    return name if name in _SPLITS else "all"


def split_dirs(root: Path) -> list[tuple[str, Path]]:
    """(split, folder) for the `Train`/`train` and `Test`/`test` subfolders of root, train first."""
    dirs = [(p.name.lower(), p) for p in root.iterdir() if p.name.lower() in _SPLITS and p.is_dir()]
    return sorted(dirs, key=lambda sp: (sp[0] != "train", sp[1].name))


def _event_files(folder: Path) -> list[Path]:
    """Event files directly in a folder (one listing, no stat per file), numbers first in numeric order."""
    with os.scandir(folder) as it:
        names = [e.name for e in it if is_event_name(e.name) and e.is_file()]
    return [folder / n for n in sorted(names, key=_sort_key)]


def class_dirs(folder: Path) -> list[tuple[str, list[Path]]]:
    """(class folder name, its event files) for every subfolder holding event files, in name order."""
    out = []
    with os.scandir(folder) as it:
        subdirs = [e.name for e in it if not e.name.startswith(".") and e.is_dir()]
    for name in sorted(subdirs, key=_sort_key):
        files = _event_files(folder / name)
        if files:
            out.append((name, files))
    return out


def open_class_folders(root: Path, dirs: list[tuple[str, Path]]):
    """Samples of `<split folder>/<class>/<file>`; the class is the folder's name, the same in every split."""
    samples = []
    for split, d in dirs:
        for name, files in class_dirs(d):
            label = class_name(name, str(d / name))
            samples += [Sample(f, f.stem, None, split, label_name=label) for f in files]
    if not samples:
        raise InputError(f"{root}: no <class>/<file> event files in {', '.join(str(d) for _, d in dirs)}; "
                         "put each class's recordings in a folder named after the class, e.g. Train/club/*.aedat")
    samples = unique_ids(samples, root)
    width, height = describe_sensor(samples)
    return Dataset.labelled(root, "class-folders", samples, format=describe_format(samples),
                            width=width, height=height)


def open_recordings(root: Path, files: list[Path]):
    """A folder of unlabelled recordings: one sample per file, in name order, split 'all'."""
    files = sorted(files, key=lambda p: p.name)
    samples = unique_ids([Sample(f, f.stem, None, "all") for f in files], root)
    width, height = describe_sensor(samples)
    return Dataset(root, "recordings", samples, format=describe_format(samples), width=width, height=height)
