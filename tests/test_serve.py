"""`streamsnn serve` end to end: a real subprocess serving real recordings, read back through DvStreamSource."""

import asyncio
import json
import signal
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import need
from dv_util import free_port

from streamsnn.io import open_dataset, read_events
from streamsnn.sources.dvstream import DvStreamSource


async def start_serve(*args):
    """Start `streamsnn serve ...`; returns the process and the address from its first stdout line."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streamsnn", "serve", *map(str, args),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
    assert line.startswith("serving "), line + (await proc.stderr.read()).decode()
    return proc, line.rsplit(" on ", 1)[1].strip()


async def finish(proc, timeout=30):
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode, (await proc.stderr.read()).decode()


async def read_all(address, limit=None):
    batches, n = [], 0
    async with DvStreamSource(address) as src:
        size = (src.width, src.height)
        async for b in src:
            batches.append(b)
            n += len(b)
            if limit and n >= limit:
                break
    return size, batches


async def test_serves_a_recording_completely_and_exits_0():
    path = need("recordings/tonic_sample.aedat4")
    port = free_port()
    proc, address = await start_serve(path, "--port", port)
    try:
        assert address == f"tcp://127.0.0.1:{port}"
        size, batches = await asyncio.wait_for(read_all(address), 60)  # ends when serve closes
    finally:
        rc, err = await finish(proc)
    ref = read_events(path)
    assert size == (320, 240) and rc == 0, err
    got = np.concatenate([b.events for b in batches])
    assert len(got) == 111_954
    np.testing.assert_array_equal(got, ref.events)
    assert "served 111,954 events" in err
    assert "to 1 client(s)" in err  # the client that was served, though it has left by the end


async def test_serves_nmnist_over_a_unix_socket(tmp_path):
    path = need("nmnist_small/1.bs2")
    sock = tmp_path / "s.sock"
    proc, address = await start_serve(path, "--unix", sock, "--speed", "4")
    try:
        assert address == f"unix:{sock}"
        size, batches = await asyncio.wait_for(read_all(address), 60)
    finally:
        rc, err = await finish(proc)
    assert rc == 0 and size == (34, 34)
    got = np.concatenate([b.events for b in batches])
    assert len(got) == 4_681
    np.testing.assert_array_equal(got, read_events(path).events)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_loop_runs_until_a_signal_then_exits_0(sig):
    path = need("recordings/tonic_sample.aedat4")
    ref = read_events(path)
    proc, address = await start_serve(path, "--port", free_port(), "--loop", "--speed", "2")
    try:
        _, batches = await asyncio.wait_for(read_all(address, limit=len(ref) + 10_000), 60)
        proc.send_signal(sig)
    finally:
        rc, err = await finish(proc)
    assert rc == 0, err
    t = np.concatenate([b.events["t"] for b in batches])
    assert len(t) >= len(ref) + 10_000 and np.all(np.diff(t) >= 0)  # second pass continues in time
    np.testing.assert_array_equal(t[:len(ref)], ref.events["t"])
    assert "stopped" in err and "1 full pass" in err


async def run_cli(*args):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streamsnn", "serve", *map(str, args),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, err.decode()


async def test_missing_file_is_one_line_exit_2(tmp_path):
    rc, err = await run_cli(tmp_path / "nope.aedat4", "--port", free_port())
    assert rc == 2 and err.count("\n") == 1 and "nope.aedat4" in err and "Traceback" not in err


async def test_port_in_use_is_one_line_exit_2():
    path = need("recordings/tonic_sample.aedat4")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        rc, err = await run_cli(path, "--port", s.getsockname()[1])
    assert rc == 2 and err.count("\n") == 1 and "already in use" in err and "--port" in err


async def test_bad_host_and_speed_exit_2():
    path = need("recordings/tonic_sample.aedat4")
    rc, err = await run_cli(path, "--host", "no.such.host.invalid")
    assert rc == 2 and "unknown host" in err and err.count("\n") == 1
    for bad in ("-1", "nan", "inf"):
        rc, err = await run_cli(path, "--speed", bad)
        assert rc == 2 and "--speed" in err and err.count("\n") == 1, err
    for bad in ("-1", "nan"):
        rc, err = await run_cli(path, "--linger", bad)
        assert rc == 2 and "--linger" in err and err.count("\n") == 1, err
    rc, err = await run_cli(path, "--limit", "0")  # argparse: usage, then the one line saying what is wrong
    assert rc == 2 and "argument --limit: give a whole number of 1 or more, not '0'" in err


ROOT = Path(__file__).resolve().parent.parent
DV_STREAM = ROOT / "pipelines" / "dv-stream.toml"


async def run_pipeline(tmp_path, address, *sets):
    args = ["--set", f"source.address={address}", "--set", "mqtt.port=0", "--set", "model.checkpoint=",
            "--set", "console.decisions=false", *sets]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streamsnn", "run", str(DV_STREAM), *args, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    return proc.returncode, out.decode() + err.decode()


@pytest.mark.slow
async def test_dv_stream_pipeline_classifies_a_served_recording(tmp_path):
    """pipelines/dv-stream.toml end to end: `serve` publishes the recording live, `run` classifies it."""
    path = need("recordings/tonic_sample.aedat4")
    ref = read_events(path)
    proc, address = await start_serve(path, "--port", free_port())
    try:  # the file waits for a closed stream to come back; without that the run ends with it, saying so
        rc, log = await run_pipeline(tmp_path, address, "--set", f"jsonl.path={tmp_path / 'd.jsonl'}",
                                     "--set", "source.reconnect=false")
    finally:
        serve_rc, _ = await finish(proc)
    assert rc == 0 and serve_rc == 0, log
    assert f"{address}: stream ended (closed by the other end" in log and "the run ends here" in log
    decisions = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert len(decisions) >= 10, log  # 0.59 s of events in 100 ms windows every 50 ms
    assert all(d["source"] == address and d["events"] >= 200 and d["sample"] is None for d in decisions)
    assert decisions[0]["t_start_us"] == ref.t_start
    starts = np.array([d["t_start_us"] for d in decisions])
    assert np.all(np.diff(starts) % 50_000 == 0) and np.all(np.diff(starts) > 0)
    assert all(d["t_end_us"] - d["t_start_us"] == 100_000 for d in decisions)


@pytest.mark.slow
async def test_dv_stream_pipeline_waits_for_a_stream_that_went_away(tmp_path):
    """pipelines/dv-stream.toml as a daemon: the DV software restarting (its stream killed, then served again on
    the same port) is logged and waited for, and classification goes on; it used to end the run with exit 0 and
    no word, which a service manager's Restart=on-failure never restarts."""
    path, port = need("recordings/tonic_sample.aedat4"), free_port()
    jsonl = tmp_path / "d.jsonl"

    def decisions() -> int:
        return len(jsonl.read_text().splitlines()) if jsonl.exists() else 0

    async def until(cond, what):
        for _ in range(1200):
            if cond():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(what)

    first, address = await start_serve(path, "--port", port, "--loop")
    args = ["--set", f"source.address={address}", "--set", "mqtt.enabled=false", "--set", "model.checkpoint=",
            "--set", "console.decisions=false", "--set", f"jsonl.path={jsonl}"]
    run = await asyncio.create_subprocess_exec(sys.executable, "-m", "streamsnn", "run", str(DV_STREAM), *args,
                                               cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
                                               stderr=asyncio.subprocess.STDOUT)
    second = None
    try:
        await until(lambda: decisions() >= 5, "no decisions from the first stream")
        first.kill()  # the DV software goes away
        await first.wait()
        await asyncio.sleep(1.0)
        assert run.returncode is None  # still running, waiting for the stream
        before = decisions()
        second, _ = await start_serve(path, "--port", port, "--loop")
        await until(lambda: decisions() >= before + 5, "no decisions after the stream came back")
        run.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(run.communicate(), 60)
    finally:
        for proc in (first, second, run):
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()
    log = out.decode()
    assert run.returncode == 0, log
    assert f"{address}: stream ended; reconnecting" in log and f"{address}: reading again" in log, log


async def test_dv_stream_pipeline_with_nothing_served_exits_2(tmp_path):
    port = free_port()
    rc, log = await run_pipeline(tmp_path, f"127.0.0.1:{port}")
    last = log.strip().splitlines()[-1]
    assert rc == 2 and "Traceback" not in log
    assert f"cannot connect to DV stream tcp://127.0.0.1:{port}" in log
    assert any(line.startswith("streamsnn: error: cannot connect") for line in log.splitlines()), last


async def test_serves_dataset_samples_back_to_back():
    root = need("nmnist_small")
    proc, address = await start_serve(root, "--split", "test", "--limit", "3", "--speed", "0", "--port", free_port())
    try:
        size, batches = await asyncio.wait_for(read_all(address), 60)
    finally:
        rc, err = await finish(proc)
    assert rc == 0 and size == (34, 34), err
    samples = [s.load() for s in open_dataset(root).split("test").samples[:3]]
    got = np.concatenate([b.events for b in batches])
    assert len(got) == sum(len(s) for s in samples) and np.all(np.diff(got["t"]) >= 0)
    expect = np.concatenate([s.events[["x", "y", "p"]] for s in samples])
    np.testing.assert_array_equal(got[["x", "y", "p"]], expect)


async def test_serves_a_tonic_dataset_spec_as_it_serves_its_folder(tmp_path):
    """`serve tonic:NMNIST:<folder>` said "no such file or folder" (datasets.md lists it for every command)."""
    from dataset_util import tonic_nmnist_links

    tonic_nmnist_links(tmp_path, 3)
    got = []
    for spec in (f"tonic:NMNIST:{tmp_path}", tmp_path / "NMNIST"):
        proc, address = await start_serve(spec, "--split", "test", "--speed", "0", "--port", free_port())
        try:
            size, batches = await asyncio.wait_for(read_all(address), 60)
        finally:
            rc, err = await finish(proc)
        assert rc == 0 and size == (34, 34), err
        got.append(np.concatenate([b.events for b in batches]))
    assert len(got[0]) > 0 and np.array_equal(got[0][["x", "y", "p"]], got[1][["x", "y", "p"]])
