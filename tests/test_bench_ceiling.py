"""The ceiling benchmark's held-out split and count images, on the real N-MNIST samples: what its ReLU twin and the
spiking network are trained and scored on must be the same samples and the same input units."""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np
import pytest
from conftest import ROOT, need

from streamsnn.defaults import DEFAULT_ARCH
from streamsnn.io.dataset import open_dataset
from streamsnn.io.labellists import read_label_list
from streamsnn.learn.training import load_split
from streamsnn.snn import SpikingNetwork

sys.path.insert(0, str(ROOT))  # the benchmarks package lives beside streamsnn, not in it
from benchmarks.bench_ceiling import count_images, held_out_folder  # noqa: E402


def test_the_held_out_split_is_the_last_quarter_of_each_class_and_nothing_else(tmp_path):
    nmnist = need("nmnist_small")
    labels = read_label_list(nmnist / "train1K.txt")
    ds = open_dataset(held_out_folder(nmnist, tmp_path / "held"))
    train = [s.path.stem for s in ds.split("train").samples]
    test = [s.path.stem for s in ds.split("test").samples]
    assert not set(train) & set(test)
    assert sorted(train + test, key=int) == sorted(labels, key=int)  # every training sample, once
    assert ds.split("test").samples[0].label_name == str(labels[test[0]])
    order = list(labels)
    per_class = Counter(labels.values())
    held = Counter(labels[n] for n in test)
    for c, n in per_class.items():
        assert held[c] == round(n / 4)
        mine = [s for s in order if labels[s] == c]
        assert set(mine[-held[c]:]) == {s for s in test if labels[s] == c}  # the last ones of the class


def test_count_images_put_each_event_on_its_polarity_and_pixel():
    nmnist = need("nmnist_small")
    net = SpikingNetwork(arch=DEFAULT_ARCH, input_shape=(34, 34, 2))
    data = load_split(nmnist, "test", net, limit=3, quiet=True)
    images = count_images(data, net)
    assert images.shape == (3, 2, 34, 34)
    by_id = {s.path.stem: s for s in open_dataset(nmnist).split("test").samples}
    for k in range(3):
        ev = by_id[str(data.ids[k])].load().events
        expect = np.zeros((2, 34, 34))
        np.add.at(expect, ((ev["p"] > 0).astype(int), ev["y"].astype(int), ev["x"].astype(int)), 1)
        assert np.array_equal(np.expm1(images[k]).round(), expect)


def test_the_dense_arm_is_the_timing_rules_network_on_the_same_input_map():
    """`--arms dense` is bench_time's one-layer network, fed the count images the default's twin gets."""
    from benchmarks.bench_ceiling import DENSE_ARCH
    from benchmarks.bench_time import ARMS as TIME_ARMS

    assert DENSE_ARCH in TIME_ARMS["timing"][1]
    dense = SpikingNetwork(arch=DENSE_ARCH, input_shape=(34, 34, 2))
    default = SpikingNetwork(arch=DEFAULT_ARCH, input_shape=(34, 34, 2))
    assert dense.geometry[0].in_shape == default.geometry[0].in_shape == (2, 34, 34)
    assert [g.layer.units for g in dense.geometry] == [800]


def test_the_dense_arm_builds_2312_800_10_relus():
    torch = pytest.importorskip("torch", reason="torch is a benchmark dependency (pip install -e '.[bench]')")
    from benchmarks.bench_ceiling import DENSE_ARCH, build

    twin = build("twin", SpikingNetwork(arch=DENSE_ARCH, input_shape=(34, 34, 2)).geometry, 10)
    shapes = [tuple(m.weight.shape) for m in twin if isinstance(m, torch.nn.Linear)]
    assert shapes == [(800, 2312), (10, 800)]
    assert twin(torch.zeros(3, 2, 34, 34)).shape == (3, 10)
