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
