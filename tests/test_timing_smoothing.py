"""Learning "timing" learns towards a smoothed target, (1 - s) one-hot + s / classes: the step it takes, the
setting's checks, and checkpoints (kept; files written before it learn without it)."""

from __future__ import annotations

import numpy as np
import pytest
from test_timing import events, tiny

from streamsnn.defaults import TIMING_SMOOTHING
from streamsnn.errors import ConfigError
from streamsnn.snn import SpikingNetwork
from streamsnn.snn.checkpoint import load_checkpoint, save_checkpoint


def bias_step(smoothing: float, label: int = 1) -> np.ndarray:
    """The output bias's change from one sample the network is already sure of (its score for `label` far ahead)."""
    idx, t = events(np.random.default_rng(5), n=80)
    net = tiny(label_smoothing=smoothing)
    net.out_weight[:] = 0.0  # the scores are the bias
    net.bias[label] = 30.0  # softmax is one-hot to float32 precision
    before = net.bias.copy()
    net.learn_indices(idx, label, t)
    return net.bias - before


def test_a_sure_right_answer_still_moves_the_scores_towards_the_smoothed_target():
    assert np.abs(bias_step(0.0)).max() < 1e-6  # plain one-hot: nothing left to learn
    step = bias_step(0.2)
    n = len(step)
    assert step[1] < 0 and np.all(np.delete(step, 1) > 0)  # the sure class down, the others up
    # the error is p - ((1 - s) one-hot + s / n): s (n - 1) / n on the label, -s / n on each other class
    np.testing.assert_allclose(step[1] / np.delete(step, 1), -(n - 1), rtol=0.02)  # float32 bias near 30


def test_the_default_and_its_checks():
    net = tiny()
    assert net.label_smoothing == TIMING_SMOOTHING > 0 and net.config()["label_smoothing"] == TIMING_SMOOTHING
    for bad in (-0.1, 0.6, float("nan")):
        with pytest.raises(ConfigError, match="label_smoothing"):
            tiny(label_smoothing=bad)
    with pytest.raises(ConfigError, match="label_smoothing is a setting of learning 'timing'"):
        tiny(learning="counts", tau_us=None, label_smoothing=0.1)
    assert "label_smoothing" not in tiny(learning="counts", tau_us=None).config()


def test_the_checkpoint_keeps_it_and_an_older_timing_file_learns_without_it(tmp_path):
    idx, t = events(np.random.default_rng(9), n=80)
    net = tiny(label_smoothing=0.05)
    net.save(tmp_path / "new.npz")
    assert SpikingNetwork.load(tmp_path / "new.npz").label_smoothing == 0.05
    version, arrays, config, counters = load_checkpoint(tmp_path / "new.npz")
    assert config.pop("label_smoothing") == 0.05
    save_checkpoint(tmp_path / "old.npz", arrays, config, counters)
    old = SpikingNetwork.load(tmp_path / "old.npz")
    assert old.label_smoothing == 0.0
    plain = tiny(label_smoothing=0.0)  # the same weights (same seed), learning as the old file's writer did
    old.learn_indices(idx, 2, t)
    plain.learn_indices(idx, 2, t)
    np.testing.assert_array_equal(old.out_weight, plain.out_weight)
    np.testing.assert_array_equal(old.hidden[0].weight, plain.hidden[0].weight)
