"""Models for live streams: the time-crop and crossing transforms, the evidence-smoothing decider, and
`streamsnn train` with the stream transforms (on real samples)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from streamsnn.cli import main
from streamsnn.errors import ConfigError
from streamsnn.events import EVENT_DTYPE, EventBatch
from streamsnn.learn.augment import StreamCrops, crop, crossing
from streamsnn.learn.streameval import cover, make_stream
from streamsnn.learn.training import SampleArrays, load_split
from streamsnn.pipeline.decide import Decider, log_softmax
from streamsnn.pipeline.segment import Window
from streamsnn.snn import Decision, SpikingNetwork
from tests.conftest import need


@pytest.fixture(scope="module")
def real():
    """The first 40 real training samples as network input arrays."""
    return load_split(need("nmnist_small"), "train", SpikingNetwork(arch="dense:4"), limit=40, quiet=True)


# -- crops -----------------------------------------------------------------------------------------
def test_crops_are_spans_of_the_sample_within_the_length(real):
    rng = np.random.default_rng(1)
    for k in range(10):
        idx, t = real.idx[k], real.t[k]
        for length in (30_000, 100_000, 250_000):
            ci, ct = crop(idx, t, length, rng)
            assert 0 < len(ct) < len(t) and ct[-1] - ct[0] < length
            lo = int(np.searchsorted(t, ct[0], side="left"))  # a contiguous run of the sample's events
            np.testing.assert_array_equal(ct, t[lo:lo + len(ct)])
            np.testing.assert_array_equal(ci, idx[lo:lo + len(ci)])
            assert np.all(np.diff(ct) >= 0)
        whole = crop(idx, t, int(t[-1] - t[0]) + 1, rng)  # as long as the sample: all of it
        assert len(whole[0]) == len(idx)


def test_stream_crops_mix_whole_crops_and_crossings_by_share(real):
    tr = StreamCrops(whole=0.3, crossing=0.3, min_us=30_000, max_us=120_000, window_us=100_000)
    rng = np.random.default_rng(7)
    kinds = {"whole": 0, "crop": 0, "crossing": 0}
    for n in range(600):
        k = n % len(real)
        idx, t, label = tr(real, k, rng)
        assert np.all(np.diff(t) >= 0) and len(idx) == len(t)
        if len(t) == len(real.t[k]) and np.array_equal(t, real.t[k]):
            kinds["whole"] += 1
        elif t[-1] <= real.t[k][-1]:  # inside the sample
            kinds["crop"] += 1
            assert label == real.labels[k] and t[-1] - t[0] < 120_000
        else:
            kinds["crossing"] += 1
            assert t[-1] - t[0] < 100_000 and t[0] < real.t[k][-1] + 1 <= t[-1]
    assert all(abs(kinds[k] / 600 - share) < 0.07 for k, share in (("whole", 0.3), ("crop", 0.4), ("crossing", 0.3)))


def test_stream_crops_hold_at_least_min_events_as_live_windows_do(real):
    tr = StreamCrops(whole=0.0, crossing=0.5, min_us=5_000, max_us=40_000, min_events=300)
    rng = np.random.default_rng(0)
    sizes, fell_back = [], 0
    for n in range(300):
        k = n % len(real)
        idx, t, _ = tr(real, k, rng)
        sizes.append(len(idx))
        fell_back += len(idx) == len(real.idx[k])
    assert min(sizes) >= 300 and 0 < fell_back < 300  # short crops redrawn; whole samples only after 4 misses
    free = StreamCrops(whole=0.0, crossing=0.0, min_us=5_000, max_us=40_000, min_events=0)
    assert min(len(free(real, k, rng)[0]) for k in range(40)) < 300


def test_stream_crops_are_deterministic_by_seed(real):
    tr = StreamCrops()
    a = [tr(real, k, np.random.default_rng(3)) for k in range(20)]
    b = [tr(real, k, np.random.default_rng(3)) for k in range(20)]
    c = [tr(real, k, np.random.default_rng(4)) for k in range(20)]
    assert all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) and x[2] == y[2] for x, y in zip(a, b))
    assert not all(np.array_equal(x[1], y[1]) for x, y in zip(a, c))


@pytest.mark.parametrize("bad", [dict(whole=0.8, crossing=0.3), dict(whole=-0.1), dict(min_us=0),
                                 dict(min_us=200_000, max_us=100_000), dict(window_us=1)])
def test_stream_crops_refuse_bad_settings(bad):
    with pytest.raises(ConfigError):
        StreamCrops(**bad)


# -- crossings ---------------------------------------------------------------------------------------
def _batch(t, x):
    ev = np.zeros(len(t), EVENT_DTYPE)
    ev["t"], ev["x"] = t, x
    return ev


def test_crossing_is_the_stream_window_labelled_by_majority_coverage(real):
    a, b = 0, 1
    ia, ta, la = real.idx[a], real.t[a], int(real.labels[a])
    ib, tb, lb = real.idx[b], real.t[b], int(real.labels[b])
    assert la != lb
    # the same two samples as `eval --stream` joins them (b starts 1 us after a's last event)
    ev_a = _batch(ta - ta[0], ia % 34)
    ev_b = _batch(tb - tb[0], ib % 34)
    st = make_stream([EventBatch(ev_a, 34, 34, label=la), EventBatch(ev_b, 34, 34, label=lb)])
    whole_t = np.concatenate([b.events["t"] for b in st.batches])
    seen = set()
    for seed in range(40):
        idx, t, label = crossing(ia, ta, la, ib, tb, lb, 100_000, np.random.default_rng(seed))
        end_a = int(ta[-1]) + 1
        assert np.all(np.diff(t) >= 0) and len(idx) == len(t)
        assert t[0] >= end_a - 100_000 and t[-1] < end_a + 100_000
        n_a = int((t < end_a).sum())  # a's tail then b's head, events unchanged
        np.testing.assert_array_equal(idx[:n_a], ia[len(ia) - n_a:])
        np.testing.assert_array_equal(idx[n_a:], ib[:len(idx) - n_a])
        # the label is what stream evaluation scores a window of the same place on the stream against
        before = int(np.random.default_rng(seed).integers(1, 100_000))
        s0 = int(st.ends[0]) - before  # the window on the stream's clock
        k = cover(st.starts, st.ends, s0, s0 + 100_000)
        assert label == int(st.labels[k])
        on_stream = whole_t[(whole_t >= s0) & (whole_t < s0 + 100_000)]
        np.testing.assert_array_equal(t - (ta[0] - 0), on_stream)
        seen.add(label)
    assert seen == {la, lb}


def test_stream_crops_crossing_continues_into_another_sample():
    two = SampleArrays([np.arange(5, dtype=np.int32), np.arange(100, 105, dtype=np.int32)],
                       [np.arange(0, 50_000, 10_000, dtype=np.int64)] * 2, np.array([3, 4]), ["a", "b"])
    tr = StreamCrops(whole=0.0, crossing=1.0, window_us=60_000, min_events=0)
    for seed in range(20):
        idx, t, label = tr(two, 0, np.random.default_rng(seed))
        after = t >= 40_001  # past the end of sample "a": events of "b", never "a" again
        assert np.all(idx[after] >= 100) and np.all(idx[~after] < 100)
        assert after.any() and label in (3, 4)


# -- the smoothing decider --------------------------------------------------------------------------
class FixedNet:
    """Gives hand-made scores, one per window, in order."""

    def __init__(self, scores):
        self.scores = [np.asarray(s, np.float32) for s in scores]

    def predict_one(self, batch):
        s = self.scores.pop(0)
        return Decision(int(np.argmax(s)), s, 0.0, len(batch))


def _win(t_end, sample=None):
    """A stream window (a segmenter's stream 1) ending at ``t_end``, or with ``sample`` a whole sample."""
    return Window(EventBatch(np.zeros(3, EVENT_DTYPE), 34, 34), t_end - 100_000, t_end, sample=sample,
                  stream=1 if sample is None else None)


def test_decider_averages_log_probabilities_with_a_time_constant():
    s1, s2, s3 = [4.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 9.0]
    net = FixedNet([s1, s2, s3])
    dec = Decider(50_000)
    d1 = dec(net, _win(100_000))
    d2 = dec(net, _win(150_000))
    w = np.exp(-1.0)  # the first window ended one time constant earlier
    want = (w * log_softmax(s1) + log_softmax(s2)) / (w + 1)
    assert d1.label == 0 and d2.label == 0  # one window of class 1 does not outvote the evidence so far
    np.testing.assert_allclose(d2.scores, want, rtol=1e-5)
    assert d2.confidence == pytest.approx(np.exp(want[0]) / np.exp(want).sum(), rel=1e-5)
    d3 = dec(net, _win(400_000))  # long after: the old evidence has faded
    assert d3.label == 2
    alone = Decider(0)
    net = FixedNet([s1, s2])
    assert [alone(net, _win(100_000)).label, alone(net, _win(150_000)).label] == [0, 1]


def test_decider_leaves_samples_alone_and_restarts_when_the_clock_goes_back():
    s1, s2 = [5.0, 0.0], [0.0, 1.0]
    dec = Decider(1e9)
    net = FixedNet([s1, s2, s2, s1, s2])
    assert dec(net, _win(100_000)).label == 0
    assert dec(net, _win(150_000, sample="x")).label == 1  # a whole sample: decided alone ...
    assert dec(net, _win(200_000)).label == 0  # ... and the stream's evidence is as it was
    assert dec(net, _win(50_000)).label == 0  # the clock went back: a new stream
    assert dec(net, _win(100_000)).label == 0  # s1 strong in the new stream outweighs one s2


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "100"])
def test_decider_refuses_bad_time_constants(bad):
    with pytest.raises(ConfigError):
        Decider(bad)


# -- train -------------------------------------------------------------------------------------------
def test_stream_training_halves_a_convolutional_networks_learning_rates():
    from streamsnn.learn.training import STREAM_LR_SCALE, learning_settings
    from streamsnn.snn.arch import DEFAULT_ARCH

    whole, stream = learning_settings(DEFAULT_ARCH, True), learning_settings(DEFAULT_ARCH, True, stream=True)
    assert stream["lr"] == pytest.approx(whole["lr"] * STREAM_LR_SCALE) and STREAM_LR_SCALE < 1
    assert stream["lr_out"] == pytest.approx(whole["lr_out"] * STREAM_LR_SCALE)
    assert learning_settings("dense:800", stream=True) == learning_settings("dense:800")  # measured on conv only


def test_train_with_and_without_stream_crops(capsys, tmp_path):
    data = str(need("nmnist_small"))
    runs = {}
    for flag in ("--stream-crops", "--no-stream-crops"):
        out = tmp_path / f"{flag}.npz"
        capsys.readouterr()
        assert main(["train", "--data", data, "--arch", "dense:32", "--epochs", "1", "--limit", "60", "--seed", "1",
                     "--out", str(out), "--json", flag]) == 0
        runs[flag] = json.loads(capsys.readouterr().out)
        assert out.exists()
    on, off = runs["--stream-crops"], runs["--no-stream-crops"]
    assert on["stream_crops"] is True and off["stream_crops"] is False
    # crops and crossings are shorter than whole samples: fewer events learned from per sample
    net_on, net_off = SpikingNetwork.load(tmp_path / "--stream-crops.npz"), SpikingNetwork.load(
        tmp_path / "--no-stream-crops.npz")
    assert net_on.updates == net_off.updates == 60
    assert net_on.events_seen < 0.9 * net_off.events_seen
    assert not np.array_equal(net_on.weights[0], net_off.weights[0])


def test_sample_arrays_from_batches_read_each_batch_as_the_input_map_does():
    """`SampleArrays.from_batches`: one sample per batch, through the network's input map (events outside its
    region dropped, times kept beside their units), labelled by the batches or by the labels given."""
    from streamsnn.snn.arch import InputMap

    net = SpikingNetwork(arch="dense:4", input_map=InputMap((8, 8), (0, 0, 4, 8), (4, 8, 1)), classes=3, seed=0)
    rng = np.random.default_rng(0)

    def one(n, label, name):
        ev = np.zeros(n, EVENT_DTYPE)
        ev["t"] = np.sort(rng.integers(0, 10_000, n))
        ev["x"], ev["y"], ev["p"] = rng.integers(0, 8, n), rng.integers(0, 8, n), rng.integers(0, 2, n)
        return EventBatch(ev, 8, 8, sample=name, label=label)

    batches = [one(50, 2, "a"), one(30, 0, "b")]
    data = SampleArrays.from_batches(net, iter(batches))  # any iterable, read once
    assert data.ids == ["a", "b"] and data.labels.tolist() == [2, 0] and data.labels.dtype == np.int64
    for b, idx, t in zip(batches, data.idx, data.t):
        kept = b.events[b.events["x"] < 4]  # the region: the left half of the sensor
        assert len(kept) < len(b.events) and len(idx) == len(t) == len(kept)
        np.testing.assert_array_equal(t, kept["t"])
        np.testing.assert_array_equal((idx, t), net.input_events(b))
    assert SampleArrays.from_batches(net, batches, labels=[1, 1]).labels.tolist() == [1, 1]
    with pytest.raises(ValueError, match="1 labels for 2 samples"):
        SampleArrays.from_batches(net, batches, labels=[1])
