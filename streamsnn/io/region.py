"""The active region of a dataset: the box of the sensor where its events fall, robust to noise and hot pixels.

A model's default region of interest comes from it, so that a small object on a big sensor (POKER-DVS
pips fill about 30x32 pixels of a 128x128 DVS) is not shrunk to a few input pixels.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class Region:
    """A box of the sensor: columns x0..x0+width-1, rows y0..y0+height-1, and how it was measured."""

    x0: int
    y0: int
    width: int
    height: int
    sensor: tuple[int, int]
    samples: int = 0      # samples decoded to measure it
    events: int = 0       # events counted
    coverage: float = 1.0  # fraction of those events inside the box
    class_coverage: float = 1.0  # the least fraction of one class's events inside the box

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, width, height)."""
        return self.x0, self.y0, self.width, self.height

    def padded(self, margin: int) -> Region:
        """The box grown by `margin` pixels on every side, clipped to the sensor."""
        x0, y0 = max(0, self.x0 - margin), max(0, self.y0 - margin)
        x1 = min(self.sensor[0], self.x0 + self.width + margin)
        y1 = min(self.sensor[1], self.y0 + self.height + margin)
        return Region(x0, y0, x1 - x0, y1 - y0, self.sensor, self.samples, self.events, self.coverage,
                      self.class_coverage)

    def as_dict(self) -> dict:
        return {"x0": self.x0, "y0": self.y0, "width": self.width, "height": self.height,
                "sensor": list(self.sensor), "samples": self.samples, "events": self.events,
                "coverage": round(self.coverage, 4), "class_coverage": round(self.class_coverage, 4)}


def _box_mean(c: np.ndarray, r: int) -> np.ndarray:
    """Mean over the (2r+1) x (2r+1) neighbourhood of every pixel (zeros beyond the edges)."""
    k = 2 * r + 1
    s = np.pad(np.pad(c, r).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    h, w = c.shape
    return (s[k:k + h, k:k + w] - s[:h, k:k + w] - s[k:k + h, :w] + s[:h, :w]) / (k * k)


def region_from_counts(counts: np.ndarray, keep: float = 0.998, floor: float = 0.1,
                       radius: int = 2) -> tuple[int, int, int, int]:
    """(x0, y0, width, height) of the box holding the object's events in a (height, width) count map.

    Robust to what a DVS adds besides the object. The typical level of an object pixel is the
    event-weighted median count (half the events fall on pixels at least that busy). Pixels whose
    neighbourhood ((2 radius + 1)^2, counts capped at that level) averages below `floor` times it are
    dropped: scattered background noise, and hot pixels on their own. The box then trims
    (1 - keep) / 2 of the remaining events from each side, per axis.
    """
    c = np.asarray(counts, dtype=np.float64)
    active = np.sort(c[c > 0])
    if not active.size:
        raise InputError("no events to measure an active region from")
    cum = np.cumsum(active)
    level = float(active[np.searchsorted(cum, cum[-1] / 2)])
    near = _box_mean(np.minimum(c, level), radius)
    kept = np.where(near >= floor * level, c, 0.0)
    c = kept if kept.any() else c  # events so sparse that all look like noise: keep them all
    cut = (1.0 - keep) / 2.0

    def span(profile: np.ndarray) -> tuple[int, int]:
        cum = np.cumsum(profile) / profile.sum()
        lo = int(np.searchsorted(cum, cut, side="right"))
        hi = int(np.searchsorted(cum, 1.0 - cut, side="left"))
        return lo, max(lo, min(hi, len(profile) - 1))

    x0, x1 = span(c.sum(axis=0))
    y0, y1 = span(c.sum(axis=1))
    return x0, y0, x1 - x0 + 1, y1 - y0 + 1


def pixel_counts(dataset, *, max_samples: int | None = 64, progress: bool = False,
                 by_class: dict | None = None) -> tuple[np.ndarray, int]:
    """(counts per pixel as a (height, width) array, samples decoded) over up to `max_samples` samples,
    evenly spread over the dataset; samples that fail to load are skipped (at least one must load). `by_class`: a
    dict that receives, by the sample's label, each class's map with every sample weighing the same (the mean of
    its samples' counts each divided by its events) and its samples: [map sum, samples]."""
    from tqdm import tqdm

    samples = dataset.samples
    if max_samples is not None and len(samples) > max_samples:
        samples = [samples[int(i)] for i in np.linspace(0, len(samples) - 1, max_samples)]
    counts, used, last_error = None, 0, None
    bar = tqdm(samples, desc="measuring the active region", unit="sample", file=sys.stderr, leave=False,
               disable=not progress or not sys.stderr.isatty())
    for s in bar:
        try:
            b = s.load()
        except InputError as exc:
            last_error = exc
            continue
        if counts is None:
            counts = np.zeros((b.height, b.width), np.int64)
        if (b.height, b.width) != counts.shape:
            continue  # another sensor: not part of this region
        flat = b.events["y"].astype(np.int64) * b.width + b.events["x"]
        c = np.bincount(flat, minlength=counts.size).reshape(counts.shape)
        counts += c
        if by_class is not None and len(b):
            mine = by_class.setdefault(s.label, [0.0, 0])
            mine[0], mine[1] = mine[0] + c / len(b), mine[1] + 1
        used += 1
    if counts is None:
        raise InputError(f"{dataset}: no sample could be read to measure the active region"
                         + (f" (last error: {last_error})" if last_error else ""))
    return counts, used


#: Samples decoded in all, spread over the classes that none of the evenly spread samples held (at most
#: CLASS_SAMPLES of one class): the region then knows a rare class too.
EXTRA_SAMPLES, CLASS_SAMPLES = 128, 8
#: A class of which the box holds less than this share of its events has its own box added to it, when that box is
#: compact (at most COMPACT_AREA of the sensor: an object somewhere else, not noise or a background spread over it).
MIN_CLASS_COVERAGE, COMPACT_AREA = 0.5, 0.6


def active_region(dataset, *, max_samples: int | None = 64, keep: float = 0.998, progress: bool = False) -> Region:
    """The box where a dataset's events fall, measured on up to `max_samples` samples (decoded); `coverage`: the share
    of their events inside it, `class_coverage`: the least share of one class's.

    The counts of all samples summed let a busy class, or one long dense sample, outweigh a rare or sparse class
    until its events read as noise (a class of 3 samples among 103, or of 50 ms samples beside 10 s ones, lost every
    event; one 1M-event sample pulled it off a whole class). So each class is measured too, every sample of it
    weighing the same (a few of its own samples when none was among those spread evenly, EXTRA_SAMPLES in all), and a
    class of which the box holds less than MIN_CLASS_COVERAGE of its events gets its own box added when that box is
    compact. A class spread over the sensor (a background of noise) leaves the box as it is."""
    per_class: dict = {}
    counts, used = pixel_counts(dataset, max_samples=max_samples, progress=progress, by_class=per_class)
    missing = sorted({s.label for s in dataset.samples} - set(per_class), key=str)
    if missing:  # classes too rare to be among those spread: a few samples of each, EXTRA_SAMPLES in all
        if len(missing) > EXTRA_SAMPLES:
            missing = [missing[int(i)] for i in np.linspace(0, len(missing) - 1, EXTRA_SAMPLES)]
        each = max(1, min(CLASS_SAMPLES, EXTRA_SAMPLES // len(missing)))
        for label in missing:
            group = [s for s in dataset.samples if s.label == label]
            part = _Subset([group[int(i)] for i in np.linspace(0, len(group) - 1, min(len(group), each))])
            mine: dict = {}
            try:
                c, n = pixel_counts(part, max_samples=None, by_class=mine, progress=progress)
            except InputError:
                continue  # none of them loads: training skips them too
            if c.shape == counts.shape and label in mine:
                per_class[label], used = mine[label], used + n
    per_class = {label: total / n for label, (total, n) in per_class.items()}  # every sample of a class the same
    box = region_from_counts(counts, keep)
    for c in per_class.values():
        if _coverage(c, box) < MIN_CLASS_COVERAGE:
            own = region_from_counts(c, keep)
            if own[2] * own[3] <= COMPACT_AREA * c.size:
                box = _union(box, own)
    x0, y0, w, h = box
    cover = min((_coverage(c, box) for c in per_class.values()), default=1.0)
    total = int(counts.sum())
    inside = int(counts[y0:y0 + h, x0:x0 + w].sum())
    return Region(x0, y0, w, h, (counts.shape[1], counts.shape[0]), used, total, inside / total if total else 0.0,
                  cover)


def _coverage(c: np.ndarray, box) -> float:
    """The share of count map `c` inside `box` (x0, y0, w, h); 1.0 for an empty map."""
    x0, y0, w, h = box
    total = float(c.sum())
    return float(c[y0:y0 + h, x0:x0 + w].sum()) / total if total else 1.0


def _union(a, b) -> tuple[int, int, int, int]:
    """The smallest box holding boxes `a` and `b` (x0, y0, w, h)."""
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return x0, y0, x1 - x0, y1 - y0


class _Subset:
    """Some samples of a dataset, as `pixel_counts` reads a dataset."""

    def __init__(self, samples):
        self.samples = samples

    def __str__(self) -> str:
        return f"{len(self.samples)} samples"
