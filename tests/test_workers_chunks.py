"""pipeline.workers at the live settings (100 ms windows every 50 ms, segment.overlap "auto" = "chunks"): the hop-long
chunks are computed on the copies and read out on the main worker, with exactly one worker's decisions, in its order,
through bad packets, cuts, restarts, a killed worker and learning (pipeline/chunkpool.py)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time

import numpy as np
import pytest
from daemon_util import ListSource as Source
from daemon_util import QuietSink, worker_killer
from dataset_util import nmnist_events, nmnist_picks

from streamsnn.events import EventBatch
from streamsnn.io import read_events
from streamsnn.pipeline import Pipeline
from streamsnn.pipeline.decide import Decider
from streamsnn.pipeline.segment import Segmenter
from streamsnn.snn import SpikingNetwork

ARCH = "conv:8:5:2:2,dense:64"


def net(seed: int = 0, **kw) -> SpikingNetwork:
    return SpikingNetwork(arch=ARCH, input_shape=(34, 34, 2), classes=10, seed=seed, **kw)


def stream(n: int, *, labelled=(), skip: int = 0) -> list[EventBatch]:
    """N-MNIST test samples skip..skip+n one after the other on one clock, in 10 ms batches as a camera delivers
    them; the samples at positions `labelled` carry their sample id and label (the others none)."""
    out, t0 = [], 0
    for i, (sid, digit) in enumerate(nmnist_picks("test", skip + n)[skip:]):
        ev = nmnist_events(sid).copy()
        ev["t"] += t0 - ev["t"][0]
        t0 = int(ev["t"][-1]) + 1000
        lab = i in labelled
        b = EventBatch(ev, 34, 34, source="nmnist stream", sample=sid if lab else None, label=digit if lab else None,
                       meta={"label_name": str(digit)} if lab else {})
        out += b.split_time(10_000)
    return out


class Collect(QuietSink):
    def __init__(self):
        self.got = []

    def publish_decision(self, window, decision, info) -> None:
        self.got.append((window.t_start_us, window.t_end_us, int(decision.label), decision.scores.tobytes(),
                         info.model_version, window.label, decision.events))


def run(batches, model, *, workers: int, each=None, smooth_us: float = 0.0, seg=None, **options):
    sink, source = Collect(), Source(batches, each)
    segmenter = Segmenter("window", 100_000, 50_000, overlap="auto", **(seg or {}))
    pipe = Pipeline(source, model, [sink], workers=workers, metrics_every_s=60, segmenter=segmenter,
                    decider=Decider(smooth_us), **options)
    source.pipe = pipe
    asyncio.run(pipe.run())
    return sink.got, pipe


def test_live_windows_on_two_workers_are_decided_from_chunks_exactly_as_on_one():
    batches = stream(12)
    one, _ = run(batches, net(1), workers=1, learn_from_labels=False)
    model = net(1)
    two, pipe = run(batches, model, workers=2, learn_from_labels=False)
    assert len(one) > 50 and len({g[2] for g in one}) > 1
    assert [g[:4] + g[5:] for g in two] == [g[:4] + g[5:] for g in one]  # order, labels, scores bit for bit
    assert {g[4] for g in two} == {model.model_version}
    w = pipe.metrics()["workers"]
    assert pipe.segmenter.overlap == "chunks"
    assert w["chunks_on_copies"] > 0 and w["read"] == len(two) and w["recomputed"] == 0  # read out from chunks
    assert w["on_copies"] == 0 and w["died"] == 0  # no whole window pickled to a copy
    assert model.samples_seen == len(two) and model.events_seen == sum(g[6] for g in two)
    assert pipe.pool.pids() == [] and multiprocessing.active_children() == []


def test_smoothing_is_applied_in_window_order_with_chunks_on_two_workers():
    batches = stream(10, skip=12)
    one, _ = run(batches, net(2), workers=1, smooth_us=150_000.0, learn_from_labels=False)
    two, pipe = run(batches, net(2), workers=2, smooth_us=150_000.0, learn_from_labels=False)
    assert len(one) > 40
    assert [g[:4] for g in two] == [g[:4] for g in one]
    assert pipe.metrics()["workers"]["chunks_on_copies"] > 0


def test_a_real_recording_with_bad_packets_cuts_and_a_restart_decides_as_on_one_worker(recordings_dir):
    rec = read_events(recordings_dir / "tonic_sample.aedat4")  # a real 320x240 recording
    part = rec.slice_time(None, rec.t_start + 600_000)
    chunks = part.split_time(7_000)
    late = chunks[18].slice_count(len(chunks[18]) // 2)
    batches = chunks[:10] + [chunks[9]] + chunks[10:20] + [late] + chunks[20:]  # a duplicate and a late one
    batches = batches + part.split_time(7_000)  # the clock goes back: a new stream
    seg = {"max_events": 3_000}  # windows cut early at the bound
    one, p1 = run(batches, net(3), workers=1, seg=seg, learn_from_labels=False)
    two, pipe = run(batches, net(3), workers=2, seg=seg, learn_from_labels=False)
    assert p1.counters.bad_batches == pipe.counters.bad_batches == 2
    assert pipe.segmenter.counters["cut"] > 0 and pipe.segmenter.counters["restarts"] == 1
    assert len(one) > 20 and [g[:4] + g[5:] for g in two] == [g[:4] + g[5:] for g in one]
    w = pipe.metrics()["workers"]
    assert w["chunks_on_copies"] > 0 and w["read"] > w["recomputed"]


def test_a_worker_killed_mid_stream_loses_no_decision_and_changes_none():
    batches = stream(12, skip=4)
    killed = []
    kill = worker_killer((60, 200), killed, 0.1)

    one, _ = run(batches, net(4), workers=1, learn_from_labels=False)
    two, pipe = run(batches, net(4), workers=2, each=kill, learn_from_labels=False)
    assert killed
    assert [g[:4] for g in two] == [g[:4] for g in one]  # every decision, in order, the same
    w = pipe.metrics()["workers"]
    assert w["died"] >= 1 and w["recomputed"] >= 1 and pipe.counters.bad_windows == 0
    assert multiprocessing.active_children() == []


def test_a_restarted_worker_is_sent_chunks_again_and_dies_once():
    """A chunk sent to a worker while its restart was still starting found no pipe and declared it dead again:
    10 restarts in a row, then a live process left idle while the metrics called it alive."""
    batches = stream(12, skip=4)
    seen = {}

    async def each(i, pipe):
        if i == 60:
            os.kill(pipe.pool.pids()[0], signal.SIGKILL)
        elif 60 < i < 200:  # chunks keep coming, as from a camera, while the new process starts
            await asyncio.sleep(0.02)
        elif i == 200:  # then wait for it (a loaded machine starts a process slowly); 160 batches remain
            deadline = time.monotonic() + 120
            while pipe.metrics()["workers"]["restarted"] < 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            seen.update(pipe.metrics()["workers"])

    one, _ = run(batches, net(4), workers=1, learn_from_labels=False)
    two, pipe = run(batches, net(4), workers=2, each=each, learn_from_labels=False)
    assert [g[:4] for g in two] == [g[:4] for g in one]
    w = pipe.metrics()["workers"]
    assert seen["died"] == w["died"] == 1 and w["restarted"] == 1, w
    assert w["chunks_on_copies"] > seen["chunks_on_copies"]  # the new process decides chunks again
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("refresh_s", [0.0, 60.0])
def test_labelled_windows_are_learned_on_the_main_worker_and_stale_chunks_recomputed(refresh_s):
    """Half the samples carry labels: their windows are learned from, test-then-train, on the main worker; the
    others are decided from chunks. A chunk a copy computed with weights the learner has since changed is never
    read out: the window is computed again on the main worker, so the decisions, the versions that decided and
    the learned weights are those of one worker, however often the copies are refreshed."""
    batches = stream(10, labelled=range(0, 10, 2), skip=30)
    opts = dict(learn_from_labels=True, seg={"label_windows": True})
    one_net, two_net = net(5), net(5)
    one, _ = run(batches, one_net, workers=1, **opts)
    two, pipe = run(batches, two_net, workers=2, refresh_s=refresh_s, **opts)
    assert one_net.updates == two_net.updates > 10
    assert [g[:4] + g[5:] for g in two] == [g[:4] + g[5:] for g in one]
    assert [g[4].split(".")[1] for g in two] == [g[4].split(".")[1] for g in one]  # the learner's update count
    assert np.array_equal(one_net.out_weight, two_net.out_weight)  # the same learning, on the main worker
    assert all(np.array_equal(a.weight, b.weight) for a, b in zip(one_net.hidden, two_net.hidden))
    w = pipe.metrics()["workers"]
    assert w["chunks_on_copies"] > 0 and w["recomputed"] > 0
    assert sum(g[5] is None for g in two) > 10 and sum(g[5] is not None for g in two) > 10
    assert pipe.decider.watch.scored == two_net.updates  # the learner is watched on this path too (revive.py)


def test_another_sensor_mid_stream_is_decided_as_on_one_worker(recordings_dir):
    """An N-MNIST stream (34x34), then a 320x240 recording: a new stream on another sensor, its chunks computed with
    its own sensor size even when they share a message with the other sensor's."""
    rec = read_events(recordings_dir / "tonic_sample.aedat4")
    batches = stream(3, skip=50) + rec.slice_time(None, rec.t_start + 400_000).split_time(10_000)
    one, _ = run(batches, net(6), workers=1, learn_from_labels=False)
    two, pipe = run(batches, net(6), workers=2, learn_from_labels=False)
    assert pipe.segmenter.counters["restarts"] == 1
    assert len(one) > 15 and [g[:4] + g[5:] for g in two] == [g[:4] + g[5:] for g in one]
    assert pipe.metrics()["workers"]["chunks_on_copies"] > 0
