"""Rehearsal memory: a few examples kept per class, replayed when one class is taught so the others are not forgotten.

Teaching a class through feedback with examples of that class only (a person showing the camera a new
object) pulls the output towards it on every input: the taught unit learns to win and nothing tells it
where to stop, so the old classes are lost (90.7 % -> 44.2 % after 99 examples in issue 22). After each
taught window, ``rehearse`` replays ``n`` kept examples of the other classes with their own labels, at the
same learning rate: the one the taught class is most likely stealing (its score above the example's own
class by the most, read from the example's last-layer spike counts as the network last saw them), then
the others in turn, one class after another. The kept examples come from the training split (`train` keeps
``per_class`` of each class, chosen by the seed) and from every taught window (a class full of examples
replaces a random one), and are saved in the checkpoint, so a daemon protects the classes it was trained on
from its first feedback message.
"""

from __future__ import annotations

import numpy as np

from . import limits

#: At most this many events of one example are kept (evenly spaced when a window holds more).
MAX_EXAMPLE_EVENTS = 20_000
#: At most this many examples of one class.
MAX_PER_CLASS = 1000


class Memory:
    """Examples (input units, times, label) kept per class; see the module."""

    def __init__(self, per_class: int = 10, seed: int = 0):
        if not 0 <= int(per_class) <= MAX_PER_CLASS:
            raise ValueError(f"memory per class must be 0..{MAX_PER_CLASS}, got {per_class}")
        self.per_class = int(per_class)
        self.idx: list[np.ndarray] = []
        self.t: list[np.ndarray | None] = []
        self.labels: list[int] = []
        self._h: list[np.ndarray | None] = []  # last-layer spike counts as last seen (None: not yet)
        self._turn = 0
        self._rng = np.random.default_rng([int(seed), 22])

    def __len__(self) -> int:
        return len(self.labels)

    def count(self, label: int) -> int:
        return sum(1 for y in self.labels if y == label)

    # -- keeping ----------------------------------------------------------------------------------
    def add(self, idx: np.ndarray, t: np.ndarray | None, label: int) -> None:
        """Keep an example of class ``label`` (a full class replaces one of its examples at random)."""
        if self.per_class == 0 or len(idx) == 0:
            return
        if len(idx) > MAX_EXAMPLE_EVENTS:
            keep = np.linspace(0, len(idx) - 1, MAX_EXAMPLE_EVENTS).astype(np.int64)
            idx, t = idx[keep], (t[keep] if t is not None else None)
        idx = np.array(idx, dtype=np.int32)
        t = None if t is None else np.array(t, dtype=np.int64)
        mine = [k for k, y in enumerate(self.labels) if y == label]
        while len(mine) > self.per_class:  # the bound was lowered: forget some at random
            k = mine.pop(int(self._rng.integers(len(mine))))
            for arr in (self.idx, self.t, self._h, self.labels):
                del arr[k]
            mine = [j - (j > k) for j in mine]
        if len(mine) >= self.per_class:
            k = mine[int(self._rng.integers(len(mine)))]
            self.idx[k], self.t[k], self._h[k] = idx, t, None
            return
        self.idx.append(idx)
        self.t.append(t)
        self.labels.append(int(label))
        self._h.append(None)

    def fill(self, net, data) -> None:
        """Keep up to ``per_class`` samples of each class of ``data`` (a `SampleArrays`), chosen by the seed."""
        labels = np.asarray(data.labels)
        for c in range(net.n_classes):
            ks = np.flatnonzero(labels == c)
            room = self.per_class - self.count(c)
            if room <= 0 or not len(ks):
                continue
            for k in np.sort(self._rng.choice(ks, min(room, len(ks)), replace=False)):
                self.add(data.idx[k], data.t[k] if net.tau_us is not None else None, c)

    def drop_class(self, index: int) -> None:
        """Forget the examples of output ``index``; those of later outputs move down by one (remove_class)."""
        keep = [k for k, y in enumerate(self.labels) if y != index]
        self.idx = [self.idx[k] for k in keep]
        self.t = [self.t[k] for k in keep]
        self._h = [self._h[k] for k in keep]
        self.labels = [y - (y > index) for y in (self.labels[k] for k in keep)]

    # -- rehearsing -------------------------------------------------------------------------------
    def picks(self, net, taught: int, n: int) -> list[int]:
        """The ``n`` examples to replay after class ``taught`` was taught: the one it most threatens, then
        one of each other class in turn."""
        others = [k for k, y in enumerate(self.labels) if y != taught and y < net.n_classes]
        if n <= 0 or not others:
            return []
        for k in others:
            if self._h[k] is None:
                self._h[k] = net.features(self.idx[k], self.t[k])
        H = np.stack([self._h[k] for k in others])
        own = np.asarray([self.labels[k] for k in others])
        S = H @ net.out_weight + net.bias
        margin = S[:, taught] - S[np.arange(len(others)), own]
        out = [others[int(np.argmax(margin))]]
        classes = sorted(set(own.tolist()))
        while len(out) < n:
            c = classes[self._turn % len(classes)]
            self._turn += 1
            mine = [k for k in others if self.labels[k] == c]
            out.append(mine[int(self._rng.integers(len(mine)))])
        return out

    def rehearse(self, net, taught: int, n: int, lr_scale: float) -> int:
        """Replay ``n`` kept examples of classes other than ``taught`` (see ``picks``), each learned with its own
        label at ``lr_scale``; returns how many were learned. Not scored, not counted as samples."""
        from .guard import NonFinite

        done = 0
        for k in self.picks(net, taught, n):
            try:
                net.learn_indices(self.idx[k], self.labels[k], self.t[k], lr_scale, prediction=self.labels[k],
                                  score=False)
            except NonFinite:  # undone by the guard, rates halved: no more replay for this window
                break
            self._h[k] = net.last_features
            done += 1
        return done

    # -- checkpoint -------------------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        """The kept examples as checkpoint arrays (none when empty)."""
        if not self.labels:
            return {}
        out = {"memory_idx": np.concatenate(self.idx).astype(np.int32),
               "memory_len": np.asarray([len(a) for a in self.idx], np.int64),
               "memory_label": np.asarray(self.labels, np.int64)}
        if all(t is not None for t in self.t):
            out["memory_t"] = np.concatenate(self.t).astype(np.int64)
        return out

    def load_arrays(self, arrays: dict, n_inputs: int, n_classes: int) -> None:
        """Restore the kept examples from checkpoint arrays; ValueError when they do not fit the network."""
        if "memory_label" not in arrays:
            return
        lens, labels, idx = (np.asarray(arrays.get(k, np.zeros(0))).reshape(-1)
                             for k in ("memory_len", "memory_label", "memory_idx"))
        t = arrays.get("memory_t")
        if len(lens) != len(labels) or len(labels) > MAX_PER_CLASS * limits.MAX_CLASSES:
            raise ValueError("memory_len and memory_label differ in length, or hold too many examples")
        if np.any(lens < 0) or np.any(lens > MAX_EXAMPLE_EVENTS) or int(lens.sum()) != len(idx):
            raise ValueError("memory_len does not add up to memory_idx")
        if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
            raise ValueError(f"memory_label outside the classes 0..{n_classes - 1}")
        if len(idx) and (idx.min() < 0 or idx.max() >= n_inputs):
            raise ValueError(f"memory_idx outside the input units 0..{n_inputs - 1}")
        if t is not None and np.asarray(t).reshape(-1).shape != idx.shape:
            raise ValueError("memory_t does not match memory_idx")
        ends = np.cumsum(lens)
        starts = ends - lens
        self.idx = [idx[a:b].astype(np.int32) for a, b in zip(starts, ends)]
        tt = None if t is None else np.asarray(t).reshape(-1).astype(np.int64)
        self.t = [None if tt is None else tt[a:b] for a, b in zip(starts, ends)]
        self.labels = [int(y) for y in labels]
        self._h = [None] * len(self.labels)
