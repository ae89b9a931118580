"""N-MNIST dataset folders in both layouts: tonic/original (Train/<digit>/<id>.bin) and flat files with label lists."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..errors import InputError
from ..events import EventBatch

#: Extensions of N-MNIST sample files (`.bs2` is byte-for-byte the `.bin` format).
SAMPLE_EXTENSIONS = (".bin", ".bs2")
_SPLIT_DIRS = {"train": "train", "test": "test"}
_LIST_NAME = re.compile(r"^(train|test)[^.]*\.txt$", re.IGNORECASE)


@dataclass(frozen=True)
class Sample:
    """One labelled N-MNIST recording inside a dataset folder."""

    path: Path
    sample_id: str
    label: int | None
    split: str

    def load(self, *, cancel=None) -> EventBatch:
        """Decode the file into an EventBatch with `sample` and `label` set (InputError if unreadable or empty)."""
        from . import read_events

        if not self.path.is_file():
            raise InputError(f"{self.path}: sample file is missing; restore it or fix the dataset folder")
        return read_events(self.path, sample=self.sample_id, label=self.label, cancel=cancel)

    @property
    def n_events(self) -> int:
        """Event count from the file size (exact for N-MNIST, see nmnist.count_events)."""
        from .nmnist import count_events

        return count_events(self.path)


@dataclass
class Dataset:
    """An ordered list of samples with their splits; `layout` is 'flat' or 'tonic'."""

    root: Path
    layout: str
    samples: list[Sample] = field(default_factory=list)
    format: str = "N-MNIST"
    width: int = 34
    height: int = 34

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self):
        return iter(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]

    @property
    def splits(self) -> list[str]:
        """Split names in first-seen order (e.g. ['train', 'test'])."""
        return list(dict.fromkeys(s.split for s in self.samples))

    def split(self, name: str) -> "Dataset":
        """The samples of one split, as a Dataset of its own."""
        if name not in self.splits:
            raise InputError(f"{self.root}: no split {name!r}; available: {', '.join(self.splits) or 'none'}")
        return Dataset(self.root, self.layout, [s for s in self.samples if s.split == name],
                       self.format, self.width, self.height)

    @property
    def classes(self) -> dict[int, int]:
        """label -> number of samples, sorted by label (unlabelled samples are not counted)."""
        counts: dict[int, int] = {}
        for s in self.samples:
            if s.label is not None:
                counts[s.label] = counts.get(s.label, 0) + 1
        return dict(sorted(counts.items()))

    def split_counts(self) -> dict[str, int]:
        return {name: sum(1 for s in self.samples if s.split == name) for name in self.splits}

    def load_all(self, progress: bool = True) -> list[EventBatch]:
        """Decode every sample, in order, with a tqdm bar on stderr (only when stderr is a terminal)."""
        from tqdm import tqdm

        bar = tqdm(self.samples, desc=f"loading {self.root.name}", unit="sample", file=sys.stderr,
                   disable=not progress or not sys.stderr.isatty())
        return [s.load() for s in bar]


def _numeric_key(p: Path):
    return (0, int(p.stem), p.name) if p.stem.isdigit() else (1, 0, p.name)


@lru_cache(maxsize=64)
def _parse_label_list(path: Path, mtime_ns: int) -> dict[str, int]:
    """sample id -> class from a `#sample #class` list (whitespace separated, CRLF tolerated)."""
    labels: dict[str, int] = {}
    text = path.read_bytes().decode("utf-8", "replace")
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) < 2 or not parts[1].lstrip("-").isdigit():
            raise InputError(f"{path}: line {n} is {line!r}, expected '<sample> <class>'; fix the label list")
        sample = parts[0]
        if sample.lower().endswith(SAMPLE_EXTENSIONS):  # some lists name files, not ids
            sample = sample.rsplit(".", 1)[0]
        labels[sample] = int(parts[1])
    return labels


def read_label_list(path: Path) -> dict[str, int]:
    """sample id -> class of one label list (parsed once per file version)."""
    return dict(_parse_label_list(Path(path), Path(path).stat().st_mtime_ns))


@lru_cache(maxsize=64)
def _label_lists(folder: Path, mtime_ns: int) -> tuple[tuple[str, Path], ...]:
    found = [(m.group(1).lower(), p) for p in folder.iterdir()
             if (m := _LIST_NAME.match(p.name)) and p.is_file()]
    return tuple(sorted(found, key=lambda sp: (sp[0] != "train", sp[1].name)))


def label_lists(folder: Path) -> list[tuple[str, Path]]:
    """(split, list path) for every train*.txt / test*.txt in a folder, train first.

    Cached per folder version (its mtime), so reading many files of one folder lists it once.
    """
    return list(_label_lists(Path(folder), Path(folder).stat().st_mtime_ns))


def _sample_file(folder: Path, sample_id: str) -> Path | None:
    for ext in SAMPLE_EXTENSIONS:
        p = folder / f"{sample_id}{ext}"
        if p.is_file():
            return p
    return None


def _open_flat(root: Path, lists: list[tuple[str, Path]]) -> Dataset:
    samples = []
    for split, lst in lists:
        for sample_id, label in read_label_list(lst).items():
            p = _sample_file(root, sample_id)
            if p is None:
                raise InputError(f"{lst} lists sample {sample_id} but {root} has no {sample_id}.bs2 or "
                                 f"{sample_id}.bin; restore the file or remove it from the list")
            samples.append(Sample(p, sample_id, label, split))
    return Dataset(root, "flat", samples)


def _split_dirs(root: Path) -> list[tuple[str, Path]]:
    dirs = [(p.name.lower(), p) for p in root.iterdir() if p.is_dir() and p.name.lower() in _SPLIT_DIRS]
    return sorted(dirs, key=lambda sp: sp[0] != "train")


def _open_tonic(root: Path, dirs: list[tuple[str, Path]]) -> Dataset:
    samples = []
    for split, d in dirs:
        for digit in sorted((c for c in d.iterdir() if c.is_dir() and c.name.isdigit()), key=lambda c: int(c.name)):
            files = [f for f in digit.iterdir() if f.is_file() and f.suffix.lower() in SAMPLE_EXTENSIONS]
            samples += [Sample(f, f.stem, int(digit.name), split) for f in sorted(files, key=_numeric_key)]
    if not samples:
        raise InputError(f"{root}: no <digit>/<id>.bin files in {', '.join(str(d) for _, d in dirs)}; "
                         "point at an N-MNIST folder laid out as Train/<digit>/<id>.bin")
    return Dataset(root, "tonic", samples)


def open_dataset(path: str | Path) -> Dataset:
    """Open an N-MNIST folder: flat with train*.txt/test*.txt label lists, or Train/ and Test/ by digit."""
    root = Path(path)
    if not root.exists():
        raise InputError(f"{root}: no such folder; check the path")
    if not root.is_dir():
        raise InputError(f"{root}: is a file, not a dataset folder; pass the folder that holds the samples")
    lists = label_lists(root)
    if lists:
        return _open_flat(root, lists)
    dirs = _split_dirs(root)
    if dirs:
        return _open_tonic(root, dirs)
    subdirs = [c for c in root.iterdir() if c.is_dir()]
    wrapped = [c for c in subdirs if c.name.lower() == "nmnist"] or (subdirs if len(subdirs) == 1 else [])
    if wrapped and (_split_dirs(wrapped[0]) or label_lists(wrapped[0])):
        # tonic.datasets.NMNIST(save_to=root) downloads into root/NMNIST/{Train,Test}.
        return open_dataset(wrapped[0])
    if any(c.name.isdigit() for c in subdirs):
        # One split of the tonic layout on its own (e.g. NMNIST/Test): <digit>/<id>.bin inside.
        name = root.name.lower() if root.name.lower() in _SPLIT_DIRS else "all"
        return _open_tonic(root, [(name, root)])
    raise InputError(f"{root}: not an N-MNIST dataset folder (no train*.txt/test*.txt label lists, no "
                     "Train/ or Test/ subfolders, no <digit>/ subfolders); point at such a folder "
                     "or at a single event file")


def label_for_file(path: Path) -> tuple[str | None, int | None]:
    """(sample id, label) of an N-MNIST file that sits in a dataset folder, else (stem, None).

    Flat layout: the label lists beside the file; tonic layout: the `<digit>/` folder it is in.
    """
    path = Path(path)
    folder = path.parent
    try:
        for _, lst in label_lists(folder):
            labels = read_label_list(lst)
            if path.stem in labels:
                return path.stem, labels[path.stem]
    except OSError:
        pass
    if folder.name.isdigit() and 0 <= int(folder.name) <= 9:
        return path.stem, int(folder.name)
    return path.stem, None
