"""The README's first command, measured: progressive accuracy of one pass over N-MNIST from a fresh network.

    python -m benchmarks.bench_first [--seeds 0 1 2]        # or: python -m benchmarks --only first

Runs `streamsnn run pipelines/nmnist-replay.toml` as a user would (a subprocess, the shipped pipeline file), with
MQTT off (the broker is not what is measured), a fresh checkpoint path per run, and `source.seed` and `model.seed`
set to each seed (the shuffle and the initial weights). What it reports comes from the checkpoint the run saves
at exit: the test-then-train (progressive) accuracy over the 1,000 training samples, and the wall time.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import DATA, ROOT, Context, NotMeasurable, Result, run_alone

PIPELINE = ROOT / "pipelines" / "nmnist-replay.toml"
SEEDS = (0, 1, 2)


def one_run(seed: int, nmnist: Path, tmp: Path) -> tuple[float, int, float]:
    """(progressive accuracy, samples, wall seconds) of the first command with this seed."""
    from streamsnn.snn import SpikingNetwork

    ckpt = tmp / f"first-{seed}.npz"
    argv = [sys.executable, "-m", "streamsnn", "run", str(PIPELINE), "-q", "--set", "mqtt.enabled=false",
            "--set", "console.enabled=false", "--set", f"source.path={nmnist}", "--set", f"source.seed={seed}",
            "--set", f"model.seed={seed}", "--set", f"model.checkpoint={ckpt}"]
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    secs = time.perf_counter() - t0
    if done.returncode != 0 or not ckpt.exists():
        raise RuntimeError(f"the first command (seed {seed}) exited {done.returncode}: {done.stderr.strip()[-300:]}")
    net = SpikingNetwork.load(ckpt)
    return float(net.progressive_accuracy), int(net.progressive_total), secs


def run(ctx: Context, seeds=SEEDS) -> Result:
    nmnist = ctx.nmnist
    if ctx.quick:
        seeds = seeds[:1]
    r = Result("first", "The README's first command: progressive accuracy of one pass from a fresh network")
    rows, accs, secs = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            acc, n, s = one_run(seed, nmnist, Path(tmp))
            print(f"  seed {seed}: progressive accuracy {acc:.3f} over {n} samples, {s:.0f} s", file=sys.stderr,
                  flush=True)
            rows.append([seed, round(acc, 4), n, round(s, 1)])
            accs.append(acc)
            secs.append(s)
    r.metric(f"progressive accuracy over one pass (mean of {len(seeds)} seeds)", round(float(np.mean(accs)), 4), "")
    r.metric("spread (min - max)", f"{min(accs):.3f} - {max(accs):.3f}", "")
    r.metric("wall time per run, start to exit (mean)", round(float(np.mean(secs)), 1), "s")
    r.table("Per seed (source.seed = model.seed)", ["seed", "progressive accuracy", "samples", "wall s"], rows)
    r.note("`streamsnn run pipelines/nmnist-replay.toml -q --set mqtt.enabled=false --set console.enabled=false "
           "--set source.path=<nmnist_small> --set source.seed=S --set model.seed=S --set model.checkpoint=<tmp>`; "
           "the accuracy is the checkpoint's progressive accuracy at exit")
    return r


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_first", description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--quick", action="store_true", help="one seed")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    a = p.parse_args(argv)
    ctx = Context(quick=a.quick, out=a.out, data=DATA, stem="first")
    try:
        return run_alone("python -m benchmarks.bench_first", ctx, lambda: run(ctx, tuple(a.seeds)), argv=argv,
                         label="bench_first",
                         contention="Other work may share the machine (see the load average): seconds are upper "
                                    "bounds.")
    except NotMeasurable as exc:
        print(f"not measurable: {exc}", file=sys.stderr)
        return 2

if __name__ == "__main__":
    sys.exit(main())
