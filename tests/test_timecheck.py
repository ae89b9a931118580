"""The probe `train` uses to decide whether the data need time (learn/timecheck.py), on real N-MNIST samples."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import need

from streamsnn.learn.timecheck import MARGIN, backwards, check_time, features
from streamsnn.learn.training import SampleArrays, load_split
from streamsnn.snn import SpikingNetwork


@pytest.fixture(scope="module")
def digits():
    net = SpikingNetwork()
    return load_split(need("nmnist_small"), "train", net, limit=400, quiet=True), net.input_map.n_inputs


def reversed_copy(idx, t, n_in):
    """The sample played backwards: time mirrored and ON/OFF swapped (a brightening edge darkens backwards)."""
    plane = n_in // 2
    flipped = np.where(idx < plane, idx + plane, idx - plane).astype(np.int32)
    return flipped[::-1].copy(), (t[-1] - t[::-1]).astype(np.int64)


def test_digits_do_not_need_time(digits):
    data, n_in = digits
    check = check_time(data, n_in, 10)
    assert check.held_out >= 80
    assert check.forward >= 0.7  # the probe sees the digits
    assert not check.needed, check.describe()
    assert "does not need time" in check.describe()


def test_forward_against_backward_needs_time(digits):
    """Real samples and the same samples played backwards as two classes: same events per pixel and
    polarity-swapped pixel, different order. Order is all there is to tell them apart."""
    data, n_in = digits
    idx, t = [], []
    for i, tt in zip(data.idx[:200], data.t[:200]):
        ri, rt = reversed_copy(i, tt, n_in)
        idx += [i, ri]
        t += [tt, rt]
    labels = np.tile([0, 1], 200)
    two = SampleArrays(idx, t, labels, [str(k) for k in range(400)])
    check = check_time(two, n_in, 2)
    assert check.forward - check.reversible >= MARGIN, check.describe()
    assert check.needed and "needs time" in check.describe()


def test_backwards_reverses_the_bins():
    idx = np.array([0, 1, 2], np.int32)
    t = np.array([0, 50, 99], np.int64)
    f = features(idx, t, 4, 3)  # two polarity planes of two units: unit 2 is unit 0's OFF twin
    b = backwards(f[None], 4)[0].reshape(3, 4)
    f = f.reshape(3, 4)
    np.testing.assert_allclose(b[0], [f[2, 2], f[2, 3], f[2, 0], f[2, 1]])
    np.testing.assert_allclose(b[2], [f[0, 2], f[0, 3], f[0, 0], f[0, 1]])
    one = backwards(f.reshape(1, 12), 4, polarities=1)[0].reshape(3, 4)
    np.testing.assert_allclose(one, f[::-1])


@pytest.mark.slow
def test_train_says_what_it_picked_and_why(tmp_path):
    # a small network: what is checked is the choice of rule and leak, made before the network trains
    data = need("nmnist_small")
    out = subprocess.run([sys.executable, "-m", "streamsnn", "train", "--data", str(data), "--limit", "200",
                          "--epochs", "1", "--arch", "dense:32", "--json", "--out", str(tmp_path / "m.npz")],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["learning"] == "counts" and got["tau_us"] is None
    assert "does not need time" in got["why"]["learning"]
    assert set(got["time_probe"]) == {"forward", "reversible", "held_out"}
    out = subprocess.run([sys.executable, "-m", "streamsnn", "train", "--data", str(data), "--limit", "200",
                          "--epochs", "1", "--arch", "dense:32", "--json", "--learning", "membrane",
                          "--out", str(tmp_path / "m2.npz")],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["learning"] == "membrane" and got["why"]["learning"] == "--learning"
    assert 45_000 <= got["tau_us"] <= 55_000  # a sixth of N-MNIST's ~307 ms samples
    # whole samples: prefixes (augment.PrefixCrops) only when --choose finds them better (not searched on N-MNIST)
    assert got["stream_crops"] is False and got["prefixes_searchable"] is True
    assert "--choose" in got["why"]["stream_crops"]
    assert SpikingNetwork.load(tmp_path / "m2.npz").tau_us == got["tau_us"]
