"""The segmenter under hostile input, on real recordings and N-MNIST samples: duplicated, late and
backwards batches, sensor changes mid-stream or mid-sample, and samples or windows that never end."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import need

from streamsnn.errors import InputError
from streamsnn.events import EventBatch
from streamsnn.io import open_dataset, read_events
from streamsnn.pipeline.segment import Segmenter


@pytest.fixture(scope="module")
def recording() -> EventBatch:
    return read_events(need("recordings/tonic_sample.aedat4"))


@pytest.fixture(scope="module")
def samples() -> list[EventBatch]:
    return [s.load() for s in open_dataset(need("nmnist_small")).split("test").samples[:3]]


def feed_all(seg: Segmenter, batches) -> tuple[list, list[str]]:
    """Windows of every batch, and the errors of the batches the segmenter refused."""
    windows, errors = [], []
    for b in batches:
        try:
            windows += seg.feed(b)
        except InputError as exc:
            errors.append(str(exc))
    return windows + seg.flush(), errors


def same_windows(a: list, b: list) -> None:
    assert [(w.t_start_us, w.t_end_us) for w in a] == [(w.t_start_us, w.t_end_us) for w in b]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.batch.events, y.batch.events)


def test_a_duplicated_stream_batch_is_refused_and_the_stream_goes_on(recording):
    chunks = recording.split_time(10_000)
    clean, errors = feed_all(Segmenter("window"), chunks)
    assert not errors and len(clean) >= 10
    # the case: the same packet twice (a QoS 1 redelivery), then the next ones
    hostile = chunks[:20] + [chunks[19]] + chunks[20:]
    seg = Segmenter("window")
    got, errors = feed_all(seg, hostile)
    assert len(errors) == 1 and "duplicated or late" in errors[0] and "\n" not in errors[0]
    same_windows(got, clean)  # the duplicate changed nothing
    assert seg.counters == {"restarts": 0, "cut": 0}


def test_a_late_batch_overlapping_the_last_one_is_refused(recording):
    chunks = recording.split_time(10_000)
    late = chunks[5].slice_count(len(chunks[5]) // 2)  # the second half of an earlier chunk
    got, errors = feed_all(Segmenter("window"), chunks[:8] + [late] + chunks[8:])
    assert len(errors) == 1
    same_windows(got, feed_all(Segmenter("window"), chunks)[0])


def test_a_stream_that_goes_far_back_in_time_is_a_new_stream(recording):
    chunks = recording.split_time(10_000)
    seg = Segmenter("window", window_us=100_000, hop_us=50_000)
    first, errors = feed_all(seg, chunks)  # flushes at the end: the state is fresh again
    seg2 = Segmenter("window", window_us=100_000, hop_us=50_000)
    twice, errors = feed_all(seg2, chunks + chunks)  # the recording played again from its start
    assert not errors and seg2.counters["restarts"] == 1
    same_windows(twice, first + first)


def test_a_stream_from_another_sensor_is_a_new_stream(recording):
    chunks = recording.split_time(10_000)
    other = [EventBatch(c.events, 640, 480) for c in chunks[10:]]  # same events, announced as a bigger sensor
    seg = Segmenter("window")
    got, errors = feed_all(seg, chunks[:10] + other)
    assert not errors and seg.counters["restarts"] == 1
    assert {w.batch.sensor_size for w in got} == {(320, 240), (640, 480)}


def pieces(sample: EventBatch, n: int, end: bool = True) -> list[EventBatch]:
    parts = sample.split_count(n)
    return [p.with_meta(meta={"end_of_sample": end and i == len(parts) - 1}) for i, p in enumerate(parts)]


def test_a_duplicated_part_of_a_sample_is_refused(samples):
    a, b = samples[0], samples[1]
    parts = pieces(a, 1000)
    seg = Segmenter("auto")
    got, errors = feed_all(seg, parts[:2] + [parts[1]] + parts[2:] + pieces(b, 1000))
    assert len(errors) == 1 and a.sample in errors[0]
    assert [w.sample for w in got] == [a.sample, b.sample]
    np.testing.assert_array_equal(got[0].batch.events, a.events)


def test_a_publisher_that_sends_a_sample_again_from_its_start_completes_it_once(samples):
    a = samples[0]
    parts = pieces(a, 1000, end=False)
    seg = Segmenter("auto")
    got, errors = feed_all(seg, parts[:2] + pieces(a, 1000))  # two parts, then all of them again (a retry)
    assert len(errors) == 2 and seg.counters["restarts"] == 0  # the repeated parts are refused ...
    assert len(got) == 1
    np.testing.assert_array_equal(got[0].batch.events, a.events)  # ... and the sample is whole, once


def test_a_sample_that_goes_back_before_its_start_or_changes_sensor_is_begun_anew(samples):
    a = samples[0]
    parts = pieces(a, 1000, end=False)
    earlier = a.with_events(a.events.copy())
    earlier.events["t"] -= 1_000_000  # the same sample id, from a clock a second behind
    seg = Segmenter("auto")
    got, errors = feed_all(seg, parts[:2] + pieces(earlier, 1000))
    assert not errors and seg.counters["restarts"] == 1
    assert [w.events for w in got] == [len(parts[0]) + len(parts[1]), len(a)]
    np.testing.assert_array_equal(got[1].batch.events, earlier.events)
    # a part announcing another sensor size mid-sample
    seg = Segmenter("auto")
    moved = replace(parts[2], width=64, height=64)
    got, errors = feed_all(seg, parts[:2] + [moved])
    assert not errors and seg.counters["restarts"] == 1
    assert [w.batch.sensor_size for w in got] == [(34, 34), (64, 64)]


def test_a_sample_that_never_ends_is_classified_in_bounded_pieces(samples):
    a = samples[0]
    seg = Segmenter("auto", max_events=2500, max_sample_us=0)
    windows = []
    for k in range(20):  # the same sample id, on and on, never an end-of-sample mark
        part = a.with_events(a.events.copy())
        part.events["t"] += k * 400_000
        windows += seg.feed(part.with_meta(meta={}))
        assert seg._part_events < 2500  # nothing piles up
    assert all(w.events <= 2500 for w in windows)
    assert sum(w.events for w in windows) + seg._part_events == 20 * len(a)  # nothing lost either
    assert all(w.sample == a.sample for w in windows) and seg.counters["cut"] == len(windows)
    # by sensor time instead: pieces of at most max_sample_us
    seg = Segmenter("auto", max_sample_us=1_000_000)
    windows = []
    for k in range(10):
        part = a.with_events(a.events.copy())
        part.events["t"] += k * 400_000
        windows += seg.feed(part.with_meta(meta={}))
    assert len(windows) >= 3 and all(w.t_end_us - w.t_start_us < 1_400_000 for w in windows)


def test_one_batch_larger_than_the_bound_is_split(samples):
    a = samples[0]
    seg = Segmenter("auto", max_events=1000)
    got = seg.feed(a.with_meta(meta={"end_of_sample": True}))
    assert [w.events for w in got] == [1000] * (len(a) // 1000) + [len(a) % 1000]
    np.testing.assert_array_equal(np.concatenate([w.batch.events for w in got]), a.events)


def test_a_stream_window_that_would_overflow_is_classified_early(recording):
    chunks = recording.split_time(2_000)
    # every chunk claims the same instant: a window that would never close on its own
    stuck = []
    for c in chunks[:60]:
        ev = c.events.copy()
        ev["t"] = recording.t_start
        stuck.append(c.with_events(ev))
    seg = Segmenter("window", max_events=5000)
    windows = []
    for b in stuck:
        windows += seg.feed(b)
        assert len(seg._buf) <= 5000
    assert windows and all(w.events <= 5000 for w in windows) and seg.counters["cut"] >= len(windows)


def test_stream_windows_cut_at_the_bound_are_logged_at_the_first_and_every_power_of_ten(recording, caplog):
    # a real camera recording whose windows hold more than the bound: a sensor too busy for the window
    seg = Segmenter("window", window_us=100_000, hop_us=50_000, max_events=1500)
    with caplog.at_level("WARNING", logger="streamsnn.pipeline.segment"):
        windows, errors = feed_all(seg, recording.split_time(1_000))
    cuts = seg.counters["cut"]
    lines = [r.getMessage() for r in caplog.records]
    assert not errors and windows and cuts >= 10
    assert len(lines) == len(str(cuts)), (cuts, lines)  # the 1st, 10th, 100th, ...
    assert "segment.max_events (1500 events; 1 stream windows cut so far)" in lines[0], lines[0]
    assert "10 stream windows cut so far" in lines[1]
    assert all("raise segment.max_events or shorten segment.window_us" in line for line in lines)
    mean_rate = len(recording) / recording.duration_us  # M events/s
    said = float(lines[0].split("about ")[1].split(" M events/s")[0])
    assert mean_rate / 4 < said < mean_rate * 4, (said, mean_rate)


def test_label_windows_take_the_sample_covering_most_of_each_window(samples):
    from streamsnn.learn.streameval import cover, make_stream

    stream = make_stream(samples, chunk_us=20_000)
    whole = EventBatch.concatenate(stream.batches)
    labelled = []  # each sample's stretch of the stream in 20 ms chunks, with its id and label (a simulated camera)
    for i, (a, b) in enumerate(zip(stream.starts, stream.ends)):
        t = whole.events["t"]
        part = whole.events[(t >= a) & (t < b)]
        piece = EventBatch(part, 34, 34, sample=stream.ids[i], label=int(stream.labels[i]))
        labelled += piece.split_time(20_000)
    seg = Segmenter("window", 100_000, 50_000, label_windows=True)
    windows = [w for b in labelled for w in seg.feed(b)] + seg.flush()
    assert len(windows) > 10
    for w in windows:
        i = cover(stream.starts, stream.ends, w.t_start_us, w.t_end_us)
        assert (w.sample, w.label) == (stream.ids[i], int(stream.labels[i]))
        assert (w.batch.sample, w.batch.label) == (w.sample, w.label)
    assert {w.label for w in windows} == {int(x) for x in stream.labels}
    plain = Segmenter("window", 100_000, 50_000)  # off by default: stream windows carry no label
    assert all(w.label is None and w.sample is None for b in labelled for w in plain.feed(b))
