"""Label lists `train*.txt` / `test*.txt` (`<sample> <class>` a line) read once per version; an N-MNIST file's label.

This is N-MNIST's small-set layout (`1.bs2` ... with `train1K.txt`, `test100.txt`); classes may be
numbers (N-MNIST digits: the number is the class index) or names (`xclub02i club`, `7 big dog`: the rest of the
line). A listed sample may be named by its id (the file's stem) or by its file name; its file may have any extension
streamsnn reads.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path

from ..errors import InputError
from .classes import class_name
from .probe import is_event_name

log = logging.getLogger(__name__)

_LIST_NAME = re.compile(r"^(train|test)[^.]*\.txt$", re.IGNORECASE)


@lru_cache(maxsize=64)
def _parse(path: Path, mtime_ns: int) -> tuple[tuple[str, str], ...]:
    """(sample id, class name) pairs of a label list, in file order: the sample and its class, separated by tabs
    (the class may then hold spaces: `7<TAB>big dog`) or else by spaces (the class is the second field); further
    fields and a trailing `# comment` are ignored, and a space-separated line with more fields is named once in a
    WARNING (a name holding spaces would be cut to its first word); CRLF and a UTF-8 byte-order mark tolerated."""
    pairs, seen, extra = [], {}, 0
    text = path.read_bytes().decode("utf-8-sig", "replace")
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split(" #", 1)[0].split("\t#", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split("\t") if p.strip()] if "\t" in line else line.split()
        if len(parts) < 2:
            raise InputError(f"{path}: line {n} is {line!r}, expected '<sample> <class>'; fix the label list")
        extra += "\t" not in line and len(parts) > 2
        sample = parts[0].removeprefix("./")
        if is_event_name(sample):  # some lists name files, not ids
            sample = sample.rsplit(".", 1)[0]
        name = class_name(" ".join(parts[1].split()), f"{path}: line {n}")
        if sample in seen:
            first, line_first = seen[sample]
            if name != first:
                raise InputError(f"{path}: line {n} gives sample {sample} class {name!r}, but line {line_first} gave "
                                 f"it {first!r}; keep the right one")
            continue
        seen[sample] = (name, n)
        pairs.append((sample, name))
    if extra:
        log.warning("%s: %d line(s) hold more than two space-separated fields; the class is the second field (a class "
                    "name holding spaces needs a tab between the sample and the class)", path, extra)
    return tuple(pairs)


def read_labels(path: str | Path) -> dict[str, str]:
    """sample id -> class name of one label list (parsed once per file version)."""
    path = Path(path)
    return dict(_parse(path, path.stat().st_mtime_ns))


def read_label_list(path: str | Path) -> dict[str, int]:
    """sample id -> class number of a label list whose classes are numbers (N-MNIST's lists)."""
    out = {}
    for sample, name in read_labels(path).items():
        if not name.lstrip("-").isdigit():
            raise InputError(f"{path}: sample {sample} has class {name!r}, not a number; "
                             "open the folder with open_dataset to use class names")
        out[sample] = int(name)
    return out


@lru_cache(maxsize=64)
def _label_lists(folder: Path, mtime_ns: int) -> tuple[tuple[str, Path], ...]:
    found = [(m.group(1).lower(), p) for p in folder.iterdir()
             if (m := _LIST_NAME.match(p.name)) and p.is_file()]
    return tuple(sorted(found, key=lambda sp: (sp[0] != "train", sp[1].name)))


def label_lists(folder: str | Path) -> list[tuple[str, Path]]:
    """(split, list path) for every train*.txt / test*.txt in a folder, train first.

    Cached per folder version (its mtime), so reading many files of one folder lists it once.
    """
    folder = Path(folder)
    return list(_label_lists(folder, folder.stat().st_mtime_ns))


def label_for_file(path: Path) -> tuple[str | None, int | None]:
    """(sample id, class number) of an N-MNIST file that sits in a dataset folder, else (stem, None).

    Flat layout: the label lists beside the file; class folders: the `<digit>/` folder it is in.
    """
    path = Path(path)
    folder = path.parent
    try:
        lists = label_lists(folder)
    except OSError:
        lists = []
    for _, lst in lists:
        try:  # a list beside it that is not a label list (train_notes.txt) says nothing about this file
            labels = read_labels(lst)
        except (OSError, InputError):
            continue
        if path.stem in labels:
            name = labels[path.stem]
            return path.stem, int(name) if name.isdigit() else None
    if folder.name.isdigit() and 0 <= int(folder.name) <= 9:
        return path.stem, int(folder.name)
    return path.stem, None
