"""Bad samples in the dataset layouts beyond one file per sample: labelled recordings and tonic items
are skipped, counted and named like files, and a labelled recording's decode can be cancelled."""

from __future__ import annotations

import threading

import pytest
from dataset_util import labelled_recording, nmnist_picks, tonic_nmnist_links
from test_io_hardening import hanging_aedat4

import streamsnn.io.segments
from streamsnn.errors import InputError
from streamsnn.io import open_dataset
from streamsnn.io.isolated import DecodeCancelled
from streamsnn.learn.training import load_split
from streamsnn.snn import SpikingNetwork
from streamsnn.sources.files import ReplaySource


@pytest.fixture
def recordings(tmp_path, monkeypatch):
    """Two labelled recordings of three samples each; 'a' is cut short (its packet index is gone).
    Returns the folder, the ids of b's samples, and the paths read_events was called with."""
    picks = nmnist_picks("test", 6)
    labelled_recording(tmp_path, "a", picks[:3])
    labelled_recording(tmp_path, "b", picks[3:])
    a = tmp_path / "a.aedat4"
    a.write_bytes(a.read_bytes()[: a.stat().st_size // 2])
    calls = []
    real = streamsnn.io.segments.read_events

    def spy(path, **kw):
        calls.append(path.name)
        return real(path, **kw)

    monkeypatch.setattr(streamsnn.io.segments, "read_events", spy)  # where a recording's slices read it
    return tmp_path, ["b#1", "b#2", "b#3"], calls


def test_unreadable_recording_skips_each_of_its_samples_after_one_read(recordings):
    folder, good, calls = recordings
    net = SpikingNetwork((2312, 8, 10))
    data = load_split(folder, "all", net, quiet=True)
    # labels index the network's classes (matched by name), which cover the dataset's
    assert data.ids == good and data.classes == net.classes
    assert set(open_dataset(folder).classes) <= set(net.classes)
    assert [data.classes[k] for k in data.labels] == [str(d) for _, d in nmnist_picks("test", 6)[3:]]
    assert len(data.skipped) == 3 and all("a.aedat4" in s for s in data.skipped)
    assert calls.count("a.aedat4") == 1  # its other samples did not read the broken file again


async def test_replay_skips_and_counts_the_samples_of_an_unreadable_recording(recordings):
    folder, good, calls = recordings
    replay = ReplaySource(folder, speed=0)
    batches = [b async for b in replay]
    assert [b.sample for b in batches] == good
    assert [b.meta["label_name"] for b in batches] == [str(b.label) for b in batches]
    assert replay.counters["bad_samples"] == 3
    assert calls.count("a.aedat4") == 1


def test_cancel_reaches_the_decode_of_a_labelled_recording(tmp_path, monkeypatch):
    rec = hanging_aedat4(tmp_path)
    (tmp_path / "stuck_labels.csv").write_text("class,start_us,end_us\nx,0,1000000\ny,1000000,2000000\n")
    # the cancel (at 0.5 s) must end it; without it, the deadline would, with another error
    monkeypatch.setenv("STREAMSNN_DECODE_TIMEOUT_S", "30")
    samples = open_dataset(tmp_path).samples
    assert [s.path for s in samples] == [rec, rec]
    for s in samples:  # a cancelled read is not remembered as the file's failure: each one decodes
        cancel = threading.Event()
        threading.Timer(0.5, cancel.set).start()
        with pytest.raises(DecodeCancelled, match="cancelled"):
            s.load(cancel=cancel)


def tonic_nmnist_with_an_empty_item(root):
    """tonic's NMNIST layout under root: two real samples per split and an empty Test/3/99999.bin."""
    tonic_nmnist_links(root, 2)
    (root / "NMNIST" / "Test" / "3").mkdir(exist_ok=True)
    (root / "NMNIST" / "Test" / "3" / "99999.bin").touch()
    return f"tonic:NMNIST:{root}"


def test_empty_tonic_item_follows_the_empty_sample_rule(tmp_path):
    ds = open_dataset(tonic_nmnist_with_an_empty_item(tmp_path))
    empty = next(s for s in ds.samples if s.sample_id == "99999")
    with pytest.raises(InputError, match="empty sample: the file holds no events"):
        empty.load()
    assert len(next(s for s in ds.samples if s.sample_id != "99999").load()) > 0


async def test_replay_of_a_tonic_dataset_skips_an_empty_item(tmp_path):
    replay = ReplaySource(tonic_nmnist_with_an_empty_item(tmp_path), split="test", speed=0)
    batches = [b async for b in replay]
    assert len(batches) == 2 and "99999" not in [b.sample for b in batches]
    assert replay.counters["bad_samples"] == 1
