"""Sample and Dataset (splits, class names in index order): what every dataset layout builds and `open_dataset` returns.

The layouts (`flat`, `folders`, `labelled`, `tonicdata`) import this module; `dataset.open_dataset`
imports the layouts. A Sample is loaded with `read.read_events` (a whole file), `segments.read_segment`
(a time slice of a long recording) or its own `item` (a tonic dataset item).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from ..errors import InputError
from ..events import EventBatch
from .classes import check_distinct, class_order
from .isolated import DecodeCancelled
from .probe import empty_sample, exact_events, format_of, probe
from .read import read_events
from .segments import read_segment


@dataclass(frozen=True)
class Sample:
    """One sample of a dataset: a whole file, a time slice of a longer recording, or a tonic dataset item.

    `label` is the class index into `Dataset.classes` (None when unlabelled) and `label_name` the
    class name. `start_us`/`end_us` cut the recording at `path` to events with start <= t < end
    (absolute timestamps, as the recording stores them). `item` loads a sample that is not a file of
    ours (a tonic dataset item).
    """

    path: Path
    sample_id: str
    label: int | None
    split: str
    label_name: str | None = None
    start_us: int | None = None
    end_us: int | None = None
    item: Callable[[], EventBatch] | None = field(default=None, compare=False, repr=False)

    def load(self, *, cancel=None) -> EventBatch:
        """Decode the sample into an EventBatch with `sample`, `label` and `meta["label_name"]` set.

        InputError (one line) when it cannot be read or holds no events (`streamsnn.io.empty_sample`;
        a time slice without events says so with its label times). `cancel` (a threading.Event)
        abandons a native decode in progress (files and labelled recordings; a tonic item decodes
        in this thread and is only refused before it starts).
        """
        if self.item is not None:
            if cancel is not None and cancel.is_set():
                raise DecodeCancelled(f"{self.path}: sample {self.sample_id}: reading was cancelled")
            batch = self.item()
            if not len(batch):
                raise empty_sample(batch.source or self.path)
        else:
            if not self.path.is_file():
                raise InputError(f"{self.path}: sample file is missing; restore it or fix the dataset folder")
            if self.start_us is not None:
                batch = read_segment(self.path, self.start_us, self.end_us, self.sample_id, cancel=cancel)
            else:
                # sample and label given: an N-MNIST file does not look for its label list again
                batch = read_events(self.path, sample=self.sample_id, label=self.label, cancel=cancel)
        meta = dict(batch.meta)
        if self.label_name is not None:
            meta["label_name"] = self.label_name
        return batch.with_meta(sample=self.sample_id, label=self.label, meta=meta)

    @property
    def n_events(self) -> int | None:
        """Event count without decoding where the file size gives it exactly (N-MNIST files), else None."""
        if self.item is not None or self.start_us is not None:
            return None
        return exact_events(self.path)


@dataclass
class Dataset:
    """An ordered list of samples with their splits and class names.

    `layout`: 'flat' (label lists), 'class-folders', 'labelled-recordings', 'tonic' (a tonic dataset
    class) or 'recordings' (unlabelled). `classes` are the class names in index order (a sample's
    `label` indexes it). `width` x `height` is the sensor size when the headers tell it cheaply, else
    None. `format` names the file format(s).
    """

    root: Path
    layout: str
    samples: list[Sample] = field(default_factory=list)
    format: str = ""
    width: int | None = None
    height: int | None = None
    classes: list[str] = field(default_factory=list)
    name: str | None = None  # what the user named: a folder path or a `tonic:` spec

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self):
        return iter(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]

    def __str__(self) -> str:
        return self.name or str(self.root)

    @classmethod
    def labelled(cls, root: Path, layout: str, samples: list[Sample], **kw) -> Dataset:
        """A dataset whose samples carry `label_name`s: the class list and each sample's index are set here."""
        classes = kw.pop("classes", None) or class_order(s.label_name for s in samples if s.label_name is not None)
        check_distinct(root, classes)
        index = {name: i for i, name in enumerate(classes)}
        samples = [s if s.label_name is None else replace(s, label=index[s.label_name]) for s in samples]
        return cls(root, layout, samples, classes=classes, **kw)

    @property
    def sensor_size(self) -> tuple[int, int] | None:
        return (self.width, self.height) if self.width and self.height else None

    @property
    def is_labelled(self) -> bool:
        """True when samples have labels (every layout but a folder of unlabelled recordings)."""
        return any(s.label is not None for s in self.samples)

    @property
    def splits(self) -> list[str]:
        """Split names in first-seen order (e.g. ['train', 'test'])."""
        return list(dict.fromkeys(s.split for s in self.samples))

    def split(self, name: str) -> Dataset:
        """The samples of one split, as a Dataset of its own with the same class list (same indices)."""
        if name not in self.splits:
            raise InputError(f"{self}: no split {name!r}; available: {', '.join(self.splits) or 'none'}")
        return replace(self, samples=[s for s in self.samples if s.split == name])

    def class_counts(self) -> dict[str, int]:
        """Class name -> number of samples, in class index order (classes without samples show 0)."""
        counts = dict.fromkeys(self.classes, 0)
        for s in self.samples:
            if s.label_name is not None:
                counts[s.label_name] = counts.get(s.label_name, 0) + 1
        return counts

    def split_counts(self) -> dict[str, int]:
        return {name: sum(1 for s in self.samples if s.split == name) for name in self.splits}

    def formats(self) -> dict[str, int]:
        """Format name -> number of samples (by file extension; a tonic dataset has one format)."""
        counts: dict[str, int] = {}
        for s in self.samples:
            f = (format_of(s.path) if s.item is None else None) or self.format
            counts[f] = counts.get(f, 0) + 1
        return counts

    def events(self) -> int | None:
        """Total events when every sample's count is known without decoding (N-MNIST files), else None."""
        total = 0
        for s in self.samples:
            n = s.n_events
            if n is None:
                return None
            total += n
        return total

    def require_labels(self) -> None:
        """Raise InputError in one line when the samples carry no labels (training needs them)."""
        if not self.is_labelled:
            raise InputError(
                f"{self}: holds {len(self)} unlabelled recordings; training and evaluation need labels: put the "
                "files in Train/<class>/ and Test/<class>/ folders, add train*.txt/test*.txt label lists, or put a "
                "<name>_labels.csv (class,start_us,end_us rows) beside each recording")

    def load_all(self, progress: bool = True) -> list[EventBatch]:
        """Decode every sample, in order, with a tqdm bar on stderr (only when stderr is a terminal)."""
        from tqdm import tqdm

        bar = tqdm(self.samples, desc=f"loading {self.root.name}", unit="sample", file=sys.stderr,
                   disable=not progress or not sys.stderr.isatty())
        return [s.load() for s in bar]


def unique_ids(samples: list[Sample], root: Path) -> list[Sample]:
    """Keep sample ids (file stems) when they are unique, else prefix each with its file's folders under `root`."""
    stems = [s.sample_id for s in samples]
    if len(set(stems)) == len(stems):
        return samples
    out = []
    for s in samples:
        try:  # `<stem>` becomes `<folders>/<stem>`; a segment's `#k` stays
            rel = s.path.relative_to(root).with_suffix("").as_posix()
        except ValueError:
            rel = s.path.stem
        out.append(replace(s, sample_id=rel + s.sample_id[len(s.path.stem):]))
    return out


def describe_sensor(samples: list[Sample]) -> tuple[int | None, int | None]:
    """(width, height) from the header of the first file of each format; (None, None) if unknown or mixed.

    A header that fails `probe` leaves the size unknown here; loading that sample says why.
    """
    seen: dict[str, tuple[int, int] | None] = {}
    for s in samples:
        ext = s.path.suffix.lower()
        if ext not in seen:
            try:
                seen[ext] = probe(s.path)[1]
            except InputError:
                seen[ext] = None
    sizes = set(seen.values())
    if len(sizes) == 1 and None not in sizes:
        return next(iter(sizes))
    return None, None


def describe_format(samples: list[Sample]) -> str:
    """The format of the samples' files, or the formats joined by ', ' when they differ."""
    names = dict.fromkeys(format_of(s.path) or s.path.suffix for s in samples)
    return ", ".join(names)
