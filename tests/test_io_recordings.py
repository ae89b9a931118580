"""Readers of camera recordings on real files: AEDAT4, Prophesee EVT2/EVT3, jAER AEDAT 2.0 (DVS128)."""

import numpy as np
import pytest
from conftest import DATA, need

from streamsnn.errors import InputError
from streamsnn.io import probe, read_events
from streamsnn.io.aedat2 import read_aedat2
from streamsnn.io.prophesee import geometry_of, read_header


def _well_formed(b):
    ev = b.events
    assert ev["x"].max() < b.width and ev["y"].max() < b.height
    assert np.all(np.diff(ev["t"]) >= 0)
    assert set(np.unique(ev["p"])) == {0, 1}


def test_aedat4_sample():
    path = need("recordings/tonic_sample.aedat4")
    b = read_events(path)
    assert len(b) == 111954
    assert (b.width, b.height) == (320, 240)
    assert b.source == str(path) and b.meta["format"] == "AEDAT4"
    assert 0.55e6 < b.duration_us < 0.65e6  # 0.59 s per the data README
    _well_formed(b)


def test_evt3_matches_reference_decoding():
    b = read_events(need("recordings/prophesee_evt3_sample.raw"))
    ref = np.load(need("recordings/prophesee_evt3_sample.npy"))
    assert len(b) == len(ref) == 219596
    for f in ("t", "x", "y", "p"):
        assert np.array_equal(b.events[f].astype(np.int64), ref[f].astype(np.int64)), f
    assert (b.width, b.height) == (1280, 720)  # Gen4.1, from the header's plugin name
    assert b.meta["format"] == "Prophesee EVT3"


def test_evt2_sample_inside_its_sensor():
    path = need("recordings/prophesee_evt2_sample.raw")
    header = read_header(path)
    assert header["evt"] == "2.0" and "gen3" in header["plugin_name"]
    b = read_events(path)
    assert (b.width, b.height) == (640, 480)
    assert len(b) > 100_000
    _well_formed(b)


def test_prophesee_geometry_sources():
    assert geometry_of({"geometry": "1280x720"}) == ((1280, 720), "geometry")
    assert geometry_of({"format": "EVT3;height=320;width=320"}) == ((320, 320), "format")
    assert geometry_of({"plugin_name": "hal_plugin_gen41_evk3"}) == ((1280, 720), "plugin_name")
    assert geometry_of({}) == (None, "events")


DVS128 = sorted((DATA / "recordings" / "dvs128_aedat2").glob("*.aedat"))


@pytest.mark.parametrize("path", DVS128 or [None], ids=lambda p: p.name if p else "absent")
def test_dvs128_recordings(path):
    if path is None:
        need("recordings/dvs128_aedat2")
    b = read_events(path)
    assert (b.width, b.height) == (128, 128)
    assert 19_000 <= len(b) <= 337_000
    # The data README says 7-30 s; the shortest file lasts 6.89 s, so compare whole seconds.
    assert 7 <= round(b.duration_us / 1e6) <= 30
    _well_formed(b)


def test_dvs128_bit_layout(tmp_path):
    """Addresses built by hand decode to the pixels jAER's DVS128 extractor gives, in image orientation."""
    def addr(col_raw, row_raw, raw_pol):
        return (row_raw << 8) | (col_raw << 1) | raw_pol

    T = 0xFFFF_FF00  # a clock near its wrap (a step of more than 35.8 minutes would be refused as corrupt)

    rec = np.array(
        [(addr(0, 0, 0), T + 10), (addr(127, 0, 1), T + 20), (0x8000, T + 25), (addr(5, 100, 1), T + 30),
         (addr(3, 4, 0), 0xFFFF_FFF0), (addr(3, 4, 0), 0x10)],  # last: 32-bit timestamp wrap
        dtype=[("a", ">u4"), ("t", ">u4")])
    f = tmp_path / "hand.aedat"
    f.write_bytes(b"#!AER-DAT2.0\r\n# made by a test\r\n" + rec.tobytes())
    b = read_aedat2(f)
    ev = b.events
    assert len(b) == 5  # the special event (bit 15) is dropped
    assert list(ev["x"]) == [127, 0, 122, 124, 124]   # jAER flips the raw column
    assert list(ev["y"]) == [127, 127, 27, 123, 123]  # raw rows count from the bottom
    assert list(ev["p"]) == [1, 0, 0, 1, 1]           # raw polarity 0 is ON
    assert list(ev["t"]) == [T + 10, T + 20, T + 30, 0xFFFF_FFF0, (1 << 32) + 0x10]


def test_prophesee_header_without_events_is_an_empty_sample(tmp_path):
    src = need("recordings/prophesee_evt3_sample.raw").read_bytes()
    header = b"".join(line for line in src.splitlines(keepends=True)[:12] if line.startswith(b"%"))
    f = tmp_path / "idle.raw"
    f.write_bytes(header)
    assert probe(f) == ("Prophesee EVT3", (1280, 720))  # the header itself is sound
    with pytest.raises(InputError, match="empty sample"):  # one rule for every file without events
        read_events(f)


def test_aedat4_written_by_dv_processing_reads_back(tmp_path):
    from test_io_errors import write_aedat4

    f = tmp_path / "synth.aedat4"
    t, x, y, p = write_aedat4(f, n=3000, size=(64, 48))
    b = read_events(f)
    assert (b.width, b.height) == (64, 48) and len(b) == 3000
    assert np.array_equal(b.events["t"], t) and np.array_equal(b.events["x"], x)
    assert np.array_equal(b.events["y"], y) and np.array_equal(b.events["p"], p.astype(np.uint8))


def test_interrupted_aedat4_reads_its_complete_packets(tmp_path, caplog):
    """A recording whose writer stopped early has no packet index and may end inside a packet."""
    import struct

    from streamsnn.io.aedat4 import read_header as aedat4_header

    path = need("recordings/tonic_sample.aedat4")
    header = aedat4_header(path)
    data = bytearray(path.read_bytes()[:header.data_table])  # no packet index
    at = data.index(struct.pack("<q", header.data_table), 18, header.data_start)  # and none announced
    data[at:at + 8] = struct.pack("<q", -1)
    f = tmp_path / "interrupted.aedat4"
    f.write_bytes(bytes(data[:700_000]))  # and cut inside a packet
    whole = read_events(path).events
    got = read_events(f).events
    assert 0 < len(got) < len(whole)
    np.testing.assert_array_equal(got, whole[:len(got)])
    assert any("interrupted" in r.getMessage() and "cut off" in r.getMessage() for r in caplog.records)
