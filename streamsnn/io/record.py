"""Recording labelled samples from a live stream into a class-folders dataset (`streamsnn record`, the live view).

The layout is the one `open_dataset` reads as class folders: `<folder>/Train/<class>/<class>-<n>.aedat4`
and `<folder>/Test/<class>/<class>-<n>.aedat4`, AEDAT4 written by dv-processing (the header holds the
sensor size). The split rule: the n-th sample of a class (counting the class's files already in both
splits, from 1) goes to Test when n is a multiple of `test_every` (default 5: samples 5, 10, 15, ... of
each class), else to Train. A sample is written to a hidden temporary file `.partial-<name>` in its
class folder and renamed when complete, so a reader never sees half a file; temporary files left by a
crash are removed when a Recorder opens the folder.

    rec = Recorder("my-data", seconds=2.0)
    rec.start("cup")
    for batch in source:            # EventBatches of one live stream
        done = rec.feed(batch)      # a Recorded once `seconds` of stream were captured, else None
    rec.capture("cup", batch)       # or write one whole EventBatch as a sample at once
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .. import defaults as d
from ..classnames import find
from ..errors import ConfigError, InputError
from ..events import EVENT_DTYPE, EventBatch
from ..synth.writer import write_aedat4
from ..textsafe import printable, shown
from .classes import class_name
from .folders import class_dirs
from .labellists import label_lists
from .probe import probe

#: Prefix of the temporary file a sample is written to before it is renamed (hidden: never read as a sample).
PARTIAL = ".partial-"
SPLITS = ("Train", "Test")


@dataclass(frozen=True)
class Recorded:
    """One written sample: its class, split ('train' or 'test'), file, number of events and length in seconds."""

    label: str
    split: str
    path: Path
    events: int
    seconds: float


def sample_name(raw: str) -> str:
    """A class name fit to be a folder name (canonical as `io.classes.class_name` makes it); InputError
    when it holds a path separator or starts with a dot (a hidden folder is never read as a class)."""
    if any(sep in raw for sep in ("/", "\\", "\0")):
        raise InputError(f"class name '{shown(raw)}' holds a path separator; name the class without / or \\")
    name = class_name(raw)  # its error names the class
    if name.startswith("."):
        raise InputError(f"class name '{shown(name)}' starts with a dot, which hides its folder; drop the dot")
    return name


def split_for(n: int, test_every: int) -> str:
    """The split of a class's n-th sample (from 1): 'test' when n is a multiple of test_every, else 'train'."""
    return "test" if test_every and n % test_every == 0 else "train"


class Recorder:
    """Captures samples of `seconds` of stream each into `folder` (see the module doc for the layout).

    `start(name)` arms a sample of that class: it begins at the first event fed after it, and is written
    once the events reach `seconds` later (stream time: the events' timestamps; a clock that jumps back,
    as a synthetic camera's does between digits, continues where it was). `finish()` ends it early with
    what it holds (InputError when that is nothing). `notice` gets the one-line messages (leftovers
    removed).
    """

    def __init__(self, folder: str | Path, seconds: float = d.RECORD_SECONDS, *,
                 test_every: int = d.RECORD_TEST_EVERY, notice: Callable[[str], None] = print) -> None:
        if not (seconds > 0 and np.isfinite(seconds)):
            raise ConfigError(f"--seconds must be a positive number, got {seconds}")
        if test_every < 0:
            raise ConfigError(f"--test-every must be 0 (no Test split) or positive, got {test_every}")
        self.folder = Path(folder)
        self.seconds = float(seconds)
        self.test_every = test_every
        self.notice = notice
        self._open_folder()
        self.sensor: tuple[int, int] | None = None  # the sensor size of the samples in the folder
        self.counts: dict[str, dict[str, int]] = self._existing()
        self._label: str | None = None
        self._parts: list[np.ndarray] = []
        self._start = self._last = self._shift = 0
        self._began = False
        self._size: tuple[int, int] = (0, 0)

    # -- the folder ---------------------------------------------------------------------------
    def _open_folder(self) -> None:
        f = self.folder
        if f.exists() and not f.is_dir():
            raise InputError(f"{printable(str(f))} is a file; give a folder to record into")
        try:
            f.mkdir(parents=True, exist_ok=True)
            probe = f / f"{PARTIAL}probe"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise InputError(f"cannot write to {printable(str(f))} ({exc.strerror or exc}); "
                             "give a folder you may write to") from None
        other = [p.name for _, p in label_lists(f)] + [p.name for p in f.glob("*_labels.csv")]
        if other:  # read as that layout first: the class folders would never be read
            raise InputError(f"{printable(str(f))} holds a dataset of another layout ({printable(other[0])}); record "
                             "writes Train/<class>/ and Test/<class>/ folders: give a new folder or one record made")
        left = [p for split in SPLITS for p in (f / split).glob(f"*/{PARTIAL}*")]
        for p in left:
            p.unlink(missing_ok=True)
        if left:
            self.notice(f"removed {len(left)} unfinished sample file(s) left by an interrupted recording in "
                        f"{printable(str(f))}")

    def _existing(self) -> dict[str, dict[str, int]]:
        """Class -> {'train': n, 'test': n}: the event files already in the class folders."""
        counts: dict[str, dict[str, int]] = {}
        for split in SPLITS:
            if (self.folder / split).is_dir():
                for name, files in class_dirs(self.folder / split):
                    counts.setdefault(name, {"train": 0, "test": 0})[split.lower()] = len(files)
                    self.sensor = self.sensor or probe(files[0])[1]
        return counts

    @property
    def classes(self) -> list[str]:
        return list(self.counts)

    def resolve(self, raw: str) -> str:
        """The class `raw` names: an existing class matching it regardless of case, else a new valid name."""
        name = sample_name(raw)
        at = find(name, self.counts)
        return self.classes[at] if at is not None else name

    # -- capturing ----------------------------------------------------------------------------
    @property
    def recording(self) -> str | None:
        """The class of the sample being captured, or None."""
        return self._label

    def start(self, raw: str) -> str:
        """Arm a sample of class `raw` (see `resolve`); returns the class name. ValueError while one runs."""
        if self._label is not None:
            raise ValueError(f"already recording '{self._label}'")
        self._label = self.resolve(raw)
        self._parts, self._began = [], False
        return self._label

    def cancel(self) -> None:
        """Drop the sample being captured (nothing is written)."""
        self._label, self._parts, self._began = None, [], False

    def feed(self, batch: EventBatch) -> Recorded | None:
        """Take one batch of the stream; returns the Recorded sample when this batch completed one."""
        ev = batch.events
        if ev.size:
            self._same_sensor(batch)  # before a sample is armed: the first batch of another sensor is refused
            t = ev["t"]
            if int(t[0]) + self._shift < self._last:  # the clock jumped back: carry on from where it was
                self._shift = self._last - int(t[0])
            self._last = int(t[-1]) + self._shift
        if self._label is None or not ev.size:
            return None
        t = ev["t"] + self._shift
        if not self._began:
            self._began, self._start, self._size = True, int(t[0]), (batch.width, batch.height)
        end = self._start + round(self.seconds * 1e6)
        inside = t < end
        part = ev[inside].copy()
        part["t"] = t[inside] - self._start
        self._parts.append(part)
        if inside.all():
            return None
        return self.finish()

    def _same_sensor(self, batch: EventBatch) -> tuple[int, int]:
        """The batch's sensor size; InputError when the folder holds samples of another sensor."""
        size = (batch.width, batch.height)
        if self.sensor and size != self.sensor:
            raise InputError(f"{printable(str(self.folder))} holds samples of a {self.sensor[0]}x{self.sensor[1]} "
                             f"sensor, this source is {size[0]}x{size[1]}; record into another folder")
        return size

    def finish(self) -> Recorded:
        """Write the sample being captured with what it holds; InputError when it holds no events."""
        label = self._label
        if label is None:
            raise ValueError("no sample is being recorded")
        events = np.concatenate(self._parts) if self._parts else np.empty(0, EVENT_DTYPE)
        size = self._size
        self.cancel()
        if not events.size:
            raise InputError(f"the sample of '{shown(label)}' holds no events (nothing moved in front of the "
                             "sensor, or the stream is silent); check the source and record it again")
        return self.capture(label, EventBatch(events, *size))

    def capture(self, raw: str, batch: EventBatch) -> Recorded:
        """Write `batch` (all of it) as the next sample of class `raw`, into the split the rule gives."""
        label = self.resolve(raw)
        if not len(batch):
            raise InputError(f"the sample of '{shown(label)}' holds no events; record it again")
        self.sensor = self._same_sensor(batch)
        counts = self.counts.setdefault(label, {"train": 0, "test": 0})
        split = split_for(counts["train"] + counts["test"] + 1, self.test_every)
        folder = self.folder / split.capitalize() / label
        n = counts["train"] + counts["test"] + 1
        while any((self.folder / s / label / f"{label}-{n}.aedat4").exists() for s in SPLITS):
            n += 1
        path = folder / f"{label}-{n}.aedat4"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_aedat4(path, batch, camera="streamsnn-record", tmp=folder / f"{PARTIAL}{path.name}")
        except OSError as exc:
            raise InputError(f"cannot write {printable(str(path))} ({exc.strerror or exc}); free space or give "
                             "another folder") from None
        counts[split] += 1
        t = batch.events["t"]
        return Recorded(label, split, path, len(batch), (int(t[-1]) - int(t[0])) / 1e6)

    def summary(self) -> str:
        """One line per class: `[k] name  n (train a, test b)`."""
        if not self.counts:
            return "  (no classes yet)"
        return "\n".join(f"  [{k}] {shown(name)}  {c['train'] + c['test']} (train {c['train']}, test {c['test']})"
                         for k, (name, c) in enumerate(self.counts.items(), 1))
