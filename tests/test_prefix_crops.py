"""Training items for temporal models: prefixes of a sample (the state a live window's decision reads) and items
preceded by another sample (what the previous gesture leaves in a live network), on real samples."""

from __future__ import annotations

import numpy as np
import pytest

from streamsnn.errors import ConfigError
from streamsnn.learn.augment import PrefixCrops, prefix
from streamsnn.learn.training import load_split
from streamsnn.snn import SpikingNetwork
from tests.conftest import need


@pytest.fixture(scope="module")
def real():
    """The first 30 real training samples as network input arrays."""
    return load_split(need("nmnist_small"), "train", SpikingNetwork(arch="dense:4"), limit=30, quiet=True)


def test_a_prefix_starts_with_the_sample_and_ends_at_a_cut_after_min_us(real):
    rng = np.random.default_rng(3)
    ends = []
    for k in range(len(real)):
        idx, t = real.idx[k], real.t[k]
        for _ in range(20):
            pi, pt = prefix(idx, t, 150_000, rng)
            np.testing.assert_array_equal(pt, t[:len(pt)])  # the first events, in order, none skipped
            np.testing.assert_array_equal(pi, idx[:len(pi)])
            # the cut falls after min_us: every event before t[0] + 150 ms is kept
            assert len(pt) >= np.searchsorted(t, t[0] + 150_000, side="left")
            ends.append((pt[-1] - t[0]) / (t[-1] - t[0]))
    ends = np.asarray(ends)
    # cuts spread over the rest of the sample (N-MNIST: 300 ms, so from about half of it to its end)
    assert ends.min() < 0.6 and (ends > 0.99).mean() < 0.2 and np.median(ends) < 0.9


def test_a_prefix_shorter_than_min_events_is_the_whole_sample(real):
    idx, t = real.idx[0], real.t[0]
    pi, pt = prefix(idx, t, 1, np.random.default_rng(0), min_events=len(t) + 1)
    assert len(pt) == len(t)
    short_t = t[:1]
    assert len(prefix(idx[:1], short_t, 150_000, np.random.default_rng(0))[1]) == 1


def test_prefix_crops_mix_whole_samples_and_prefixes_by_share_and_keep_the_label(real):
    tr = PrefixCrops(prefix=0.5, after=0.0)
    rng = np.random.default_rng(5)
    whole = 0
    for n in range(400):
        k = n % len(real)
        idx, t, label = tr(real, k, rng)
        assert label == real.labels[k] and len(idx) == len(t) and np.all(np.diff(t) >= 0)
        np.testing.assert_array_equal(t, real.t[k][:len(t)])
        whole += len(t) == len(real.t[k])
    assert 0.4 < whole / 400 < 0.65  # about half, plus the prefixes cut at the very end


def test_an_item_after_another_sample_joins_them_on_one_clock_under_the_later_label(real):
    tr = PrefixCrops(prefix=0.0, after=1.0)
    rng = np.random.default_rng(9)
    for k in range(len(real)):
        idx, t, label = tr(real, k, rng)
        own = real.t[k]
        assert label == real.labels[k]
        np.testing.assert_array_equal(t[-len(own):], own)  # this sample, last and untouched
        np.testing.assert_array_equal(idx[-len(own):], real.idx[k])
        before = t[:-len(own)]
        assert len(before) > 0 and before[-1] == own[0] - 1  # the other one ends 1 us before this one starts
        assert np.all(np.diff(t) >= 0)
        # the other sample is a real one, whole: its events with its own spacing
        matches = [j for j in range(len(real)) if j != k and len(real.t[j]) == len(before)
                   and np.array_equal(np.diff(real.t[j]), np.diff(before))]
        assert matches


@pytest.mark.parametrize("kw", [dict(prefix=1.5), dict(after=-0.1), dict(min_us=0), dict(min_events=-1)])
def test_bad_shares_are_refused_with_one_line(kw):
    with pytest.raises(ConfigError):
        PrefixCrops(**kw)


def test_train_gives_a_temporal_model_prefixes_and_a_counting_one_crops():
    from streamsnn.learn.augment import StreamCrops, stream_items

    assert isinstance(stream_items(SpikingNetwork(arch="dense:4", learning="membrane", tau_us=50_000)), PrefixCrops)
    assert isinstance(stream_items(SpikingNetwork(arch="dense:4")), StreamCrops)


@pytest.mark.slow
def test_train_with_stream_crops_given_trains_a_temporal_model_on_prefixes(tmp_path):
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "streamsnn", "train", "--data", str(need("nmnist_small")),
                          "--limit", "60", "--epochs", "1", "--learning", "membrane", "--stream-crops", "--json",
                          "--choose", "off", "--out", str(tmp_path / "m.npz")], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["stream_crops"] is True and got["stream_items"] == "prefixes"
    assert got["why"]["stream_crops"].startswith("--stream-crops")
