"""The active region of real datasets: POKER-DVS pips in a corner of a DVS128, N-MNIST, N-MNIST on a bigger
sensor at an offset; robust to background noise and hot pixels."""

import numpy as np
import pytest
from conftest import need
from dataset_util import BIG_SENSOR, OFFSET, aedat4_class_folders

from streamsnn.errors import InputError
from streamsnn.io import open_dataset
from streamsnn.io.region import Region, active_region, pixel_counts, region_from_counts


def inside(region: Region, x0, y0, x1, y1) -> bool:
    """The region lies within columns x0..x1 and rows y0..y1 (inclusive)."""
    return region.x0 >= x0 and region.y0 >= y0 and region.x0 + region.width - 1 <= x1 \
        and region.y0 + region.height - 1 <= y1


def test_poker_pips_keep_their_size():
    r = active_region(open_dataset(need("poker_dvs_inverted")))
    assert r.sensor == (128, 128) and r.samples == 31
    # the pips fill x 96..127, y 94..127 in image coordinates (the data README's 0..35 are jAER's)
    assert inside(r, 94, 92, 127, 127)
    assert 20 <= r.width <= 34 and 20 <= r.height <= 34  # about the pips' size, not shrunk, not the sensor
    assert r.coverage >= 0.98


def test_nmnist_region_is_most_of_the_sensor():
    r = active_region(open_dataset(need("nmnist_small")), max_samples=100)
    assert r.sensor == (34, 34) and r.samples == 100
    assert r.width >= 22 and r.height >= 24 and r.coverage >= 0.97


def test_offset_samples_on_a_bigger_sensor(tmp_path):
    aedat4_class_folders(tmp_path, n_train=4, n_test=0)
    r = active_region(open_dataset(tmp_path))
    assert r.sensor == BIG_SENSOR
    assert inside(r, OFFSET[0], OFFSET[1], OFFSET[0] + 33, OFFSET[1] + 33) and r.width >= 20 and r.height >= 20


@pytest.mark.parametrize("noise", [0.0, 0.05, 0.2, 0.4])
def test_noise_and_hot_pixels_do_not_stretch_the_box(noise):
    counts, _ = pixel_counts(open_dataset(need("poker_dvs_inverted")))
    clean = region_from_counts(counts)
    rng = np.random.default_rng(1)
    n = int(noise * counts.sum())
    noisy = counts.copy()
    np.add.at(noisy, (rng.integers(0, 128, n), rng.integers(0, 128, n)), 1)  # background activity
    noisy[2, 2] += int(0.05 * counts.sum())  # two hot pixels far from the pips
    noisy[120, 10] += int(0.02 * counts.sum())
    x0, y0, w, h = region_from_counts(noisy)
    assert abs(x0 - clean[0]) <= 2 and abs(y0 - clean[1]) <= 2
    assert abs(w - clean[2]) <= 3 and abs(h - clean[3]) <= 3


def test_padded_is_clipped_to_the_sensor():
    r = Region(120, 1, 6, 10, (128, 128)).padded(4)
    assert r.box == (116, 0, 12, 15)


def test_no_events_is_an_error():
    with pytest.raises(InputError, match="no events"):
        region_from_counts(np.zeros((4, 4)))


def patch_events(rng, n: int, x0: int, y0: int, side: int) -> np.ndarray:
    from streamsnn.events import make_events

    return make_events(np.arange(n) * 50, rng.integers(x0, x0 + side, n), rng.integers(y0, y0 + side, n),
                       rng.integers(0, 2, n))


def test_a_rare_sparse_class_keeps_its_events_in_the_region(tmp_path):
    """A class of 2 samples beside one of 30, its events spread thinner: summed counts read it as noise and the
    region dropped every one of its events (the model then learned it as "nothing in view")."""
    from dataset_util import write_aedat4

    rng = np.random.default_rng(0)
    for split, busy, rare in (("Train", 30, 2), ("Test", 1, 1)):
        for cls, n, args in (("busy", busy, (1000, 50, 50, 100)), ("rare", rare, (300, 400, 200, 200))):
            (tmp_path / split / cls).mkdir(parents=True)
            for k in range(n):
                write_aedat4(tmp_path / split / cls / f"{k}.aedat4", patch_events(rng, *args), (640, 480))
    ds = open_dataset(tmp_path)
    counts, _ = pixel_counts(ds)
    x0, y0, w, h = region_from_counts(counts)
    assert x0 + w <= 150  # summed counts: the rare class falls outside
    r = active_region(ds)
    assert inside(r, 40, 40, 610, 410) and r.x0 <= 60 and r.x0 + r.width >= 590 and r.y0 + r.height >= 390
    assert r.class_coverage > 0.9


def test_an_empty_first_file_does_not_hide_the_sensor(tmp_path):
    """`train` refused a class-folder dataset whose first file (in sort order) was empty: "no sample could be read"
    though every other one could; training itself skips such a file in one line."""
    import shutil

    from streamsnn.learn.datadefaults import choose_input, sensor_of

    src = need("nmnist_small")
    for split in ("Train", "Test"):
        for cls, ids in (("a", (1, 2, 3)), ("b", (4, 5, 6))):
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            for k in ids:
                shutil.copy(src / f"{k}.bs2", d / f"{k}.bin")
    (tmp_path / "Train" / "a" / "0.bin").write_bytes(b"")  # sorts first
    ds = open_dataset(tmp_path)
    assert sensor_of(ds) == ((34, 34), "from a decoded sample")
    assert choose_input(ds).input_map.sensor == (34, 34)


def test_train_names_a_class_left_without_events_in_the_region(caplog):
    import argparse
    import logging

    from streamsnn.commands._train_checks import blind
    from streamsnn.learn.training import SampleArrays
    from streamsnn.snn import SpikingNetwork

    net = SpikingNetwork((2312, 4, 2), classes=["busy", "rare"], seed=0)
    train = SampleArrays()
    train.idx = [np.arange(5, dtype=np.int32)] * 4 + [np.zeros(0, np.int32)] * 3
    train.labels = np.array([0, 0, 0, 1, 1, 1, 1])
    with caplog.at_level(logging.WARNING, logger="streamsnn.train"):
        blind(train, net, argparse.Namespace(roi=None))
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith("class rare: 3 of its 4 training samples have no event inside")
    assert "give --roi to cover it" in said[0]


def test_a_background_class_spread_over_the_sensor_leaves_the_object_region_as_it_is(tmp_path):
    """The object (real POKER-DVS pips of one suit) and a background of noise over the whole sensor, the second class
    a one-class user is told to add: the region stays the pips' (an earlier fix that weighed every class the same
    made it the whole sensor, pooled 3x3: 1.000 -> 0.727 after one epoch)."""
    from dataset_util import write_aedat4

    from streamsnn.events import make_events

    src = need("poker_dvs_inverted")
    rng = np.random.default_rng(0)
    for split in ("Train", "Test"):
        (tmp_path / split / "club").mkdir(parents=True)
        for f in (src / split / "club").iterdir():
            (tmp_path / split / "club" / f.name).symlink_to(f)
        (tmp_path / split / "background").mkdir()
        for k in range(3):
            n = 2000
            ev = make_events(np.sort(rng.integers(0, 15000, n)), rng.integers(0, 128, n), rng.integers(0, 128, n),
                             rng.integers(0, 2, n))
            write_aedat4(tmp_path / split / "background" / f"bg{k}.aedat4", ev, (128, 128))
    r = active_region(open_dataset(tmp_path))
    assert inside(r, 94, 92, 127, 127) and r.width <= 34 and r.height <= 34


def test_many_classes_cost_a_bounded_number_of_decoded_samples():
    """Every class missing from the samples spread evenly was decoded up to 8 times: 7,552 samples for 1,000 classes
    before training started, without a progress bar. Now EXTRA_SAMPLES in all."""
    from types import SimpleNamespace

    from streamsnn.events import EventBatch, make_events
    from streamsnn.io import region

    loads = []

    def sample(label: int, k: int):
        def load():
            loads.append(1)
            ev = make_events(np.arange(20) * 10, np.full(20, label % 60), np.full(20, 3), np.zeros(20, int))
            return EventBatch(ev, 64, 64, label=label)
        return SimpleNamespace(label=label, load=load)

    ds = SimpleNamespace(samples=[sample(c, k) for c in range(1000) for k in range(3)])
    r = region.active_region(ds)
    assert len(loads) <= 64 + region.EXTRA_SAMPLES and r.samples == len(loads)


def test_train_says_when_the_model_it_saved_is_at_chance_after_run_aways(caplog):
    """A hot pixel (1M events at one pixel in 5 ms) ran away every epoch; `train` saved a model at chance on the test
    split, exit 0, without a word."""
    import logging

    from streamsnn.commands._train_checks import at_chance
    from streamsnn.snn import SpikingNetwork

    net = SpikingNetwork((2312, 4, 2), classes=["hot", "cold"], seed=0)
    with caplog.at_level(logging.WARNING, logger="streamsnn.train"):
        at_chance([{"test_accuracy": 0.5, "revivals": 1}, {"test_accuracy": 0.5, "revivals": 1}], net)
        at_chance([{"test_accuracy": 0.5, "revivals": 0}], net)  # at chance, but nothing ran away: no guess at why
        at_chance([{"test_accuracy": 0.9, "revivals": 3}], net)  # revived, and it learned
        at_chance([{"revivals": 3}], net)  # no test split
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith("the model saved is at chance on the test split (50.0%, chance 50.0%) "
                                                 "after 2 revival(s)")
