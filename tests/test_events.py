"""EventBatch: validation, slicing by time and count, concatenation."""

import numpy as np
import pytest

from streamsnn.errors import InputError
from streamsnn.events import EVENT_DTYPE, MAX_SENSOR_SIDE, MAX_TIME_US, EventBatch, make_events


def batch(ts, w=34, h=34, **kw):
    n = len(ts)
    return EventBatch(make_events(ts, np.arange(n) % w, np.arange(n) % h, np.arange(n) % 2), w, h, **kw)


def test_dtype_and_basic_facts():
    b = batch([10, 20, 20, 35])
    assert b.events.dtype == EVENT_DTYPE
    assert len(b) == 4 and b.t_start == 10 and b.t_end == 35 and b.duration_us == 25
    assert b.polarity_counts() == (2, 2)


def test_converts_foreign_structured_arrays():
    foreign = np.zeros(3, dtype=[("x", int), ("y", int), ("t", int), ("p", bool)])
    foreign["t"] = [1, 2, 3]
    foreign["p"] = [True, False, True]
    b = EventBatch(foreign, 34, 34)
    assert b.events.dtype == EVENT_DTYPE and list(b.events["p"]) == [1, 0, 1]


def test_decreasing_timestamp_names_the_index():
    with pytest.raises(InputError, match=r"decrease at event 2 \(20 -> 5 us\)"):
        batch([10, 20, 5, 30], source="rec.aedat4")


def test_outside_sensor_names_the_index():
    ev = make_events([1, 2, 3], [1, 40, 2], [1, 1, 2], [0, 1, 0])
    with pytest.raises(InputError, match=r"event 1 .*x=40.*34x34"):
        EventBatch(ev, 34, 34)


def test_absurd_sensor_size_is_refused_before_anything_allocates():
    EventBatch(make_events([1], [0], [0], [1]), MAX_SENSOR_SIDE, MAX_SENSOR_SIDE)  # the bound itself is fine
    with pytest.raises(InputError, match=r"in packet.rec 65535x65535 exceeds .*4096x4096"):
        EventBatch(make_events([1], [0], [0], [1]), 65535, 65535, source="packet.rec")


@pytest.mark.parametrize("ts", [[0, MAX_TIME_US + 1], [-(MAX_TIME_US + 1), 0], [2**63 - 10, 2**63 - 1]])
def test_timestamps_beyond_the_bound_are_refused(ts):
    with pytest.raises(InputError, match="beyond the largest accepted"):
        batch(ts)
    batch([0, MAX_TIME_US])  # the bound itself is accepted


def test_slice_time_is_half_open():
    b = batch([0, 10, 20, 30, 40])
    s = b.slice_time(10, 30)
    assert list(s.events["t"]) == [10, 20]
    assert list(b.slice_time(None, 15).events["t"]) == [0, 10]
    assert list(b.slice_time(35).events["t"]) == [40]
    assert len(b.slice_time(50, 10)) == 0


def test_slice_and_split_count_keep_metadata():
    b = batch(list(range(10)), sample="7", label=3)
    parts = b.split_count(4)
    assert [len(p) for p in parts] == [4, 4, 2]
    assert all(p.sample == "7" and p.label == 3 for p in parts)
    assert list(b.slice_count(2, 4).events["t"]) == [2, 3]


def test_split_time_covers_all_events():
    b = batch([0, 1, 5, 9, 10, 25])
    parts = b.split_time(10)
    assert [list(p.events["t"]) for p in parts] == [[0, 1, 5, 9], [10], [25]]


def test_cutting_in_time_follows_the_events_not_the_time_they_span():
    """A timestamp glitch (one event days later) must not make a list, array or loop over every empty
    stretch of time: that took 24 GB and minutes for a recording of a few thousand events."""
    from streamsnn.sources.files import time_chunks

    far = MAX_TIME_US - 1
    b = batch([5, 7, 12, far - 3, far])
    assert [list(p.events["t"]) for p in b.split_time(10)] == [[5, 7, 12], [far - 3, far]]
    assert [list(p.events["t"]) for p in b.split_time(1)] == [[5], [7], [12], [far - 3], [far]]
    chunks = list(time_chunks(b, 10))
    assert [list(c.events["t"]) for c, _ in chunks] == [[5, 7, 12], [far - 3, far]]
    assert [end for _, end in chunks] == [10, far - 5]  # the last closes at the last event
    assert [end for _, end in time_chunks(batch([0, 9, 10, 31]), 10)] == [10, 20, 31]


def test_concatenate_roundtrip_and_sensor_mismatch():
    b = batch(list(range(8)))
    again = EventBatch.concatenate(b.split_count(3))
    assert np.array_equal(again.events, b.events)
    with pytest.raises(InputError, match="cannot concatenate"):
        EventBatch.concatenate([b, batch([100], w=128, h=128)])
    with pytest.raises(InputError, match="decrease"):
        EventBatch.concatenate([batch([5, 6]), batch([1, 2])])
