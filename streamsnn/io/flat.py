"""The flat layout: event files beside `train*.txt` / `test*.txt` label lists (N-MNIST's small sets, `1.bs2` ...)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError
from .labellists import read_labels
from .probe import extensions
from .samples import Dataset, Sample, describe_format, describe_sensor


def event_files(folder: Path) -> dict[str, Path]:
    """Event files directly in a folder, by file name and by stem (one directory listing, no stat calls).

    When two files share a stem (`1.bin` and `1.bs2`) the stem names the first in extension order.
    """
    order = {ext: i for i, ext in enumerate(extensions())}
    found: dict[str, Path] = {}
    stems: dict[str, tuple[int, Path]] = {}
    with os.scandir(folder) as it:
        for entry in it:
            stem, dot, ext = entry.name.rpartition(".")
            rank = order.get("." + ext.lower()) if dot else None
            if rank is None or not stem or not entry.is_file():
                continue
            path = Path(entry.path)
            found[entry.name] = path
            if stem not in stems or rank < stems[stem][0]:
                stems[stem] = (rank, path)
    return {**{stem: p for stem, (_, p) in stems.items()}, **found}


def open_flat(root: Path, lists: list[tuple[str, Path]]):
    """The samples every label list names, in list order, with their class names."""
    files = event_files(root)
    samples, listed = [], {}
    for split, lst in lists:
        for sample_id, name in read_labels(lst).items():
            if sample_id in listed:  # in two lists: once per split at most, and with one class
                other_split, other, other_name = listed[sample_id]
                if other_split != split or other_name != name:
                    why = ("a sample in both splits is scored on what it trained on" if other_split != split
                           else f"there with class {other_name!r}, here {name!r}")
                    raise InputError(f"{lst} lists sample {sample_id}, which {other.name} lists too ({why}); "
                                     "remove it from one list")
                continue
            listed[sample_id] = (split, lst, name)
            p = files.get(sample_id)
            if p is None:
                raise InputError(f"{lst} lists sample {sample_id} but {root} has no event file {sample_id}.* "
                                 f"(e.g. {sample_id}.bs2 or {sample_id}.bin); restore the file or remove it "
                                 "from the list")
            samples.append(Sample(p, sample_id, None, split, label_name=name))
    width, height = describe_sensor(samples)
    return Dataset.labelled(root, "flat", samples, format=describe_format(samples), width=width, height=height)
