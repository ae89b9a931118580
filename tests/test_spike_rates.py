"""Spikes per input event per layer: measured by `streamsnn train`, kept in the checkpoint, shown by `info`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from streamsnn.cli import main
from streamsnn.errors import CheckpointError
from streamsnn.learn.training import load_split
from streamsnn.snn import SpikingNetwork
from streamsnn.snn.checkpoint import load_checkpoint, save_checkpoint
from tests.conftest import need
from tests.dataset_util import aedat4_class_folders


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """Two hidden layers, trained in seconds on real N-MNIST (its 100 test samples are the held-out pass)."""
    out = tmp_path_factory.mktemp("rates") / "m.npz"
    assert main(["train", "--data", str(need("nmnist_small")), "--arch", "dense:40,dense:20", "--epochs", "1",
                 "--limit", "100", "--choose", "off", "--out", str(out), "--quiet"]) == 0
    return out


def recount(net, data) -> list[float]:
    """Spikes per input event per hidden layer, counted here from each layer's spike counts."""
    spikes, events = np.zeros(len(net.hidden)), 0
    for k in range(len(data)):
        net.predict_indices(data.idx[k], data.t[k], count=False)
        spikes += [float(c.sum()) for c in net.counts]
        events += len(data.idx[k])
    return list(spikes / events)


def test_train_stores_the_spikes_of_its_test_pass(model):
    net = SpikingNetwork.load(model)
    rates = net.spike_rates
    test = load_split(need("nmnist_small"), "test", net, quiet=True)
    assert rates["split"] == "test" and rates["samples"] == len(test) == 100
    assert rates["events"] == test.n_events and rates["updates"] == net.updates
    assert rates["per_layer"] == pytest.approx(recount(net, test), rel=1e-12)
    assert len(rates["per_layer"]) == 2 and rates["per_layer"][0] > 0


def test_info_prints_one_figure_per_layer(model, capsys):
    assert main(["info", str(model)]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "spikes/event" in line]
    assert [line.split()[:2] for line in lines] == [["layer", "1"], ["layer", "2"]]
    assert all(float(line.split()[-1]) >= 0 for line in lines)
    assert "100 test samples" in out
    assert main(["info", str(model), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert len(d["spike_rates"]["per_layer"]) == 2


def test_an_older_checkpoint_without_it_still_loads(model, tmp_path, capsys):
    _, arrays, config, counters = load_checkpoint(model)
    config.pop("spike_rates")
    old = save_checkpoint(tmp_path / "old.npz", arrays, config, counters)
    net = SpikingNetwork.load(old)
    assert getattr(net, "spike_rates", None) is None
    net.save(tmp_path / "again.npz")  # saving one keeps it without the key
    assert "spike_rates" not in load_checkpoint(tmp_path / "again.npz")[2]
    assert main(["info", str(old)]) == 0
    assert "not measured" in capsys.readouterr().out


@pytest.mark.parametrize("bad", [
    {"per_layer": [0.5]},  # one figure for two layers
    {"per_layer": [0.5, 1e12]},
    {"per_layer": [0.5, -1.0]},
    {"split": ""},
    {"samples": -3},
    "many",
])
def test_a_malformed_record_is_refused(model, tmp_path, bad):
    _, arrays, config, counters = load_checkpoint(model)
    config["spike_rates"] = {**config["spike_rates"], **bad} if isinstance(bad, dict) else bad
    path = save_checkpoint(tmp_path / "bad.npz", arrays, config, counters)
    with pytest.raises(CheckpointError, match="spike_rates"):
        SpikingNetwork.load(path)


def test_without_a_test_split_train_measures_on_training_samples(tmp_path):
    aedat4_class_folders(tmp_path / "data", n_train=4, n_test=0)
    out = tmp_path / "m.npz"
    assert main(["train", "--data", str(tmp_path / "data"), "--arch", "dense:30", "--epochs", "1", "--choose",
                 "off", "--out", str(out), "--quiet"]) == 0
    rates = SpikingNetwork.load(out).spike_rates
    assert rates["split"] == "train" and rates["samples"] >= 1 and len(rates["per_layer"]) == 1
