"""Rehearsal from what the camera sees now (pipeline/livekeep.py, model.keep_every / keep_margin): windows the daemon
decided with a clear margin join the rehearsal memory as examples of the decided class, within a share of each
class's slots, survive a checkpoint, and leave it when feedback teaches that window (issue 22)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from conftest import need
from daemon_util import ListSource, QuietSink

from streamsnn import defaults
from streamsnn.events import EventBatch
from streamsnn.learn.training import load_split, train_epoch
from streamsnn.pipeline import Pipeline
from streamsnn.pipeline.livekeep import margin
from streamsnn.pipeline.segment import Window
from streamsnn.snn import SpikingNetwork

OLD = (0, 2, 3)
PER_CLASS = 6


@pytest.fixture(scope="module")
def scene():
    """(a dense:64 network trained on OLD keeping PER_CLASS training samples per class, the test samples of OLD as
    unlabelled EventBatches: what a camera shows it)."""
    from streamsnn.io import open_dataset

    folder = need("nmnist_small")
    train = load_split(folder, "train", SpikingNetwork(arch="dense:1"), quiet=True)
    train = train.pick([k for k, y in enumerate(train.labels) if y in OLD])
    train.labels = np.asarray([OLD.index(int(y)) for y in train.labels])
    net = SpikingNetwork(arch="dense:64", classes=[str(c) for c in OLD], seed=0)
    for ep in range(3):
        train_epoch(net, train, epoch=ep, epochs=3, seed=0, quiet=True)
    net.memory.per_class = PER_CLASS
    net.memory.fill(net, train)
    seen = [s.load() for s in open_dataset(folder).split("test").samples if s.label in OLD]
    unlabelled = [EventBatch(b.events, b.width, b.height, sample=b.sample, meta={"end_of_sample": True})
                  for b in seen]
    return net, unlabelled


class Decisions(QuietSink):
    def __init__(self):
        self.by_sample = {}

    def publish_decision(self, window, decision, info) -> None:
        self.by_sample[window.sample] = (int(decision.label), margin(decision.scores))


async def run(net, batches, tmp_path, **settings) -> tuple[Pipeline, Decisions]:
    sink = Decisions()
    pipe = Pipeline(ListSource(batches), net, [sink], memory_per_class=PER_CLASS, checkpoint=tmp_path / "m.npz",
                    save_every_s=0, **settings)
    await pipe.run()
    return pipe, sink


def live(net) -> list[tuple]:
    """(sample id, label) of every live example."""
    m = net.memory
    return [(key[1] if key else None, y) for key, y, v in zip(m._keys, m.labels, m.live) if v]


async def test_confident_windows_enter_memory_with_their_decided_class_and_survive_a_checkpoint(scene, tmp_path):
    base, batches = scene
    net = copy.deepcopy(base)
    margins = [margin(net.predict_one(b).scores) for b in batches]
    cut = float(np.quantile(margins, 0.6))  # a fixed threshold: 40 % of the windows are confident
    pipe, sink = await run(net, batches, tmp_path, keep_every=2, keep_margin=cut)
    confident = sum(m >= cut for _, m in sink.by_sample.values())
    assert len(sink.by_sample) == len(batches) and 0 < confident < len(batches)
    assert pipe.counters.kept_live == confident // 2  # every second confident window
    assert pipe.metrics()["kept_live"] == pipe.counters.kept_live
    kept = live(net)
    assert kept and all(sink.by_sample[s][0] == y and sink.by_sample[s][1] >= cut for s, y in kept)
    for c in range(net.n_classes):  # the share bound: live examples take at most half; training ones stay
        assert net.memory.count_live(c) <= int(PER_CLASS * defaults.KEEP_SHARE)
        assert net.memory.count(c) - net.memory.count_live(c) >= PER_CLASS - int(PER_CLASS * defaults.KEEP_SHARE)
    back = SpikingNetwork.load(tmp_path / "m.npz")  # saved at exit, as the daemon does
    assert back.memory.live == net.memory.live and back.memory.labels == net.memory.labels
    assert all(np.array_equal(a, b) for a, b in zip(back.memory.idx, net.memory.idx))


async def test_unconfident_windows_are_not_kept_and_the_threshold_is_measured_on_the_kept_training_examples(
        scene, tmp_path):
    base, batches = scene
    net = copy.deepcopy(base)
    measured = net.memory.typical_margin(net, defaults.KEEP_QUANTILE)
    pipe, sink = await run(net, batches, tmp_path, keep_every=1)
    assert pipe.keeper.threshold is not None and measured is not None
    unsure = {s for s, (_, m) in sink.by_sample.items() if m < min(measured, pipe.keeper.threshold)}
    assert unsure and not unsure & {s for s, _ in live(net)}
    assert pipe.counters.kept_live > 0
    net = copy.deepcopy(base)
    pipe, _ = await run(net, batches, tmp_path, keep_every=0)  # off
    assert pipe.counters.kept_live == 0 and not any(net.memory.live)


async def test_feedback_on_a_kept_window_drops_it_from_the_live_examples(scene):
    base, batches = scene
    net = copy.deepcopy(base)
    pipe = Pipeline(None, net, [], memory_per_class=PER_CLASS, keep_every=1, keep_margin=1e-6, feedback_per_s=0)
    try:
        windows = []
        for b in batches[:12]:
            w = Window(b, b.t_start, b.t_end, b.sample, None)
            d, info = pipe._worker.submit(pipe._decide, w).result()  # on the worker, as the daemon decides
            pipe._publish(w, d, info)
            windows.append((w, d.label))
        pipe._worker.submit(lambda: None).result()  # the kept windows were taken on the worker
        kept = {s: y for s, y in live(net)}
        wrong = next(w for w, y in windows if w.sample in kept)
        other = str(OLD[(kept[wrong.sample] + 1) % 3])
        counted = pipe.counters.kept_live
        assert await pipe.apply_feedback({"sample": wrong.sample, "label": other})
        assert wrong.sample not in {s for s, _ in live(net)}  # feedback said it was wrong: no longer a live example
        assert pipe.counters.kept_live == counted  # counted when kept
    finally:
        pipe._worker.shutdown(wait=True)


def test_a_damaged_live_mark_refuses_the_checkpoint_and_older_files_have_none(scene, tmp_path):
    from streamsnn.errors import CheckpointError

    base, batches = scene
    net = copy.deepcopy(base)
    idx, _ = net.input_events(batches[0])
    assert net.memory.add_live(idx, None, 0, "w", defaults.KEEP_SHARE)
    net.save(tmp_path / "m.npz")
    arrays = dict(np.load(tmp_path / "m.npz"))
    assert arrays["memory_live"].sum() == 1
    np.savez(tmp_path / "bad.npz", **{**arrays, "memory_live": arrays["memory_live"] * 2})
    with pytest.raises(CheckpointError, match="rehearsal memory is unusable"):
        SpikingNetwork.load(tmp_path / "bad.npz")
    del arrays["memory_live"]
    np.savez(tmp_path / "old.npz", **arrays)  # as streamsnn wrote it before live examples
    assert not any(SpikingNetwork.load(tmp_path / "old.npz").memory.live)


def test_the_new_settings_take_their_defaults_from_one_place():
    from streamsnn.config import SCHEMA
    from streamsnn.pipeline.settings import PipelineSettings

    lib = PipelineSettings()
    assert (lib.imprint, lib.keep_every, lib.keep_margin) == (defaults.IMPRINT, defaults.KEEP_EVERY,
                                                              defaults.KEEP_MARGIN)
    for key in ("imprint", "keep_every", "keep_margin"):
        assert SCHEMA["model"][key].default == getattr(lib, key)


def test_a_daemon_that_does_not_learn_from_feedback_keeps_no_live_example():
    from types import SimpleNamespace

    from streamsnn.pipeline.livekeep import LiveKeeper
    from streamsnn.pipeline.metrics import Counters
    from streamsnn.pipeline.settings import PipelineSettings
    from streamsnn.snn import SpikingNetwork

    net = SpikingNetwork(arch="dense:16", input_shape=(8, 8, 2), classes=3, seed=0)
    idle = SimpleNamespace(submit=lambda *a: None)
    on = LiveKeeper(net, Counters(), PipelineSettings(), idle)
    off = LiveKeeper(net, Counters(), PipelineSettings(learn_from_feedback=False), idle)
    assert on.enabled and not off.enabled


def test_the_kept_examples_are_seen_before_the_first_window_and_later_ones_a_few_at_a_time():
    from concurrent.futures import ThreadPoolExecutor

    from streamsnn.pipeline import livekeep
    from streamsnn.pipeline.metrics import Counters
    from streamsnn.pipeline.settings import PipelineSettings
    from streamsnn.snn import SpikingNetwork

    net = SpikingNetwork(arch="dense:16", input_shape=(8, 8, 2), classes=3, seed=0)
    rng = np.random.default_rng(0)
    for k in range(12):
        net.memory.add(rng.integers(0, 128, 300).astype(np.int32), None, k % 3)
    unseen = lambda: sum(h is None for h in net.memory._h)  # noqa: E731
    assert unseen() == 12
    with ThreadPoolExecutor(1) as worker:
        keeper = livekeep.LiveKeeper(net, Counters(), PipelineSettings(), worker)
    assert unseen() == 0  # all seen on the worker at the start, before any window
    for k in range(10):  # taught windows join later
        net.memory.add(rng.integers(0, 128, 300).astype(np.int32), None, k % 3)
    keeper._measure()  # what a kept window triggers mid-stream
    assert unseen() == 10 - livekeep.WARM_STEP
