"""Training items for streams: random time crops of samples and crossings between two, as live windows see them.

A live camera has no sample boundaries: the daemon classifies sliding windows that hold a part of
one digit's recording, or the end of one and the start of the next. `StreamCrops` turns a training
set of whole samples into a mix of such items (tonic style: NumPy in and out, composable with
`training.Augment`, which is applied afterwards):

- a **whole** sample, as it is;
- a **crop**: the events of a random time span inside the sample, of a length drawn log-uniformly
  between `min_us` and `max_us` (a span longer than the sample is the whole sample);
- a **crossing**: a window of `window_us` (the live window) laid over the end of one sample followed
  at once by the start of another on one clock (the second sample's first event 1 us after the first
  one's last, as `streameval.make_stream` joins them), labelled with the sample that covers more of
  the window (ties: the later one), as stream evaluation scores it.

Like the daemon, which skips windows with fewer than `min_events` events, crops and crossings that
hold fewer are drawn again (after `tries` draws the whole sample is used).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError


@dataclass
class StreamCrops:
    """Pick, per training item, a whole sample, a time crop of it, or a crossing into another sample."""

    whole: float = 0.4          # share of whole samples
    crossing: float = 0.2       # share of crossings; the rest are crops
    min_us: int = 30_000        # shortest crop
    max_us: int = 300_000       # longest crop
    window_us: int = 100_000    # length of a crossing (the live window)
    min_events: int = 200       # a crop or crossing with fewer events is drawn again (the live windows' minimum)
    tries: int = 4              # draws before falling back to the whole sample

    def __post_init__(self):
        if not (0 <= self.whole <= 1 and 0 <= self.crossing <= 1 and self.whole + self.crossing <= 1):
            raise ConfigError(f"whole and crossing shares must be in [0, 1] with a sum <= 1, "
                              f"got {self.whole} and {self.crossing}")
        if self.min_events < 0 or self.tries < 1:
            raise ConfigError(f"need min_events >= 0 and tries >= 1, got {self.min_events} and {self.tries}")
        if not 0 < self.min_us <= self.max_us or self.window_us < 2:
            raise ConfigError(f"need 0 < min_us <= max_us and window_us >= 2, got {self.min_us}, {self.max_us}, "
                              f"{self.window_us}")

    def __call__(self, data, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
        """(input units, times, label) of one training item made from sample `k` of `data`
        (a `training.SampleArrays`); a crossing continues into a random other sample."""
        idx, t, label = data.idx[k], data.t[k], int(data.labels[k])
        u = rng.random()
        if u < self.whole or len(t) == 0:
            return idx, t, label
        for _ in range(self.tries):  # the daemon skips windows with fewer than min_events: so does training
            if u < self.whole + self.crossing and len(data) > 1:
                other = int(rng.integers(len(data) - 1))
                other += other >= k
                item = crossing(idx, t, label, data.idx[other], data.t[other], int(data.labels[other]),
                                self.window_us, rng)
            else:
                length = int(np.exp(rng.uniform(np.log(self.min_us), np.log(self.max_us))))
                item = (*crop(idx, t, length, rng), label)
            if len(item[0]) >= self.min_events:
                return item
        return idx, t, label


def crop(idx: np.ndarray, t: np.ndarray, length_us: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The events of a random span [s, s + length_us) inside the sample's span [t[0], t[-1] + 1)
    (the whole sample when it is not longer than that)."""
    if not len(t):
        return idx, t
    first, end = int(t[0]), int(t[-1]) + 1
    if end - first <= length_us:
        return idx, t
    s = first + int(rng.integers(end - first - length_us + 1))
    lo, hi = np.searchsorted(t, [s, s + length_us], side="left")
    return idx[lo:hi], t[lo:hi]


def crossing(idx_a, t_a, label_a: int, idx_b, t_b, label_b: int, window_us: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """A window of `window_us` over the end of sample a and the start of sample b joined on a's clock.

    The boundary falls at a uniform point inside the window (each side gets at least 1 us); the label
    is that of the sample covering more of the window, b on a tie (as `streameval.cover` scores it).
    """
    end_a = int(t_a[-1]) + 1                       # a spans [t_a[0], end_a); b starts at end_a
    before = int(rng.integers(1, window_us))        # us of the window that belong to a
    after = window_us - before
    lo = int(np.searchsorted(t_a, end_a - before, side="left"))
    tb = t_b.astype(np.int64) - int(t_b[0]) + end_a if len(t_b) else t_b.astype(np.int64)
    hi = int(np.searchsorted(tb, end_a + after, side="left"))
    idx = np.concatenate([idx_a[lo:], idx_b[:hi]]).astype(np.int32)
    t = np.concatenate([t_a[lo:].astype(np.int64), tb[:hi]])
    return idx, t, (label_a if before > after else label_b)
