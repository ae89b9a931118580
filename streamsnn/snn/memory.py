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
from its first feedback message. A daemon also keeps *live* examples (``add_live``): windows it decided with a
clear margin, as examples of the class it decided, so that after a change of camera or scene the memory holds
windows like those it is asked about now; they take at most a share of a class's slots (the trained ones stay),
are saved in the checkpoint marked as live, and one that feedback then teaches is dropped (``forget``): as a
taught window when feedback agrees, not at all when it names another class.
"""

from __future__ import annotations

import numpy as np

from . import limits
from .fitkeep import FitKeep

#: At most this many events of one example are kept (evenly spaced when a window holds more).
MAX_EXAMPLE_EVENTS = 20_000
#: At most this many examples of one class.
MAX_PER_CLASS = 1000


def at_most(idx: np.ndarray, t: np.ndarray | None, n: int = MAX_EXAMPLE_EVENTS):
    """The events (``idx``, ``t``; ``t`` may be None) thinned to at most ``n``, evenly spaced, as an example is kept."""
    if len(idx) <= n:
        return idx, t
    keep = np.linspace(0, len(idx) - 1, n).astype(np.int64)
    return idx[keep], (t[keep] if t is not None else None)


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
        self.live: list[bool] = []  # kept from a confident decision (add_live), not from training or feedback
        self._keys: list = []  # a live example's window key (forget), None otherwise; not saved
        self._turn = 0
        self._rng = np.random.default_rng([int(seed), 22])
        #: what fitting a class added by feedback keeps (scene, pool; ``fitkeep``), saved with the examples
        self.fit = FitKeep()

    def __len__(self) -> int:
        return len(self.labels)

    def count(self, label: int) -> int:
        return sum(1 for y in self.labels if y == label)

    # -- keeping ----------------------------------------------------------------------------------
    def add(self, idx: np.ndarray, t: np.ndarray | None, label: int) -> None:
        """Keep an example of class ``label`` (a full class replaces one of its examples at random)."""
        if self.per_class == 0 or len(idx) == 0:
            return
        idx, t = at_most(idx, t)
        idx = np.array(idx, dtype=np.int32)
        t = None if t is None else np.array(t, dtype=np.int64)
        mine = [k for k, y in enumerate(self.labels) if y == label]
        while len(mine) > self.per_class:  # the bound was lowered: forget some at random
            k = mine.pop(int(self._rng.integers(len(mine))))
            self._remove(k)
            mine = [j - (j > k) for j in mine]
        if len(mine) >= self.per_class:
            self._put(mine[int(self._rng.integers(len(mine)))], idx, t, False, None)
            return
        self._append(idx, t, label, False, None)

    def add_live(self, idx: np.ndarray, t: np.ndarray | None, label: int, key, share: float) -> bool:
        """Keep a window decided as class ``label`` with a clear margin (``key`` names the window, for ``forget``);
        live examples take at most ``share`` of the class's ``per_class`` slots: below that bound one joins (into a
        free slot, else replacing a random trained or taught one), at it one replaces a random live one. Returns
        whether it was kept (not when the bound allows none, or the window is empty or too long)."""
        cap = int(self.per_class * float(share))
        if cap <= 0 or len(idx) == 0 or len(idx) > MAX_EXAMPLE_EVENTS:
            return False
        idx = np.array(idx, dtype=np.int32)
        t = None if t is None else np.array(t, dtype=np.int64)
        mine = [k for k, y in enumerate(self.labels) if y == label]
        live = [k for k in mine if self.live[k]]
        if len(live) >= cap:
            self._put(live[int(self._rng.integers(len(live)))], idx, t, True, key)
        elif len(mine) < self.per_class:
            self._append(idx, t, label, True, key)
        else:
            kept = [k for k in mine if not self.live[k]]
            self._put(kept[int(self._rng.integers(len(kept)))], idx, t, True, key)
        return True

    def forget(self, key) -> bool:
        """Drop the live example kept from the window ``key`` (feedback taught that window); whether one was."""
        for k, mine in enumerate(self._keys):
            if mine is not None and mine == key:
                self._remove(k)
                return True
        return False

    def count_live(self, label: int | None = None) -> int:
        return sum(1 for y, v in zip(self.labels, self.live) if v and (label is None or y == label))

    def _append(self, idx, t, label: int, live: bool, key) -> None:
        self.idx.append(idx)
        self.t.append(t)
        self.labels.append(int(label))
        self._h.append(None)
        self.live.append(bool(live))
        self._keys.append(key)

    def _put(self, k: int, idx, t, live: bool, key) -> None:
        self.idx[k], self.t[k], self._h[k], self.live[k], self._keys[k] = idx, t, None, bool(live), key

    def _remove(self, k: int) -> None:
        for arr in (self.idx, self.t, self._h, self.labels, self.live, self._keys):
            del arr[k]

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
        self.live = [self.live[k] for k in keep]
        self._keys = [self._keys[k] for k in keep]
        self.labels = [y - (y > index) for y in (self.labels[k] for k in keep)]
        self.fit.drop_class(index)

    # -- reading the examples ------------------------------------------------------------------------
    def warm(self, net, n: int) -> int:
        """Compute the last-layer counts of at most ``n`` trained or taught examples (not live ones) that have none yet
        (``margins`` needs them); returns how many are still without."""
        ks = [k for k, y in enumerate(self.labels) if not self.live[k] and y < net.n_classes and self._h[k] is None]
        self.features_of(net, ks[:n])
        return max(0, len(ks) - n)

    def features_of(self, net, ks: list[int]) -> np.ndarray:
        """The last-layer spike counts of examples ``ks`` as the network last saw them (computed when unknown)."""
        for k in ks:
            if self._h[k] is None:
                self._h[k] = net.features(self.idx[k], self.t[k])
        return np.stack([self._h[k] for k in ks]) if ks else np.zeros((0, net.out_weight.shape[0]), np.float32)

    def centre(self, net, leave_out: int) -> np.ndarray | None:
        """The mean last-layer spike counts of the examples of every class but ``leave_out`` (None: there are
        none), each class weighing the same."""
        classes = sorted({y for y in self.labels if y != leave_out and y < net.n_classes})
        if not classes:
            return None
        return np.mean([self.features_of(net, [k for k, y in enumerate(self.labels) if y == c]).mean(axis=0)
                        for c in classes], axis=0)

    def margins(self, net) -> np.ndarray:
        """The score margins (own class minus the best other) of the trained and taught examples the network
        decides right, from their spike counts as last seen (``keep_margin`` measured on the training split)."""
        ks = [k for k, y in enumerate(self.labels) if not self.live[k] and y < net.n_classes]
        if not ks or net.n_classes < 2:
            return np.zeros(0)
        S = self.features_of(net, ks).astype(np.float64) @ net.out_weight + net.bias
        own = np.asarray([self.labels[k] for k in ks])
        mine = S[np.arange(len(ks)), own]
        S[np.arange(len(ks)), own] = -np.inf
        m = mine - S.max(axis=1)
        return m[m > 0]

    def typical_margin(self, net, quantile: float = 0.5) -> float | None:
        """The ``quantile`` of ``margins`` (None when no kept example is decided right)."""
        m = self.margins(net)
        return float(np.quantile(m, quantile)) if len(m) else None

    # -- rehearsing -------------------------------------------------------------------------------
    def picks(self, net, taught: int, n: int) -> list[int]:
        """The ``n`` examples to replay after class ``taught`` was taught: the one it most threatens, then
        one of each other class in turn."""
        others = [k for k, y in enumerate(self.labels) if y != taught and y < net.n_classes]
        if n <= 0 or not others:
            return []
        H = self.features_of(net, others)
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
    def arrays(self, version: int = 0) -> dict[str, np.ndarray]:
        """The kept examples as checkpoint arrays (none when empty), and what fitting a new class keeps (``fit``; its
        pools only when filled at `version`, the network's ``hidden_updates`` now)."""
        out = self.fit.arrays(version)
        if not self.labels:
            return out
        out |= {"memory_idx": np.concatenate(self.idx).astype(np.int32),
                "memory_len": np.asarray([len(a) for a in self.idx], np.int64),
                "memory_label": np.asarray(self.labels, np.int64)}
        if all(t is not None for t in self.t):
            out["memory_t"] = np.concatenate(self.t).astype(np.int64)
        if any(self.live):
            out["memory_live"] = np.asarray(self.live, np.int64)
        return out

    def load_arrays(self, arrays: dict, n_inputs: int, n_classes: int, width: int | None = None,
                    version: int = 0, pool: int = 1) -> None:
        """Restore the kept examples from checkpoint arrays, and with `width` (the last layer's units) what fitting a
        new class keeps (``fit``: its pools as filled at `version`, the last `pool` windows of each); ValueError when
        they do not fit the network."""
        if width is not None:
            self.fit.load_arrays(arrays, width, n_classes, version, pool)
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
        live = np.asarray(arrays.get("memory_live", np.zeros(len(labels), np.int64))).reshape(-1)
        if live.shape != labels.shape or np.any((live != 0) & (live != 1)):
            raise ValueError("memory_live does not match memory_label, or is not 0/1")
        ends = np.cumsum(lens)
        starts = ends - lens
        self.idx = [idx[a:b].astype(np.int32) for a, b in zip(starts, ends)]
        tt = None if t is None else np.asarray(t).reshape(-1).astype(np.int64)
        self.t = [None if tt is None else tt[a:b] for a, b in zip(starts, ends)]
        self.labels = [int(y) for y in labels]
        self._h = [None] * len(self.labels)
        self.live = [bool(v) for v in live]
        self._keys = [None] * len(self.labels)
