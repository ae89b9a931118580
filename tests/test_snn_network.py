"""SpikingNetwork on real N-MNIST samples: decisions, test-then-train learning, leak, sensor scaling."""

from __future__ import annotations

import numpy as np
import pytest

from streamsnn.errors import ConfigError, InputError
from streamsnn.events import EventBatch, make_events
from streamsnn.snn import Decision, SpikingNetwork
from tests.conftest import need


@pytest.fixture(scope="module")
def samples():
    from streamsnn.io.dataset import open_dataset

    ds = open_dataset(need("nmnist_small"))
    return [s.load() for s in ds.split("train").samples[:120]]


def test_predict_one_on_real_sample(samples):
    net = SpikingNetwork(seed=1)
    first = samples[0]
    assert first.sample == "1" and len(first) == 4681
    d = net.predict_one(first)
    assert isinstance(d, Decision)
    assert d.events == 4681 and d.scores.shape == (10,) and 0 < d.confidence <= 1
    assert d.label == int(np.argmax(d.scores)) and d.spikes[0] > 0
    assert net.samples_seen == 1 and net.events_seen == 4681 and net.progressive_accuracy is None
    # without a leak each call is one sample from a reset state: the same input, the same answer
    d2 = net.predict_one(first)
    np.testing.assert_array_equal(d.scores, d2.scores)


def test_input_index_convention():
    net = SpikingNetwork((2 * 4 * 3, 5, 2), input_shape=(4, 3, 2))
    b = EventBatch(make_events([0, 1, 2], [3, 0, 1], [2, 1, 0], [1, 0, 1]), 4, 3)
    np.testing.assert_array_equal(net.event_indices(b), [12 + 2 * 4 + 3, 1 * 4 + 0, 12 + 1])
    # a sensor twice as large maps onto the same inputs
    big = EventBatch(make_events([0, 1, 2], [7, 1, 3], [5, 3, 1], [1, 0, 1]), 8, 6)
    np.testing.assert_array_equal(net.event_indices(big), net.event_indices(b))


def test_learn_one_is_test_then_train(samples):
    net = SpikingNetwork((2312, 64, 10), seed=0, lr=0.002)
    b = samples[0]
    before = net.predict_one(b)
    v0 = net.model_version
    d = net.learn_one(b, b.label)
    np.testing.assert_array_equal(d.scores, before.scores)  # the prediction made before the update
    assert net.model_version != v0 and net.updates == 1
    assert net.progressive_accuracy == float(before.label == b.label)
    after = net.predict_one(b)
    p = lambda s: np.exp(s - s.max())[b.label] / np.exp(s - s.max()).sum()  # noqa: E731
    assert p(after.scores) > p(before.scores)  # the true class became more likely
    with pytest.raises(InputError):
        net.learn_one(b, 10)


@pytest.mark.parametrize("learning", ["counts", "spikes"])
def test_online_learning_fits_real_samples(samples, learning):
    net = SpikingNetwork((2312, 100, 10), seed=0, learning=learning, lr=0.001, error_spikes=16)
    train = samples[:100]
    for _ in range(3):
        for b in train:
            net.learn_one(b, b.label)
    acc = np.mean([net.predict_one(b).label == b.label for b in train])
    assert acc >= 0.7, acc  # chance is 0.1
    assert net.progressive_total == 300 and 0.1 < net.progressive_accuracy < acc + 0.05
    if learning == "spikes":  # the error herders keep their residuals (|state| <= 0.5) between samples
        for q in (net._herd_out, net._herd_hidden):
            assert 0 < np.abs(q).max() <= 0.5


def test_counts_and_spikes_learning_agree_on_one_real_sample(samples):
    nets = [SpikingNetwork((2312, 50, 10), seed=3, learning=m, lr=1e-4, error_spikes=128)
            for m in ("counts", "spikes")]
    b = samples[5]
    w0 = nets[0].W1.copy(), nets[0].W2.copy()
    for n in nets:
        n.learn_one(b, b.label)
    d1 = [n.W1 - w0[0] for n in nets]
    d2 = [n.W2 - w0[1] for n in nets]
    # same support, and within a few percent of the largest change (quantization 0.5/K per herder)
    assert np.abs(d1[0]).max() > 0
    assert np.abs(d1[0] - d1[1]).max() <= 0.05 * np.abs(d1[0]).max()
    assert np.abs(d2[0] - d2[1]).max() <= 0.02 * np.abs(d2[0]).max()


def test_leaky_network_forgets_when_idle(samples):
    net = SpikingNetwork((2312, 200, 10), seed=0, tau_us=20_000)
    b = samples[0]
    first = net.predict_one(b.slice_count(0, 2000))
    assert np.abs(first.scores - net.b2).max() > 0
    # continue right away: evidence accumulates
    cont = net.predict_one(b.slice_count(2000, 2001))
    assert np.abs(cont.scores).max() > 0.5 * np.abs(first.scores).max()
    # the same event after a long idle gap (1 s = 50 tau): old evidence has decayed away
    late = b.slice_count(2000, 2001).events.copy()
    late["t"] += 2_000_000
    idle = net.predict_one(b.with_events(late))
    assert np.abs(idle.scores).max() < 1e-3 * np.abs(first.scores).max() + np.abs(net.W2).max() * 5
    net.reset()
    assert not net.phi.any() and not net.scores.any()


def test_bad_configs_are_one_line_errors():
    with pytest.raises(ConfigError, match="sizes"):
        SpikingNetwork((10, 10))
    with pytest.raises(ConfigError, match="input_shape"):
        SpikingNetwork((100, 10, 10))
    with pytest.raises(ConfigError, match="learning"):
        SpikingNetwork(learning="magic")


def test_leaky_network_survives_a_clock_that_goes_back(samples):
    net = SpikingNetwork((2312, 100, 10), seed=0, tau_us=50_000)
    b = samples[1]
    late = b.events.copy()
    late["t"] += 10**12  # a stream that started long ago
    first = net.predict_one(b.with_events(late))
    again = net.predict_one(b)  # the replay restarts at t = 0
    assert np.all(np.isfinite(again.scores)) and np.all(np.isfinite(net.phi))
    assert again.spikes[0] > 0 and np.abs(again.scores).max() > 0
    # evidence carried over from the first pass only adds to (never explodes) the second
    assert np.abs(again.scores).max() < 10 * np.abs(first.scores).max() + 1
