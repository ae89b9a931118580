"""Event packet codec: exact round trips on real recordings and random batches, clear errors on bad payloads."""

import struct

import numpy as np
import pytest
from conftest import need

from streamsnn.errors import InputError
from streamsnn.events import MAX_SENSOR_SIDE, MAX_TIME_US, EventBatch, make_events
from streamsnn.mqtt import packets


def same(a: EventBatch, b: EventBatch) -> None:
    assert np.array_equal(a.events, b.events)
    assert (a.width, a.height, a.sample, a.label, a.source) == (b.width, b.height, b.sample, b.label, b.source)
    assert bool(a.meta.get("end_of_sample")) == bool(b.meta.get("end_of_sample"))


def random_batch(rng, n, w=None, h=None, **kw):
    w = w or int(rng.integers(1, 1281))
    h = h or int(rng.integers(1, 721))
    t = np.sort(rng.integers(-(2**40), 2**40, 1)[0] + rng.integers(0, 2**31, n))
    return EventBatch(make_events(t, rng.integers(0, w, n), rng.integers(0, h, n), rng.integers(0, 2, n)),
                      w, h, **kw)


def test_round_trip_real_nmnist_sample():
    from streamsnn.io import read_events

    path = need("nmnist_small/1.bs2")
    batch = read_events(path)
    batch = EventBatch(batch.events, batch.width, batch.height, sample="1", label=5, source=str(path),
                       meta={"end_of_sample": True})
    payload = packets.encode(batch)
    assert len(batch) == 4681  # fact from the data README
    assert len(payload) == packets.packet_size(4681, 1, len(str(path).encode()))
    assert len(payload) < 4681 * 9  # compact: ~8.1 bytes per event
    out = packets.decode(payload)
    same(batch, out)
    assert out.label == 5 and out.sample == "1" and out.meta["end_of_sample"] is True


def test_round_trip_real_aedat4_in_chunks():
    from streamsnn.io import read_events

    batch = read_events(need("recordings/tonic_sample.aedat4"))
    assert len(batch) == 111_954 and batch.sensor_size == (320, 240)
    chunks = batch.split_time(10_000)
    decoded = [packets.decode(packets.encode(c)) for c in chunks]
    for c, d in zip(chunks, decoded):
        same(c, d)
    assert np.array_equal(EventBatch.concatenate(decoded).events, batch.events)


@pytest.mark.parametrize("seed", range(25))
def test_round_trip_random(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.choice([0, 1, 7, 8, 9, 1000, int(rng.integers(0, 5000))]))
    kw = {}
    if rng.random() < 0.5:
        kw["sample"] = "s-" + "é" * int(rng.integers(0, 5)) + str(seed)
    if rng.random() < 0.5:
        kw["label"] = int(rng.integers(0, 2**31 - 1))
    if rng.random() < 0.5:
        kw["source"] = f"tcp://host:{seed}"
    kw["meta"] = {"end_of_sample": bool(rng.random() < 0.5)}
    batch = random_batch(rng, n, **kw)
    same(batch, packets.decode(packets.encode(batch)))


def test_extreme_values():
    w = h = MAX_SENSOR_SIDE
    for t0 in (-MAX_TIME_US, MAX_TIME_US - (2**32 - 1)):
        ev = make_events([t0, t0 + 2**32 - 1], [0, w - 1], [h - 1, 0], [1, 0])
        batch = EventBatch(ev, w, h, label=0)
        same(batch, packets.decode(packets.encode(batch)))


def hostile(batch: EventBatch, **fields) -> bytes:
    """The packet of `batch` with header fields overwritten (width, height, t0, n), as an attacker sends it."""
    payload = bytearray(packets.encode(batch))
    offsets = {"width": ("<H", 6), "height": ("<H", 8), "t0": ("<q", 20), "n": ("<I", 28)}
    for name, value in fields.items():
        fmt, at = offsets[name]
        struct.pack_into(fmt, payload, at, value)
    return bytes(payload)


def test_hostile_headers_are_refused_in_one_line():
    batch = EventBatch(make_events([1000, 1500, 2000], [1, 2, 3], [4, 5, 6], [1, 0, 1]), 34, 34)
    cases = [
        (hostile(batch, width=65535, height=65535), "65535x65535 sensor, larger than the 4096x4096"),
        (hostile(batch, width=4097), "4097x34 sensor"),
        (hostile(batch, t0=2**63 - 5), "beyond the"),  # would wrap to negative timestamps in int64
        (hostile(batch, t0=-(2**63)), "beyond the"),
        (hostile(batch, t0=MAX_TIME_US), "timestamps reach"),  # t0 itself in bounds, t0 + dt not
        (hostile(batch, n=2**32 - 1), "truncated"),
    ]
    for payload, match in cases:
        with pytest.raises(InputError, match=match) as err:
            packets.decode(payload, where="topic t")
        assert str(err.value).startswith("topic t: ") and "\n" not in str(err.value)


def test_packets_above_the_event_limit_are_refused_before_decoding():
    rng = np.random.default_rng(3)
    payload = packets.encode(random_batch(rng, 5000, 34, 34))
    with pytest.raises(InputError, match="announces 5000 events, more than the 4096 accepted"):
        packets.decode(payload, max_events=4096)
    assert len(packets.decode(payload, max_events=5000)) == 5000


def test_span_too_long_is_refused():
    batch = EventBatch(make_events([0, 2**32], [0, 0], [0, 0], [0, 0]), 4, 4)
    with pytest.raises(ValueError, match="split_time"):
        packets.encode(batch)


def test_truncated_and_padded_payloads_are_named():
    batch = random_batch(np.random.default_rng(1), 100, 34, 34, sample="60001")
    payload = packets.encode(batch)
    for cut in (len(payload) - 1, len(payload) - 13, 40, 31, 10, 3):
        with pytest.raises(InputError, match="topic x/y: .*(truncated|header)"):
            packets.decode(payload[:cut], where="topic x/y")
    with pytest.raises(InputError, match="trailing bytes"):
        packets.decode(payload + b"\0")


def test_foreign_payloads():
    with pytest.raises(InputError, match="not a streamsnn event packet"):
        packets.decode(b'{"label": 3}')
    with pytest.raises(InputError, match="not a streamsnn event packet"):
        packets.decode(b"")
    with pytest.raises(InputError, match="not a streamsnn event packet"):
        packets.decode(b"x" * 64)
    payload = bytearray(packets.encode(random_batch(np.random.default_rng(2), 5, 34, 34)))
    payload[4] = 9
    with pytest.raises(InputError, match="version 9 is not supported"):
        packets.decode(bytes(payload))


def test_corrupt_events_are_rejected_not_returned():
    payload = bytearray(packets.encode(EventBatch(make_events([5, 6], [1, 2], [1, 2], [1, 1]), 34, 34)))
    # x of the second event -> 40, outside the 34x34 sensor
    x_offset = packets.HEADER.size + 4 * 2 + 2
    struct.pack_into("<H", payload, x_offset, 40)
    with pytest.raises(InputError, match="invalid events.*outside"):
        packets.decode(bytes(payload))
