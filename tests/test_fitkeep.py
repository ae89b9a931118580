"""What fitting a class added by feedback keeps (its scene and its pool of taught windows, snn/fitkeep.py, and the
recent decided windows a scene is taken from) is saved in the checkpoint with the rehearsal memory, read back
strictly, and follows the classes when one is removed."""

from __future__ import annotations

import numpy as np
import pytest

from streamsnn.errors import CheckpointError
from streamsnn.snn import SpikingNetwork
from streamsnn.snn.fitkeep import FitKeep


def grown(seed: int = 0) -> SpikingNetwork:
    """A dense:8 network of 3 classes plus one added by feedback, with a scene and a pool of two taught windows
    for the new class and a scene for class 1."""
    rng = np.random.default_rng(seed)
    net = SpikingNetwork(arch="dense:8", input_shape=(4, 4, 1), classes=3, seed=seed)
    net.add_class("new", lr_boost=100.0)
    fit = net.memory.fit
    fit.set_scene(3, rng.poisson(2.0, (6, 8)))
    fit.set_scene(1, rng.poisson(2.0, (2, 8)))
    pool = fit.pool(3, net.hidden_updates, 20)
    pool.append(rng.poisson(3.0, (5, 8)).astype(np.float32))
    pool.append(rng.poisson(3.0, (5, 8)).astype(np.float32))
    fit.recent.extend((float(k), rng.poisson(1.0, 8).astype(np.float32)) for k in range(4))
    return net


def test_the_scene_and_the_pool_come_back_from_a_checkpoint(tmp_path):
    net = grown()
    net.save(tmp_path / "m.npz")
    back = SpikingNetwork.load(tmp_path / "m.npz")
    for y in (1, 3):
        assert np.array_equal(back.memory.fit.scene(y), net.memory.fit.scene(y))
    assert back.memory.fit.scene(0) is None
    got = back.memory.fit.pool(3, back.hidden_updates, 20)  # as filled now: not emptied
    want = net.memory.fit.pool(3, net.hidden_updates, 20)
    assert len(got) == 2 and all(np.array_equal(a, b) for a, b in zip(got, want))
    assert back.memory.fit.pool(3, back.hidden_updates + 1, 20) is not got  # the hidden layers learn: a new pool
    assert len(back.memory.fit.pool(3, back.hidden_updates + 1, 20)) == 0
    rows = [h for _, h in net.memory.fit.recent]
    assert len(back.memory.fit.recent) == 4
    assert all(np.array_equal(h, w) for (_, h), w in zip(back.memory.fit.recent, rows))  # oldest first
    assert all(t == -np.inf for t, _ in back.memory.fit.recent)  # before the restart: older than any gap


def test_the_recent_windows_keep_the_newest_when_fewer_are_kept():
    fit = grown().memory.fit
    newest = [h for _, h in fit.recent][-2:]
    kept = fit.keep_recent(2)
    assert kept is fit.recent and len(kept) == 2 and kept.maxlen == 2
    assert all(np.array_equal(h, w) for (_, h), w in zip(kept, newest))
    assert fit.keep_recent(2) is kept  # the same size: the same deque, nothing dropped


def test_a_pool_the_hidden_layers_learned_past_is_not_saved_and_old_files_load_without(tmp_path):
    net = grown()
    net.hidden_updates += 1  # feedback on an old class moved the hidden layers: the pool's counts are stale
    net.save(tmp_path / "m.npz")
    names = set(np.load(tmp_path / "m.npz").files)
    assert "memory_scene" in names and "memory_pool" not in names
    back = SpikingNetwork.load(tmp_path / "m.npz")
    assert not back.memory.fit.pools and back.memory.fit.scene(3) is not None
    plain = SpikingNetwork(arch="dense:8", input_shape=(4, 4, 1), classes=3, seed=0)
    plain.save(tmp_path / "plain.npz")  # as before this: no such arrays
    assert not {n for n in np.load(tmp_path / "plain.npz").files if n.startswith("memory_")}
    loaded = SpikingNetwork.load(tmp_path / "plain.npz").memory.fit
    assert not loaded.scenes and not loaded.pools and not loaded.recent


def test_the_pool_keeps_its_last_windows_when_read_back(tmp_path):
    net = grown()
    net.save(tmp_path / "m.npz")
    fit = FitKeep()
    arrays = dict(np.load(tmp_path / "m.npz"))
    fit.load_arrays(arrays, 8, 4, version=7, size=1)
    pool = fit.pool(3, 7, 1)
    assert len(pool) == 1 and np.array_equal(pool[0], net.memory.fit.pool(3, net.hidden_updates, 20)[1])


@pytest.mark.parametrize("change", ["width", "label", "nan", "partner", "order", "recent-width", "recent-nan"])
def test_a_damaged_scene_or_pool_refuses_the_checkpoint_in_one_line(tmp_path, change):
    grown().save(tmp_path / "m.npz")
    arrays = dict(np.load(tmp_path / "m.npz"))
    if change == "width":
        arrays["memory_scene"] = arrays["memory_scene"][:, :5]
    elif change == "label":
        arrays["memory_pool_label"] = arrays["memory_pool_label"] + 4
    elif change == "nan":
        arrays["memory_pool"][0, 0] = np.nan
    elif change == "recent-width":
        arrays["memory_recent"] = arrays["memory_recent"][:, :5]
    elif change == "recent-nan":
        arrays["memory_recent"][-1, 2] = np.inf
    elif change == "partner":
        del arrays["memory_scene_label"]
    else:
        arrays["memory_pool_item"] = arrays["memory_pool_item"][::-1].copy()
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(CheckpointError, match="rehearsal memory is unusable") as exc:
        SpikingNetwork.load(tmp_path / "bad.npz")
    assert "\n" not in str(exc.value) and "memory_" in str(exc.value)


def test_removing_a_class_takes_its_scene_and_pool_and_renumbers_the_later_ones():
    net = grown()
    scene = net.memory.fit.scene(3)
    net.remove_class("1")
    fit = net.memory.fit
    assert sorted(fit.scenes) == [2] and np.array_equal(fit.scene(2), scene)
    assert sorted(fit.pools) == [2] and len(fit.pool(2, net.hidden_updates, 20)) == 2
    net.remove_class("new")
    assert not fit.scenes and not fit.pools
