"""Class-incremental learning from feedback: a model trained on digits 0-8 meets 9 through operator feedback.

The default deep network is trained (as `streamsnn train` does: augmentation, cosine schedule) on the
digits 0-8 of the real N-MNIST training samples and most of the synthetic ones (`/work/synth`, or
`--synth`), keeping `model.memory_per_class` training samples per class for rehearsal as `streamsnn train`
does. Then a stream of held-out samples of all ten digits (synthetic samples never trained on, plus the real
training 9s) is classified one decision at a time, and each decision gets feedback with
its true class name through `Pipeline.apply_feedback`, the daemon's own path, with
`model.new_classes = true`: the first "9" adds the output unit. Accuracy on the real test samples of 9
and of 0-8 is read after 10, 50 and 100 examples of 9, mean over 3 seeds.

The test table runs the daemon's defaults (model.new_class_lr, the new unit's bias the mean of the others',
model.feedback_lr_scale): what a daemon does. A grid of those settings is scored on held-out training samples
(every tenth real one and held-out synthetic ones, never trained on; never the test split), which is where
new_class_lr was chosen; the benchmark reports the grid's best and where the defaults stand in it.

Run alone: `python -m benchmarks --only incremental` (`--quick`: 1 seed, 2 training epochs). The
trained 0-8 models are cached in the system temp folder (keyed by seed, epochs and data) so that a
second run only replays the streams.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import Context, NotMeasurable, Result

try:
    from streamsnn.pipeline.feedback import FEEDBACK_LR_SCALE
except ImportError:  # pragma: no cover - older code
    FEEDBACK_LR_SCALE = 1.0

NEW = 9                       # the digit the stream introduces
CHECKPOINTS = (10, 50, 100)   # examples of the new digit after which the model is evaluated
STREAM_SYNTH = 1500           # synthetic samples held out (the last ones of the folder) ...
VALIDATION_SYNTH = 300        # ... the last of them for choosing settings, the others for the stream
SYNTH = Path(os.environ.get("STREAMSNN_SYNTH", "/work/synth"))
CACHE = Path(tempfile.gettempdir()) / "streamsnn-bench-incremental"


def load(ctx: Context, synth_dir: Path = SYNTH):
    """(train 0-8, validation, test, stream batches): SampleArrays, except the stream (EventBatches).

    Validation: every tenth real training sample, plus VALIDATION_SYNTH held-out synthetic ones; the
    stream: the other held-out synthetic samples and the real training 9s. None is trained on.
    """
    try:
        from streamsnn.io.dataset import open_dataset
        from streamsnn.learn.training import load_split
        from streamsnn.snn import SpikingNetwork
    except ImportError as exc:
        raise NotMeasurable(f"training API not available ({exc})") from exc
    from .deep_train import validation_split

    if not (synth_dir / "train.txt").is_file():
        raise NotMeasurable(f"synthetic digits not found in {synth_dir} (streamsnn synth --out {synth_dir})")
    probe = SpikingNetwork(arch="dense:1")
    real = load_split(ctx.nmnist, "train", probe, quiet=True)
    test = load_split(ctx.nmnist, "test", probe, quiet=True)
    syn = load_split(synth_dir, "train", probe, quiet=True)
    real_train, val = validation_split(real, 100)
    n = len(syn)
    val = val + syn.pick(range(n - VALIDATION_SYNTH, n))
    held_syn = set(syn.ids[n - STREAM_SYNTH:n - VALIDATION_SYNTH])  # sample ids of each folder (they overlap)
    held_real = {i for i, y in zip(real_train.ids, real_train.labels) if y == NEW}
    train = real_train + syn.subset(n - STREAM_SYNTH)
    train = train.pick([k for k, y in enumerate(train.labels) if y != NEW])
    stream = []
    for folder, held in ((synth_dir, held_syn), (ctx.nmnist, held_real)):
        for s in open_dataset(folder).split("train").samples:
            if s.sample_id in held:
                stream.append(s.load())
    return train, val, test, stream


def base_model(train, *, seed: int, epochs: int):
    """The default deep network trained on `train` (digits 0-8), cached on disk between runs."""
    from streamsnn.learn.training import Augment, train_epoch
    from streamsnn.snn import SpikingNetwork

    from .deep_train import AUGMENT

    key = hashlib.sha1(("|".join(train.ids) + f"{seed}:{epochs}").encode()).hexdigest()[:12]
    path = CACHE / f"base-{seed}-{epochs}-{key}.npz"
    if path.is_file():
        return SpikingNetwork.load(path), 0.0, path
    net = SpikingNetwork(seed=seed, classes=[str(k) for k in range(NEW)])
    t0 = time.perf_counter()
    for ep in range(epochs):
        train_epoch(net, train, epoch=ep, epochs=epochs, seed=seed, augment=Augment(**AUGMENT), quiet=True)
    secs = time.perf_counter() - t0
    CACHE.mkdir(parents=True, exist_ok=True)
    net.save(path)
    return net, secs, path


class Clock:
    """Simulated seconds: one second per decision, so the feedback rate limit never applies."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def scores(net, data) -> tuple[float, float]:
    """(accuracy on the new digit, accuracy on the old digits) of ``net`` on ``data``, per sample."""
    pred = np.asarray([net.predict_indices(i, t).label for i, t in zip(data.idx, data.t)])
    new = data.labels == NEW
    return float(np.mean(pred[new] == NEW)), float(np.mean(pred[~new] == data.labels[~new]))


async def stream(base: Path, batches: list, evalset, *, lr_scale: float, boost: float, bias: str,
                 only_new: bool = False, train=None) -> dict:
    """Decisions on ``batches`` in order, each answered with its true class name through
    `Pipeline.apply_feedback` (``only_new``: only the new digit's), until CHECKPOINTS[-1] examples of
    the new digit were taught; returns {examples of the new digit: (new, old accuracy on evalset)}. ``train``: the
    samples whose `model.memory_per_class` per class the model keeps for rehearsal, as `streamsnn train` keeps."""
    from functools import partial

    from streamsnn import defaults
    from streamsnn.pipeline import Pipeline
    from streamsnn.pipeline.segment import Window
    from streamsnn.snn import SpikingNetwork

    net = SpikingNetwork.load(base)
    if train is not None:
        net.memory.per_class = defaults.MEMORY_PER_CLASS
        net.memory.fill(net, train)
    if bias == "min":  # the unit's bias: the lowest of the known classes' instead of their mean (add_class)
        net.add_class = partial(type(net).add_class, net, bias=float(net.bias.min()))
    clock = Clock()
    pipe = Pipeline(None, net, [], recent=16, clock=clock, feedback_lr_scale=lr_scale, new_classes=True,
                    max_classes=16, new_class_lr=boost)
    out, seen, undone = {}, 0, 0
    try:
        for b in batches:
            clock.now += 1.0
            w = Window(b, b.t_start, b.t_end, b.sample, None)  # unlabelled, as a live decision is
            d, _ = pipe._worker.submit(pipe._decide, w).result()  # on the worker, as the daemon decides
            w.predicted = d.label
            pipe.recent.add(w)
            if only_new and b.label != NEW:
                continue
            told = await pipe.teacher.teach({"sample": b.sample, "label": str(b.label)})
            if told.reason == "undone":  # the guard put the weights back and halved the rates: the daemon goes on
                undone += 1
            elif not told.learned:
                raise RuntimeError(f"feedback refused: {pipe.counters.feedback}")
            if b.label == NEW:
                seen += 1
                if seen in CHECKPOINTS:
                    out[seen] = scores(net, evalset)
                if seen == CHECKPOINTS[-1]:
                    break
    finally:
        pipe._worker.shutdown(wait=True)
    out["metrics"] = {"feedback_accuracy": pipe.metrics()["feedback_accuracy"], "classes": net.classes,
                      "decisions": int(pipe.counters.feedback_scored), "undone": undone}
    return out


def run(ctx: Context) -> Result:
    r = Result("incremental", "Class-incremental learning: digit 9 introduced by feedback to a model of 0-8")
    seeds, epochs = ((0,), 2) if ctx.quick else ((0, 1, 2), 6)
    train, val, test, batches = load(ctx)
    bases, secs = [], []
    for seed in seeds:
        net, s, path = base_model(train, seed=seed, epochs=epochs)
        bases.append((net, path))
        secs.append(s)
    orders = [[batches[int(k)] for k in np.random.default_rng([seed, 9]).permutation(len(batches))]
              for seed in seeds]
    boosts = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
    grid = [(FEEDBACK_LR_SCALE, bo, bi) for bo in boosts for bi in ("min", "mean")]
    grid += [(ls, bo, "min") for ls in (0.03, 0.3, 1.0) for bo in boosts]
    if ctx.quick:
        grid = [(ls, bo, "min") for ls in (FEEDBACK_LR_SCALE, 1.0) for bo in (1.0, 10.0, 30.0)]
    before_val = [scores(net, val)[1] for net, _ in bases]
    rows, chosen = [], None
    for ls, bo, bi in grid:
        res = [asyncio.run(stream(path, order, val, lr_scale=ls, boost=bo, bias=bi, train=train))
               for (_, path), order in zip(bases, orders)]
        new = float(np.mean([x[n][0] for x in res for n in CHECKPOINTS]))  # how fast 9 is learned
        drop = float(np.mean(before_val) - np.mean([x[CHECKPOINTS[-1]][1] for x in res]))
        undone = sum(x["metrics"]["undone"] for x in res)
        rows.append([ls, bo, bi, *[round(float(np.mean([x[n][0] for x in res])), 3) for n in CHECKPOINTS],
                     round(drop, 3), undone])
        key = (undone == 0, drop <= 0.05, new - max(drop, 0.0))
        if ls == FEEDBACK_LR_SCALE and (chosen is None or key > chosen[0]):  # the daemon's feedback rate
            chosen = (key, ls, bo, bi)
    from streamsnn import defaults

    ls, bo, bi = FEEDBACK_LR_SCALE, defaults.NEW_CLASS_LR, "mean"  # the daemon's (add_class: the mean bias)
    before = [scores(net, test)[1] for net, _ in bases]
    final, only = [], []
    for (_, path), order in zip(bases, orders):
        final.append(asyncio.run(stream(path, order, test, lr_scale=ls, boost=bo, bias=bi, train=train)))
        only.append(asyncio.run(stream(path, order, test, lr_scale=ls, boost=bo, bias=bi, only_new=True,
                                       train=train)))
    table = []
    for name, res in (("all digits' labels (rehearsal)", final), ("labels of 9 only", only)):
        for n in CHECKPOINTS:
            new = [x[n][0] for x in res]
            old = [x[n][1] for x in res]
            table.append([name, n, round(float(np.mean(new)), 3), " ".join(f"{v:.2f}" for v in new),
                          round(float(np.mean(old)), 3), round(float(np.mean(before) - np.mean(old)), 3)])
    new100 = float(np.mean([x[CHECKPOINTS[-1]][0] for x in final]))
    drop100 = float(np.mean(before) - np.mean([x[CHECKPOINTS[-1]][1] for x in final]))
    r.metric("test accuracy on 0-8 before the stream (trained on 0-8)", round(float(np.mean(before)), 3), "")
    for n in CHECKPOINTS:
        r.metric(f"test accuracy on 9 after {n} examples of 9", round(float(np.mean([x[n][0] for x in final])), 3), "",
                 target=">= 0.80" if n == CHECKPOINTS[-1] else None,
                 met=(new100 >= 0.8) if n == CHECKPOINTS[-1] else None)
        old = round(float(np.mean([x[n][1] for x in final])), 3)
        r.metric(f"test accuracy on 0-8 after {n} examples of 9", old, "")
    r.metric("drop on 0-8 after 100 examples of 9", round(drop100, 3), "points/100", target="<= 0.05",
             met=drop100 <= 0.05)
    r.metric("model.feedback_lr_scale (the daemon's default, chosen in bench_feedback)", ls, "")
    r.metric("model.new_class_lr (the daemon's default; the test table's)", bo, "")
    r.metric("best on validation: model.new_class_lr", chosen[2], "")
    r.metric("best on validation: bias of the new unit", chosen[3], "")
    mine = next((row for row in rows if tuple(row[:3]) == (ls, bo, bi)), None)  # not in --quick's grid
    if mine is not None:
        r.metric("the defaults on validation: 0-8 drop after 100 examples of 9", mine[-2], "points/100")
    r.table(f"Test split (real N-MNIST, {int(np.sum(test.labels == NEW))} samples of 9, "
            f"{int(np.sum(test.labels != NEW))} of 0-8), mean of {len(seeds)} seed(s), with the daemon's defaults",
            ["feedback on", "examples of 9", "accuracy on 9", "per seed", "accuracy on 0-8", "drop on 0-8"], table)
    r.table(f"Choosing the settings: validation (100 held-out real training samples and {VALIDATION_SYNTH} "
            f"held-out synthetic ones, {int(np.sum(val.labels == NEW))} of 9), mean of {len(seeds)} seed(s); "
            "before the stream 0-8: "
            f"{np.mean(before_val):.3f}", ["feedback_lr_scale", "new_class_lr", "new unit bias",
                                           *[f"on 9 after {n}" for n in CHECKPOINTS], "drop on 0-8 after 100",
                                           "updates undone"], rows)
    m = final[0]["metrics"]
    r.note(f"Base models: the default deep network on {len(train)} samples of 0-8 ({epochs} epochs, "
           f"augmentation; {', '.join(f'{s:.0f} s' for s in secs)} of training, 0 s = from the cache). Stream: "
           f"{len(batches)} held-out samples ({STREAM_SYNTH - VALIDATION_SYNTH} synthetic never trained on, plus the "
           "real training 9s), "
           f"shuffled per seed; every decision is taught its true class name by `Pipeline.apply_feedback` "
           f"(model.new_classes = true); the first '9' adds the unit. Seed {seeds[0]}: {m['decisions']} decisions "
           f"taught, their published predictions {m['feedback_accuracy']:.1%} right (feedback_accuracy). Updates the "
           f"guard undid (weights non-finite or huge; refused as `undone`, rates halved) with the defaults: "
           f"{sum(x['metrics']['undone'] for x in final + only)} over every seed and both streams.")
    r.note("The grid's best on validation at the daemon's model.feedback_lr_scale (set by the wrong-label "
           "trade-off of bench_feedback; the other scales are shown for comparison): no update undone by the guard "
           "first, then the 0-8 drop after 100 examples within 5 points, then the highest accuracy on 9 (mean "
           "over 10, 50 and 100 examples: learning it fast counts) minus that drop; ties go to the first row. "
           "The test split is read only with the daemon's defaults (model.new_class_lr, the mean bias), whichever "
           "row is best: the best has moved between runs among rows within a sample or two of one another. 11 test "
           "samples of 9: one sample is 9 points.")
    return r


if __name__ == "__main__":  # train (and cache) the base models only
    import sys

    from .common import DATA

    ctx = Context(data=DATA)
    train, *_ = load(ctx)
    for seed in range(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
        _, secs, _ = base_model(train, seed=seed, epochs=6)
        print(f"seed {seed}: {len(train)} samples, {secs:.0f} s", flush=True)
