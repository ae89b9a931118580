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

from ..config import SCHEMA
from ..errors import ConfigError

#: The live settings' hop (`[segment] hop_us`): the time between two decisions of the daemon and `eval --stream`.
LIVE_HOP_US = SCHEMA["segment"]["hop_us"].default


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
                other = another(len(data), k, rng)
                item = crossing(idx, t, label, data.idx[other], data.t[other], int(data.labels[other]),
                                self.window_us, rng)
            else:
                length = int(np.exp(rng.uniform(np.log(self.min_us), np.log(self.max_us))))
                item = (*crop(idx, t, length, rng), label)
            if len(item[0]) >= self.min_events:
                return item
        return idx, t, label


def another(n: int, k: int, rng: np.random.Generator) -> int:
    """A random sample index of 0..n-1 other than `k` (n >= 2), uniform, one draw."""
    other = int(rng.integers(n - 1))
    return other + (other >= k)


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


@dataclass
class PrefixCrops:
    """Training items for a temporal model (its state carries across live windows): a whole sample, or a prefix.

    Live, a temporal network is read out at the end of every window from the state the stream has built so far
    (`decide.continuous`), so in the middle of a gesture it answers from the gesture's first part. Trained on
    whole samples only, it learns to be right at their ends and nowhere else. A **prefix** (share `prefix`) is the
    sample's events up to a random time, uniform between `min_us` (or the sample's length when shorter) and its
    end, under the sample's label: the state at that time is what the live network has, its decision what the
    window ending there reads. With share `after`, the item is preceded by another whole training sample on one
    clock (it ends 1 us before this one starts, as `streameval.make_stream` joins them): live, the previous
    sample's state and its input copies still due (`delays`) run into the next one, and the label is still this
    sample's. A prefix with fewer than `min_events` events is the whole sample instead.

    With share `piece` (0 unless asked for), an item is instead a **piece**: a stretch of `piece_us` (uniform
    between its two bounds) from anywhere inside the sample (`crop`), under the sample's label; `prefix` is then the
    share of prefixes among the other items. A piece holds neither the sample's start nor its end, so the network
    must tell the class from what happens inside it: the direction of a motion rather than where the shape is. It
    helps classes told apart by their motion (gestures) and harms classes told apart only by the order of motions
    that also occur alone (a piece of one is a piece of another): so it is asked for, never on by default
    (docs/network.md). A piece with fewer than `min_piece_events` events is the whole sample instead.
    """

    prefix: float = 0.5       # share of prefixes (the rest: whole samples); among the items that are not pieces
    after: float = 0.5        # share of items preceded by another sample
    min_us: int = 150_000     # earliest cut
    min_events: int = 200     # a prefix with fewer events is the whole sample
    piece: float = 0.0        # share of pieces from inside the sample
    piece_us: tuple[int, int] = (100_000, 300_000)  # a piece's length: uniform between these (us)
    min_piece_events: int = 50  # a piece with fewer events is the whole sample

    def __post_init__(self):
        if not (0 <= self.prefix <= 1 and 0 <= self.after <= 1 and 0 <= self.piece <= 1):
            raise ConfigError(f"prefix, after and piece shares must be in [0, 1], got {self.prefix}, {self.after} "
                              f"and {self.piece}")
        if self.min_us < 1 or self.min_events < 0 or self.min_piece_events < 0:
            raise ConfigError(f"need min_us >= 1 and min_events, min_piece_events >= 0, got {self.min_us}, "
                              f"{self.min_events} and {self.min_piece_events}")
        if not 1 <= self.piece_us[0] <= self.piece_us[1]:
            raise ConfigError(f"piece_us must be two lengths 1 <= shortest <= longest (us), got {self.piece_us}")

    @property
    def name(self) -> str:
        """What `train` calls these items (its line, its JSON's `stream_items`)."""
        return "prefixes and pieces" if self.piece else "prefixes"

    def describe(self) -> str:
        """What the items are, in a few words."""
        pieces = (f"{self.piece:.0%} pieces of {self.piece_us[0] / 1000:g}-{self.piece_us[1] / 1000:g} ms from inside "
                  "a sample, " if self.piece else "")
        return (f"{pieces}{(1 - self.piece) * self.prefix:.0%} prefixes (cut at {self.min_us / 1000:g} ms or later), "
                f"{self.after:.0%} after another sample")

    def __call__(self, data, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
        """(input units, times, label) of one training item made from sample `k` of `data` (a `SampleArrays`)."""
        idx, t, label = data.idx[k], data.t[k], int(data.labels[k])
        if len(t) == 0:
            return idx, t, label
        if self.piece and rng.random() < self.piece:  # no draw when 0: the other items are drawn as before
            idx, t = piece(idx, t, self.piece_us, rng, self.min_piece_events)
        elif rng.random() < self.prefix:
            idx, t = prefix(idx, t, self.min_us, rng, self.min_events)
        if self.after and len(data) > 1 and rng.random() < self.after:
            other = another(len(data), k, rng)
            t_o = np.asarray(data.t[other], np.int64)
            if len(t_o):
                t = np.asarray(t, np.int64)
                idx = np.concatenate([data.idx[other], idx]).astype(np.int32)
                t = np.concatenate([t_o - t_o[-1] - 1 + t[0], t])
        return idx, t, label


def prefix(idx: np.ndarray, t: np.ndarray, min_us: int, rng: np.random.Generator,
           min_events: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The sample's events up to a random cut, uniform in [t[0] + min(min_us, span), t[-1] + 1); the whole sample
    when that leaves fewer than `min_events` events."""
    if not len(t):
        return idx, t
    first, end = int(t[0]), int(t[-1]) + 1
    cut = first + int(rng.integers(min(min_us, end - first - 1), end - first)) + 1 if end - first > 1 else end
    n = int(np.searchsorted(t, cut, side="left"))
    if n < max(1, min_events):
        return idx, t
    return idx[:n], t[:n]


def piece(idx: np.ndarray, t: np.ndarray, length_us: tuple[int, int], rng: np.random.Generator,
          min_events: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The events of a random stretch from inside the sample (`crop`), its length uniform in `length_us`
    (inclusive); the whole sample when the stretch holds fewer than `min_events` events."""
    pi, pt = crop(idx, t, int(rng.integers(length_us[0], length_us[1] + 1)), rng)
    if len(pt) < max(1, min_events):
        return idx, t
    return pi, pt


@dataclass
class EndCuts:
    """A temporal model's training items with their ends cut off by a random 0..`max_us` (default: the live hop).

    Live, a model whose state carries across windows decides at the end of every window (`decide.continuous`),
    every hop (50 ms). The last decision inside a sample is read at the last window end before the sample ends:
    up to one hop before it, uniformly. Trained on whole samples only, the network learns to be right at their very
    ends and nowhere else, and the live last decision falls short of whole samples by what the missing tail holds.
    On the order-only task with 120 ms segments (BioLab mug, pencil, scissors) a model scored 87.8 % of whole
    test samples, 86.1 / 85.0 / 77.8 / 70.0 % with their last 10 / 25 / 40 / 50 ms cut off (82 % averaged over a
    cut drawn evenly from 0-50 ms) and 81.7 % of last live decisions. So the end of every item is cut by a cut drawn
    uniformly in [0, min(`max_us`, half the item's span)] before augmentation: the events after it are dropped.
    Trained so on 3/4 of that task's training split and scored on its last quarter (`--choose off --no-augment`,
    seeds 0 / 1 / 2): whole samples 95.6 / 90.0 / 90.0 % against 86.7 / 85.6 / 88.9 % without, last decisions
    83.3 / 84.4 / 84.4 % against 81.1 % each; synthetic gestures (seed 0, with the usual augmentation) 94.0 / 87.0 %
    against 90.0 / 84.0 %; the first order task 100 / 100 %, as without.
    """

    max_us: int = LIVE_HOP_US

    def __post_init__(self):
        if self.max_us < 1:
            raise ConfigError(f"an end cut needs max_us >= 1 (us), got {self.max_us}")

    def __call__(self, idx: np.ndarray, t: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The item's events up to its last event's time minus the cut (see the class docstring)."""
        if len(t) < 2:
            return idx, t
        last = int(t[-1])
        cut = int(rng.integers(0, min(self.max_us, (last - int(t[0])) // 2) + 1))
        n = int(np.searchsorted(t, last - cut, side="right"))
        return idx[:n], t[:n]


def end_cuts(net, given: bool | None = None) -> EndCuts | None:
    """The end cuts `train` uses for `net`: as given (`--end-cuts` / `--no-end-cuts`), else on for a network with a
    leak and input delays, the time-aware model `train` gives data that need time, where they were measured
    (`EndCuts`); off otherwise: a network without a leak decides each live window from nothing, and one with a leak
    but no delays (`--learning membrane` on N-MNIST, say) was not measured with them."""
    if given is None:
        given = net.tau_us is not None and net.input_map.delays > 1
    return EndCuts() if given else None


def stream_items(net, pieces: float = 0.0):
    """The stream transform `train` uses for `net` when training for live streams: `PrefixCrops` for a temporal
    network (its learning rule learns from time: `snn.settings.TEMPORAL_MODES`; `pieces`: its share of pieces from
    inside samples), `StreamCrops` otherwise."""
    from ..snn.settings import TEMPORAL_MODES

    if getattr(net, "learning", None) in TEMPORAL_MODES:
        return PrefixCrops(piece=pieces)
    return StreamCrops()
