"""N-MNIST file reader on real samples: counts, sensor, labels from the dataset folder, decoding."""

import numpy as np
from conftest import need

from streamsnn.events import EVENT_DTYPE
from streamsnn.io import read_events
from streamsnn.io.nmnist import count_events


def test_first_training_sample_facts():
    b = read_events(need("nmnist_small/1.bs2"))
    assert len(b) == 4681
    assert (b.width, b.height) == (34, 34)
    assert b.label == 5 and b.sample == "1"
    assert b.source == str(need("nmnist_small/1.bs2"))
    assert b.events.dtype == EVENT_DTYPE
    assert set(np.unique(b.events["p"])) <= {0, 1}
    assert np.all(np.diff(b.events["t"]) >= 0)
    # N-MNIST samples are three saccades of about 100 ms each.
    assert 250_000 < b.duration_us < 400_000


def test_decoding_matches_the_byte_layout():
    path = need("nmnist_small/1.bs2")
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, 5).astype(np.int64)
    b = read_events(path)
    assert np.array_equal(b.events["x"], raw[:, 0])
    assert np.array_equal(b.events["y"], raw[:, 1])
    assert np.array_equal(b.events["p"], raw[:, 2] >> 7)
    assert np.array_equal(b.events["t"], ((raw[:, 2] & 127) << 16) | (raw[:, 3] << 8) | raw[:, 4])


def test_test_split_sample_gets_its_label():
    lines = need("nmnist_small/test100.txt").read_text().splitlines()
    sample, label = lines[1].split()
    b = read_events(need(f"nmnist_small/{sample}.bs2"))
    assert b.sample == sample and b.label == int(label)


def test_loose_bin_file_has_no_label():
    b = read_events(need("recordings/tonic_sample_nmnist.bin"))
    assert len(b) == 4325 and (b.width, b.height) == (34, 34)
    assert b.label is None


def test_count_from_size_equals_decoded_count():
    for name in ("1.bs2", "500.bs2", "60100.bs2"):
        path = need(f"nmnist_small/{name}")
        assert count_events(path) == len(read_events(path))
