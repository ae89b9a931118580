"""Binary event packets: a compact, versioned wire format for one EventBatch (used over MQTT).

`encode(batch) -> bytes` and `decode(payload) -> EventBatch`. A decoded batch has the same events,
sensor size, sample id, label and source as the encoded one, and `meta["end_of_sample"]` is kept.

## Event packet format, version 1

All integers are little-endian. A packet is a 32-byte header, two strings, then four columns:

| offset | size | type    | field                                                                   |
|-------:|-----:|---------|-------------------------------------------------------------------------|
| 0      | 4    | bytes   | magic `SSEV`                                                            |
| 4      | 1    | uint8   | format version (1)                                                      |
| 5      | 1    | uint8   | flags: bit 0 = end of sample (the batch closes a whole sample)          |
| 6      | 2    | uint16  | sensor width                                                            |
| 8      | 2    | uint16  | sensor height                                                           |
| 10     | 2    | uint16  | S = length of the sample id in bytes (UTF-8; 0 = no sample id)          |
| 12     | 2    | uint16  | R = length of the source name in bytes (UTF-8; 0 = no source)           |
| 14     | 2    | -       | reserved, zero                                                          |
| 16     | 4    | int32   | label (class index), -1 when unknown                                    |
| 20     | 8    | int64   | t0: timestamp of the first event, microseconds (0 when N = 0)           |
| 28     | 4    | uint32  | N = number of events                                                    |
| 32     | S    | bytes   | sample id                                                               |
| 32+S   | R    | bytes   | source name                                                             |
| then   | 4N   | uint32  | timestamp deltas `t - t0` (events are in time order, so all >= 0)       |
| then   | 2N   | uint16  | x                                                                       |
| then   | 2N   | uint16  | y                                                                       |
| then   | ⌈N/8⌉| bits    | polarity, one bit per event, least significant bit first (1 = ON)       |

Size: 32 + S + R + 8.125·N bytes (an N-MNIST sample of ~4,100 events is ~33 KB). A batch may span at
most 2^32 µs (71 minutes); longer batches must be split before encoding. The payload must end exactly
after the polarity bits: anything shorter or longer is rejected, as is a wrong magic or version,
a sensor side above 4096 (`events.MAX_SENSOR_SIDE`) and a timestamp beyond ±2^53 µs (`events.MAX_TIME_US`).
"""

from __future__ import annotations

import struct

import numpy as np

from ..errors import InputError
from ..events import EVENT_DTYPE, MAX_SENSOR_SIDE, MAX_TIME_US, EventBatch

MAGIC = b"SSEV"
VERSION = 1
FLAG_END_OF_SAMPLE = 0x01
HEADER = struct.Struct("<4sBBHHHHHiqI")
assert HEADER.size == 32
MAX_SPAN_US = 2**32 - 1


def packet_size(n_events: int, sample_len: int = 0, source_len: int = 0) -> int:
    """Bytes taken by a packet with n_events events and the given string lengths."""
    return HEADER.size + sample_len + source_len + 8 * n_events + (n_events + 7) // 8


def _text(value: str | None, what: str) -> bytes:
    raw = b"" if value is None else str(value).encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ValueError(f"{what} is {len(raw)} bytes long; event packets allow at most 65535")
    return raw


def encode(batch: EventBatch) -> bytes:
    """Encode a batch as one event packet (see the module docstring for the layout)."""
    ev = batch.events
    n = len(ev)
    if batch.width > 0xFFFF or batch.height > 0xFFFF:
        raise ValueError(f"sensor {batch.width}x{batch.height} is too large for an event packet")
    label = -1 if batch.label is None else int(batch.label)
    if not -1 <= label < 2**31:
        raise ValueError(f"label {label} does not fit an event packet (int32, -1 = unknown)")
    t0 = int(ev["t"][0]) if n else 0
    if n and int(ev["t"][-1]) - t0 > MAX_SPAN_US:
        raise ValueError(
            f"batch spans {int(ev['t'][-1]) - t0} us, more than an event packet holds ({MAX_SPAN_US} us); "
            "split it with EventBatch.split_time first"
        )
    sample = _text(batch.sample, "sample id")
    source = _text(batch.source, "source name")
    flags = FLAG_END_OF_SAMPLE if batch.meta.get("end_of_sample") else 0
    header = HEADER.pack(MAGIC, VERSION, flags, batch.width, batch.height, len(sample), len(source), 0,
                         label, t0, n)
    dt = (ev["t"] - t0).astype("<u4")
    bits = np.packbits(ev["p"] != 0, bitorder="little")
    return b"".join((header, sample, source, dt.tobytes(), ev["x"].astype("<u2").tobytes(),
                     ev["y"].astype("<u2").tobytes(), bits.tobytes()))


def decode(payload: bytes | bytearray | memoryview, *, where: str = "event packet",
           max_events: int | None = None) -> EventBatch:
    """Decode one event packet; InputError (naming `where`, e.g. the topic) if it is not a valid one.

    Refused before anything is allocated: a sensor side above MAX_SENSOR_SIDE, |t0| above MAX_TIME_US,
    more than `max_events` events (None: no limit but the payload's size). Decoded timestamps must
    stay within ±MAX_TIME_US and never decrease (EventBatch.validate).
    """
    buf = memoryview(payload).cast("B")
    if len(buf) < HEADER.size:
        if not len(buf) or bytes(buf[:4]) != MAGIC[: len(buf[:4])]:
            raise InputError(f"{where}: not a streamsnn event packet ({len(buf)} bytes, no 'SSEV' magic); "
                             "check what publishes there")
        raise InputError(f"{where}: truncated event packet ({len(buf)} bytes, the header alone takes {HEADER.size})")
    magic, version, flags, width, height, s_len, r_len, _, label, t0, n = HEADER.unpack_from(buf)
    if magic != MAGIC:
        raise InputError(f"{where}: not a streamsnn event packet (magic {magic!r}, expected b'SSEV'); "
                         "check what publishes there")
    if version != VERSION:
        raise InputError(f"{where}: event packet format version {version} is not supported (this build reads "
                         f"version {VERSION}); upgrade streamsnn on this side")
    if max_events is not None and n > max_events:
        raise InputError(f"{where}: event packet announces {n} events, more than the {max_events} accepted in one "
                         "packet; split it (streamsnn publish does) or raise source.max_packet_events")
    expected = packet_size(n, s_len, r_len)
    if len(buf) != expected:
        state = "truncated" if len(buf) < expected else "has trailing bytes"
        raise InputError(f"{where}: event packet {state}: its header announces {n} events and {expected} bytes, "
                         f"the payload has {len(buf)}")
    if width == 0 or height == 0:
        raise InputError(f"{where}: event packet announces an empty {width}x{height} sensor")
    if width > MAX_SENSOR_SIDE or height > MAX_SENSOR_SIDE:
        raise InputError(f"{where}: event packet announces a {width}x{height} sensor, larger than the "
                         f"{MAX_SENSOR_SIDE}x{MAX_SENSOR_SIDE} streamsnn accepts")
    if abs(t0) > MAX_TIME_US:
        raise InputError(f"{where}: event packet t0 = {t0} us is beyond the +-{MAX_TIME_US} us streamsnn accepts; "
                         "the packet is corrupt")
    pos = HEADER.size
    try:
        sample = bytes(buf[pos:pos + s_len]).decode("utf-8") if s_len else None
        pos += s_len
        source = bytes(buf[pos:pos + r_len]).decode("utf-8") if r_len else None
        pos += r_len
    except UnicodeDecodeError:
        raise InputError(f"{where}: event packet has a sample id or source that is not UTF-8") from None
    dt = np.frombuffer(buf, dtype="<u4", count=n, offset=pos)
    pos += 4 * n
    if n and abs(t0 + int(dt.max())) > MAX_TIME_US:
        raise InputError(f"{where}: event packet timestamps reach {t0 + int(dt.max())} us, beyond the "
                         f"+-{MAX_TIME_US} us streamsnn accepts; the packet is corrupt")
    x = np.frombuffer(buf, dtype="<u2", count=n, offset=pos)
    pos += 2 * n
    y = np.frombuffer(buf, dtype="<u2", count=n, offset=pos)
    pos += 2 * n
    p = np.unpackbits(np.frombuffer(buf, dtype=np.uint8, count=(n + 7) // 8, offset=pos),
                      count=n, bitorder="little")
    events = np.empty(n, dtype=EVENT_DTYPE)
    events["t"] = dt.astype(np.int64) + t0
    events["x"] = x
    events["y"] = y
    events["p"] = p
    meta = {"end_of_sample": True} if flags & FLAG_END_OF_SAMPLE else {}
    try:
        return EventBatch(events, int(width), int(height), sample=sample, label=None if label < 0 else int(label),
                          source=source, meta=meta)
    except InputError as exc:
        raise InputError(f"{where}: event packet holds invalid events: {exc}") from None
