"""Pipeline core: segmenting real recordings, bounded queues and their policies, the feedback ring,
feedback validation against the real network (weights unchanged when invalid)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from daemon_util import ListSource, QuietSink

from streamsnn.events import EventBatch
from streamsnn.io import open_dataset, read_events
from streamsnn.pipeline import BoundedQueue, Pipeline, Recent
from streamsnn.pipeline.segment import Segmenter, Window
from streamsnn.snn import SpikingNetwork


def chunks(batch: EventBatch, dt_us: int):
    """A recording cut the way a live source delivers it: consecutive chunks of dt_us."""
    return batch.split_time(dt_us)


def test_sliding_windows_match_time_slices_of_the_recording(recordings_dir):
    rec = read_events(recordings_dir / "tonic_sample.aedat4")
    seg = Segmenter("window", window_us=50_000, hop_us=20_000)
    windows = [w for c in chunks(rec, 7_000) for w in seg.feed(c)] + seg.flush()
    assert len(windows) > 20
    t0 = rec.t_start
    for i, w in enumerate(windows[:-1]):  # every full window: exactly the events of its time slice
        assert w.t_start_us == t0 + i * 20_000 and w.t_end_us == w.t_start_us + 50_000
        ref = rec.slice_time(w.t_start_us, w.t_end_us)
        np.testing.assert_array_equal(w.batch.events, ref.events)
        assert w.sample is None and w.label is None and (w.batch.width, w.batch.height) == (rec.width, rec.height)
    last = windows[-1]  # the partial window at the end of the stream
    np.testing.assert_array_equal(last.batch.events, rec.slice_time(last.t_start_us, None).events)


def test_windows_skip_idle_gaps_and_sparse_windows(recordings_dir):
    rec = read_events(recordings_dir / "tonic_sample.aedat4")
    a, b = rec.slice_time(None, rec.t_start + 100_000), rec.slice_time(rec.t_start + 100_000, None)
    gap = 5_000_000  # five idle seconds between two bursts
    late = b.with_events(b.events.copy())
    late.events["t"] += gap
    seg = Segmenter("window", window_us=50_000, hop_us=50_000, min_events=10)
    windows = [w for c in chunks(a, 10_000) + chunks(late, 10_000) for w in seg.feed(c)] + seg.flush()
    assert all(w.events >= 10 for w in windows)
    # no empty windows were produced for the gap, and every event is in exactly one window (hop == window)
    assert sum(w.events for w in windows) <= len(rec)
    assert sum(w.events for w in windows) >= len(rec) - 10 * len(windows)
    assert max(np.diff([w.t_start_us for w in windows])) >= gap - 100_000


def test_per_sample_segmenting_joins_pieces_of_each_sample(nmnist_dir):
    ds = open_dataset(nmnist_dir).split("test")
    samples = [ds.samples[i].load() for i in range(3)]
    seg = Segmenter("auto")
    out = []
    for s in samples:
        pieces = s.split_count(1000)
        for j, p in enumerate(pieces):
            p.meta["end_of_sample"] = j == len(pieces) - 1
            out += seg.feed(p)
    out += seg.flush()
    assert [w.sample for w in out] == [s.sample for s in samples]
    assert [w.label for w in out] == [s.label for s in samples]
    for w, s in zip(out, samples):
        np.testing.assert_array_equal(w.batch.events, s.events)
        assert (w.t_start_us, w.t_end_us) == (s.t_start, s.t_end)


def test_sample_id_change_closes_the_previous_sample(nmnist_dir):
    ds = open_dataset(nmnist_dir).split("test")
    a, b = ds.samples[0].load(), ds.samples[1].load()  # no end_of_sample marks at all
    seg = Segmenter("auto")
    out = seg.feed(a) + seg.feed(b) + seg.flush()
    assert [w.sample for w in out] == [a.sample, b.sample] and [w.events for w in out] == [len(a), len(b)]


async def test_queue_policies_count_drops():
    for policy, kept in (("drop_oldest", [5, 6, 7]), ("drop_newest", [0, 1, 2])):
        q = BoundedQueue(3, policy)
        for i in range(8):
            await q.put(i)
        assert q.dropped == 5
        assert [q.q.get_nowait() for _ in range(3)] == kept
    q = BoundedQueue(2, "block")
    await q.put(1)
    await q.put(2)
    blocked = asyncio.create_task(q.put(3))
    await asyncio.sleep(0.05)
    assert not blocked.done() and q.dropped == 0
    assert await q.get() == 1
    await asyncio.wait_for(blocked, 5)
    assert [await q.get(), await q.get()] == [2, 3]


def _window(i: int, sample: str | None = None) -> Window:
    ev = np.zeros(1, dtype=[("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])
    ev["t"] = i
    return Window(EventBatch(ev, 34, 34), i, i + 10, sample=sample)


def test_recent_ring_forgets_the_oldest():
    r = Recent(3)
    for i in range(5):
        r.add(_window(i * 100, sample=f"s{i}"))
    assert len(r) == 3
    assert r.find(sample="s0") is None and r.find(sample="s1") is None
    assert r.find(sample="s4").t_start_us == 400
    assert r.find(t_end_us=210).sample == "s2" and r.find(t_end_us=110) is None


@pytest.fixture(scope="module")
def small_net():
    return SpikingNetwork(arch="conv:4:5:2:2,dense:32", classes=10, seed=3)  # the default's shape, small


async def test_invalid_feedback_never_changes_the_model(nmnist_dir, small_net):
    net = small_net
    sample = open_dataset(nmnist_dir).split("test").samples[0].load()
    pipe = Pipeline(None, net, [], recent=4)
    pipe.recent.add(Window(sample, sample.t_start, sample.t_end, sample.sample, None))
    params = lambda: [*net.weights, net.bias]  # every layer, the output weights and biases
    before = ([p.copy() for p in params()], net.updates, net.model_version)
    bad = [{"sample": sample.sample, "label": 10}, {"sample": sample.sample, "label": -1},
           {"sample": sample.sample, "label": "three"}, {"sample": sample.sample, "label": True},
           {"sample": "no-such-sample", "label": 3}, {"t_end_us": sample.t_end + 1, "label": 3},
           {"t_end_us": "soon", "label": 3}, {"label": 3}, {"sample": [1], "label": 3}, "garbage", None]
    for fb in bad:
        assert await pipe.apply_feedback(fb) is False
    assert pipe.counters.feedback["ignored"] == len(bad) and pipe.counters.feedback["learned"] == 0
    for a, b in zip(before[0], params()):
        np.testing.assert_array_equal(a, b)
    assert (net.updates, net.model_version) == before[1:]
    # a valid message about the same decision does teach the network; a second one (here by window
    # end) names the same decision and is counted, not learned: a decision is taught once
    assert await pipe.apply_feedback({"sample": sample.sample, "label": sample.label}) is True
    assert await pipe.apply_feedback({"t_end_us": sample.t_end, "label": sample.label}) is False
    assert net.updates == before[1] + 1 and not np.array_equal(before[0][0], net.weights[0])
    assert pipe.counters.feedback["duplicate"] == 1
    pipe.learn_from_feedback = False
    now = [p.copy() for p in params()]
    assert await pipe.apply_feedback({"sample": sample.sample, "label": sample.label}) is False
    for a, b in zip(now, params()):
        np.testing.assert_array_equal(a, b)
    pipe._worker.shutdown()


@pytest.mark.parametrize("policy", ["block", "drop_oldest", "drop_newest"])
async def test_pipeline_accounts_for_every_window(tmp_path, nmnist_dir, policy):
    import json

    from streamsnn.sinks.jsonl import JsonlSink
    from streamsnn.sources.files import ReplaySource

    net = SpikingNetwork((2312, 64, 10), seed=1)
    out = tmp_path / "decisions.jsonl"
    sink = JsonlSink(out)
    source = ReplaySource(nmnist_dir, split="test", speed=0, limit=40)
    pipe = Pipeline(source, net, [sink],
                    queue_size=1, policy=policy, checkpoint=tmp_path / "m.npz", metrics_every_s=0.05)
    counters = await pipe.run()
    await sink.close()
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert counters.windows == 40
    assert counters.decisions + pipe.windows.dropped == 40 == len(lines) + pipe.windows.dropped
    if policy == "block":
        assert pipe.windows.dropped == 0
    assert net.samples_seen == counters.decisions == net.updates  # labels present: learned test-then-train
    saved = SpikingNetwork.load(tmp_path / "m.npz")  # saved at the end
    assert saved.samples_seen == net.samples_seen and saved.model_version == lines[-1]["model_version"]




def stream_with_hostile_batches(recording: EventBatch) -> tuple[list, list]:
    """The recording in 10 ms chunks, and the same with a duplicate and a late chunk slipped in."""
    chunks = recording.split_time(10_000)
    late = chunks[18].slice_count(len(chunks[18]) // 2)  # 20 ms late: less than a window
    return chunks, chunks[:10] + [chunks[9]] + chunks[10:20] + [late] + chunks[20:]


async def test_duplicate_and_late_batches_are_skipped_and_the_run_goes_on(recordings_dir):
    rec = read_events(recordings_dir / "tonic_sample.aedat4")
    clean, hostile = stream_with_hostile_batches(rec)
    got = {}
    for name, batches in (("clean", clean), ("hostile", hostile)):
        out = []
        pipe = Pipeline(ListSource(batches), SpikingNetwork((2312, 32, 10), seed=2),
                        [_Collect(out, lambda w, d: (w.t_start_us, w.t_end_us, d.label))],
                        segmenter=Segmenter("window"), metrics_every_s=60)
        counters = await asyncio.wait_for(pipe.run(), 120)  # before the fix this never returned
        got[name] = (out, counters)
    (clean_out, c1), (hostile_out, c2) = got["clean"], got["hostile"]
    assert c1.bad_batches == 0 and c2.bad_batches == 2
    assert hostile_out == clean_out and len(clean_out) >= 10  # the same decisions, as if nothing happened


async def test_after_hostile_batches_a_live_stream_is_still_classified_and_stops(recordings_dir):
    rec = read_events(recordings_dir / "tonic_sample.aedat4")
    clean, hostile = stream_with_hostile_batches(rec)
    out = []
    source = ListSource(hostile, then_wait=True)
    pipe = Pipeline(source, SpikingNetwork((2312, 32, 10), seed=2), [_Collect(out, lambda w, d: w.t_end_us)],
                    segmenter=Segmenter("window"), metrics_every_s=60)
    run = asyncio.create_task(pipe.run())
    last_full = rec.t_start + ((rec.t_end - rec.t_start - 100_000) // 50_000) * 50_000 + 100_000
    async def classified_to_the_end():
        while not out or out[-1] < last_full:
            await asyncio.sleep(0.01)
    await asyncio.wait_for(classified_to_the_end(), 120)  # windows after the bad batches were classified
    pipe.stop()  # as SIGTERM does
    counters = await asyncio.wait_for(run, 60)
    assert counters.bad_batches == 2 and source.closed.is_set()


async def test_an_unexpected_source_error_ends_the_run_in_one_line_after_publishing(nmnist_dir):
    from streamsnn.pipeline import StageFailed

    samples = [s.load() for s in open_dataset(nmnist_dir).split("test").samples[:3]]
    out = []
    pipe = Pipeline(ListSource(samples, fail=RuntimeError("decoder exploded")), SpikingNetwork((2312, 32, 10)),
                    [_Collect(out, lambda w, d: w.sample)], metrics_every_s=60)
    with pytest.raises(StageFailed) as err:
        await asyncio.wait_for(pipe.run(), 120)
    assert out == [s.sample for s in samples]  # what was read before the error was classified and published
    msg = str(err.value)
    assert "reading the source failed: RuntimeError: decoder exploded" in msg and "\n" not in msg
    assert err.value.exit_code == 1


async def test_a_segmenter_defect_is_counted_and_the_segmenter_starts_afresh(nmnist_dir):
    samples = [s.load().with_meta(meta={"end_of_sample": True})
               for s in open_dataset(nmnist_dir).split("test").samples[:4]]

    class Flaky(Segmenter):  # a defect that shows on the second batch only
        calls = 0

        def feed(self, batch):
            Flaky.calls += 1
            if Flaky.calls == 2:
                raise ZeroDivisionError("division by zero")
            return super().feed(batch)

    out = []
    pipe = Pipeline(ListSource(samples), SpikingNetwork((2312, 32, 10)), [_Collect(out, lambda w, d: w.sample)],
                    segmenter=Flaky("auto"), metrics_every_s=60)
    counters = await asyncio.wait_for(pipe.run(), 120)
    assert out == [samples[0].sample, samples[2].sample, samples[3].sample] and counters.bad_batches == 1


class _Collect(QuietSink):
    """A sink (stages.Sink) that keeps `what(window, decision)` of every decision."""

    def __init__(self, into: list, what):
        self.into, self.what = into, what

    def publish_decision(self, window, decision, info) -> None:
        self.into.append(self.what(window, decision))
