"""DvStreamSource against a real dv-processing NetworkWriter serving a real AEDAT4 recording.

CameraSource shares its packet read loop (sources/_dv.py PacketReader) with this source, so these
tests cover the camera's conversion and threading too; only opening a USB device is camera-only.
"""

import asyncio

import numpy as np
import pytest
from conftest import need
from dv_util import event_writer, free_port, wait_for_client

from streamsnn.errors import InputError
from streamsnn.io import read_events
from streamsnn.sources.dvstream import DvStreamSource, parse_address

RECORDING = "recordings/tonic_sample.aedat4"  # DVXplorer, 320x240, 111,954 events


def recording_packets(path):
    """The recording's event packets exactly as dv-processing reads them (what a camera would send)."""
    import dv_processing as dv

    rec = dv.io.MonoCameraRecording(str(path))
    packets = []
    while rec.isRunning():
        store = rec.getNextEventBatch()
        if store is None:
            break
        packets.append(store)
    return packets


async def read_n(source, n):
    """Batches from the source until n events arrived (or the stream ended)."""
    got, count = [], 0
    async for batch in source:
        got.append(batch)
        count += len(batch)
        if count >= n:
            break
    return got


async def serve_and_read(where, address):
    path = need(RECORDING)
    ref = read_events(path)
    writer = event_writer(where, ref.width, ref.height)
    async with DvStreamSource(address) as src:
        assert (src.width, src.height) == (320, 240)
        assert src.camera_name == "DVXplorer_test"
        await asyncio.to_thread(wait_for_client, writer)
        for store in recording_packets(path):
            writer.writeEvents(store)
        batches = await asyncio.wait_for(read_n(src, len(ref)), 60)
        counters = dict(src.counters)
    return ref, batches, counters


async def test_tcp_stream_delivers_the_whole_recording():
    port = free_port()
    ref, batches, counters = await serve_and_read(("127.0.0.1", port), f"tcp://127.0.0.1:{port}")
    got = np.concatenate([b.events for b in batches])
    assert len(ref) == 111_954 and len(got) == 111_954
    np.testing.assert_array_equal(got, ref.events)  # t, x, y, p identical, in order
    assert all(b.sensor_size == (320, 240) and b.label is None and b.sample is None for b in batches)
    assert all(b.source == f"tcp://127.0.0.1:{port}" for b in batches)
    assert counters["events"] == 111_954 and counters["batches"] == len(batches) > 1
    assert counters["bad_packets"] == 0


async def test_unix_socket_stream(tmp_path):
    sock = str(tmp_path / "dv.sock")
    ref, batches, _ = await serve_and_read(sock, f"unix:{sock}")
    got = np.concatenate([b.events for b in batches])
    np.testing.assert_array_equal(got, ref.events)


async def test_refused_connection_is_one_line_naming_the_address():
    port = free_port()
    with pytest.raises(InputError) as err:
        async with DvStreamSource(f"127.0.0.1:{port}"):
            pass
    msg = str(err.value)
    assert f"tcp://127.0.0.1:{port}" in msg and "refused" in msg and "streamsnn serve" in msg
    assert "\n" not in msg


async def test_refused_on_first_batch_without_async_with():
    src = DvStreamSource(f"127.0.0.1:{free_port()}")
    with pytest.raises(InputError, match="cannot connect"):
        await src.__anext__()
    await src.aclose()


async def test_missing_unix_socket(tmp_path):
    with pytest.raises(InputError, match="no such socket file"):
        async with DvStreamSource(f"unix:{tmp_path / 'none.sock'}"):
            pass


@pytest.mark.parametrize("text, expect", [
    ("127.0.0.1:7777", "tcp://127.0.0.1:7777"),
    ("tcp://localhost:7777", "tcp://localhost:7777"),
    ("[::1]:7000", "tcp://[::1]:7000"),
    ("unix:/run/dv.sock", "unix:/run/dv.sock"),
    ("unix:///run/dv.sock", "unix:/run/dv.sock"),
])
def test_parse_address(text, expect):
    assert str(parse_address(text)) == expect


@pytest.mark.parametrize("text", ["localhost", "tcp://host:99999", "http://h:1", "unix:", ""])
def test_bad_address(text):
    with pytest.raises(InputError, match="host:port"):
        parse_address(text)


async def test_aclose_from_another_task_ends_iteration():
    port = free_port()
    writer = event_writer(("127.0.0.1", port), 320, 240)
    src = DvStreamSource(f"127.0.0.1:{port}")
    await src.open()
    await asyncio.to_thread(wait_for_client, writer)

    async def consume():
        return [b async for b in src]

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.1)  # the consumer is now waiting for a packet that never comes
    await src.aclose()
    assert await asyncio.wait_for(task, 10) == []


async def test_reconnects_when_the_stream_comes_back():
    """Two `streamsnn serve` runs one after the other on the same port: one source sees both."""
    import sys

    path = need("nmnist_small/1.bs2")  # 4,681 events, 34x34
    port = free_port()
    cmd = [sys.executable, "-m", "streamsnn", "serve", str(path), "--port", str(port), "--speed", "0", "-q"]

    async def serve_once():
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE)
        await asyncio.wait_for(proc.stdout.readline(), 60)  # listening
        return proc

    first = await serve_once()
    src = DvStreamSource(f"127.0.0.1:{port}", reconnect=True)
    try:
        await src.open()
        got = await asyncio.wait_for(read_n(src, 4_681), 60)
        assert await asyncio.wait_for(first.wait(), 30) == 0  # first server gone
        second = await serve_once()
        got += await asyncio.wait_for(read_n(src, 4_681), 60)
        assert await asyncio.wait_for(second.wait(), 30) == 0
    finally:
        await src.aclose()
        for p in (first, locals().get("second")):
            if p is not None and p.returncode is None:
                p.kill()
    starts = [b for b in got if b.meta.get("stream_start")]
    assert len(starts) == 2 and src.counters["reconnects"] == 1
    assert sum(len(b) for b in got) == 2 * 4_681 and all(b.sensor_size == (34, 34) for b in got)
