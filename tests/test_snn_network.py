"""SpikingNetwork on real N-MNIST samples: deep and convolutional stacks, decisions, test-then-train
learning checked against a NumPy gradient, error spikes, the leak, the input map and bad configs."""

from __future__ import annotations

import numpy as np
import pytest

from streamsnn.errors import ConfigError, InputError
from streamsnn.events import EventBatch, make_events
from streamsnn.snn import Decision, InputMap, SpikingNetwork
from streamsnn.snn.arch import DEFAULT_ARCH
from streamsnn.snn.learn import activity, backprop_counts, backprop_spikes
from streamsnn.snn.relu import conv_pre
from tests.conftest import need

SMALL_CONV = "conv:8:5:2:2,conv:16:3:2:1,dense:32"


@pytest.fixture(scope="module")
def samples():
    from streamsnn.io.dataset import open_dataset

    ds = open_dataset(need("nmnist_small"))
    return [s.load() for s in ds.split("train").samples[:120]]


def test_default_network_is_deep_and_convolutional(samples):
    net = SpikingNetwork(seed=1)
    assert net.arch == DEFAULT_ARCH and [g.layer.kind for g in net.geometry][:2] == ["conv", "conv"]
    assert net.classes == [str(k) for k in range(10)] and net.input_shape == (34, 34, 2)
    first = samples[0]
    assert first.sample == "1" and len(first) == 4681
    d = net.predict_one(first)
    assert isinstance(d, Decision)
    assert d.events == 4681 and d.scores.shape == (10,) and 0 < d.confidence <= 1
    assert d.label == int(np.argmax(d.scores))
    assert len(d.spikes) == len(net.layers) and all(s > 0 for s in d.spikes)
    assert d.spikes == tuple(int(c.sum()) for c in net.counts)
    assert net.samples_seen == 1 and net.events_seen == 4681 and net.progressive_accuracy is None
    # without a leak each call is one sample from a reset state: the same input, the same answer
    np.testing.assert_array_equal(d.scores, net.predict_one(first).scores)
    # the output is linear in the last layer's spike counts
    np.testing.assert_allclose(d.scores, net.counts[-1] @ net.weights[-1] + net.bias, rtol=1e-5, atol=1e-4)


def test_input_map_crops_scales_and_drops_polarity():
    net = SpikingNetwork((2 * 4 * 3, 5, 2), input_shape=(4, 3, 2))
    b = EventBatch(make_events([0, 1, 2], [3, 0, 1], [2, 1, 0], [1, 0, 1]), 4, 3)
    np.testing.assert_array_equal(net.event_indices(b), [12 + 2 * 4 + 3, 1 * 4 + 0, 12 + 1])
    # a sensor twice as large maps onto the same inputs
    big = EventBatch(make_events([0, 1, 2], [7, 1, 3], [5, 3, 1], [1, 0, 1]), 8, 6)
    np.testing.assert_array_equal(net.event_indices(big), net.event_indices(b))
    # a region of interest: events outside are dropped (with their times), the rest scaled onto the grid
    m = InputMap(sensor=(128, 128), roi=(10, 20, 40, 20), grid=(20, 10, 1))
    ev = EventBatch(make_events([5, 6, 7, 8], [10, 49, 50, 30], [20, 39, 25, 19], [1, 0, 1, 1]), 128, 128)
    idx, t = m.events(ev)
    np.testing.assert_array_equal(t, [5, 6])  # x = 50 and y = 19 fall outside
    np.testing.assert_array_equal(idx, [0, 9 * 20 + 19])
    assert InputMap.from_dict(m.to_dict()) == m
    with pytest.raises(ConfigError, match="roi"):
        InputMap(sensor=(34, 34), roi=(30, 0, 10, 10))


def test_learn_one_is_test_then_train(samples):
    net = SpikingNetwork(arch=SMALL_CONV, seed=0, lr=0.002)
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


def image(g, a):
    c, h, w = g.in_shape
    return a.reshape(c, h, w) if g.planar_in else a.reshape(h, w, c).transpose(2, 0, 1)


def flat(g, img):
    return img.reshape(-1) if g.planar_in else img.transpose(1, 2, 0).reshape(-1)


def reference_gradients(net, weights, bias, x0, label, activity=0.0):
    """Backprop in plain NumPy (float64) on the counts of the last forward pass, gated by count > 0,
    with ``activity`` times the hidden spike counts added to the loss."""
    acts = [x0.astype(np.float64)] + [c.astype(np.float64) for c in net.counts]
    scores = acts[-1] @ weights[-1] + bias
    e = np.exp(scores - scores.max())
    e /= e.sum()
    e[label] -= 1
    grads = [None] * len(net.geometry) + [np.outer(acts[-1], e)]
    delta = (weights[-1] @ e + activity) * (acts[-1] > 0)
    for k in range(len(net.geometry) - 1, -1, -1):
        g, W = net.geometry[k], weights[k].astype(np.float64)
        a = acts[k]
        if g.layer.kind == "dense":
            grads[k] = np.outer(a, delta)
            d_in = W @ delta
        else:
            s, p, kk = g.layer.stride, g.layer.padding, g.layer.kernel
            _, oh, ow = g.out_shape
            img = np.pad(image(g, a), ((0, 0), (p, p), (p, p)))
            dlt = delta.reshape(oh, ow, -1)
            grads[k] = np.zeros(W.shape)
            gin = np.zeros_like(img)
            for dy in range(kk):
                for dx in range(kk):
                    win = np.s_[:, dy: dy + s * (oh - 1) + 1: s, dx: dx + s * (ow - 1) + 1: s]
                    grads[k][:, dy, dx, :] = np.tensordot(img[win], dlt, axes=([1, 2], [0, 1]))
                    gin[win] += np.tensordot(W[:, dy, dx, :], dlt, axes=([1], [2]))
            d_in = flat(g, gin[:, p: gin.shape[1] - p, p: gin.shape[2] - p])
        delta = (d_in + activity) * (a > 0)
    return grads, e


@pytest.mark.parametrize("arch,activity", [(SMALL_CONV, 0.0), ("dense:64,dense:32", 0.0),
                                           ("conv:6:3:1:0,dense:16", 0.0), (SMALL_CONV, 0.05)])
def test_learning_step_is_the_gradient_of_the_counts(samples, arch, activity):
    net = SpikingNetwork(arch=arch, seed=2, lr=1e-3, lr_out=2e-3, lr_conv=0.5, max_step=0, activity=activity)
    b = samples[3]
    idx, t = net.input_events(b)
    before = [w.copy() for w in net.weights]
    bias = net.bias.copy()
    net.learn_indices(idx, b.label, t)  # forward (counts kept in net.counts), then the update
    grads, e = reference_gradients(net, before, bias, np.bincount(idx, minlength=net.sizes[0]), b.label, activity)
    for k, (w0, w1, g) in enumerate(zip(before, net.weights, grads)):
        lr = 2e-3 if k == len(net.geometry) else 1e-3 * (0.5 if net.layers[k].kind == "conv" else 1.0)
        assert np.abs(g).max() > 0, k
        np.testing.assert_allclose((w0 - w1) / lr, g, rtol=1e-3, atol=2e-3 * np.abs(g).max())
    np.testing.assert_allclose((bias - net.bias) / 2e-3, e, atol=1e-4)


def test_max_step_bounds_every_layers_step_and_keeps_its_direction(samples):
    b = samples[3]
    free = SpikingNetwork(arch=SMALL_CONV, seed=5, lr=0.05, max_step=0)
    capped = SpikingNetwork(arch=SMALL_CONV, seed=5, lr=0.05, max_step=0.01)
    w0 = [w.copy() for w in free.weights]
    for net in (free, capped):
        net.learn_one(b, (b.label + 1) % 10)  # a wrong label: a large error
    for k, w in enumerate(w0):
        big, small = free.weights[k] - w, capped.weights[k] - w
        assert np.linalg.norm(big) > 0.01 * np.linalg.norm(w), k  # the free step is larger than the bound
        assert np.linalg.norm(small) <= 0.01 * np.linalg.norm(w) * 1.001, k
        cos = (big * small).sum() / np.linalg.norm(big) / np.linalg.norm(small)
        assert cos > 0.9999, k  # the same direction, only shorter


@pytest.mark.parametrize("arch,learning,lr,lr_out", [(SMALL_CONV, "counts", 0.001, 0.0003),
                                                     ("dense:100", "spikes", 0.001, 0.001),
                                                     ("dense:100,dense:50", "spikes", 0.0005, 0.0005)])
def test_online_learning_fits_real_samples(samples, arch, learning, lr, lr_out):
    net = SpikingNetwork(arch=arch, seed=0, learning=learning, lr=lr, lr_out=lr_out, error_spikes=16, activity=0)
    train = samples[:100]
    for _ in range(3):
        for b in train:
            net.learn_one(b, b.label)
    acc = np.mean([net.predict_one(b).label == b.label for b in train])
    assert acc >= 0.7, acc  # chance is 0.1
    assert net.progressive_total == 300 and 0.1 < net.progressive_accuracy < acc + 0.05
    if learning == "spikes":  # the error herders keep their residuals (|state| <= 0.5) between samples
        for q in net._herd:
            assert 0 < np.abs(q).max() <= 0.5


@pytest.mark.parametrize("arch", ["dense:50", "dense:40,dense:30"])
def test_error_spikes_agree_with_counts_as_resolution_grows(samples, arch):
    """For one sample the error-spike update approaches backprop on counts as the resolution K grows."""
    b = samples[5]
    base = SpikingNetwork(arch=arch, seed=3, lr=1e-4)
    idx, t = base.input_events(b)
    base.predict_indices(idx, t)
    acts = activity(base, idx)
    d = base.predict_indices(idx, t)
    e = (np.exp(d.scores - d.scores.max()) / np.exp(d.scores - d.scores.max()).sum()).astype(np.float32)
    e[b.label] -= 1
    w0 = [w.copy() for w in base.weights]
    ref = SpikingNetwork(arch=arch, seed=3, lr=1e-4)
    backprop_counts(ref, acts, e, 1.0)
    want = [w1 - w for w1, w in zip(ref.weights, w0)]
    errs = []
    for K in (4, 32, 256):
        net = SpikingNetwork(arch=arch, seed=3, lr=1e-4, learning="spikes", error_spikes=K)
        made = backprop_spikes(net, acts, e, 1.0)
        assert all(m > 0 for m in made)
        got = [w1 - w for w1, w in zip(net.weights, w0)]
        for g, w in zip(got, want):  # nothing moves outside the active inputs x units of the counts rule
            assert np.all(g[w == 0] == 0)
        errs.append(max(np.abs(g - w).max() / np.abs(w).max() for g, w in zip(got, want)))
    assert errs[-1] < 0.05 and errs[-1] < errs[0] / 8, errs


def test_leaky_deep_network_forgets_when_idle(samples):
    net = SpikingNetwork(arch=SMALL_CONV, seed=0, tau_us=20_000)
    b = samples[0]
    first = net.predict_one(b.slice_count(0, 2000))
    assert np.abs(first.scores - net.bias).max() > 0 and all(s > 0 for s in first.spikes)
    cont = net.predict_one(b.slice_count(2000, 2001))  # right away: the evidence is still there
    assert np.abs(cont.scores).max() > 0.5 * np.abs(first.scores).max()
    late = b.slice_count(2000, 2001).events.copy()
    late["t"] += 2_000_000  # the same event after 1 s = 50 tau: old evidence and potentials are gone
    idle = net.predict_one(b.with_events(late))
    assert np.abs(idle.scores).max() < 1e-3 * np.abs(first.scores).max() + np.abs(net.weights[-1]).max() * 5
    net.reset()
    assert not any(p.any() for p in net.phi) and not net.scores.any()


def test_leaky_network_survives_a_clock_that_goes_back(samples):
    net = SpikingNetwork(arch=SMALL_CONV, seed=0, tau_us=50_000)
    b = samples[1]
    late = b.events.copy()
    late["t"] += 10**12  # a stream that started long ago
    first = net.predict_one(b.with_events(late))
    again = net.predict_one(b)  # the replay restarts at t = 0
    assert all(np.all(np.isfinite(p)) for p in net.phi) and np.all(np.isfinite(again.scores))
    assert all(s > 0 for s in again.spikes)
    assert np.abs(again.scores).max() < 10 * np.abs(first.scores).max() + 1


def test_leaky_network_with_huge_tau_counts_like_the_plain_one(samples):
    plain = SpikingNetwork(arch=SMALL_CONV, seed=4)
    leaky = SpikingNetwork(arch=SMALL_CONV, seed=4, tau_us=1e15)
    b = samples[2]
    d1, d2 = plain.predict_one(b), leaky.predict_one(b)
    for c1, c2 in zip(plain.counts, leaky.counts):
        assert np.abs(c1 - c2).sum() <= 0.002 * c1.sum() + 2
    np.testing.assert_allclose(d1.scores, d2.scores, rtol=0.02, atol=0.05 * np.abs(d1.scores).max())


def test_warm_up_changes_nothing(samples):
    net = SpikingNetwork(arch=SMALL_CONV, seed=0, tau_us=10_000)
    net.predict_one(samples[0])
    state = [p.copy() for p in net.phi] + [net.scores.copy()] + [w.copy() for w in net.weights]
    counters = net.counters()
    net.warm_up()
    for a, b in zip(state, [*net.phi, net.scores, *net.weights]):
        np.testing.assert_array_equal(a, b)
    assert net.counters() == counters


def test_bad_configs_are_one_line_errors():
    cases = [({"sizes": (10, 10)}, "sizes"), ({"sizes": (100, 10, 10)}, "input_shape"),
             ({"learning": "magic"}, "learning"), ({"arch": "conv:8:5"  ",pool:2"}, "pool:2"),
             ({"arch": "conv:8:x"}, "integers"), ({"arch": "dense:0"}, "positive"),
             ({"arch": "conv:4:9:1:0", "input_shape": (5, 5, 1)}, "does not fit"),
             ({"arch": "conv:4:3,dense:10", "learning": "spikes"}, "dense layers only"),
             ({"classes": ["a", "a"]}, "distinct"), ({"arch": ""}, "at least one")]
    for kwargs, needle in cases:
        with pytest.raises(ConfigError, match=needle) as e:
            SpikingNetwork(**kwargs)
        assert "\n" not in str(e.value)


def test_describe_lists_layers_and_classes():
    net = SpikingNetwork(arch="conv:4:3:2:1,dense:7", input_shape=(8, 6, 2), classes=["a", "b", "c"])
    d = net.describe()
    assert [x["kind"] for x in d["layers"]] == ["conv", "dense", "output"]
    assert d["layers"][0]["out"] == [4, 3, 4] and d["layers"][0]["weights"] == [2, 3, 3, 4]
    assert d["layers"][1]["weights"] == [48, 7] and d["classes"] == ["a", "b", "c"]
    assert d["parameters"] == 2 * 9 * 4 + 48 * 7 + 7 * 3 + 3 == net.parameters
    assert net.sizes == (96, 48, 7, 3) and net.n_classes == 3


def test_conv_pre_matches_explicit_sum():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 6))
    K = rng.standard_normal((2, 3, 3, 4))
    out = conv_pre(x, K, 2, 1)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    for oy in range(out.shape[0]):
        for ox in range(out.shape[1]):
            want = np.einsum("cyx,cyxo->o", xp[:, 2 * oy: 2 * oy + 3, 2 * ox: 2 * ox + 3], K)
            np.testing.assert_allclose(out[oy, ox], want)


def test_relu_twin_step_is_the_gradient_of_the_activations(samples):
    """snn.relu.learn: the same network as a ReLU network, one SGD step on real-valued activations."""
    from streamsnn.snn import relu

    net = SpikingNetwork(arch=SMALL_CONV, seed=6, lr=1e-3, lr_out=2e-3, lr_conv=0.5, max_step=0, activity=0)
    x = np.bincount(net.input_events(samples[7])[0], minlength=net.sizes[0]).astype(np.float32)
    acts, scores = relu.forward(net, x)
    assert all((a > 0).sum() > 0 for a in acts)
    before, bias = [w.copy() for w in net.weights], net.bias.copy()
    pred = relu.learn(net, x, samples[7].label)
    assert pred == int(np.argmax(scores)) and net.updates == 1
    for k, a in enumerate(acts):  # the reference backprops through the activations as "counts"
        net.counts[k] = a.astype(np.float32)
    grads, _ = reference_gradients(net, before, bias, x, samples[7].label)
    for k, (w0, w1, g) in enumerate(zip(before, net.weights, grads)):
        lr = 2e-3 if k == len(net.geometry) else 1e-3 * (0.5 if net.layers[k].kind == "conv" else 1.0)
        np.testing.assert_allclose((w0 - w1) / lr, g, rtol=1e-3, atol=2e-3 * np.abs(g).max())
