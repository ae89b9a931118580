"""Checkpoints: round trip of deep and convolutional networks, format-1 files, atomic replace, and
one-line CheckpointError for every kind of bad file."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

from streamsnn.errors import CheckpointError
from streamsnn.snn import InputMap, SpikingNetwork
from streamsnn.snn.checkpoint import FORMAT, VERSION

ARCH = "conv:4:5:2:2,dense:40"


def trained(seed=0, arch=ARCH, **kw):
    net = SpikingNetwork(arch=arch, seed=seed, lr=0.01, **kw)
    rng = np.random.default_rng(seed)
    for k in range(5):
        idx = rng.integers(0, net.sizes[0], 3000).astype(np.int32)
        net.learn_indices(idx, k % net.n_classes, np.arange(3000, dtype=np.int64) * 100 + k * 10**6)
    return net, idx


def test_round_trip_keeps_weights_config_and_counters(tmp_path):
    net, idx = trained()
    net.epochs = 3
    path = net.save(tmp_path / "m.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temp file left behind
    back = SpikingNetwork.load(path)
    assert len(back.weights) == 3
    for a, b in zip(back.weights, net.weights):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(back.bias, net.bias)
    assert back.config() == net.config() and back.arch == ARCH
    assert (back.samples_seen, back.events_seen, back.updates, back.epochs) == (5, 15000, 5, 3)
    assert back.progressive_accuracy == net.progressive_accuracy
    assert back.model_version == net.model_version
    np.testing.assert_array_equal(back.predict_indices(idx).scores, net.predict_indices(idx).scores)
    with np.load(path, allow_pickle=False) as z:  # plain arrays and JSON text, nothing pickled
        assert int(z["version"][0]) == VERSION == 2
        cfg = json.loads(str(z["config"][0]))
        assert cfg["arch"] == [{"kind": "conv", "channels": 4, "kernel": 5, "stride": 2, "padding": 2},
                               {"kind": "dense", "units": 40}]
        assert cfg["classes"] == [str(k) for k in range(10)]
        assert cfg["input_map"] == {"sensor": [34, 34], "roi": [0, 0, 34, 34], "grid": [34, 34, 2]}


def test_round_trip_keeps_class_names_input_map_and_leak(tmp_path):
    m = InputMap(sensor=(128, 128), roi=(0, 0, 40, 40), grid=(20, 20, 1))
    net, _ = trained(arch="dense:16,dense:8", input_map=m, classes=["club", "diamond", "spade"], tau_us=5e4)
    back = SpikingNetwork.load(net.save(tmp_path / "cards.npz"))
    assert back.classes == ["club", "diamond", "spade"] and back.input_map == m and back.tau_us == 5e4
    assert back.arch == "dense:16,dense:8"


def write_format1(path, W1, W2, b2, config, counters):
    """A checkpoint exactly as streamsnn wrote them before format 2 (one dense hidden layer)."""
    with open(path, "wb") as fh:
        np.savez(fh, W1=W1, W2=W2, b2=b2, format=np.array([FORMAT]), version=np.array([1], dtype=np.int64),
                 config=np.array([json.dumps(config, sort_keys=True)]),
                 counters=np.array([json.dumps(counters, sort_keys=True)]))


def test_format1_file_loads_as_one_dense_layer(tmp_path):
    rng = np.random.default_rng(0)
    W1 = (rng.standard_normal((2312, 24)) * 0.03).astype(np.float32)
    W2 = (rng.standard_normal((24, 10)) * 0.05).astype(np.float32)
    b2 = rng.standard_normal(10).astype(np.float32)
    config = {"sizes": [2312, 24, 10], "input_shape": [34, 34, 2], "seed": 3, "lr": 0.001, "lr_out": 0.002,
              "tau_us": None, "learning": "counts", "theta": 0.5, "error_spikes": 32, "init_scale": 0.03,
              "init_scale_out": 0.05}
    counters = {"samples_seen": 7, "events_seen": 700, "updates": 5, "progressive_correct": 2,
                "progressive_total": 5, "epochs": 1, "token": "abcd1234"}
    path = tmp_path / "old.npz"
    write_format1(path, W1, W2, b2, config, counters)
    net = SpikingNetwork.load(path)
    assert net.arch == "dense:24" and net.sizes == (2312, 24, 10) and net.classes == [str(k) for k in range(10)]
    assert net.input_map == InputMap() and net.lr_out == 0.002 and net.seed == 3
    assert (net.updates, net.progressive_accuracy, net.model_version) == (5, 0.4, "abcd1234.5")
    idx = rng.integers(0, 2312, 4000).astype(np.int32)
    d = net.predict_indices(idx)
    np.testing.assert_array_equal(net.weights[0], W1)
    np.testing.assert_allclose(d.scores, net.counts[0] @ W2 + b2, rtol=1e-5, atol=1e-4)
    assert d.spikes[0] > 0
    # saving it again writes format 2, which loads the same network
    back = SpikingNetwork.load(net.save(tmp_path / "new.npz"))
    np.testing.assert_array_equal(back.predict_indices(idx).scores, d.scores)
    write_format1(path, W1, W2[:5], b2, config, counters)
    with pytest.raises(CheckpointError, match="weight_1"):
        SpikingNetwork.load(path)


def test_save_replaces_existing_file_whole(tmp_path):
    path = tmp_path / "m.npz"
    a, _ = trained(0)
    b, _ = trained(1)
    a.save(path)
    b.save(path)
    np.testing.assert_array_equal(SpikingNetwork.load(path).weights[0], b.weights[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


@pytest.mark.parametrize("attr, value, says", [
    ("classes", ["zero", "one", "two"], "array weight_1 has shape (16, 10)"),  # 3 names for 10 outputs
    ("tau_us", 0, "tau_us must be a finite number above 0"),
    ("tau_us", -5.0, "tau_us must be a finite number above 0"),
    ("samples_seen", -3, "counter samples_seen is -3"),
])
def test_save_refuses_what_the_loader_would_refuse_and_keeps_the_good_file(tmp_path, attr, value, says):
    """A network changed through its attributes saved a file that no longer loaded, over a good one."""
    path = SpikingNetwork((2312, 16, 10), seed=1).save(tmp_path / "m.npz")
    good = path.read_bytes()
    net = SpikingNetwork.load(path)
    setattr(net, attr, value)
    with pytest.raises(CheckpointError, match=rf"model not saved to .*m.npz: it would not load \(.*{re.escape(says)}"):
        net.save(path)
    assert path.read_bytes() == good and sorted(os.listdir(tmp_path)) == ["m.npz"]
    SpikingNetwork.load(path)


def test_save_into_missing_folder_is_checkpoint_error(tmp_path):
    net, _ = trained()
    with pytest.raises(CheckpointError, match="does not exist"):
        net.save(tmp_path / "nope" / "m.npz")


def test_save_writes_through_a_link_and_never_replaces_a_folder_or_a_pipe(tmp_path):
    """A save renames a new file over its target: a symbolic link is followed (the model it names is
    replaced, the link stays a link), and a folder, a pipe or a device is refused, never replaced (a
    `train --out /dev/full` run as root once turned that device into a model file)."""
    a, _ = trained(0)
    b, _ = trained(1)
    (tmp_path / "models").mkdir()
    real = tmp_path / "models" / "v1.npz"
    a.save(real)
    link = tmp_path / "current.npz"
    link.symlink_to(real)
    b.save(link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    np.testing.assert_array_equal(SpikingNetwork.load(real).weights[0], b.weights[0])
    os.mkfifo(tmp_path / "pipe.npz")
    for target, kind in ((tmp_path / "models", "a folder"), (tmp_path / "pipe.npz", "not a regular file")):
        with pytest.raises(CheckpointError, match=kind):
            b.save(target)
    assert (tmp_path / "models").is_dir() and not (tmp_path / "pipe.npz").is_file()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["v1.npz"]  # no temporary file left


def test_a_saved_model_keeps_its_files_mode_and_a_new_one_gets_the_umasks(tmp_path):
    from streamsnn.snn import target

    net, _ = trained()
    net.save(tmp_path / "new.npz")  # as any new file of this process: not the temporary file's 0600
    assert (tmp_path / "new.npz").stat().st_mode & 0o777 == 0o666 & ~target._UMASK
    (tmp_path / "shared.npz").write_bytes(b"")
    os.chmod(tmp_path / "shared.npz", 0o644)
    net.save(tmp_path / "shared.npz")  # e.g. `classes --rename` on a model a service user reads
    assert (tmp_path / "shared.npz").stat().st_mode & 0o777 == 0o644


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
    rewrite(path, weight_1=None)
    with pytest.raises(CheckpointError, match="weight_1"):
        SpikingNetwork.load(path)
    path = net.save(tmp_path / "m.npz")
    rewrite(path, weight_0=np.zeros((2, 5, 5, 5), np.float32))
    with pytest.raises(CheckpointError, match="weight_0"):
        SpikingNetwork.load(path)
    path = net.save(tmp_path / "m.npz")
    rewrite(path, bias=np.full(10, np.nan, np.float32))
    with pytest.raises(CheckpointError, match="non-finite"):
        SpikingNetwork.load(path)


def test_pickled_object_array_is_refused(tmp_path):
    net, _ = trained()
    path = net.save(tmp_path / "m.npz")
    rewrite(path, weight_0=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(CheckpointError):
        SpikingNetwork.load(path)


def test_bad_config(tmp_path):
    net, _ = trained()
    path = net.save(tmp_path / "m.npz")
    rewrite(path, config=np.array([json.dumps({"sizes": [5, 5], "bogus": 1})]))
    with pytest.raises(CheckpointError, match="config"):
        SpikingNetwork.load(path)
    rewrite(path, config=np.array([json.dumps({"arch": "conv:4:99", "classes": 10})]))
    with pytest.raises(CheckpointError, match="does not fit") as e:
        SpikingNetwork.load(path)
    one_line(e)
    rewrite(path, config=np.array(["{not json"]))
    with pytest.raises(CheckpointError):
        SpikingNetwork.load(path)


def test_info_names_the_checkpoint_format_version(tmp_path, capsys):
    from streamsnn.cli import main

    rng = np.random.default_rng(0)
    config = {"sizes": [2312, 4, 10], "input_shape": [34, 34, 2], "seed": 3, "lr": 0.001, "lr_out": 0.002,
              "tau_us": None, "learning": "counts", "theta": 0.5, "error_spikes": 32, "init_scale": 0.03,
              "init_scale_out": 0.05}
    old = tmp_path / "old.npz"
    write_format1(old, rng.standard_normal((2312, 4)).astype(np.float32),
                  rng.standard_normal((4, 10)).astype(np.float32), np.zeros(10, np.float32), config, {})
    new = SpikingNetwork((2312, 4, 10), seed=1).save(tmp_path / "new.npz")
    assert main(["info", str(old)]) == 0
    assert "streamsnn checkpoint 1 (older: saving it again writes format 2)" in capsys.readouterr().out
    assert main(["info", str(new), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["format_version"] == 2 and got["format"] == "streamsnn checkpoint 2"
