"""`train` with learning "membrane": the convolutions learn at defaults.MEMBRANE_LR_CONV of the default rate."""

from __future__ import annotations

from argparse import Namespace

import numpy as np
import pytest

from streamsnn.commands.train import pick_learning
from streamsnn.defaults import MEMBRANE_LR_CONV
from streamsnn.learn.training import SampleArrays
from streamsnn.snn import SpikingNetwork
from streamsnn.snn.arch import InputMap

CONV = "conv:4:3:1:1,dense:8"


def data(n=20, seed=3):
    rng = np.random.default_rng(seed)
    idx = [rng.integers(0, 16, 60).astype(np.int32) for _ in range(n)]
    t = [np.sort(rng.integers(0, 300_000, 60)).astype(np.int64) for _ in range(n)]
    return SampleArrays(idx, t, np.arange(n) % 2, [str(k) for k in range(n)])


def picked(arch, learning, lr_conv=None):
    net = SpikingNetwork(arch=arch, input_map=InputMap((4, 4), None, (4, 4, 1)), classes=2,
                         **({"lr_conv": lr_conv} if lr_conv is not None else {}))
    args = Namespace(learning=learning, tau_ms=None, delays=None, delay_ms=None, stream_crops=False, lr=None,
                     lr_out=None, lr_conv=lr_conv, data=["x"])
    said, s = [], {"lr_conv": net.lr_conv, "epochs": 4}  # as train's settings always hold
    got = pick_learning(args, net, s, data(), {"why": {"stream_crops": "--no-stream-crops"}}, said.append)
    return net, got, s, " ".join(said)


def test_membrane_slows_the_convolutions():
    assert 0 < MEMBRANE_LR_CONV < 1
    net, got, s, said = picked(CONV, "membrane")
    assert got.lr_conv == pytest.approx(net.lr_conv * MEMBRANE_LR_CONV)
    assert s["lr_conv"] == pytest.approx(got.lr_conv)
    assert got.layer_lr(0) == pytest.approx(got.lr * got.lr_conv) and got.layer_lr(1) == pytest.approx(got.lr)
    assert "MEMBRANE_LR_CONV" in said


def test_a_given_lr_conv_is_kept():
    _, got, _, said = picked(CONV, "membrane", lr_conv=0.7)
    assert got.lr_conv == pytest.approx(0.7) and "MEMBRANE_LR_CONV" not in said


@pytest.mark.parametrize("arch,learning", [(CONV, "counts"), ("dense:8", "membrane")])
def test_other_rules_and_dense_networks_unchanged(arch, learning):
    net, got, _, said = picked(arch, learning)
    assert got.lr_conv == pytest.approx(net.lr_conv) and "MEMBRANE_LR_CONV" not in said


def test_the_gesture_demo_slows_its_convolutions_as_train_does(tmp_path):
    """`streamsnn demo --gestures` builds its temporal network itself (commands/_demo_gestures.py): 40 gestures need
    time, so it learns "membrane", and its convolutions get MEMBRANE_LR_CONV as `train`'s do."""
    import types

    from streamsnn.commands._demo_gestures import train_gestures

    said = []
    train_gestures(types.SimpleNamespace(synthetic=40, epochs=1), tmp_path / "g.npz", said.append)
    net = SpikingNetwork.load(tmp_path / "g.npz")
    assert net.learning == "membrane" and net.tau_us is not None, said
    assert any(lay.conv_like for lay in net.layers) and net.lr_conv == MEMBRANE_LR_CONV
    # and, gestures being its only data, it learns from pieces, prefixes and gestures after another
    # (augment.PrefixCrops; the share of pieces: _demo_gestures.GESTURE_PIECES)
    assert any("50% pieces of 100-300 ms" in line and "25% prefixes" in line and "50% after another sample" in line
               for line in said), said
