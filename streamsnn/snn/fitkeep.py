"""What fitting a class added by feedback keeps between its taught windows; saved with the rehearsal memory.

A class that feedback adds has its output unit fit to tell its own windows from the other classes' kept examples
and from the scene the camera showed before it was named (`pipeline.scene`, `pipeline.teacher`,
`classedit.fit_class`). Its own windows are its kept examples and the last taught windows, each with varied copies:
the pool. Scene and pool are last-layer spike counts, not events: the scene as it was decided, the pool only while
the hidden layers have not learned since it was filled (its `version`, the network's ``hidden_updates`` then). They
live on the network's memory (`memory.Memory.fit`), so a checkpoint holds them and a daemon restarted while a class
is being taught goes on fitting it against the same scene and pool (before, both were lost at a restart and a grown
class was fit against the kept examples alone). The recent decided windows a scene is taken from (`recent`, filled by
`pipeline.scene.Scene`) are saved too, so a class added soon after a restart still has the scene the camera showed
before it; after a restart they count as older than any gap (the time the daemon was down is not known).

Checkpoint arrays (all optional): ``memory_scene`` (rows x the last layer's units, float32) with
``memory_scene_label`` (the class of each row); ``memory_pool`` (rows, float32) with ``memory_pool_label`` and
``memory_pool_item`` (which taught window each row belongs to: the window's counts, then its copies');
``memory_recent`` (rows, float32; oldest first): the recent decided windows.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from .. import defaults

#: At most this many rows of one class's scene or pool are read from a checkpoint.
MAX_ROWS = 10_000


class FitKeep:
    """The scene and the pool of every class added by feedback (see the module)."""

    def __init__(self) -> None:
        self.scenes: dict[int, np.ndarray] = {}
        self.pools: dict[int, tuple[int, deque]] = {}
        #: the recent decided windows' counts as (time by the pipeline's clock, row), oldest first (`pipeline.scene`);
        #: those read from a checkpoint have time -inf
        self.recent: deque = deque(maxlen=defaults.SCENE_WINDOWS)

    def keep_recent(self, size: int) -> deque:
        """The recent windows, keeping the last `size` from now on (the newest ones when there were more)."""
        if self.recent.maxlen != int(size):
            self.recent = deque(self.recent, maxlen=int(size))
        return self.recent

    def set_scene(self, label: int, rows: np.ndarray) -> None:
        self.scenes[int(label)] = np.ascontiguousarray(rows, np.float32)

    def scene(self, label: int) -> np.ndarray | None:
        """The scene before class `label` was added (None: none was kept)."""
        return self.scenes.get(int(label))

    def pool(self, label: int, version: int, size: int) -> deque:
        """Class `label`'s pool of taught windows (each an array of rows), emptied first when the hidden layers
        learned since it was filled (`version` differs); it keeps the last `size`."""
        kept = self.pools.get(int(label))
        if kept is None or kept[0] != version:
            kept = (version, deque(maxlen=max(1, int(size))))
            self.pools[int(label)] = kept
        return kept[1]

    def drop_class(self, index: int) -> None:
        """Forget class `index`'s scene and pool; those of later classes move down by one (remove_class)."""
        def shift(d: dict) -> dict:
            return {y - (y > index): v for y, v in d.items() if y != index}
        self.scenes, self.pools = shift(self.scenes), shift(self.pools)

    def arrays(self, version: int) -> dict[str, np.ndarray]:
        """The scenes, and the pools filled at `version` (the others are stale), as checkpoint arrays."""
        out = {}
        labels = sorted(self.scenes)
        if labels:
            out["memory_scene"] = np.concatenate([self.scenes[y] for y in labels]).astype(np.float32)
            out["memory_scene_label"] = np.repeat(labels, [len(self.scenes[y]) for y in labels]).astype(np.int64)
        items = [(y, np.asarray(rows, np.float32)) for y, (v, pool) in sorted(self.pools.items()) if v == version
                 for rows in pool]
        if items:
            out["memory_pool"] = np.concatenate([rows for _, rows in items])
            out["memory_pool_label"] = np.concatenate([np.full(len(r), y, np.int64) for y, r in items])
            out["memory_pool_item"] = np.concatenate([np.full(len(r), k, np.int64) for k, (_, r) in enumerate(items)])
        rows = [h for _, h in self.recent]
        if rows and len({len(h) for h in rows}) == 1:
            out["memory_recent"] = np.stack(rows).astype(np.float32)
        return out

    def load_arrays(self, arrays: dict, width: int, n_classes: int, version: int, size: int) -> None:
        """Restore scenes and pools from checkpoint arrays, the pools as filled at `version` and keeping the last
        `size` windows; ValueError when they do not fit a network of `n_classes` whose last layer has `width`
        units."""
        scene = _rows(arrays, "memory_scene", ("memory_scene_label",), width, n_classes)
        pool = _rows(arrays, "memory_pool", ("memory_pool_label", "memory_pool_item"), width, n_classes)
        recent = _rows(arrays, "memory_recent", (), width, n_classes)
        self.scenes, self.pools = {}, {}
        self.recent = deque(((-np.inf, h) for h in ([] if recent is None else recent[0])), maxlen=self.recent.maxlen)
        if scene is not None:
            rows, labels = scene
            for y in np.unique(labels):
                self.set_scene(int(y), rows[labels == y])
        if pool is not None:
            rows, labels, items = pool
            if len(items) and (np.any(np.diff(items) < 0) or np.any(np.diff(labels)[np.diff(items) == 0] != 0)):
                raise ValueError("memory_pool_item is not in order, or one item has rows of two classes")
            for k in np.unique(items):
                mine = items == k
                self.pool(int(labels[mine][0]), version, size).append(rows[mine])


def _rows(arrays: dict, name: str, keys: tuple[str, ...], width: int, n_classes: int):
    """(rows, *keys) of one of the module's row arrays, checked; None when absent. With no `keys` the rows are
    unlabelled (``memory_recent``)."""
    if name not in arrays and not any(k in arrays for k in keys):
        return None
    if name not in arrays or not all(k in arrays for k in keys):
        raise ValueError(f"{name} and {', '.join(keys)} come together")
    rows = np.asarray(arrays[name])
    if rows.ndim != 2 or rows.shape[1] != width:
        raise ValueError(f"{name} is not rows of the last layer's {width} units")
    cols = [np.asarray(arrays[k]).reshape(-1).astype(np.int64) for k in keys]
    if any(len(c) != len(rows) for c in cols):
        raise ValueError(f"{', '.join(keys)} do not match {name}'s rows")
    labels = cols[0] if cols else np.zeros(len(rows), np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"{keys[0]} outside the classes 0..{n_classes - 1}")
    if len(labels) and np.bincount(labels).max() > MAX_ROWS:
        raise ValueError(f"{name} holds more than {MAX_ROWS:,} rows" + (" of one class" if cols else ""))
    if not np.all(np.isfinite(rows)):
        raise ValueError(f"{name} holds non-finite values")
    return (rows.astype(np.float32), *cols)
