"""A spike price per hidden layer (`layer_price`, `train --layer-price`): each layer's spikes cost their multiplier
of `activity` in the loss, the checkpoint keeps the multipliers, and `train` refuses a list of the wrong length."""

from __future__ import annotations

import numpy as np
import pytest

from streamsnn.cli import main
from streamsnn.errors import ConfigError
from streamsnn.snn import SpikingNetwork, learn
from tests.conftest import need


def priced_step(layer_price):
    """How far each hidden layer's weights move in one step with no output error: the price alone moves them."""
    net = SpikingNetwork(arch="dense:12,dense:8", input_shape=(6, 6, 1), classes=3, seed=2, activity=0.05,
                         max_step=0.0, init_gain=3.0, layer_price=layer_price)
    idx = np.random.default_rng(0).integers(0, 36, 400).astype(np.int32)
    net.predict_indices(idx, count=False)
    acts = learn.activity(net, idx)
    assert all(len(a[0]) for a in acts[1:]), "every hidden layer must spike for the price to act"
    before = [layer.weight.copy() for layer in net.hidden]
    learn.backprop_counts(net, acts, np.zeros(3, np.float32), 1.0)
    return [float(np.abs(layer.weight - w).sum()) for layer, w in zip(net.hidden, before)]


def test_each_layer_pays_its_own_multiple_of_the_spike_price():
    """A layer's price moves it and, through backpropagation, the layers below it; never the layers above."""
    once = priced_step(None)
    assert once[0] > 0 and once[1] > 0
    assert priced_step([1.0, 1.0]) == pytest.approx(once)
    assert priced_step([0.0, 0.0]) == [0.0, 0.0]  # no price: no error, no step
    first_only = priced_step([1.0, 0.0])
    assert first_only[1] == 0.0 and first_only[0] > 0  # the second layer's spikes are free: it stays
    # the step is adapted per layer (the layers' own statistics), so not in proportion, but it grows with the price
    assert priced_step([2.0, 0.0])[0] > 1.1 * first_only[0]
    assert priced_step([0.0, 2.0])[1] > 1.1 * once[1]


def test_the_multipliers_are_checked_and_kept_in_the_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match="one multiplier per hidden layer"):
        SpikingNetwork(arch="dense:12,dense:8", input_shape=(6, 6, 1), classes=3, layer_price=[2.0])
    with pytest.raises(ConfigError, match="layer_price"):
        SpikingNetwork(arch="dense:12", input_shape=(6, 6, 1), classes=3, layer_price=[-1.0])
    net = SpikingNetwork(arch="dense:12,dense:8", input_shape=(6, 6, 1), classes=3, layer_price=[2, 0.5])
    net.save(tmp_path / "m.npz")
    back = SpikingNetwork.load(tmp_path / "m.npz")
    assert back.layer_price == (2.0, 0.5) and back.describe()["layer_price"] == [2.0, 0.5]
    plain = SpikingNetwork(arch="dense:12", input_shape=(6, 6, 1), classes=3)
    assert plain.layer_price is None and "layer_price" not in plain.config()  # files as before


def test_train_takes_layer_price_says_it_and_keeps_it(capsys, tmp_path):
    out = tmp_path / "m.npz"
    assert main(["train", "--data", str(need("nmnist_small")), "--arch", "dense:16,dense:8", "--epochs", "1",
                 "--limit", "40", "--choose", "off", "--layer-price", "2,1", "--out", str(out)]) == 0
    assert "spike price x2,1 by hidden layer" in capsys.readouterr().err
    assert SpikingNetwork.load(out).layer_price == (2.0, 1.0)


@pytest.mark.parametrize("value", ["2", "2,1,1", "x,1", "1,-1"])
def test_train_refuses_a_bad_layer_price_in_one_line(capsys, tmp_path, value):
    rc = main(["train", "--data", str(need("nmnist_small")), "--arch", "dense:16,dense:8", "--layer-price", value,
               "--out", str(tmp_path / "m.npz")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and f"--layer-price {value}" in err and "2 values" in err


# -- the default of stream crops on several folders (the README's training command) ---------------------------------
CONV = "conv:4:5:2:2,dense:32"


def test_stream_crops_on_several_folders_price_the_first_layer_and_train_longer():
    from streamsnn import defaults
    from streamsnn.learn.training import learning_settings

    s = learning_settings(defaults.DEFAULT_ARCH, several=True, stream=True)
    assert s["epochs"] == defaults.STREAM_SEVERAL_EPOCHS and s["layer_price"] == [defaults.STREAM_FIRST_PRICE, 1, 1]
    for several, stream in ((True, False), (False, True), (False, False)):  # measured there only
        other = learning_settings(defaults.DEFAULT_ARCH, several=several, stream=stream)
        assert "layer_price" not in other and other["epochs"] != defaults.STREAM_SEVERAL_EPOCHS
    assert "layer_price" not in learning_settings("dense:800", several=True, stream=True)


def run(capsys, tmp_path, name, *argv):
    capsys.readouterr()
    out = tmp_path / f"{name}.npz"
    assert main(["train", *map(str, argv), "--limit", "10", "--choose", "off", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    return sum(line.startswith("epoch ") for line in err.splitlines()), err, SpikingNetwork.load(out)


def test_train_on_several_folders_takes_the_stream_defaults_and_says_so(capsys, tmp_path, synth_folder):
    from streamsnn import defaults

    data = ["--data", need("nmnist_small"), "--data", synth_folder, "--arch", CONV]
    r, err, net = run(capsys, tmp_path, "default", *data)
    assert net.layer_price == (defaults.STREAM_FIRST_PRICE, 1.0) and r == 9
    assert "spike price x2,1 by hidden layer (stream crops on several folders" in err and "9 epochs" in err
    r, err, net = run(capsys, tmp_path, "given", *data, "--layer-price", "1,1", "--epochs", "1")
    assert net.layer_price == (1.0, 1.0) and "spike price x1,1 by hidden layer (--layer-price)" in err
    r, err, net = run(capsys, tmp_path, "whole", *data, "--no-stream-crops", "--epochs", "1")
    assert net.layer_price is None and "spike price" not in err
    r, err, net = run(capsys, tmp_path, "one", "--data", need("nmnist_small"), "--arch", CONV, "--epochs", "1")
    assert net.layer_price is None and "spike price" not in err


def test_a_temporal_model_learning_whole_samples_drops_the_stream_defaults(capsys, tmp_path, synth_folder):
    """Its stream crops are turned off (it learns whole samples), and with them the epochs and the price they bring,
    unless given."""
    data = ["--data", need("nmnist_small"), "--data", synth_folder, "--arch", CONV,
            "--learning", "membrane", "--tau-ms", "50"]
    r, err, net = run(capsys, tmp_path, "membrane", *data)
    assert net.learning == "membrane" and net.layer_price is None and r == 6
    assert "6 epochs, every layer's spikes priced once" in err
    r, err, net = run(capsys, tmp_path, "membrane-given", *data, "--layer-price", "3,1", "--epochs", "1")
    assert net.layer_price == (3.0, 1.0) and r == 1
