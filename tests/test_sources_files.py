"""ReplaySource on real N-MNIST samples and a real AEDAT4 recording: completeness, order, labels, pacing."""

import asyncio
import time

import numpy as np
import pytest
from conftest import need

from streamsnn.errors import ConfigError, InputError
from streamsnn.io import open_dataset, read_events
from streamsnn.io.labellists import read_label_list
from streamsnn.sources._pacing import Pacer
from streamsnn.sources.files import ReplaySource


async def collect(src):
    async with src:
        return [b async for b in src]


async def test_test_split_unpaced_gives_all_100_samples_with_their_labels():
    root = need("nmnist_small")
    labels = read_label_list(root / "test100.txt")
    src = ReplaySource(root, split="test", speed=0)
    batches = await collect(src)
    assert [b.sample for b in batches] == list(labels)  # every sample once, in the list's order
    assert [b.label for b in batches] == list(labels.values())
    assert all(b.meta["end_of_sample"] and b.meta["split"] == "test" for b in batches)
    assert all(b.sensor_size == (34, 34) for b in batches)
    sizes = {s.sample_id: s.n_events for s in open_dataset(root).split("test")}
    assert [len(b) for b in batches] == [sizes[b.sample] for b in batches]
    assert src.counters["samples"] == 100 and src.counters["events"] == sum(sizes.values())


async def test_shuffle_is_reproducible_and_limit_caps():
    root = need("nmnist_small")
    a = [b.sample for b in await collect(ReplaySource(root, split="train", speed=0, shuffle=True, seed=3, limit=20))]
    b = [b.sample for b in await collect(ReplaySource(root, split="train", speed=0, shuffle=True, seed=3, limit=20))]
    c = [b.sample for b in await collect(ReplaySource(root, split="train", speed=0, shuffle=True, seed=4, limit=20))]
    assert len(a) == 20 and a == b and a != c
    assert a != [str(i) for i in range(1, 21)]  # actually shuffled
    assert set(a) <= {str(i) for i in range(1, 1001)}


async def test_loop_repeats_the_split_until_the_limit():
    root = need("nmnist_small")
    batches = await collect(ReplaySource(root, split="test", speed=0, loop=True, limit=130))
    assert len(batches) == 130
    first, second = batches[:100], batches[100:]
    assert [b.sample for b in second] == [b.sample for b in first[:30]]
    assert {b.meta["pass"] for b in first} == {0} and {b.meta["pass"] for b in second} == {1}
    assert [b.meta["index"] for b in second] == list(range(30))


async def test_dataset_samples_in_chunks_when_asked():
    root = need("nmnist_small")
    batches = await collect(ReplaySource(root, split="test", speed=0, limit=2, chunk_us=50_000))
    ends = [b for b in batches if b.meta["end_of_sample"]]
    assert [b.sample for b in ends] == ["60001", "60002"]
    whole = open_dataset(root).split("test").samples[0].load()
    first = [b for b in batches if b.sample == "60001"]
    assert len(first) > 3 and first[-1].meta["end_of_sample"] and not first[0].meta["end_of_sample"]
    np.testing.assert_array_equal(np.concatenate([b.events for b in first]), whole.events)


async def test_recording_in_10ms_chunks():
    path = need("recordings/tonic_sample.aedat4")
    ref = read_events(path)
    batches = await collect(ReplaySource(path, speed=0))
    np.testing.assert_array_equal(np.concatenate([b.events for b in batches]), ref.events)
    assert len(ref) == 111_954 and all(b.sensor_size == (320, 240) for b in batches)
    t0 = ref.t_start
    assert all((b.t_start - t0) // 10_000 == (b.t_end - t0) // 10_000 for b in batches)  # one window each
    assert [b.meta["end_of_sample"] for b in batches] == [False] * (len(batches) - 1) + [True]
    assert len(batches) >= ref.duration_us // 10_000


async def test_looped_recording_keeps_time_increasing():
    path = need("recordings/tonic_sample.aedat4")
    ref = read_events(path)
    batches = await collect(ReplaySource(path, speed=0, loop=True, limit=2))
    t = np.concatenate([b.events["t"] for b in batches])
    assert len(t) == 2 * len(ref) and np.all(np.diff(t) >= 0)
    second = np.concatenate([b.events for b in batches if b.meta["pass"] == 1])
    shift = int(second["t"][0] - ref.t_start)
    assert shift > ref.duration_us
    np.testing.assert_array_equal(second["t"] - shift, ref.events["t"])
    np.testing.assert_array_equal(second[["x", "y", "p"]], ref.events[["x", "y", "p"]])


async def test_real_time_is_not_faster_than_the_sensor():
    root = need("nmnist_small")
    start = time.monotonic()
    batches = await collect(ReplaySource(root, split="test", speed=1.0, limit=2))
    elapsed = time.monotonic() - start
    sensor_s = sum(b.duration_us for b in batches) / 1e6  # about 0.6 s
    assert len(batches) == 2 and elapsed >= 0.95 * sensor_s  # lower bound only


async def test_faster_speed_still_paced():
    path = need("recordings/tonic_sample.aedat4")
    start = time.monotonic()
    batches = await collect(ReplaySource(path, speed=4.0))
    assert time.monotonic() - start >= 0.95 * 0.59 / 4
    assert sum(len(b) for b in batches) == 111_954


def test_pacer_deadlines_do_not_drift():
    p = Pacer(1.0)
    assert p.delay(0) == 0.0  # fixes the start
    time.sleep(0.05)  # the consumer was slow once
    assert p.delay(20_000) == 0.0 and p.late == 1  # overdue: go at once
    assert p.delay(1_000_000) <= 0.95  # still due 1 s after the start, not 1 s from now
    assert Pacer(0).delay(10**9) == 0.0
    with pytest.raises(ValueError):
        Pacer(-1)


async def test_bad_sample_is_skipped_and_counted(tmp_path):
    src = need("nmnist_small")
    (tmp_path / "1.bs2").symlink_to(src / "1.bs2")
    (tmp_path / "2.bs2").write_bytes(b"\x01\x02\x03\x04\x05\x06\x07")  # truncated: 7 bytes
    (tmp_path / "3.bs2").symlink_to(src / "3.bs2")
    (tmp_path / "test3.txt").write_text("#sample #class\n1 5\n2 0\n3 4\n")
    replay = ReplaySource(tmp_path, speed=0)
    batches = await collect(replay)
    assert [b.sample for b in batches] == ["1", "3"] and [b.label for b in batches] == [5, 4]
    assert replay.counters["bad_samples"] == 1


async def test_closing_early_ends_iteration():
    replay = ReplaySource(need("nmnist_small"), split="train", speed=0, loop=True)
    async with replay:
        n = 0
        async for _ in replay:
            n += 1
            if n == 3:
                break
    with pytest.raises(StopAsyncIteration):
        await replay.__anext__()
    await asyncio.sleep(0)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"speed": -1}, ConfigError, "speed"),
    ({"limit": -2}, ConfigError, "limit"),
])
def test_bad_settings(kwargs, error, match):
    with pytest.raises(error, match=match):
        ReplaySource("x", **kwargs)


async def test_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        await collect(ReplaySource(tmp_path / "missing.aedat4"))
    with pytest.raises(InputError, match="validation"):
        await collect(ReplaySource(need("nmnist_small"), split="validation"))
    with pytest.raises(ConfigError, match="dataset folders"):
        await collect(ReplaySource(need("recordings/tonic_sample.aedat4"), split="test"))


async def test_looping_over_unreadable_samples_stops(tmp_path):
    for name in ("1", "2"):
        (tmp_path / f"{name}.bs2").write_bytes(b"\x00" * 7)  # truncated
    (tmp_path / "test2.txt").write_text("#sample #class\n1 5\n2 0\n")
    replay = ReplaySource(tmp_path, speed=0, loop=True)
    assert await asyncio.wait_for(collect(replay), 60) == []
    assert replay.counters["bad_samples"] == 2


async def test_folder_of_recordings_plays_each_file_on_one_timeline(tmp_path):
    rec_dir = need("recordings/dvs128_aedat2")
    names = ["alex_walking_again.aedat", "neal_walking.aedat"]
    for name in names:
        (tmp_path / name).symlink_to(rec_dir / name)
    (tmp_path / "b_broken.aedat").write_bytes(b"#!AER-DAT2.0\r\n" + b"\x00" * 3)  # truncated
    (tmp_path / "c_other_sensor.aedat4").symlink_to(need("recordings/tonic_sample.aedat4"))
    (tmp_path / "notes.txt").write_text("not events")
    refs = [read_events(tmp_path / n) for n in names]

    replay = ReplaySource(tmp_path, speed=0, chunk_us=50_000)
    batches = await collect(replay)
    assert replay.counters["bad_samples"] == 2  # the truncated file and the 320x240 one, skipped
    assert all(b.sensor_size == (128, 128) for b in batches)
    t = np.concatenate([b.events["t"] for b in batches])
    assert np.all(np.diff(t) >= 0)
    per_file = [np.concatenate([b.events for b in batches if b.meta["index"] == i]) for i in (0, 3)]
    for got, ref in zip(per_file, refs):
        np.testing.assert_array_equal(got[["x", "y", "p"]], ref.events[["x", "y", "p"]])
        np.testing.assert_array_equal(np.diff(got["t"]), np.diff(ref.events["t"]))
    # the second file starts one chunk after the first one ends
    assert per_file[1]["t"][0] - per_file[0]["t"][-1] == 50_000
    assert sum(b.meta["end_of_sample"] for b in batches) == 2

    looped = ReplaySource(tmp_path, speed=0, loop=True, limit=3)
    batches = await collect(looped)
    assert [b.meta["pass"] for b in batches if b.meta["end_of_sample"]] == [0, 0, 1]
    assert np.all(np.diff(np.concatenate([b.events["t"] for b in batches])) >= 0)


async def test_folder_of_nmnist_files_without_labels_plays_unlabelled_and_says_so(tmp_path, caplog):
    (tmp_path / "1.bs2").symlink_to(need("nmnist_small/1.bs2"))
    (tmp_path / "2.bs2").symlink_to(need("nmnist_small/2.bs2"))
    with caplog.at_level("INFO", logger="streamsnn.sources"):
        batches = await collect(ReplaySource(tmp_path, speed=0))
    assert sum(len(b) for b in batches) == sum(len(read_events(tmp_path / f"{k}.bs2")) for k in (1, 2))
    assert all(b.label is None for b in batches)
    assert "unlabelled" in caplog.text and str(tmp_path) in caplog.text
