"""Layer kinds as classes behind a registry: no kind named outside snn/layers/, no private state read across
modules, and a new kind (defined here, in the test) that builds, predicts, learns, saves and loads through the
registry alone: a new kind is one module plus one registry line."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from streamsnn.snn import SpikingNetwork
from streamsnn.snn.layers import KINDS, Layer, LayerSpec, layer_line
from streamsnn.snn.layers.dense import DenseLayer

PACKAGE = Path(__file__).resolve().parent.parent / "streamsnn"
LAYERS = PACKAGE / "snn" / "layers"


def _sources(paths):
    for path in paths:
        yield path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def test_no_layer_kind_is_compared_as_a_string_outside_the_registry():
    kinds = set(KINDS)
    found = []
    for path, tree in _sources(p for p in PACKAGE.rglob("*.py") if LAYERS not in p.parents):
        for node in ast.walk(tree):
            if not isinstance(node, ast.Compare):
                continue
            for side in (node.left, *node.comparators):
                items = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
                if any(isinstance(c, ast.Constant) and c.value in kinds for c in items):
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not found, f"layer kinds compared as strings outside snn/layers/: {found}"


def test_no_module_reads_private_attributes_of_another_object():
    """In snn/ and commands/info.py, `x._name` only on self (or cls): a layer's or network's private state
    is read by its own methods, everyone else calls them."""
    paths = [*(PACKAGE / "snn").rglob("*.py"), PACKAGE / "commands" / "info.py"]
    found = []
    for path, tree in _sources(paths):
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            name = node.attr
            if not name.startswith("_") or (name.startswith("__") and name.endswith("__")):
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} .{name}")
    assert not found, f"private attributes read across objects: {found}"


def test_the_older_names_are_the_first_layer_and_the_output_layer():
    """W1 is the first layer's weights, W2 and b2 the output layer's (not the second convolution's)."""
    net = SpikingNetwork(seed=0)  # the default network: conv, conv, dense
    assert net.W1 is net.weights[0]
    assert net.W2 is net.weights[-1] and net.W2.shape == (net.geometry[-1].n_out, net.n_classes)
    assert net.b2 is net.bias


# -- a new kind, defined in the test ------------------------------------------------------------
class IdentityLayer(Layer):
    """``identity``: passes every event on unchanged (no parameters, no state but its counts)."""

    kind = "identity"
    usage = "identity"

    @classmethod
    def from_numbers(cls, nums):
        return LayerSpec("identity") if not nums else None

    @classmethod
    def from_dict(cls, d):
        return LayerSpec("identity")

    @classmethod
    def text(cls, spec):
        return "identity"

    @classmethod
    def as_dict(cls, spec):
        return {"kind": "identity"}

    @classmethod
    def valid(cls, spec):
        return True

    @classmethod
    def out_shape(cls, spec, in_shape):
        return in_shape

    @classmethod
    def array_shapes(cls, geo):
        return {}

    @classmethod
    def weight_shape(cls, geo):
        return (0,)

    @classmethod
    def fan_in(cls, geo):
        return 1

    @classmethod
    def fan_out(cls, geo):
        return 1

    @classmethod
    def line(cls, d):
        return "identity"

    def init_weights(self, rng, gain):
        pass

    def arrays(self):
        return {}

    def set_arrays(self, arrays):
        pass

    def kernel(self, ev_i, ev_c, ev_t, start, theta, inv_tau, ref, emit, bi, bc, bt, m):
        n = len(ev_i) - start if not emit else min(len(ev_i) - start, bi.shape[0] - m)
        i = ev_i[start:start + n]
        c = ev_c[start:start + n] if len(ev_c) else np.ones(n, np.float32)
        np.add.at(self.counts, i, c)
        if emit:
            bi[m:m + n], bc[m:m + n] = i, c
            if inv_tau > 0:
                bt[m:m + n] = ev_t[start:start + n]
        return start + n, m + n if emit else m

    def backward(self, a_in, x_in, act_out, d_out, delta, lr, max_step, want):
        return delta[a_in] if want else np.zeros(len(a_in), np.float32)

    def relu(self, a):
        return a


class TaggedDense(DenseLayer):
    """``tagged:N``: a dense layer that keeps a second array in its checkpoint."""

    kind = "tagged"
    usage = "tagged:N"

    @classmethod
    def from_numbers(cls, nums):
        return LayerSpec("tagged", nums[0]) if len(nums) == 1 else None

    @classmethod
    def from_dict(cls, d):
        return LayerSpec("tagged", int(d["units"]))

    @classmethod
    def text(cls, spec):
        return f"tagged:{spec.units}"

    @classmethod
    def as_dict(cls, spec):
        return {"kind": "tagged", "units": spec.units}

    @classmethod
    def array_shapes(cls, geo):
        return {"": cls.weight_shape(geo), "tag": (geo.n_out,)}

    def init_weights(self, rng, gain):
        super().init_weights(rng, gain)
        self.tag = np.arange(self.geo.n_out, dtype=np.float32)

    def arrays(self):
        return {"": self.weight, "tag": self.tag}

    def set_arrays(self, arrays):
        super().set_arrays(arrays)
        self.tag = np.asarray(arrays["tag"], np.float32)


@pytest.fixture
def kinds(monkeypatch):
    """The two kinds registered for one test (one line each), removed afterwards."""
    monkeypatch.setitem(KINDS, "identity", IdentityLayer)
    monkeypatch.setitem(KINDS, "tagged", TaggedDense)


def _toy_data(rng, n_in=128, n=40):
    """Class c lights up the inputs of its own quarter of the grid; samples 1 s apart (a leak forgets between them)."""
    out = []
    for k in range(n):
        c = k % 3
        idx = rng.integers(c * 32, c * 32 + 32, 60).astype(np.int32)
        out.append((idx, k * 1_000_000 + np.sort(rng.integers(0, 50_000, 60)).astype(np.int64), c))
    return out


@pytest.mark.parametrize("tau_us", [None, 20_000.0])
def test_a_new_kind_builds_predicts_learns_saves_and_loads(kinds, tmp_path, tau_us):
    net = SpikingNetwork(arch="identity,tagged:24,dense:16", input_shape=(8, 8, 2), classes=["a", "b", "c"],
                         seed=1, lr=0.01, tau_us=tau_us)
    assert net.arch == "identity,tagged:24,dense:16" and net.sizes == (128, 128, 24, 16, 3)
    data = _toy_data(np.random.default_rng(0))
    idx, t, _ = data[0]
    d = net.predict_indices(idx, t)
    assert d.spikes[0] == len(idx)  # every event passed on once
    w0 = [w.copy() for w in net.weights]
    for _ in range(4):
        for idx, t, c in data:
            net.learn_indices(idx, c, t)
    assert net.updates == 4 * len(data)
    assert all(not np.array_equal(a, b) for a, b in zip(w0[1:], net.weights[1:]))  # every weighted layer learned
    acc = np.mean([net.predict_indices(idx, t).label == c for idx, t, c in data])
    assert acc > 0.8, acc

    path = net.save(tmp_path / "toy.npz")
    with np.load(path, allow_pickle=False) as z:  # the identity layer has no arrays; the tagged one two
        assert {n for n in z.files if n.startswith("weight")} == {"weight_1", "weight_1_tag", "weight_2", "weight_3"}
    back = SpikingNetwork.load(path)
    assert back.arch == net.arch and back.updates == net.updates
    np.testing.assert_array_equal(back.hidden[1].tag, np.arange(24, dtype=np.float32))
    for a, b in zip(back.weights, net.weights):
        np.testing.assert_array_equal(a, b)
    net.reset()
    for idx, t, _ in data[:5]:
        np.testing.assert_array_equal(back.predict_indices(idx, t).scores, net.predict_indices(idx, t).scores)
    layers = back.describe()["layers"]
    assert [layer_line(d) for d in layers] == ["identity", "dense 24 units", "dense 16 units", "output 3 classes"]
    assert layers[0]["parameters"] == 0 and back.parameters == 24 * 128 + 24 + 24 * 16 + 16 * 3 + 3


def test_a_checkpoint_of_an_unregistered_kind_is_refused_with_one_line(kinds, tmp_path):
    from streamsnn.errors import CheckpointError

    path = SpikingNetwork(arch="identity,dense:8", input_shape=(8, 8, 2), classes=3).save(tmp_path / "m.npz")
    del KINDS["identity"]
    with pytest.raises(CheckpointError, match="identity"):
        SpikingNetwork.load(path)
