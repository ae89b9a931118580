"""pipeline.workers: windows spread over worker processes decide exactly as one worker does, in the same order;
the copies are refreshed from the learner; a killed worker does not stop the pipeline; nothing outlives it."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import sys

import numpy as np
import pytest
from daemon_util import Daemon, QuietSink, daemons, worker_killer  # noqa: F401 - the fixture
from daemon_util import ListSource as Source
from dataset_util import nmnist_events, nmnist_picks

from streamsnn.errors import ConfigError
from streamsnn.events import EventBatch
from streamsnn.pipeline import Pipeline
from streamsnn.pipeline.decide import Decider
from streamsnn.pipeline.segment import Segmenter
from streamsnn.pipeline.workers import InferencePool, WorkerError
from streamsnn.snn import SpikingNetwork

ARCH = "conv:8:5:2:2,dense:64"  # small: the test is about the plumbing, the kernels are the same


def net(seed: int = 0) -> SpikingNetwork:
    return SpikingNetwork(arch=ARCH, input_shape=(34, 34, 2), classes=10, seed=seed)


def samples(n: int, *, labelled: bool = True, skip: int = 0) -> list[EventBatch]:
    """N-MNIST test samples skip..skip+n (real recordings), one batch each, as a replay hands them over."""
    return [EventBatch(nmnist_events(sid), 34, 34, sample=sid, label=digit if labelled else None,
                       meta={"label_name": str(digit)} if labelled else {})
            for sid, digit in nmnist_picks("test", skip + n)[skip:]]


def stream(n: int, chunk_us: int = 10_000) -> list[EventBatch]:
    """n test samples one after the other on one clock, in 10 ms chunks, as a camera delivers them."""
    parts, t0 = [], 0
    for sid, _ in nmnist_picks("test", n):
        ev = nmnist_events(sid).copy()
        ev["t"] += t0 - ev["t"][0]
        t0 = int(ev["t"][-1]) + 1000
        parts.append(ev)
    return EventBatch(np.concatenate(parts), 34, 34, source="nmnist stream").split_time(chunk_us)


class Collect(QuietSink):
    def __init__(self):
        self.got = []

    def publish_decision(self, window, decision, info) -> None:
        self.got.append((window.sample, window.t_end_us, int(decision.label), decision.scores.tobytes(),
                         info.model_version, window.label))


def run(batches, model, *, workers: int, each=None, **options):
    sink, source = Collect(), Source(batches, each)
    pipe = Pipeline(source, model, [sink], workers=workers, metrics_every_s=60, **options)
    source.pipe = pipe
    asyncio.run(pipe.run())
    return sink.got, pipe


def test_two_workers_decide_real_samples_exactly_as_one_in_the_same_order():
    batches = samples(40)
    one, _ = run(batches, net(), workers=1, learn_from_labels=False)
    two, pipe = run(batches, net(), workers=2, learn_from_labels=False)
    assert len(one) == 40 and [g[0] for g in one] == [sid for sid, _ in nmnist_picks("test", 40)]
    assert [g[:4] for g in two] == [g[:4] for g in one]  # sample, window end, label, scores (bit for bit)
    w = pipe.metrics()["workers"]
    assert w["on_copies"] > 0 and w["on_main"] + w["on_copies"] == 40 and w["died"] == 0
    assert pipe.pool.pids() == [] and multiprocessing.active_children() == []  # drained and stopped


def test_two_workers_publish_a_smoothed_stream_in_window_order_as_one_does():
    """Sliding windows over one clock with smoothing: the smoothing is applied in window order."""
    batches = stream(12)

    def opts():
        return dict(segmenter=Segmenter("window", 100_000, 50_000), decider=Decider(150_000), learn_from_labels=False)

    one, _ = run(batches, net(1), workers=1, **opts())
    two, pipe = run(batches, net(1), workers=2, **opts())
    assert len(one) > 50
    assert [g[1:4] for g in two] == [g[1:4] for g in one]
    assert pipe.metrics()["workers"]["on_copies"] > 0
    assert pipe.net.samples_seen == len(one)  # the copies' windows count in the learner's lifetime counters


def test_the_copies_are_refreshed_from_the_learner_and_say_which_weights_decided():
    """Labelled windows are learned by the main worker; unlabelled ones go to any worker. With refresh_s = 0
    a copy takes the learner's new weights before its next window, and its decisions then carry the learner's
    version and equal the learner's own."""
    labelled, plain = samples(16), samples(8, labelled=False, skip=16)
    batches = [b for pair in zip(labelled[:8], plain) for b in pair] + labelled[8:] + plain

    async def settle(i, pipe):
        if i == 25:  # the last 8 (unlabelled) windows come after the learner finished: wait for it (a sample's
            for _ in range(3000):  # window closes when the next one starts: batch 24 closed window 23)
                if pipe.counters.decisions >= 24:
                    break
                await asyncio.sleep(0.01)

    model = net(2)
    start = model.model_version
    got, pipe = run(batches, model, workers=2, each=settle, learn_from_labels=True, refresh_s=0.0)
    w = pipe.metrics()["workers"]
    # how many windows the copy takes depends on the scheduling (the main worker takes one when the copy lags by
    # MAIN_EXTRA): 4 or more nearly always, 3 once in a CI run on 2 busy cores (2026-12-05); one is what this needs
    assert model.updates == 16 and w["refreshes"] >= 2 and w["on_copies"] >= 1
    assert pipe.decider.watch.scored == 16  # the learner is watched with workers too (revived if it fails, revive.py)
    assert w["copy_version"] == model.model_version != start
    last = got[-8:]
    assert {g[4] for g in last} == {model.model_version}  # every worker decided with the learner's last weights
    for (sid, _, label, scores, _, _), b in zip(last, plain):
        d = model.predict_one(b)
        assert (sid, label, scores) == (b.sample, d.label, d.scores.tobytes())


def test_a_killed_worker_is_counted_its_window_decided_and_the_stream_goes_on():
    batches = samples(30)
    killed = []
    kill = worker_killer((8, 20), killed, 0.2)

    one, _ = run(batches, net(), workers=1, learn_from_labels=False)
    two, pipe = run(batches, net(), workers=2, each=kill, learn_from_labels=False)
    assert killed
    assert [g[:4] for g in two] == [g[:4] for g in one]  # nothing lost, nothing out of order
    w = pipe.metrics()["workers"]
    assert w["died"] >= 1 and pipe.counters.bad_windows == 0
    assert multiprocessing.active_children() == []  # the restarted one was stopped at the end too


class Refused(Collect):
    """A sink with a fatal error after its third decision (as the MQTT sink when the broker refuses the login)."""

    def check(self) -> None:
        if len(self.got) >= 3:
            raise ConfigError("mqtt: the broker refused the login")


def test_a_sinks_fatal_error_ends_the_run_with_workers_too_and_stops_them():
    sink = Refused()
    pipe = Pipeline(Source(samples(30)), net(), [sink], workers=2, metrics_every_s=60, learn_from_labels=False)
    with pytest.raises(ConfigError, match="refused the login"):
        asyncio.run(pipe.run())
    assert 3 <= len(sink.got) < 30
    assert multiprocessing.active_children() == []


class NoKernels(SpikingNetwork):
    """A network whose copy cannot start (its kernels fail to load in the worker)."""

    def warm_up(self) -> None:
        if multiprocessing.parent_process() is not None:
            raise RuntimeError("no kernels here")


def test_a_worker_that_cannot_start_is_one_line_and_leaves_no_process():
    model = NoKernels(arch=ARCH, input_shape=(34, 34, 2), classes=10)
    pool = InferencePool(model, 2, 1.0)
    with pytest.raises(WorkerError) as err:
        asyncio.run(pool.start())
    text = str(err.value)
    assert "\n" not in text and "no kernels here" in text and "pipeline.workers = 1" in text
    assert multiprocessing.active_children() == []


def test_a_temporal_network_is_not_split():
    leaky = SpikingNetwork(arch=ARCH, input_shape=(34, 34, 2), classes=10, tau_us=50_000.0)
    pool = InferencePool(leaky, 2, 1.0)
    asyncio.run(pool.start())
    assert not pool.active and pool.pids() == []


@pytest.mark.slow  # two daemons, one with a worker process to start
def test_the_daemon_with_two_workers_publishes_what_one_publishes_and_leaves_no_process(tmp_path, daemons):  # noqa: F811
    from conftest import ROOT, need

    data = need("nmnist_small")
    outs = {}
    for n in (1, 2):
        out = tmp_path / f"w{n}.jsonl"
        d = Daemon(tmp_path, ROOT / "pipelines" / "nmnist-replay.toml", {
            "source.path": data, "source.split": "test", "source.limit": 24, "source.shuffle": False,
            "model.checkpoint": "", "model.arch": ARCH, "model.learn_from_labels": False, "mqtt.enabled": False,
            "console.decisions": False, "jsonl.path": out, "pipeline.workers": n}, name=f"w{n}")
        daemons.append(d.start())
        assert asyncio.run(d.wait(120)) == 0, d.text()[-2000:]
        outs[n] = [json.loads(line) for line in out.read_text().splitlines()]
        if n == 2:
            text = d.text()
            assert "inference on 2 workers" in text, text[-2000:]
            pids = [int(p) for p in text.split("(pids ")[1].split(")")[0].split(", ")]
            for pid in pids:  # stopped with the daemon
                with pytest.raises(ProcessLookupError):
                    os.kill(pid, 0)
    keep = ("sample", "label", "scores")
    assert len(outs[1]) == 24
    assert [{k: r.get(k) for k in keep} for r in outs[2]] == [{k: r.get(k) for k in keep} for r in outs[1]]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
