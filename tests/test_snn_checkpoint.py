"""Checkpoints: round trip, atomic replace, and one-line CheckpointError for every kind of bad file."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from streamsnn.errors import CheckpointError
from streamsnn.snn import SpikingNetwork
from streamsnn.snn.checkpoint import VERSION


def trained(seed=0):
    net = SpikingNetwork((2312, 40, 10), seed=seed, lr=0.01)
    rng = np.random.default_rng(seed)
    for k in range(5):
        idx = rng.integers(0, 2312, 3000).astype(np.int32)
        net.learn_indices(idx, k % 10)
    return net, idx


def test_round_trip_keeps_weights_config_and_counters(tmp_path):
    net, idx = trained()
    net.epochs = 3
    path = net.save(tmp_path / "m.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temp file left behind
    back = SpikingNetwork.load(path)
    for k in ("W1", "W2", "b2"):
        np.testing.assert_array_equal(getattr(back, k), getattr(net, k))
    assert back.config() == net.config()
    assert (back.samples_seen, back.events_seen, back.updates, back.epochs) == (5, 15000, 5, 3)
    assert back.progressive_accuracy == net.progressive_accuracy
    assert back.model_version == net.model_version
    np.testing.assert_array_equal(back.predict_indices(idx).scores, net.predict_indices(idx).scores)
    with np.load(path, allow_pickle=False) as z:  # plain arrays and JSON text, nothing pickled
        assert json.loads(str(z["config"][0]))["sizes"] == [2312, 40, 10]


def test_save_replaces_existing_file_whole(tmp_path):
    path = tmp_path / "m.npz"
    a, _ = trained(0)
    b, _ = trained(1)
    a.save(path)
    b.save(path)
    np.testing.assert_array_equal(SpikingNetwork.load(path).W1, b.W1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_save_into_missing_folder_is_checkpoint_error(tmp_path):
    net, _ = trained()
    with pytest.raises(CheckpointError, match="does not exist"):
        net.save(tmp_path / "nope" / "m.npz")


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found") as e:
        SpikingNetwork.load(tmp_path / "absent.npz")
    one_line(e)


@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_truncated_file(tmp_path, keep):
    net, _ = trained()
    path = net.save(tmp_path / "m.npz")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match="m.npz") as e:
        SpikingNetwork.load(path)
    one_line(e)


def test_garbage_file(tmp_path):
    path = tmp_path / "m.npz"
    path.write_bytes(os.urandom(5000))
    with pytest.raises(CheckpointError, match="not a .npz") as e:
        SpikingNetwork.load(path)
    one_line(e)


def test_foreign_npz(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.ones(3))
    with pytest.raises(CheckpointError, match="not a streamsnn model") as e:
        SpikingNetwork.load(path)
    one_line(e)


def rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def test_wrong_version(tmp_path):
    net, _ = trained()
    path = net.save(tmp_path / "m.npz")
    rewrite(path, version=np.array([VERSION + 1]))
    with pytest.raises(CheckpointError, match="version") as e:
        SpikingNetwork.load(path)
    one_line(e)


def test_wrong_format_marker(tmp_path):
    net, _ = trained()
    path = net.save(tmp_path / "m.npz")
    rewrite(path, format=np.array(["someone-else"]))
    with pytest.raises(CheckpointError, match="someone-else"):
        SpikingNetwork.load(path)


def test_missing_array_and_wrong_shape(tmp_path):
    net, _ = trained()
    path = net.save(tmp_path / "m.npz")
    rewrite(path, W2=None)
    with pytest.raises(CheckpointError, match="W2"):
        SpikingNetwork.load(path)
    path = net.save(tmp_path / "m.npz")
    rewrite(path, W1=np.zeros((2312, 41), np.float32))
    with pytest.raises(CheckpointError, match="W1"):
        SpikingNetwork.load(path)


def test_pickled_object_array_is_refused(tmp_path):
    net, _ = trained()
    path = net.save(tmp_path / "m.npz")
    rewrite(path, W1=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(CheckpointError):
        SpikingNetwork.load(path)


def test_bad_config(tmp_path):
    net, _ = trained()
    path = net.save(tmp_path / "m.npz")
    rewrite(path, config=np.array([json.dumps({"sizes": [5, 5], "bogus": 1})]))
    with pytest.raises(CheckpointError, match="config"):
        SpikingNetwork.load(path)
    rewrite(path, config=np.array(["{not json"]))
    with pytest.raises(CheckpointError):
        SpikingNetwork.load(path)
