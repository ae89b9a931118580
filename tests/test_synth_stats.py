"""The synthetic saccade camera against real N-MNIST: the same statistics within stated tolerances.

Synthetic samples come from MNIST test images 101-200 (default parameters, seed 0); the real ones are
N-MNIST test samples 60001-60100 (recorded from MNIST test images 1-100). Different digits, same
distribution, so the per-sample means must agree:

    events per sample      within +-25 %        ON fraction          within +-0.05
    duration               within +-10 %        event centroid x, y  within +-1 pixel
    spatial spread (std)   within +-15 %        pixels with events   within +-20 %
    share of events in each of the three saccades (0-92, 92-210, 210- ms)  within +-0.07
    OFF events lead the motion (as in the ATIS recordings): same sign of the ON-OFF offset per saccade
    paired (synthetic from images 1-100 vs their real recordings): event-count correlation > 0.9
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import need

from streamsnn.io.dataset import open_dataset
from streamsnn.io.mnist_idx import load_mnist
from streamsnn.synth import SaccadeCamera

SACCADES_US = (0, 92_000, 210_000, 400_000)


def summary(batches) -> dict:
    ev = [b.events for b in batches]
    share = np.array([np.histogram(e["t"], bins=SACCADES_US)[0] / len(e) for e in ev])
    return {
        "events": np.mean([len(e) for e in ev]),
        "on_fraction": np.mean([e["p"].mean() for e in ev]),
        "duration_ms": np.mean([(e["t"][-1] - e["t"][0]) / 1000 for e in ev]),
        "mean_x": np.mean([e["x"].mean() for e in ev]),
        "mean_y": np.mean([e["y"].mean() for e in ev]),
        "std_x": np.mean([e["x"].std() for e in ev]),
        "std_y": np.mean([e["y"].std() for e in ev]),
        "pixels": np.mean([len(np.unique(e["y"].astype(int) * 34 + e["x"])) for e in ev]),
        "share": share.mean(axis=0),
    }


def on_off_offset(batches, t0, t1) -> np.ndarray:
    """Mean position of ON minus OFF events within [t0, t1) us, averaged over samples (x, y)."""
    d = []
    for b in batches:
        e = b.events[(b.events["t"] >= t0) & (b.events["t"] < t1)]
        on, off = e[e["p"] == 1], e[e["p"] == 0]
        if len(on) > 20 and len(off) > 20:
            d.append([on["x"].mean() - off["x"].mean(), on["y"].mean() - off["y"].mean()])
    return np.mean(d, axis=0)


@pytest.fixture(scope="module")
def both():
    ds = open_dataset(need("nmnist_small")).split("test")
    real = [s.load() for s in ds.samples if 60001 <= int(s.sample_id) <= 60100]
    images, labels = load_mnist(need("mnist"))
    cam = SaccadeCamera(seed=0)
    synth = [cam.record(images[k], label=int(labels[k])) for k in range(100, 200)]
    return real, synth


def test_real_reference_is_what_the_data_readme_says(both):
    real, _ = both
    assert len(real) == 100 and 3000 < summary(real)["events"] < 5000


def test_synthetic_statistics_match_real_nmnist(both):
    real, synth = both
    r, s = summary(real), summary(synth)
    print("\n".join(f"{k:12s} real {np.round(r[k], 3)}  synthetic {np.round(s[k], 3)}" for k in r))
    assert abs(s["events"] / r["events"] - 1) <= 0.25
    assert abs(s["on_fraction"] - r["on_fraction"]) <= 0.05
    assert abs(s["duration_ms"] / r["duration_ms"] - 1) <= 0.10
    assert abs(s["mean_x"] - r["mean_x"]) <= 1 and abs(s["mean_y"] - r["mean_y"]) <= 1
    assert abs(s["std_x"] / r["std_x"] - 1) <= 0.15 and abs(s["std_y"] / r["std_y"] - 1) <= 0.15
    assert abs(s["pixels"] / r["pixels"] - 1) <= 0.20
    assert np.all(np.abs(s["share"] - r["share"]) <= 0.07)


def test_polarity_pattern_follows_the_saccades_like_real_nmnist(both):
    real, synth = both
    # Mid-saccade windows where one axis dominates: 1 tilts (y), 3 pans (x).
    for (t0, t1), axis in (((20_000, 50_000), 1), ((240_000, 290_000), 0)):
        r, s = on_off_offset(real, t0, t1), on_off_offset(synth, t0, t1)
        assert abs(r[axis]) > 2 and np.sign(s[axis]) == np.sign(r[axis]) and abs(s[axis]) > 2


def test_paired_with_the_same_digits_event_counts_agree_per_sample():
    """Recording MNIST test images 1-100 (the very digits behind 60001-60100) gives per-sample event
    counts that follow the real ones: correlation > 0.9, median ratio within +-15 %."""
    from streamsnn.io.nmnist import count_events

    images, _ = load_mnist(need("mnist"))
    cam = SaccadeCamera(seed=0)
    synth = np.array([len(cam.events(images[k])) for k in range(100)])
    real = np.array([count_events(need(f"nmnist_small/{60001 + k}.bs2")) for k in range(100)])
    assert np.corrcoef(synth, real)[0, 1] > 0.9
    assert abs(np.median(synth / real) - 1) <= 0.15
