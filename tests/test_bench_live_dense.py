"""bench_live's busier camera: a real recording made k times denser keeps its length and its pixels, each event k
times (shifted in time, in order), and the file the daemon replays reads back as that stream."""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np
import pytest
from conftest import ROOT, need

from streamsnn.io import read_events

sys.path.insert(0, str(ROOT))  # the benchmarks package lives beside streamsnn, not in it
from benchmarks.live_dense import BASE_US, copies, dense_events  # noqa: E402


@pytest.fixture(scope="module")
def dvxplorer():
    return read_events(need("recordings/tonic_sample.aedat4"))


def test_k_copies_keep_the_length_the_pixels_and_the_order(dvxplorer):
    ev = dvxplorer.events
    out, span = dense_events(ev, 3)
    t0 = int(ev["t"][0])
    assert span == int(ev["t"][-1]) - t0 + 1  # the recording is shorter than BASE_US: all of it
    assert len(out) == 3 * len(ev)
    assert np.all(np.diff(out["t"]) >= 0)
    assert out["t"].min() >= t0 and out["t"].max() < t0 + span
    per_pixel = Counter(zip(ev["x"].tolist(), ev["y"].tolist(), ev["p"].tolist()))
    dense_pixel = Counter(zip(out["x"].tolist(), out["y"].tolist(), out["p"].tolist()))
    assert dense_pixel == Counter({k: 3 * v for k, v in per_pixel.items()})
    # the copies are spread over the piece: each third of it holds about a third of the events
    thirds = np.histogram(out["t"] - t0, bins=3, range=(0, span))[0]
    assert thirds.min() > 0.2 * len(out)


def test_below_one_keeps_every_mth_event_and_the_piece_is_at_most_a_second(dvxplorer):
    ev = dvxplorer.events
    half, _ = dense_events(ev, 0.5)
    assert np.array_equal(half, ev[::2])
    short, span = dense_events(ev, 1, base_us=100_000)
    assert span <= 100_000 and len(short) == int(np.sum(ev["t"] - ev["t"][0] < 100_000))
    assert BASE_US == 1_000_000


def test_a_fractional_k_keeps_that_share_of_one_more_copy(dvxplorer):
    ev = dvxplorer.events
    out, _ = dense_events(ev, 1.5)
    assert abs(len(out) - 1.5 * len(ev)) < 0.01 * len(ev)
    assert np.all(np.diff(out["t"]) >= 0)
    again, _ = dense_events(ev, 1.5)
    assert np.array_equal(out, again)  # the same file every time


def test_copies_are_quarters_then_whole_above_one_and_one_over_m_below():
    assert copies(1.41) == 1.5 and copies(2.6) == 2.5 and copies(0.9) == 1.0
    assert copies(12.4) == 12.0
    assert copies(0.3) == pytest.approx(1 / 3) and copies(0.01) == pytest.approx(1 / 100)
    assert copies(1e-6) == pytest.approx(1 / 2048)
    assert copies(1e9) == 2048.0


def test_the_denser_file_reads_back_as_the_denser_stream(tmp_path, dvxplorer):
    import dv_processing as dv

    from streamsnn.sources._dv import array_to_store

    out, _ = dense_events(dvxplorer.events[:20_000], 4)
    path = tmp_path / "dense.aedat4"
    writer = dv.io.MonoCameraWriter(str(path), dv.io.MonoCameraWriter.EventOnlyConfig("t", dvxplorer.sensor_size))
    writer.writeEvents(array_to_store(out))
    del writer
    back = read_events(path)
    assert back.sensor_size == dvxplorer.sensor_size
    assert len(back) == len(out) and np.array_equal(back.events["t"], out["t"])
