"""`train`'s learning rates for a temporal rule when only one of --lr / --lr-out is given: the rule's own default
for the other (2026-12-05: `--learning timing --lr-out X` trained its hidden layer at the counting default, 10x
TIMING_LR, and ran away)."""

from __future__ import annotations

from argparse import Namespace

import numpy as np
import pytest

from streamsnn.commands.train import pick_learning
from streamsnn.defaults import (
    MEMBRANE_ACTIVITY_SCALE,
    MEMBRANE_LR_SCALE,
    TIMING_LR,
    TIMING_LR_OUT,
    TIMING_REF_STEPS,
    TIMING_SMOOTHING,
)
from streamsnn.learn.training import SampleArrays
from streamsnn.snn import SpikingNetwork
from streamsnn.snn.arch import InputMap


def data(n=20, seed=3):
    rng = np.random.default_rng(seed)
    idx = [rng.integers(0, 16, 60).astype(np.int32) for _ in range(n)]
    t = [np.sort(rng.integers(0, 300_000, 60)).astype(np.int64) for _ in range(n)]
    return SampleArrays(idx, t, np.arange(n) % 2, [str(k) for k in range(n)])


def picked(learning, lr=None, lr_out=None, epochs=4, n=20, readout=None):
    """`pick_learning` for a counting network, or with `readout` a timing network of that readout (an older model)."""
    own = {"learning": "timing", "tau_us": 50_000.0, "readout": readout} if readout else {}
    net = SpikingNetwork(arch="dense:8", input_map=InputMap((4, 4), None, (4, 4, 1)), classes=2, activity=1e-4, **own,
                         **({"lr": lr} if lr is not None else {}), **({"lr_out": lr_out} if lr_out is not None else {}))
    args = Namespace(learning=learning, tau_ms=None, delays=None, delay_ms=None, stream_crops=False, lr=lr,
                     lr_out=lr_out, lr_conv=None, data=["x"])
    said, s = [], {"lr": net.lr, "lr_out": net.lr_out, "lr_conv": net.lr_conv, "epochs": epochs}
    got = pick_learning(args, net, s, data(n), {"why": {"stream_crops": "--no-stream-crops"}}, said.append)
    return net, got, s, " ".join(said)


@pytest.mark.parametrize("lr,lr_out", [(None, None), (None, 0.0123), (3e-5, None), (3e-5, 0.0123)])
def test_timing_takes_its_own_default_for_the_rate_not_given(lr, lr_out):
    _, got, s, said = picked("timing", lr, lr_out)
    assert got.lr == pytest.approx(TIMING_LR if lr is None else lr)
    assert got.lr_out == pytest.approx(TIMING_LR_OUT if lr_out is None else lr_out)
    assert (s["lr"], s["lr_out"]) == pytest.approx((got.lr, got.lr_out))
    if (lr is None) != (lr_out is None):
        assert ("--lr-out" if lr is None else "--lr)") in said and "TIMING_LR" in said, said
    if lr is None or lr_out is None:  # the first lines name the smoothed target too
        assert f"label smoothing {TIMING_SMOOTHING:g} (TIMING_SMOOTHING)" in said, said
        assert got.label_smoothing == TIMING_SMOOTHING


def test_membrane_scales_only_the_rate_not_given():
    base, _, _, _ = picked("counts")
    assert base.activity > 0
    _, got, _, said = picked("membrane", lr_out=0.0123)
    assert got.lr == pytest.approx(base.lr * MEMBRANE_LR_SCALE) and got.lr_out == pytest.approx(0.0123)
    assert got.activity == pytest.approx(base.activity * MEMBRANE_ACTIVITY_SCALE) and "as given (--lr-out)" in said
    _, got, _, said = picked("membrane", lr=0.0007)
    assert got.lr == pytest.approx(0.0007) and got.lr_out == pytest.approx(base.lr_out * MEMBRANE_LR_SCALE)
    assert got.activity == pytest.approx(base.activity) and "as given (--lr)" in said  # the price follows --lr


def test_a_long_timing_run_learns_its_hidden_layer_slower_in_proportion_with_the_decay_readout():
    """TIMING_LR is for a run of TIMING_REF_STEPS learning steps; 4 epochs of 10,900 samples at that rate ran away
    with the "decay" readout (defaults.TIMING_REF_STEPS): a longer run's hidden rate is smaller by the ratio, the
    output's unchanged. The "rise" readout (the default) keeps TIMING_LR however long the run."""
    short = TIMING_REF_STEPS // 2
    _, got, _, said = picked("timing", epochs=1, n=short, readout="decay")
    assert got.lr == pytest.approx(TIMING_LR) and "learning steps" not in said
    for readout in (None, "rise"):
        net, got, _, said = picked("timing", epochs=4, n=TIMING_REF_STEPS, readout=readout)
        assert got.readout == "rise" and got.lr == pytest.approx(TIMING_LR) and "learning steps" not in said
        assert "'rise' readout" in said, said
    _, got, s, said = picked("timing", epochs=4, n=TIMING_REF_STEPS, readout="decay")  # four times the steps
    assert got.lr == pytest.approx(TIMING_LR / 4) and s["lr"] == pytest.approx(got.lr)
    assert got.lr_out == pytest.approx(TIMING_LR_OUT)
    assert f"TIMING_LR x {TIMING_REF_STEPS:,} / {4 * TIMING_REF_STEPS:,} learning steps" in said, said
    assert got.readout == "decay" and "'decay' readout" in said
    _, got, _, said = picked("timing", lr=3e-5, epochs=4, n=TIMING_REF_STEPS, readout="decay")  # a rate given is used
    assert got.lr == pytest.approx(3e-5) and "learning steps" not in said
    _, got, _, _ = picked("membrane", epochs=4, n=TIMING_REF_STEPS)  # the other rules' rates do not follow the steps
    base, _, _, _ = picked("membrane")
    assert got.lr == pytest.approx(base.lr * MEMBRANE_LR_SCALE)
