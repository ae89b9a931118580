"""Few-shot teaching: a class never seen before taught by examples of that class only, through the daemon's feedback.

What a person does with a camera: show it a new object and name it, again and again, and nothing else.
The base models are bench_incremental's (the default deep network trained on the digits 0-8 of the real
N-MNIST training samples and most of the synthetic ones, cached); `streamsnn train` would also keep
`model.memory_per_class` training samples per class for rehearsal, and so does this benchmark (the same
`Memory.fill`). Then the 9s of bench_incremental's held-out stream (never trained on), the real training 9s
first and the synthetic ones after them (`real_first`: a class taught with real samples of it), each shuffled
per seed, are decided one at a time and each is answered by feedback naming "9"
through `Pipeline.apply_feedback` (`model.new_classes = true`: the first adds the class). After 5, 10, 20
and 100 examples the model is scored: accuracy on the new class, and what the old classes lost.

Before teaching, each model decides a stretch of unlabelled windows of the old classes from the source it is scored
on (`LIVE_WINDOWS`, never scored), through the daemon's decision stage, as a running daemon sees the scene before
someone teaches it: with `model.keep_every` the confident ones join the rehearsal memory (pipeline/livekeep.py; the
table says how many). `model.imprint` (imprinting a class added by feedback from its first window) is at its default.

Three arms: `model.new_class_fit = false` with `model.rehearse = 0` (no replay: what issue 22 measured) and with
replay (3, the default before the fit), and the defaults (`model.new_class_fit`: only the new class's unit learns,
fit against the old classes' kept examples and the scene decided before it was added). The settings are compared
on validation (held-out training samples, never the test split; `VARIANTS`); the test split is read only for the
final table. The test split holds only 11 real 9s (one is 9 points), so the defaults are also taught the first
`HELD_TEACH` real training 9s of each seed's order and scored on the real 9s they were not taught (`held_back`).

Run alone: `python -m benchmarks --only fewshot` (`--quick`: 1 seed, 2-epoch base model). A sanity check of one arm
and one seed with fewer examples, on validation samples only: `python -m benchmarks.bench_fewshot --help`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from .bench_incremental import NEW as NEW_DIGIT
from .common import Context, Result

CHECKPOINTS = (5, 10, 20, 100)
#: Settings compared on validation (name: PipelineSettings fields); the last is the defaults.
VARIANTS = {"fit off, rehearse 0": dict(new_class_fit=False, rehearse=0),
            "fit off, rehearse 1": dict(new_class_fit=False, rehearse=1),
            "fit off, rehearse 3": dict(new_class_fit=False, rehearse=3),
            "fit off, rehearse 6": dict(new_class_fit=False, rehearse=6),
            "defaults": {}}
#: The arms of the test table and the synthetic camera.
ARMS = ("fit off, rehearse 0", "fit off, rehearse 3", "defaults")
#: The held-back arm: real 9s taught (then synthetic ones) before the rest of the real training 9s are scored.
HELD_TEACH = 50
LIVE_WINDOWS = 300  # unlabelled windows of the old classes decided before teaching (at most; the real arm has fewer)


def teach(base, news: list, evalset, *, per_class: int, train, rehearse: int | None = None, name: str = str(NEW_DIGIT),
          score=None, live=(), checkpoints=CHECKPOINTS, **settings) -> dict:
    """Teach ``news`` (batches of the new class, named ``name`` in the feedback) to a copy of ``base`` through the
    daemon's feedback path; returns {examples: (accuracy on the new class, on the old ones) on ``evalset``}
    (``score(net, evalset)``, by default bench_incremental's) and the counters. ``train``: the samples that fill
    the rehearsal memory (None: keep the checkpoint's, as `streamsnn train` filled it). ``live``: batches decided
    unlabelled before teaching, as a running daemon decides what its camera sees (``decide_live``); ``settings``:
    more PipelineSettings fields (e.g. imprint, keep_every)."""
    from streamsnn.pipeline import Pipeline
    from streamsnn.pipeline.segment import Window
    from streamsnn.snn import SpikingNetwork

    from .bench_incremental import Clock, scores

    score = score or scores
    net = SpikingNetwork.load(base)
    net.memory.per_class = per_class
    if train is not None:
        net.memory.fill(net, train)
    clock = Clock()
    if rehearse is not None:
        settings["rehearse"] = rehearse
    pipe = Pipeline(None, net, [], recent=16, clock=clock, new_classes=True, max_classes=16,
                    memory_per_class=per_class, **settings)
    out, seen = {}, 0
    try:
        decide_live(pipe, live, clock)
        for b in news:
            clock.now += 1.0
            w = Window(b, b.t_start, b.t_end, b.sample, None)  # unlabelled, as a live decision is
            d, _ = pipe._worker.submit(pipe._decide, w).result()  # on the worker, as the daemon decides
            w.predicted = d.label
            pipe.recent.add(w)
            if not asyncio.run(pipe.apply_feedback({"sample": b.sample, "label": name})):
                raise RuntimeError(f"feedback refused: {pipe.counters.feedback}")
            seen += 1
            if seen in checkpoints:
                out[seen] = score(net, evalset)
            if seen == checkpoints[-1]:
                break
    finally:
        pipe._worker.shutdown(wait=True)
    c = pipe.counters
    out.update(rehearsed=c.rehearsed, kept_live=c.kept_live, imprinted=c.imprinted, fitted=c.fitted)
    return out


def decide_live(pipe, batches, clock) -> None:
    """Each batch decided as an unlabelled window on the network's worker and published, as the daemon does with
    what its camera sees (`Pipeline._decide`, `Pipeline._publish`: the confident ones are kept, livekeep)."""
    from streamsnn.pipeline.segment import Window

    for b in batches:
        clock.now += 1.0
        w = Window(b, b.t_start, b.t_end, b.sample, None)
        d, info = pipe._worker.submit(pipe._decide, w).result()
        pipe._publish(w, d, info)
    pipe._worker.submit(lambda: None).result()  # the windows kept meanwhile are in the memory


def live_order(batches: list, seed: int, n: int = LIVE_WINDOWS) -> list:
    """At most ``n`` of ``batches`` in an order of the seed."""
    return [batches[int(k)] for k in np.random.default_rng([seed, 33]).permutation(len(batches))[:n]]


def real_live(ctx: Context, val, n_real: int) -> tuple[list, list]:
    """(the real held-out validation samples of the old classes as EventBatches: the real arm's live stretch, their
    positions in ``val``, whose first ``n_real`` samples are the real ones)."""
    ids = {i: k for k, i in enumerate(val.ids[:n_real]) if val.labels[k] != NEW_DIGIT}
    batches = [b for b in ctx.samples("train") if b.sample in ids]
    return batches, sorted(ids[b.sample] for b in batches)


def read_from(batch, folder: Path) -> bool:
    """Whether ``batch`` was read from a file in ``folder``."""
    return Path(batch.source).resolve().parent == folder.resolve()


def real_first(news: list, seed: int, real: Path) -> list:
    """The real arm's teaching order for ``seed``: the new class's real samples (those read from the folder ``real``)
    first, shuffled, then the synthetic ones, shuffled. The issue's flow is a class taught with real samples of it,
    as a person with a camera teaches; the synthetic ones only make up the count past the real ones (about 90 real
    training 9s for 100 examples)."""
    rng = np.random.default_rng([seed, 22])
    mine = [b for b in news if read_from(b, real)]
    other = [b for b in news if not read_from(b, real)]
    return [mine[int(k)] for k in rng.permutation(len(mine))] + [other[int(k)] for k in rng.permutation(len(other))]


def run(ctx: Context) -> Result:
    from streamsnn import defaults

    from .bench_incremental import NEW, VALIDATION_SYNTH, base_model, load, scores

    r = Result("fewshot", "Few-shot teaching: a new digit taught by examples of it only, through feedback")
    seeds, epochs = ((0,), 2) if ctx.quick else ((0, 1, 2), 6)
    train, val, test, stream = load(ctx)
    live, used = real_live(ctx, val, len(val) - VALIDATION_SYNTH)
    r9 = len(val) - VALIDATION_SYNTH - len(used)  # the validation's real samples left are its 9s, and come first
    val = val.pick(sorted(set(range(len(val))) - set(used)))  # the live stretch is never scored
    news = [b for b in stream if b.label == NEW]
    bases = [base_model(train, seed=seed, epochs=epochs)[2] for seed in seeds]
    orders = [real_first(news, seed, ctx.nmnist) for seed in seeds]
    n_real = sum(read_from(b, ctx.nmnist) for b in news)
    per_class = defaults.MEMORY_PER_CLASS

    def arm(name: str, evalset) -> list[dict]:
        return [teach(b, o, evalset, per_class=per_class, train=train, live=live_order(live, s), **VARIANTS[name])
                for b, o, s in zip(bases, orders, seeds)]

    from streamsnn.snn import SpikingNetwork

    before_val = float(np.mean([scores(SpikingNetwork.load(b), val)[1] for b in bases]))
    rows, best = [], None
    for n in VARIANTS:
        res = arm(n, val)
        new20 = float(np.mean([x[20][0] for x in res]))
        lost = [before_val - float(np.mean([x[k][1] for x in res])) for k in (20, 100)]
        rows.append([n, *[round(float(np.mean([x[k][0] for x in res])), 3) for k in CHECKPOINTS],
                     *[round(v, 3) for v in lost]])
        key = (new20 >= 0.9, -max(lost[0] / 3, lost[1] / 5))  # the targets' weights: 3 points at 20, 5 at 100
        if best is None or key > best[0]:
            best = (key, n)
    before = float(np.mean([scores(SpikingNetwork.load(b), test)[1] for b in bases]))
    table = {}
    for n in ARMS:
        res = arm(n, test)
        table[n] = res
    out_rows = []
    for n, res in table.items():
        for k in CHECKPOINTS:
            new = [x[k][0] for x in res]
            old = [x[k][1] for x in res]
            out_rows.append([n, k, round(float(np.mean(new)), 3), " ".join(f"{v:.2f}" for v in new),
                             round(float(np.mean(old)), 3), round(before - float(np.mean(old)), 3),
                             " ".join(f"{before_s - v:+.2f}" for before_s, v in
                                      zip([before] * len(old), old)),
                             round(float(np.mean([x["kept_live"] for x in res])), 1)])
    d = table["defaults"]
    new20 = float(np.mean([x[20][0] for x in d]))
    lost20 = before - float(np.mean([x[20][1] for x in d]))
    lost100 = before - float(np.mean([x[100][1] for x in d]))
    r.metric("test accuracy on 0-8 before teaching (trained on 0-8)", round(before, 3), "")
    r.metric("new class after 20 examples of it only (default)", round(new20, 3), "", target=">= 0.90",
             met=new20 >= 0.9)
    r.metric("old classes lost after 20 examples (default)", round(lost20, 3), "points/100", target="<= 0.03",
             met=lost20 <= 0.03)
    r.metric("old classes lost after 100 examples (default)", round(lost100, 3), "points/100", target="<= 0.05",
             met=lost100 <= 0.05)
    none = table["fit off, rehearse 0"]
    r.metric("old classes lost after 100 examples without the fit or rehearsal (fit off, rehearse 0)",
             round(before - float(np.mean([x[100][1] for x in none])), 3), "points/100")
    r.metric("best on the real arm's validation alone (new class >= 90 % after 20 first, then the smallest loss "
             "against the aims; the defaults were chosen on it and on font digits: streamsnn/defaults.py)",
             best[1], "")
    r.table(f"Test split (real N-MNIST: {int(np.sum(test.labels == NEW))} samples of 9, "
            f"{int(np.sum(test.labels != NEW))} of 0-8), mean of {len(seeds)} seed(s)",
            ["setting", "examples of 9", "accuracy on 9", "per seed", "accuracy on 0-8", "lost on 0-8",
             "lost per seed", "live examples kept"], out_rows)
    r.table(f"The settings on validation ({len(val)} held-out training samples not in the live stretch, "
            f"{int(np.sum(val.labels == NEW))} of 9; 0-8 before: {before_val:.3f}), mean of {len(seeds)} seed(s)",
            ["setting", *[f"on 9 after {k}" for k in CHECKPOINTS], "lost on 0-8 after 20",
             "lost on 0-8 after 100"], rows)
    r.note(f"Teaching stream: {len(news)} held-out 9s never trained on, {n_real} of them real training 9s, taught "
           f"first in an order of the seed (the first {n_real} examples are real), then the synthetic ones in an "
           f"order of the seed, the first {CHECKPOINTS[-1]} taught; every one answered by feedback naming '9' "
           f"(model.feedback_lr_scale {defaults.FEEDBACK_LR_SCALE:g}, model.new_class_lr {defaults.NEW_CLASS_LR:g}); "
           f"memory: {per_class} training samples per class chosen by the seed, then the taught windows. "
           f"With the defaults (model.new_class_fit {str(defaults.NEW_CLASS_FIT).lower()}, model.rehearse "
           f"{defaults.REHEARSE}; seed {seeds[0]}): {d[0]['rehearsed']} examples rehearsed, the new unit fit after "
           f"{d[0]['fitted']} windows. Live stretch: the "
           f"{len(live)} real validation samples of 0-8 (held out of training; not scored), decided unlabelled before "
           f"teaching (model.keep_every {defaults.KEEP_EVERY}, model.keep_margin {defaults.KEEP_MARGIN:g} = the "
           f"median margin of the kept training examples); model.imprint {str(defaults.IMPRINT).lower()} "
           f"(classes imprinted, seed {seeds[0]}: {d[0]['imprinted']}).")
    held_back(ctx, r, bases, seeds, news, n_real, train, live, val.pick([k for k in range(len(val))
                                                                         if k < r9 or val.labels[k] != NEW]))
    synthetic_arms(ctx, r, bases, seeds, per_class, train)
    return r


def held_back(ctx: Context, r: Result, bases: list, seeds, news: list, n_real: int, train, live: list,
              olds) -> None:
    """The defaults taught the first HELD_TEACH real 9s of each seed's order (then synthetic ones; ``n_real`` of
    ``news`` are real), scored on the real 9s not taught (the other real training 9s, and ``olds``' real 9s) and on
    ``olds``' old classes: the new class on several times the test split's 11 real 9s, from the training split only."""
    from streamsnn import defaults
    from streamsnn.learn.training import SampleArrays
    from streamsnn.snn import SpikingNetwork

    from .bench_incremental import scores

    res, befores, counts = [], [], []
    for base, seed in zip(bases, seeds):
        order = real_first(news, seed, ctx.nmnist)
        net = SpikingNetwork.load(base)
        untaught = order[HELD_TEACH:n_real]
        held = SampleArrays.from_batches(net, untaught, labels=[NEW_DIGIT] * len(untaught))
        evalset = held + olds
        befores.append(scores(net, evalset)[1])
        counts.append(int(np.sum(evalset.labels == NEW_DIGIT)))
        res.append(teach(base, order[:HELD_TEACH] + order[n_real:], evalset, per_class=defaults.MEMORY_PER_CLASS,
                         train=train, live=live_order(live, seed), **VARIANTS["defaults"]))
    rows = []
    for k in CHECKPOINTS:
        new = [x[k][0] for x in res]
        lost = [b - x[k][1] for b, x in zip(befores, res)]
        rows.append([k, round(float(np.mean(new)), 3), " ".join(f"{v:.2f}" for v in new),
                     round(float(np.mean(lost)), 3), " ".join(f"{v:+.2f}" for v in lost)])
    r.metric("new class after 20 examples (default), scored on the real 9s held back from teaching",
             rows[CHECKPOINTS.index(20)][1], "")
    n_old = int(np.sum(olds.labels != NEW_DIGIT))
    scored = f"{min(counts)}" if min(counts) == max(counts) else f"{min(counts)}-{max(counts)}"
    r.table(f"Real 9s held back from teaching (defaults; {HELD_TEACH} real training 9s taught first, then synthetic "
            f"ones; the new class scored on the {scored} real 9s not taught: the other real "
            f"training 9s and the validation's; the old classes on the validation's {n_old} samples of 0-8), mean of "
            f"{len(seeds)} seed(s)",
            ["examples of 9", "accuracy on 9", "per seed", "lost on 0-8", "lost per seed"], rows)


def synthetic_arms(ctx: Context, r: Result, bases: list, seeds, per_class: int, train) -> None:
    """The synthetic camera (fewshot_synth): font digits on the real arm's base models, and gestures on base models
    trained on nine of them; each with rehearsal off and at the default, the same seeds and teaching orders."""
    import tempfile

    from . import fewshot_synth as fs

    rows, summary = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        news, evalset, live = fs.font_sets(tmp, ctx.quick)
        arms = {"font digits (new: 9)": (bases, news, evalset, str(NEW_DIGIT), NEW_DIGIT, live)}
        full, nine, teach_set = fs.gesture_folder(tmp, ctx.quick)
        g_bases = fs.gesture_bases(nine, tmp, seeds, ctx.quick)
        g_news, g_eval, g_live = fs.gesture_sets(full, teach_set, g_bases[0])
        arms[f"gestures (new: {fs.NEW_GESTURE})"] = (g_bases, g_news, g_eval, fs.NEW_GESTURE, len(g_eval.classes) - 1,
                                                     g_live)
        from streamsnn.snn import SpikingNetwork

        for label, (bs, ns, ev, name, new, live) in arms.items():
            score = lambda net, data, new=new: fs.new_index_scores(net, data, new)  # noqa: E731
            before = float(np.mean([score(SpikingNetwork.load(b), ev)[1] for b in bs]))
            for n in ARMS:
                res = []
                for b, seed in zip(bs, seeds):
                    order = [ns[int(k)] for k in np.random.default_rng([seed, 22]).permutation(len(ns))]
                    res.append(teach(b, order, ev, per_class=per_class, name=name, score=score,
                                     train=None if label.startswith("gestures") else train,
                                     live=live_order(live, seed), **VARIANTS[n]))
                for k in CHECKPOINTS:
                    if not all(k in x for x in res):
                        continue
                    new_acc = [x[k][0] for x in res]
                    old = float(np.mean([x[k][1] for x in res]))
                    rows.append([label, n, k, round(float(np.mean(new_acc)), 3), " ".join(f"{v:.2f}" for v in new_acc),
                                 round(old, 3), round(before - old, 3),
                                 round(float(np.mean([x["kept_live"] for x in res])), 1)])
                    if n == "defaults":
                        summary[(label, k)] = (float(np.mean(new_acc)), before - old)
            r.note(f"{label}: {len(ns)} samples of the new class to teach from, {int(np.sum(ev.labels == new))} "
                   f"scored, {int(np.sum(ev.labels != new))} of the old classes scored (accuracy before teaching "
                   f"{before:.3f}); live stretch: {min(len(live), LIVE_WINDOWS)} of {len(live)} old-class samples "
                   "of the teaching set, decided unlabelled before teaching.")
    for label in arms:
        if (label, 20) in summary:
            new20, lost20 = summary[(label, 20)]
            r.metric(f"{label}: new class after 20 examples (default)", round(new20, 3), "", target=">= 0.90",
                     met=new20 >= 0.9)
            r.metric(f"{label}: old classes lost after 20 examples (default)", round(lost20, 3), "points/100",
                     target="<= 0.03", met=lost20 <= 0.03)
        if (label, 100) in summary:
            lost100 = summary[(label, 100)][1]
            r.metric(f"{label}: old classes lost after 100 examples (default)", round(lost100, 3), "points/100",
                     target="<= 0.05", met=lost100 <= 0.05)
    r.table(f"The synthetic camera, mean of {len(seeds)} seed(s): a class never seen taught by examples of it only",
            ["data", "setting", "examples", "accuracy on the new class", "per seed", "accuracy on the old",
             "lost on the old", "live examples kept"], rows)
    r.note("Synthetic camera arms (benchmarks/fewshot_synth.py): font digits from `streamsnn synth --font` (seeds "
           "101 to teach, 202 to score) on the real arm's base models; gestures from `streamsnn synth --gestures` "
           "(seed 303; the taught samples from a second set, seed 404), base models by "
           f"`streamsnn train --learning counts --choose off` on nine gestures, "
           f"{fs.NEW_GESTURE} (the reverse of circle_cw) taught. Nothing was chosen on the scored sets; the new "
           "class's fit (model.new_class_fit and its negatives' weight, streamsnn/defaults.py) was chosen with "
           "font digits taught from seed 101 and scored on a font set of its own (seed 505), never on seed 202.")



def sanity(argv=None) -> None:
    """One arm, one seed, a few examples, scored on validation samples only (never the benchmark's scored ones)."""
    import argparse
    import tempfile
    import time

    from streamsnn import defaults
    from streamsnn.snn import SpikingNetwork

    from . import fewshot_synth as fs
    from .bench_incremental import NEW, VALIDATION_SYNTH, base_model, load, scores

    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_fewshot", description=sanity.__doc__)
    p.add_argument("--arm", choices=("real", "font"), default="font",
                   help="real: scored on the real validation samples not in the live stretch; font: taught and "
                        "live from font set 101, scored on font set 505 (not the benchmark's 202)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--examples", type=int, nargs="+", default=[5, 20])
    p.add_argument("--live", type=int, default=LIVE_WINDOWS, help="windows of the live stretch (0: none)")
    p.add_argument("--imprint", choices=("on", "off"), default="on" if defaults.IMPRINT else "off")
    p.add_argument("--keep-every", type=int, default=defaults.KEEP_EVERY)
    p.add_argument("--rehearse", type=int, default=defaults.REHEARSE)
    p.add_argument("--fit", choices=("on", "off"), default="on" if defaults.NEW_CLASS_FIT else "off",
                   help="model.new_class_fit")
    p.add_argument("--imprint-margin", type=float, default=defaults.IMPRINT_MARGIN,
                   help="defaults.IMPRINT_MARGIN for this run")
    p.add_argument("--new-class-lr", type=float, default=defaults.NEW_CLASS_LR)
    p.add_argument("--font-count", type=int, default=400, help="font samples generated per set")
    a = p.parse_args(argv)
    defaults.IMPRINT_MARGIN = a.imprint_margin
    ctx = Context()
    train, val, _test, stream = load(ctx)
    base = base_model(train, seed=a.seed, epochs=6)[2]
    with tempfile.TemporaryDirectory() as tmp:
        if a.arm == "real":
            live, used = real_live(ctx, val, len(val) - VALIDATION_SYNTH)
            evalset = val.pick(sorted(set(range(len(val))) - set(used)))
            news, score = real_first([b for b in stream if b.label == NEW], a.seed, ctx.nmnist), scores
        else:
            from streamsnn.io.dataset import open_dataset
            from streamsnn.learn.training import load_split

            teach_dir, check_dir = Path(tmp) / "teach", Path(tmp) / "check"
            fs.synth(["--font", "--count", str(a.font_count), "--seed", "101", "--out", str(teach_dir)])
            fs.synth(["--font", "--count", str(a.font_count), "--seed", "505", "--out", str(check_dir)])
            samples = open_dataset(teach_dir).split("train").samples
            news = [s.load() for s in samples if s.label == NEW]
            live = [s.load() for s in samples if s.label != NEW]
            evalset = load_split(check_dir, "train", SpikingNetwork(arch="dense:1"), quiet=True)
            score = lambda net, data: fs.new_index_scores(net, data, NEW)  # noqa: E731
    if a.arm != "real":  # the real arm's order is real_first's
        news = [news[int(k)] for k in np.random.default_rng([a.seed, 22]).permutation(len(news))]
    before = score(SpikingNetwork.load(base), evalset)[1]
    t0 = time.perf_counter()
    res = teach(base, news, evalset, rehearse=a.rehearse, per_class=defaults.MEMORY_PER_CLASS, train=train,
                score=score, live=live_order(live, a.seed, a.live), checkpoints=tuple(sorted(a.examples)),
                imprint=a.imprint == "on", keep_every=a.keep_every, new_class_lr=a.new_class_lr,
                new_class_fit=a.fit == "on")
    print(f"arm {a.arm}, seed {a.seed}: old classes before {before:.3f}; live stretch {min(a.live, len(live))}, kept "
          f"{res['kept_live']}; imprinted {res['imprinted']}; rehearsed {res['rehearsed']}; fitted {res['fitted']}; "
          f"{time.perf_counter() - t0:.0f} s")
    for k in sorted(a.examples):
        if k in res:
            new, old = res[k]
            print(f"  after {k}: new class {new:.3f}, old classes {old:.3f} (lost {before - old:+.3f})")


if __name__ == "__main__":
    sanity()
