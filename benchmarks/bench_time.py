"""Time: the seed systems implemented here on tasks where order matters and on N-MNIST, 3 seeds each.

    python -m benchmarks.bench_time [--quick] [--seeds 0 1 2] [--only NAME] [--arms counts membrane ...]
    python -m benchmarks.bench_time --held-out --only nmnist_synth --arms timing --seeds 0 --train-args "--tau-ms 25"
    # or: python -m benchmarks --only time

Each run is `streamsnn train --data FOLDER --out M --seed S --choose off ARGS` (in-process through
`streamsnn.cli.main`, as bench_robust runs it), ARGS those of the arm (`ARMS`: one per seed system —
counts, dense, spikes, membrane, timing, src — and `auto`, the default `train`, which picks the rule and
the input delays from the data; `default` is `auto` with train's own `--choose auto` winning over the runs'
`--choose off`: the default command exactly, its settings searched on held-out training samples where train searches
them), then
the test split scored as `streamsnn eval` scores it: whole samples (`training.evaluate`) and as one stream
(`streameval.stream_evaluate`, the live settings: stream accuracy and each sample's last decision). Datasets:
- `order`: the order-only task from real BioLab DVS128 recordings (benchmarks/ordertask.py, default sizes:
  six classes with the same events per pixel; a counting model is at chance, 16.7 %); `order_other` and
  `order_slow` the same from other recordings with 120 and 400 ms segments (`ORDER_VARIANTS`; only with `--only`);
- `gestures`: `streamsnn synth --gestures --count 40` (10 synthetic gestures, 400 training and 100 test samples;
  four pairs differ only in the order of the motion);
- `nmnist`: the 1,000 real N-MNIST training samples, 100 test samples;
- `nmnist_synth`: the same plus the 9,900 synthetic samples (`STREAMSNN_SYNTH`), the default command's data.
`--held-out` (N-MNIST only) scores the last quarter of each class of the real training samples instead of the test
split, trained on the rest (bench_ceiling's held-out split): where settings are tried, never on the test split.
`--train-args` adds train arguments to every arm (after the arm's own, so they win) and `--tag` names the run's files.
`--choose off` keeps the cost at one training run per seed (the search costs about 3.5 times more on small data);
the default `train` searches learning rates and epochs on these small sets. Writes time.* (or results-time.*).
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from .bench_ceiling import held_out_folder  # noqa: E402
from .bench_incremental import SYNTH  # noqa: E402
from .bench_robust import spread, train  # noqa: E402
from .common import DATA, ROOT, Context, NotMeasurable, Result, run_alone, streamsnn  # noqa: E402

SEEDS = (0, 1, 2)
#: The arms compared: name -> (the system it implements, train's extra arguments). "auto" is `train` without
#: --learning (it picks the rule, and the input, from the data). The dense width of the spikes/timing arms is Lee
#: et al.'s hidden layer (2312-800-10).
ARMS = {
    "counts": ("O'Connor & Welling 2016, backprop on counts", ["--learning", "counts"]),
    "dense": ("the same, one dense layer (the width the temporal arms use)", ["--learning", "counts", "--arch",
                                                                           "dense:800"]),
    "spikes": ("O'Connor & Welling 2016, error spikes", ["--learning", "spikes", "--arch", "dense:800"]),
    # --delays 1: the paper's network has no input delays (train gives --learning membrane delays where the data need
    # time since 2026-12-07; this arm's figures, e.g. the order task "without delays", were measured without them)
    "membrane": ("Lee, Delbruck & Pfeiffer 2016", ["--learning", "membrane", "--delays", "1"]),
    "membrane-1s": ("the same with a 1 s leak: it keeps a whole sample, and live, the one before",
                    ["--learning", "membrane", "--delays", "1", "--tau-ms", "1000"]),
    "timing": ("Yamamoto, Sakemi & Aihara 2022, 4 epochs",
               ["--learning", "timing", "--arch", "dense:800", "--epochs", "4"]),
    "src": ("Spiking Recurrent Cell (De Geeter et al. 2023)", ["--arch", "src:800"]),
    "auto": ("the default (train picks from the data)", []),
    "default": ("the default command exactly: as auto, and on small data or another sensor its settings chosen on "
                "held-out training samples (--choose auto)", ["--choose", "auto"]),
    "prefixes": ("the default with its live stream items: prefixes, items after another", ["--stream-crops"]),
    "pieces": ("the same, half the items pieces from inside samples (for motion classes)",
               ["--stream-crops", "--pieces", "0.5"]),
}
RULES = ("counts", "membrane")  # the default arms
QUICK_EPOCHS = 2
#: Rounds of whole-sample evaluations, each arm's model of a seed in turn; a model's events/s is the median (the first
#: evaluation of a `timing` model ran up to 40 % slower than the next ones, and a shared machine moves any single one).
SPEED_REPEATS = 5
#: The papers' own figures, for the table (what they measured, on what).
PAPERS = {
    "membrane": "Lee, Delbruck & Pfeiffer 2016: 98.66 % on N-MNIST (the full 60,000 training samples, 2312-800-10)",
}
#: Gesture set size: training samples per class (a quarter as many test samples), smaller than synth's default
#: 100 so that 6 training runs of 40 epochs fit in about 45 minutes on one core.
GESTURES_PER_CLASS = 40


#: The datasets `--held-out` applies to: their scored split can be the held-out quarter of the real training samples.
HELD_OUT = ("nmnist", "nmnist_synth")


#: Order-only tasks built like `order` from other recordings and segment lengths (ordertask.make_order_task's
#: arguments): whether the defaults are general, not fitted to the one task they were measured on.
ORDER_VARIANTS = {"order": {},
                  "order_other": {"sources": ("mug", "pencil", "scissors"), "segment_ms": 120},
                  "order_slow": {"sources": ("box_cutter", "mouse", "mug"), "segment_ms": 400}}
#: ... of which these run only when named (`--only`): a run of every dataset keeps its length.
ASKED_ONLY = tuple(n for n in ORDER_VARIANTS if n != "order")


def build(name: str, data: Path, tmp: Path, quick: bool, held_out: bool = False) -> Path:
    """The dataset folder of `name` (NotMeasurable when its source is absent); `held_out` (N-MNIST only): a folder whose
    test split is the last quarter of each class of the real training samples and whose train split is the rest."""
    if held_out and name not in HELD_OUT:
        raise ValueError(f"--held-out applies to {' and '.join(HELD_OUT)}, not {name}")
    if name in HELD_OUT:
        src = data / "nmnist_small"
        if not src.is_dir():
            raise NotMeasurable(f"real data not found: {src}")
        if name == "nmnist_synth" and not (SYNTH / "train.txt").is_file():
            raise NotMeasurable(f"synthetic digits not found in {SYNTH} (streamsnn synth --mnist DIR --out {SYNTH})")
        if held_out:
            return tmp / "held" if (tmp / "held").is_dir() else held_out_folder(src, tmp / "held")
        return src
    out = tmp / name
    if name in ORDER_VARIANTS:
        from .ordertask import make_order_task

        if not (data / "biolab_objects").is_dir():
            raise NotMeasurable(f"real data not found: {data / 'biolab_objects'}")
        make_order_task(out, **({"per_class_train": 20, "per_class_test": 10} if quick else {}),
                        **ORDER_VARIANTS[name], data=data)
        return out
    if name == "gestures":
        count = 30 if quick else GESTURES_PER_CLASS
        argv = ["synth", "--gestures", "--out", str(out), "--quiet", "--count", str(count)]
        if streamsnn(argv) != 0:
            raise NotMeasurable("streamsnn synth --gestures failed")
        return out
    raise NotMeasurable(f"unknown dataset {name}")


DATASETS = {"order": "Order-only task (real BioLab DVS128, 6 orders of 3 real segments)",
            "order_other": "Order-only task, other objects (mug, pencil, scissors) and shorter segments (120 ms)",
            "order_slow": "Order-only task, other objects (box cutter, mouse, mug) and longer segments (400 ms)",
            "gestures": "Synthetic gestures (streamsnn synth --gestures, 10 classes)",
            "nmnist": "N-MNIST, 1,000 real training samples",
            "nmnist_synth": "N-MNIST, 1,000 real + 9,900 synthetic training samples (the default command's data)"}


def score(model: Path, data: Path) -> dict:
    """Whole-sample accuracy, events/s and spikes per input event (first hidden layer, all layers), and the
    stream figures of the live settings."""
    from streamsnn.learn.streameval import load_samples, stream_evaluate
    from streamsnn.learn.training import evaluate, load_split
    from streamsnn.snn import SpikingNetwork

    net = SpikingNetwork.load(model)
    test = load_split(data, "test", net, quiet=True)
    whole = evaluate(net, test)
    spikes, events = np.zeros(len(net.hidden)), 0
    for k in range(len(test)):
        if net.tau_us is not None:
            net.reset()
        d = net.predict_indices(test.idx[k], test.t[k], count=False)
        spikes += d.spikes
        events += d.events
    batches, classes, _ = load_samples(data, "test")
    st = stream_evaluate(net, batches, classes=classes)
    chosen = getattr(net, "chosen", None) or {}  # the search's record, when `train --choose` ran
    return {"whole": whole["accuracy"], "events_per_s": whole["events_per_s"],
            "spikes_per_event": [float(s / max(events, 1)) for s in spikes],
            "stream": st["stream_accuracy"] or 0.0, "last": st["last_decision_accuracy"], "learning": net.learning,
            "tau_us": net.tau_us, "arch": net.arch, "scored": len(test),
            "leaks": "/".join(f"{t / 1000:g}" for t in (*net.layer_tau_us, net.tau_us)) if net.tau_us else "–",
            "chosen": chosen.get("winner", "–"), "tried": chosen.get("tried")}


def speeds(models: list[Path], data: Path, repeats: int = SPEED_REPEATS) -> list[float]:
    """Events/s of each model evaluating the test split's whole samples: the median of ``repeats`` rounds, each
    round every model once in turn, so that a shared machine's load moves them alike (their ratio is the figure)."""
    from streamsnn.learn.training import evaluate, load_split
    from streamsnn.snn import SpikingNetwork

    nets = [SpikingNetwork.load(m) for m in models]
    tests = [load_split(data, "test", net, quiet=True) for net in nets]
    got: list[list[float]] = [[] for _ in nets]
    for _ in range(repeats):
        for k, (net, test) in enumerate(zip(nets, tests)):
            got[k].append(evaluate(net, test)["events_per_s"])
    return [float(np.median(g)) for g in got]


def run(ctx: Context) -> Result:
    log = ctx.cache.get("log", lambda *a: print(*a, file=sys.stderr, flush=True))
    seeds = list(ctx.cache.get("seeds") or ([0] if ctx.quick else SEEDS))
    names = ctx.cache.get("only") or [n for n in DATASETS if n not in ASKED_ONLY]
    rules = ctx.cache.get("rules") or list(RULES)
    extra = ["--choose", "off"] + (["--epochs", str(QUICK_EPOCHS)] if ctx.quick else [])
    held, more_args = bool(ctx.cache.get("held_out")), list(ctx.cache.get("train_args") or [])
    r = Result("time", "Time: counting and temporal learning rules, seeds " + ", ".join(map(str, seeds))
               + (", scored on held-out training samples" if held else "")
               + (f", train {' '.join(more_args)}" if more_args else ""))
    rows, per_run, absent, tried = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            try:
                folder = build(name, ctx.data, Path(tmp), ctx.quick, held)
                more = ["--data", str(SYNTH)] if name == "nmnist_synth" else []
            except NotMeasurable as exc:
                absent.append(f"{name}: {exc}")
                continue
            done = {}
            for rule in rules:
                runs = done[rule] = []
                for seed in seeds:
                    model = Path(tmp) / f"{name}-{rule}-{seed}.npz"
                    tr = train(folder, seed, model, extra + ARMS[rule][1] + more + more_args)
                    got = score(model, folder) if model.exists() else None
                    runs.append((seed, tr, got))
                    log(f"time: {name} {rule} seed {seed}: " + (
                        f"whole {got['whole']:.3f} stream {got['stream']:.3f} last {got['last']:.3f} "
                        f"{tr['seconds']:.0f} s" if got else f"no model ({tr['error'] or tr['exception']})"))
            for seed in seeds:  # the speeds of a seed's models, measured side by side
                scored = [(Path(tmp) / f"{name}-{rule}-{seed}.npz", g) for rule in rules
                          for s, _, g in done[rule] if s == seed and g]
                for (_, g), v in zip(scored, speeds([m for m, _ in scored], folder)):
                    g["events_per_s"] = v
            for rule in rules:
                runs = done[rule]
                ok = [g for _, _, g in runs if g]
                col = lambda key, ok=ok: [g[key] for g in ok]  # noqa: E731
                first = [g["spikes_per_event"][0] for g in ok]
                rows.append([DATASETS[name], f"{rule} ({ARMS[rule][0]})", ok[0]["arch"] if ok else "–",
                             ok[0]["scored"] if ok else "–", ok[0]["learning"] if ok else "–",
                             f"{ok[0]['tau_us'] / 1000:g}" if ok and ok[0]["tau_us"] else "–",
                             spread(col("whole")), spread(col("stream")), spread(col("last")),
                             f"{np.mean(col('events_per_s')) / 1e6:.2f}" if ok else "–",
                             f"{np.mean(first):.2f}" if ok else "–",
                             f"{np.mean([t['seconds'] for _, t, _ in runs]):.0f}",
                             sum(bool(t["traceback"] or t["diverged"] or t["silent_stop"]) for _, t, _ in runs)])
                tried += [f"{name} seed {s}: {g['tried']}" for s, _, g in runs if g and g["tried"]]
                per_run += [[name, rule, s, *(f"{100 * g[k]:.1f}" if g else "–" for k in ("whole", "stream", "last")),
                             g["leaks"] if g else "–", g["chosen"] if g else "–",
                             f"{t['seconds']:.0f}", t["epochs_done"], t["revivals"], t["nonfinite"]]
                            for s, t, g in runs]
    if not rows:
        raise NotMeasurable("; ".join(absent))
    r.table(f"Per dataset and learning rule: {'held-out' if held else 'test'} accuracy % (mean ± std (min–max; each "
            "seed))",
            ["data", "arm (system)", "network", "scored samples", "rule used", "leak ms", "whole samples %", "stream %",
             "last decision %", "M events/s (eval, 1 core)", "first-layer spikes per input event", "train s (mean)",
             "runs with a revival, an undone update or a traceback"], rows)
    r.table("Per run", ["data", "rule", "seed", "whole %", "stream %", "last decision %",
                        "leak ms (each hidden layer / output)", "settings chosen (--choose)", "train s", "epochs",
                        "revivals", "updates undone"], per_run)
    arms = "; ".join(f"{k}: `{' '.join(v[1]) or '(none)'}`" for k, v in ARMS.items() if k in rules)
    r.note("Each run: `streamsnn train --data FOLDER --out M --seed S " + " ".join(extra)
           + f" ARGS{' ' + ' '.join(more_args) if more_args else ''}` in-process (ARGS per arm: {arms}; "
           f"nmnist_synth adds `--data {SYNTH}`); "
           "scored as `streamsnn eval` and `streamsnn eval --stream` score it "
           "(live settings: 100 ms windows every 50 ms; a model with a leak gets each event once, its state carried "
           "across windows; 'last decision': the last window ending inside each test sample). Events/s: whole samples "
           f"of the test split, the median of {SPEED_REPEATS} rounds in which each arm's model of a seed is evaluated "
           "in turn (since 2026-12-07; before, each model's first evaluation alone, right after its training).")
    r.note("The paper's figure, for scale (60,000 training samples against our 1,000 or fewer): "
           + "; ".join(PAPERS.values()) + ". Yamamoto, Sakemi & Aihara 2022 (timing) and De Geeter et al. 2023 "
           "(the Spiking Recurrent Cell): their own N-MNIST figures are not quoted, as neither paper's text was "
           "available to check them here. What differs from each paper: docs/network.md, 'Time'.")
    if tried:
        r.note("What each run's search tried (`--choose`: each candidate's held-out whole-sample accuracy at its best "
               "epoch and, where leaks were searched, its held-out last decisions as a stream): " + "; ".join(tried))
    if held:
        r.note("Scored on held-out training samples, not the test split: the last quarter of each class of the 1,000 "
               "real training samples (250; one is 0.4 points), trained on the other 750 (+ the synthetic ones for "
               "nmnist_synth), as bench_ceiling's `held` split.")
    for a in absent:
        r.note(f"not run: {a}")
    return r


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_time", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help=f"one seed, small sets, --epochs {QUICK_EPOCHS}")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds (default 0 1 2; 0 with --quick)")
    p.add_argument("--only", action="append", choices=list(DATASETS), metavar="NAME",
                   help=f"run only this dataset (repeatable): {', '.join(DATASETS)}")
    p.add_argument("--arms", "--learning", nargs="+", choices=list(ARMS),
                   help=f"arms (default: {' '.join(RULES)}): " + "; ".join(f"{k}: {v[0]}" for k, v in ARMS.items()))
    p.add_argument("--held-out", action="store_true",
                   help="score held-out training samples (the last quarter of each class) instead of the test split; "
                        f"with --only {' or '.join(HELD_OUT)}")
    p.add_argument("--train-args", default="", metavar="ARGS",
                   help='train arguments added to every arm, after its own (e.g. "--tau-ms 25 --epochs 8")')
    p.add_argument("--tag", default="", help="appended to the results' file names (time[-held]-DATA-TAG)")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    a = p.parse_args(argv)
    if a.held_out and not (a.only and set(a.only) <= set(HELD_OUT)):
        p.error(f"--held-out needs --only {' and/or '.join(HELD_OUT)} (the other datasets have no such split)")
    try:
        more_args = shlex.split(a.train_args)
    except ValueError as exc:
        p.error(f"--train-args: {exc}")
    if a.tag and not re.fullmatch(r"[\w.-]+", a.tag):
        p.error(f"--tag {a.tag!r}: letters, digits, '.', '_' and '-' only (it goes into file names)")
    stem = "time" + ("-quick" if a.quick else "") + ("-held" if a.held_out else "") + (
        "-" + "-".join(a.only) if a.only else "") + (f"-{a.tag}" if a.tag else "")
    ctx = Context(quick=a.quick, out=a.out.resolve(), data=a.data.resolve(), stem=stem)
    for key, value in (("seeds", a.seeds), ("only", a.only), ("rules", a.arms), ("held_out", a.held_out),
                       ("train_args", more_args)):
        if value:
            ctx.cache[key] = value
    return run_alone("python -m benchmarks.bench_time", ctx, lambda: run(ctx), argv=argv, label="bench_time",
                     contention="Accuracy does not depend on load; seconds and events/s do (shared machine).",
                     unmeasurable=("time", "Time"))


if __name__ == "__main__":
    sys.exit(main())
