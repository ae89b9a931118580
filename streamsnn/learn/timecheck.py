"""Whether a dataset needs time: a linear probe on the training split, counts against counts in time bins.

`train` gives the data a network that can use the order of events (learning ``membrane``, a leak) when
the training split needs it. The question the probe asks: does playing a sample backwards make it
another class? Two ridge classifiers on each sample's events per input unit in `BINS` equal parts of its
time span, fitted on training samples and scored on held-out ones (the last quarter of each class; never
the test split): one fitted on the samples as they are, one on the samples and their time-reversed
copies (the bins in reverse order, ON and OFF swapped: an edge that brightens darkens backwards) under
the same labels. Where order does not matter (a digit seen by a
moving camera is the same digit backwards) the copies are harmless; where it does (a swipe left is a swipe
right backwards) they contradict other classes and the second classifier falls behind. When the first is
right on at least `MARGIN` more of the held-out samples, time is needed. (Counts over the whole sample
would be the wrong baseline: a moving camera smears them, and time bins beat them on N-MNIST only because
each bin is a sharper image.) The probe is cheap (two linear solves on at most `MAX_PROBE` samples) and
deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Time bins of the probe, and the share of held-out samples by which binned counts must beat plain counts.
BINS = 3
MARGIN = 0.10
#: Most training samples the probe fits on (spread over the classes), and its ridge penalty.
MAX_PROBE = 1000
RIDGE = 1.0


@dataclass(frozen=True)
class TimeCheck:
    """The probe's verdict: held-out accuracy without and with time-reversed copies; whether time is needed."""

    forward: float
    reversible: float
    held_out: int

    @property
    def needed(self) -> bool:
        return self.held_out > 0 and self.forward - self.reversible >= MARGIN

    def describe(self) -> str:
        if not self.held_out:
            return "too few training samples to tell whether the order of events matters"
        verb = "needs" if self.needed else "does not need"
        return (f"the data {verb} time: a linear probe on held-out training samples is right on "
                f"{self.forward:.0%} from {BINS} time bins, {self.reversible:.0%} when taught that a sample played "
                "backwards is the same class")


def features(idx: np.ndarray, t: np.ndarray, n_in: int, bins: int) -> np.ndarray:
    """Counts per input unit in `bins` equal parts of the sample's span (bins = 1: plain counts), unit length."""
    if len(idx) == 0:
        return np.zeros(n_in * bins)
    span = max(1, int(t[-1]) - int(t[0]) + 1)
    b = np.minimum(((t - t[0]) * bins) // span, bins - 1).astype(np.int64)
    f = np.bincount(b * n_in + idx, minlength=n_in * bins).astype(np.float64)
    return f / max(np.linalg.norm(f), 1e-12)


def ridge_fit(x: np.ndarray, y: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """A one-vs-all ridge classifier in dual form (fewer samples than features): (x, alpha); scores are
    ``z @ x.T @ alpha``."""
    targets = -np.ones((len(y), n_classes))
    targets[np.arange(len(y)), y] = 1.0
    return x, np.linalg.solve(x @ x.T + RIDGE * np.eye(len(y)), targets)


def check_time(data, n_in: int, n_classes: int, polarities: int = 2) -> TimeCheck:
    """The probe on a `training.SampleArrays` (input units and times per sample, labels) of an input grid of
    `n_in` units in `polarities` planes (the input map's order: polarity first)."""
    labels = np.asarray(data.labels, np.int64)
    fit, val = [], []
    for c in range(n_classes):
        mine = np.flatnonzero(labels == c)
        cut = len(mine) - len(mine) // 4
        fit += list(mine[:cut])
        val += list(mine[cut:])
    if not val or len(set(labels[fit].tolist())) < 2:
        return TimeCheck(0.0, 0.0, 0)
    fit = np.asarray(fit)[np.linspace(0, len(fit) - 1, min(len(fit), MAX_PROBE)).astype(int)]
    val = np.asarray(val)[np.linspace(0, len(val) - 1, min(len(val), MAX_PROBE // 3)).astype(int)]
    xf = np.stack([features(data.idx[k], data.t[k], n_in, BINS) for k in fit])
    xv = np.stack([features(data.idx[k], data.t[k], n_in, BINS) for k in val])
    yf, yv = labels[fit], labels[val]
    got = []
    for x_fit, y_fit in ((xf, yf), (np.concatenate([xf, backwards(xf, n_in, polarities)]), np.concatenate([yf, yf]))):
        x, alpha = ridge_fit(x_fit, y_fit, n_classes)
        got.append(float(((xv @ x.T @ alpha).argmax(axis=1) == yv).mean()))
    return TimeCheck(got[0], got[1], len(val))


def backwards(x: np.ndarray, n_in: int, polarities: int = 2) -> np.ndarray:
    """Binned features of the samples played backwards: the bins in reverse order, and with two polarity planes
    (the first half of the inputs, then the second) ON and OFF swapped."""
    b = x.reshape(len(x), BINS, polarities, n_in // polarities)[:, ::-1, ::-1]
    return b.reshape(len(x), BINS * n_in)
