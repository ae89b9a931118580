"""`python -m benchmarks`: run the benchmarks and write a JSON file, a markdown table and plots."""

from __future__ import annotations

import os

# One thread for the kernels and the peer, fixed before numba or torch is imported.
for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import importlib  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

from .common import DATA, ROOT, Context, NotMeasurable, Result, command_line, machine, stopped, write  # noqa: E402

#: name -> (module, function, title); run in this order. Each function takes a Context, returns a Result.
BENCHES = {
    "first": ("bench_first", "run", "The README's first command: progressive accuracy of one pass"),
    "inference": ("bench_ops", "run_inference", "Inference vs the snnTorch peer"),
    "ops": ("bench_ops", "run_ops", "Synaptic operations per sample"),
    "learning": ("bench_ops", "run_learning", "Learning throughput and training wall time"),
    "snn": (None, "run_snn", "One-layer spiking network vs ReLU MLP (benchmarks/bench_snn.py)"),
    "deep": ("bench_deep", "run", "Deep convolutional default vs its ReLU twin, dense networks, snnTorch"),
    "scaling": ("bench_scaling", "run", "Scaling with hidden width and input event rate"),
    "e2e": ("bench_e2e", "run", "End to end through MQTT"),
    "memory": ("bench_memory", "run", "Daemon memory over a looping replay"),
    "sim2real": ("bench_sim2real", "run", "Sim-to-real: synthetic samples added to real training"),
    "sources": ("bench_sources", "run", "Sources: replay, pacing, DV stream"),
    "datasets": ("bench_datasets", "run", "Datasets: listing 10,000 samples per layout"),
    "stream": ("bench_stream", "run", "Models that work live: stream and whole-sample accuracy, decisions, the daemon"),
    "feedback": ("bench_feedback", "run", "Feedback attacks: accuracy with and without the protections"),
    "incremental": ("bench_incremental", "run", "Class-incremental learning: a new digit introduced by feedback"),
    "own_data": ("bench_own_data", "run", "Own data: train defaults vs a scikit-learn MLP"),
    "robust": ("bench_robust", "run", "Robustness: the default train on real datasets over seeds, vs an MLP"),
    "fewshot": ("bench_fewshot", "run", "Few-shot teaching: a new class taught by its examples only, through feedback"),
    "time": ("bench_time", "run", "Time: counting and temporal learning rules on order-only tasks, gestures, N-MNIST"),
    "live": ("bench_live", "run", "Live capacity: real recordings through the daemon, ever faster, against the kernel"),
    "floor": ("bench_floor", "run", "The message path's latency floor: one TCP hop, and MQTT through Mosquitto, alone"),
    "workers": ("bench_workers", "run", "pipeline.workers: the pipeline with 1 and 2 worker processes"),
    "teachflow": ("bench_teach_flow", "run", "Teach it live: docs/demo.md's commands, record to a class taught, timed"),
    "kernel": ("bench_kernel", "run", "The inference kernel against a bare-loop ceiling for the same work (--model M)"),
    "delays": ("bench_delays", "run", "Input delays: a delay model's inference, merging against sorting delay line"),
    "ceiling": ("bench_ceiling", "run", "What the data allow: the default model beside its conventional twin"),
    "online": ("bench_online", "run", "Learning online for 50,000 windows: the demo's fresh network, revived or not"),
}
#: Too long for --quick (each trains several networks for many epochs; teachflow records in real time); run
#: them with --only NAME.
SLOW = ("sim2real", "deep", "incremental", "fewshot", "own_data", "robust", "time", "teachflow", "ceiling", "online")


def run_snn(ctx: Context) -> Result:
    """The SNN engineer's benchmark (its own CLI and files), summarised as a Result."""
    import contextlib
    import io
    import json

    from . import bench_snn

    argv = ["--data", str(ctx.nmnist), "--out", str(ctx.out)] + (["--quick"] if ctx.quick else [])
    with contextlib.redirect_stdout(io.StringIO()):
        bench_snn.main(argv)
    out = json.loads((ctx.out / "snn.json").read_text())
    s = out["summary"]
    r = Result("snn", f"Spiking network vs ReLU MLP of the same shape (2312-{out['hidden']}-10, "
                      f"{out['epochs']} epochs, seeds {out['seeds']})")
    snn, mlp = s["snn_accuracy"][0], s["mlp_accuracy"][0]
    full = not out["quick"]
    r.metric("spiking network test accuracy (augmented, mean over seeds)", snn, "",
             target=">= 0.88" if full else None, met=snn >= 0.88 if full else None)
    r.metric("ReLU MLP test accuracy (same shape, spike counts)", mlp, "")
    r.metric("gap, MLP - spiking network", mlp - snn, "", target="<= 0.02" if full else None,
             met=(mlp - snn) <= 0.02 if full else None)
    r.metric("spiking network without augmentation", s["snn_no_augment_accuracy"][0], "")
    r.metric("progressive single-pass accuracy from random weights", s["progressive_accuracy"][0], "")
    r.metric("training time, augmented", s["snn_train_seconds"][0], "s", target="< 600 s" if full else None,
             met=s["snn_train_seconds"][0] < 600 if full else None)
    r.metric("learning on, one thread", s["learn_events_per_s"][0], "events/s", target=">= 1,000,000",
             met=s["learn_events_per_s"][0] >= 1e6)
    r.metric("inference, predict path, one thread", s["predict_events_per_s"], "events/s",
             target=">= 5,000,000", met=s["predict_events_per_s"] >= 5e6)
    r.metric("inference, forward kernel alone", s["kernel_events_per_s"], "events/s")
    r.note(f"From `python -m benchmarks.bench_snn {' '.join(argv)}`; its own files: snn.json, snn.md"
           + (" (quick: 1 seed, 3 epochs, 200 hidden units; accuracy targets not judged)" if out["quick"] else ""))
    return r


CONTENTION = ("Timings were taken on a shared machine while other work may have been running "
              "(see the load average); treat them as lower bounds of what a quiet machine gives.")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer samples and repeats (about 3 minutes)")
    p.add_argument("--only", action="append", choices=list(BENCHES), metavar="NAME",
                   help=f"run only this benchmark (repeatable): {', '.join(BENCHES)}")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results",
                   help="folder for results (default: benchmarks/results/)")
    p.add_argument("--data", type=Path, default=DATA, help=f"shared data folder (default: {DATA})")
    p.add_argument("--model", type=Path, help="checkpoint to time for inference (default: trained online here)")
    p.add_argument("--soak-seconds", type=float, default=None,
                   help="length of the memory soak (default 600, 30 with --quick)")
    return p.parse_args(argv)


def run_one(name: str, ctx: Context) -> Result:
    module, func, title = BENCHES[name]
    t0 = time.perf_counter()
    try:
        fn = globals()[func] if module is None else getattr(importlib.import_module(f".{module}", __package__), func)
        result = fn(ctx)
    except NotMeasurable as exc:
        result = Result(name, title, status=f"not yet measurable: {exc}")
    except ModuleNotFoundError as exc:
        result = Result(name, title, status=f"not yet measurable: module {exc.name} is missing")
    except Exception as exc:  # one broken benchmark must not lose the others' figures
        traceback.print_exc()
        result = Result(name, title, status=f"error: {type(exc).__name__}: {exc}")
    result.seconds = time.perf_counter() - t0
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    soak = args.soak_seconds if args.soak_seconds is not None else (30.0 if args.quick else 600.0)
    stem = "results" + ("-quick" if args.quick else "") + ("-" + "-".join(args.only) if args.only else "")
    ctx = Context(quick=args.quick, out=args.out.resolve(), data=args.data.resolve(), soak_seconds=soak,
                  stem=stem)
    if args.model:
        ctx.cache["model_path"] = args.model.resolve()
    names = args.only or [n for n in BENCHES if not (args.quick and n in SLOW)]
    run = {"command": command_line(), "quick": args.quick, "machine": machine(), "contention": CONTENTION,
           "results": []}
    m = run["machine"]
    ctx.cache["machine_line"] = f"{m['date']}, {m['cores']} cores {m['cpu']}, load {m['load_average_1m']}"
    for name in names:
        print(f"benchmarks: {name} ...", file=sys.stderr, flush=True)
        try:
            result = run_one(name, ctx)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM while a streamsnn command ran (Interrupted)
            done = [r["name"] for r in run["results"]]
            kept = (f"the figures of {', '.join(done)} are in {ctx.out / ctx.stem}.json/.md" if done
                    else "nothing written")
            return stopped("benchmarks", exc, f"during {name}; {kept}")
        print(f"benchmarks: {name}: {result.status} ({result.seconds:.1f} s)", file=sys.stderr, flush=True)
        run["results"].append(result.as_dict())
        run["load_average_end"] = round(os.getloadavg()[0], 2)
        js, md = write(run, ctx.out, ctx.stem)  # after each benchmark, so an interrupted run keeps its figures
    skipped = [n for n in BENCHES if n not in names]
    if skipped and not args.only:
        print(f"benchmarks: not run in quick mode: {', '.join(skipped)} (use --only NAME)", file=sys.stderr)
    print(md.read_text())
    print(f"benchmarks: wrote {js} and {md}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
