"""Stream evaluation: whole-sample and stream accuracy (`eval --stream`) of the default model over a grid of decision settings.

Run with `python -m benchmarks --only stream` (or `--quick`), or alone:
`python -m benchmarks.bench_stream [--quick] [--model M] [--seeds N] [--epochs E]`. Without `--model`
it trains `streamsnn train`'s default model (whatever that is today) once per seed, through the CLI.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import DATA, ROOT, Context, Result, command_line, machine, write

WINDOWS_US = (50_000, 100_000, 200_000)
HOPS_US = (25_000, 50_000)
TAUS_US = (0, 30_000, 100_000)  # 0: no leak
SEEDS = (0, 1, 2)
QUICK_EPOCHS = 5  # --quick trains one seed for this many epochs


def train_default(data: Path, seed: int, out: Path, epochs: int | None) -> float:
    """`streamsnn train` with its defaults (and `seed`, maybe `epochs`); returns the wall seconds."""
    from streamsnn.cli import main

    argv = ["train", "--data", str(data), "--seed", str(seed), "--out", str(out), "--quiet"]
    if epochs:
        argv += ["--epochs", str(epochs)]
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # its "saved ..." line is not a result
        rc = main(argv)
    if rc != 0:
        raise RuntimeError(f"streamsnn {' '.join(argv)} failed")
    return time.perf_counter() - t0


def measure(model: Path, data: Path, samples: list, classes: list[str]) -> dict:
    """Whole-sample accuracy (as `eval`) and, per grid setting, the stream figures (as `eval --stream`)."""
    from streamsnn.snn import SpikingNetwork
    from streamsnn.streameval import stream_evaluate
    from streamsnn.training import evaluate, load_split

    net = SpikingNetwork.load(model)
    whole = evaluate(net, load_split(data, "test", net, quiet=True))["accuracy"]
    grid = {}
    for w in WINDOWS_US:
        for h in HOPS_US:
            for tau in TAUS_US:
                r = stream_evaluate(net, samples, window_us=w, hop_us=h, tau_us=tau, classes=classes)
                grid[(w, h, tau)] = {k: r[k] for k in ("stream_accuracy", "decisions", "delay_median_ms",
                                                       "delay_p90_ms", "never_right", "events_per_s")}
    return {"whole_accuracy": whole, "grid": grid}


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def run(ctx: Context, seeds: tuple[int, ...] | None = None, epochs: int | None = None) -> Result:
    from streamsnn.io.dataset import open_dataset
    from streamsnn.streameval import LIVE_HOP_US, LIVE_MIN_EVENTS, LIVE_WINDOW_US

    data = ctx.nmnist
    samples = ctx.samples("test")
    classes = list(open_dataset(data).classes)
    given = ctx.cache.get("model_path")
    full = not ctx.quick and given is None
    seeds = seeds or ((0,) if ctx.quick else SEEDS)
    epochs = epochs or (QUICK_EPOCHS if ctx.quick else None)
    runs, train_s = [], []
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        models = [(None, Path(given))] if given else [(s, Path(tmp) / f"seed{s}.npz") for s in seeds]
        for seed, path in models:
            if seed is not None:
                train_s.append(train_default(data, seed, path, epochs))
            runs.append(measure(path, data, samples, classes))
    what = (f"the model {given}" if given else
            f"`streamsnn train` defaults{f' with --epochs {epochs}' if epochs else ''}, seeds {list(seeds)}")
    r = Result("stream", f"Stream evaluation: {what}")
    whole = _mean([x["whole_accuracy"] for x in runs])
    live = (LIVE_WINDOW_US, LIVE_HOP_US, 0)
    acc_live = _mean([x["grid"][live]["stream_accuracy"] for x in runs])
    delay_live = _mean([x["grid"][live]["delay_median_ms"] for x in runs])
    r.metric("whole-sample test accuracy (eval)", whole, "")
    r.metric(f"stream accuracy, live settings ({LIVE_WINDOW_US // 1000} ms every {LIVE_HOP_US // 1000} ms, "
             "no leak)", acc_live, "", target=">= 0.90" if full else None, met=acc_live >= 0.90 if full else None)
    r.metric("median delay to the first right decision, live settings", delay_live, "ms",
             target="<= 150 ms" if full else None,
             met=(delay_live is not None and delay_live <= 150) if full else None)
    best = max(runs[0]["grid"], key=lambda k: _mean([x["grid"][k]["stream_accuracy"] for x in runs]))
    r.metric(f"best stream accuracy in the grid ({best[0] // 1000} ms every {best[1] // 1000} ms, leak "
             f"{'off' if not best[2] else f'{best[2] // 1000} ms'})",
             _mean([x["grid"][best]["stream_accuracy"] for x in runs]), "")
    if train_s:
        r.metric("training time per model", _mean(train_s), "s")
    span = sum(s.duration_us + 1 for s in samples) / 1e6
    rows = []
    for key in runs[0]["grid"]:
        cells = [x["grid"][key] for x in runs]
        rows.append([key[0] // 1000, key[1] // 1000, "off" if not key[2] else key[2] // 1000,
                     _mean([c["stream_accuracy"] for c in cells]),
                     " / ".join(f"{c['stream_accuracy']:.3f}" for c in cells),
                     _mean([c["delay_median_ms"] for c in cells]), _mean([c["delay_p90_ms"] for c in cells]),
                     _mean([c["never_right"] for c in cells]), cells[0]["decisions"],
                     _mean([c["events_per_s"] for c in cells])])
    r.table("Stream accuracy on the 100 real test samples played back to back (means over the models)",
            ["window ms", "hop ms", "leak τ ms", "stream accuracy", "per model", "delay median ms",
             "delay p90 ms", "samples never right", "decisions", "stream events/s"], rows)
    r.note("Each row: `streamsnn eval --stream --window-us W --hop-us H --tau-us T` on nmnist_small's 100 test "
           f"samples joined without gaps ({span:.1f} s, {sum(len(s) for s in samples):,} events), min "
           f"{LIVE_MIN_EVENTS} events per window; "
           "a decision is scored against the sample covering most of its window; delay: from a sample's start "
           "to the end of the first window scored against it that names its class.")
    r.note("stream events/s: events of the stream per wall second of segmenting and deciding (one thread); "
           "overlapping windows feed each event window/hop times.")
    if ctx.quick and not given:
        r.note(f"quick: one seed, {QUICK_EPOCHS} epochs; targets are judged only on full runs (3 seeds, defaults)")
    return r


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_stream", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help=f"one seed, {QUICK_EPOCHS} epochs")
    p.add_argument("--model", type=Path, help="evaluate this checkpoint instead of training")
    p.add_argument("--seeds", type=int, default=None, help="train this many seeds (default 3, 1 with --quick)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: train's, 5 with --quick)")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    ctx = Context(quick=args.quick, out=args.out.resolve(), data=args.data.resolve())
    if args.model:
        ctx.cache["model_path"] = args.model.resolve()
    run_info = {"command": command_line().replace("python -m benchmarks", "python -m benchmarks.bench_stream", 1),
                "quick": args.quick, "machine": machine(),
                "contention": "Other work may share the machine (see the load average): events/s are lower bounds.",
                "results": []}
    t0 = time.perf_counter()
    result = run(ctx, tuple(range(args.seeds)) if args.seeds else None, args.epochs)
    result.seconds = time.perf_counter() - t0
    run_info["results"].append(result.as_dict())
    js, md = write(run_info, ctx.out, "stream" + ("-quick" if args.quick else ""))
    print(md.read_text())
    print(f"wrote {js} and {md}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
