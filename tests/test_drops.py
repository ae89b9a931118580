"""Overload is counted: a paced replay whose reader falls behind counts its late batches, and the daemon's
metrics carry that count beside the dropped windows (what the live capacity benchmark judges a pace by).

Before: a full window queue was counted (`drops`), but a replay that fell behind its pace (the event loop
too busy to read it) dropped nothing and said nothing: the benchmark could not tell a kept pace from a lost one.
"""

from __future__ import annotations

import asyncio
import time

from daemon_util import QuietSink

from streamsnn.daemon import _extra_metrics
from streamsnn.pipeline import Pipeline
from streamsnn.pipeline.segment import Segmenter
from streamsnn.snn import SpikingNetwork
from streamsnn.sources.files import ReplaySource


async def test_a_paced_replay_whose_reader_falls_behind_counts_its_late_batches(recordings_dir):
    source = ReplaySource(recordings_dir / "tonic_sample.aedat4", speed=1.0, chunk_us=10_000)
    batches = 0
    async for _ in source:
        batches += 1
        if batches == 1:
            time.sleep(0.15)  # the reader stalls 150 ms: the next ~14 chunks of 10 ms are overdue
    assert batches >= 55  # 0.59 s in 10 ms chunks: all of it still arrives (late, not dropped)
    assert 5 <= source.counters["late"] < batches


async def test_an_unpaced_replay_is_never_late(recordings_dir):
    source = ReplaySource(recordings_dir / "tonic_sample.aedat4", speed=0, chunk_us=10_000)
    async for _ in source:
        time.sleep(0.002)
    assert source.counters["late"] == 0 and source.counters["batches"] >= 55


class _Stalling(QuietSink):
    """A sink that holds the event loop 30 ms per decision (an overloaded loop, which the replay shares)."""

    def __init__(self):
        self.decisions = 0

    def publish_decision(self, window, decision, info) -> None:
        self.decisions += 1
        time.sleep(0.03)


async def test_the_daemon_metrics_count_late_batches_and_dropped_windows_of_an_overloaded_pipeline(recordings_dir):
    source = ReplaySource(recordings_dir / "tonic_sample.aedat4", speed=1.0, chunk_us=10_000)
    sink = _Stalling()
    pipe = Pipeline(source, SpikingNetwork((2312, 32, 10), seed=2), [sink], queue_size=1, policy="drop_oldest",
                    learn_from_labels=False, segmenter=Segmenter("window", 20_000, 10_000, 1), metrics_every_s=60,
                    extra_metrics=lambda: _extra_metrics(source, None))
    counters = await asyncio.wait_for(pipe.run(), 120)
    m = pipe.metrics()
    assert m["source"]["late"] > 0  # the replay fell behind its pace, and says so
    assert counters.decisions == sink.decisions > 0
    assert m["drops"] == counters.windows - counters.decisions > 0  # every window is decided or counted dropped
