"""Labelled recordings: a long recording plus `<name>_labels.csv` rows `class,start_us,end_us`, cut into samples.

This is the DVS Gesture convention. Each recording `<name>.aedat4` (or `.aedat`, `.raw`, `.bin`,
`.bs2`) has its labels beside it in `<name>_labels.csv`: one row per sample, `class,start_us,end_us`,
an optional header row, class names or numbers. **Times are absolute timestamps of the recording**
(the clock its events carry, as in DVS Gesture), not offsets from its first event; a sample holds
the events with start_us <= t < end_us.

Splits: pairs inside `Train|train/` and `Test|test/` subfolders belong to those splits; pairs
directly in the folder are split by DVS Gesture's `trials_to_train.txt` / `trials_to_test.txt` (one
recording file name per line; a name in both lists is refused) when present, else they form the split
of the folder's own name when it is `Train` or `Test` (as class folders do), else the split 'all'.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from ..errors import InputError
from .classes import class_name
from .folders import own_split, split_dirs
from .probe import extensions
from .samples import Dataset, Sample, describe_format, describe_sensor, unique_ids

LABELS_SUFFIX = "_labels.csv"
_TRIAL_LISTS = {"trials_to_train.txt": "train", "trials_to_test.txt": "test"}


def recording_pairs(folder: Path, *, strict: bool = False) -> list[tuple[Path, Path]]:
    """(recording, label file) for every `<name>_labels.csv` in a folder with a `<name>.<ext>` beside it.

    With `strict`, a label file without its recording is an InputError (its samples would be lost).
    """
    with os.scandir(folder) as it:
        names = {e.name for e in it}
    pairs = []
    for name in sorted(names):
        if not name.lower().endswith(LABELS_SUFFIX) or name.startswith("."):
            continue
        stem = name[: -len(LABELS_SUFFIX)]
        found = next((c for ext in extensions() for c in (stem + ext, stem + ext.upper())
                      if c in names and (folder / c).is_file()), None)
        if found is not None:
            pairs.append((folder / found, folder / name))
        elif strict:
            raise InputError(f"{folder / name}: no recording {stem}.aedat4 (or {', '.join(extensions())}) beside "
                             "it; restore the recording or remove its label file")
    return pairs


def read_label_csv(path: str | Path) -> list[tuple[str, int, int]]:
    """(class name, start_us, end_us) rows of a label file; one-line InputError naming the line if one is bad."""
    path = Path(path)
    text = path.read_bytes().decode("utf-8-sig", "replace")
    rows, first = [], True
    for n, row in enumerate(csv.reader(io.StringIO(text)), 1):
        cells = [c.strip() for c in row]
        if not any(cells):
            continue
        header, first = first and len(cells) >= 2 and not _is_int(cells[1]), False
        if header:
            continue  # e.g. class,startTime_usec,endTime_usec
        if len(cells) < 3 or not cells[0] or not _is_int(cells[1]) or not _is_int(cells[2]) \
                or int(cells[2]) <= int(cells[1]):
            raise InputError(f"{path}: line {n} is {','.join(row)!r}, expected class,start_us,end_us with whole "
                             "microseconds and end after start; fix the label file")
        rows.append((class_name(cells[0], f"{path}: line {n}"), int(cells[1]), int(cells[2])))
    return rows


def _is_int(s: str) -> bool:
    return s.lstrip("-").isdigit()


def _trial_splits(folder: Path) -> dict[str, str] | None:
    """Recording file name -> split from trials_to_train.txt / trials_to_test.txt, or None without them."""
    found = None
    for name, split in _TRIAL_LISTS.items():
        p = folder / name
        if p.is_file():
            found = found or {}
            for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1):
                rec = Path(line.strip()).name
                if not rec:
                    continue
                if found.get(rec, split) != split:
                    raise InputError(f"{p}: line {n} lists {rec!r}, which trials_to_train.txt lists too; a recording "
                                     "belongs to one split: remove it from one of the two lists")
                found[rec] = split
    return found


def _samples(pairs, split_of) -> list:
    out = []
    for rec, labels in pairs:
        split = split_of(rec)
        for k, (name, start, end) in enumerate(read_label_csv(labels), 1):
            out.append(Sample(rec, f"{rec.stem}#{k}", None, split, label_name=name, start_us=start, end_us=end))
    return out


def open_labelled(root: Path):
    """The samples of every recording + label file pair under root (directly, or in Train/ and Test/)."""
    samples = []
    pairs = recording_pairs(root, strict=True)
    if pairs:
        trials = _trial_splits(root)

        def split_of(rec: Path) -> str:
            if trials is None:
                return own_split(root)
            if rec.name not in trials:
                raise InputError(f"{rec}: listed in neither trials_to_train.txt nor trials_to_test.txt in {root}; "
                                 "add it to one of them")
            return trials[rec.name]

        samples += _samples(pairs, split_of)
    for split, d in split_dirs(root):
        samples += _samples(recording_pairs(d, strict=True), lambda rec, split=split: split)
    if not samples:
        raise InputError(f"{root}: its <name>{LABELS_SUFFIX} files list no samples; add class,start_us,end_us rows")
    samples = unique_ids(samples, root)
    width, height = describe_sensor(samples)
    return Dataset.labelled(root, "labelled-recordings", samples, format=describe_format(samples),
                            width=width, height=height)
