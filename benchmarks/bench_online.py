"""Learning online in the daemon for a long time: the live demo's fresh network over 50,000 windows, with and without
the revival of a network that fails while it learns (`model.revive`, streamsnn/pipeline/revive.py).

    python -m benchmarks.bench_online [--seeds 0 1 2] [--digits 8000] [--arms on off]

Runs `streamsnn run pipelines/demo.toml` as a user would (a subprocess, the shipped pipeline file: a fresh default
deep network learning every 100 ms window every 50 ms from its label) with the simulated camera filming `--digits`
font digits as fast as it can (`source.speed=0`, `pipeline.policy=block`: no window dropped), MQTT and the live view
off, each decision written to a JSON-lines file. Per seed (`source.seed`: which digits, in which poses) and arm:
windows decided, accuracy over all of them and over the last 10,000, the updates refused as non-finite and the
revivals (from the run's last line), and the wall time. A run still going after `--timeout` seconds (a network
whose activity ran away computes slowly) is stopped with SIGINT and reported as it stands.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import DATA, ROOT, Context, NotMeasurable, Result, run_alone

PIPELINE = ROOT / "pipelines" / "demo.toml"
SEEDS = (0, 1, 2)
ARMS = ("on", "off")
LAST = 10_000


def one_run(seed: int, arm: str, digits: int, timeout: float, tmp: Path) -> dict:
    """What one run of the demo's pipeline did (see the module)."""
    out = tmp / f"online-{seed}-{arm}.jsonl"
    argv = [sys.executable, "-m", "streamsnn", "run", str(PIPELINE), "--set", "mqtt.enabled=false",
            "--set", "liveview.enabled=false", "--set", f"source.seed={seed}", "--set", "source.speed=0",
            "--set", "pipeline.policy=block", "--set", f"source.limit={digits}", "--set", "console.decisions=false",
            "--set", f"jsonl.path={out}", "--set", f"model.revive={'true' if arm == 'on' else 'false'}"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    stopped = False
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stopped = True
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    secs = time.perf_counter() - t0
    if proc.returncode not in (0, -signal.SIGINT, 130) or not out.exists():
        raise RuntimeError(f"the demo pipeline (seed {seed}, revive {arm}) exited {proc.returncode}: "
                           f"{stderr.strip()[-300:]}")
    right = []
    with open(out) as fh:
        for line in fh:
            d = json.loads(line)
            if d.get("true_label") is not None:
                right.append(d["label"] == d["true_label"])
    text = stdout + stderr
    refused = re.search(r"(\d+) updates refused or decisions withheld", text)
    revivals = re.search(r"(\d+) revivals of the learning network", text)
    return {"windows": len(right), "accuracy": float(np.mean(right)) if right else None,
            "last": float(np.mean(right[-LAST:])) if len(right) >= LAST else None,
            "refused": int(refused.group(1)) if refused else 0, "revivals": int(revivals.group(1)) if revivals else 0,
            "seconds": secs, "stopped": stopped}


def run(ctx: Context, seeds=SEEDS, arms=ARMS, digits: int = 8000, timeout: float = 300.0) -> Result:
    if ctx.quick:
        seeds, digits = seeds[:1], min(digits, 2000)
    r = Result("online", "Learning online in the daemon: the demo's fresh network over many windows, revived or not")
    rows, by_arm = [], {arm: [] for arm in arms}
    with tempfile.TemporaryDirectory() as tmp:
        for arm in arms:
            for seed in seeds:
                o = one_run(seed, arm, digits, timeout, Path(tmp))
                print(f"  revive {arm}, seed {seed}: {o}", file=sys.stderr, flush=True)
                by_arm[arm].append(o)
                pct = lambda x: None if x is None else round(100 * x, 1)  # noqa: E731
                rows.append([arm, seed, o["windows"], pct(o["accuracy"]), pct(o["last"]), o["refused"], o["revivals"],
                             round(o["seconds"]), "stopped at the time limit" if o["stopped"] else "finished"])
    for arm, runs in by_arm.items():
        last = [o["last"] for o in runs if o["last"] is not None]
        if last:
            r.metric(f"revive {arm}: accuracy over the last {LAST:,} windows (mean of {len(last)} seeds)",
                     round(100 * float(np.mean(last)), 1), "%")
            r.metric(f"revive {arm}: spread (min - max)", f"{100 * min(last):.1f} - {100 * max(last):.1f}", "%")
        r.metric(f"revive {arm}: runs with refused updates", sum(o["refused"] > 0 for o in runs), f"of {len(runs)}")
        r.metric(f"revive {arm}: runs stopped at the time limit", sum(o["stopped"] for o in runs), f"of {len(runs)}")
    r.table("Per run", ["revive", "seed", "windows", "accuracy %", f"last {LAST:,} %", "refused", "revivals",
                        "wall s", "end"], rows)
    r.note(f"`streamsnn run pipelines/demo.toml --set mqtt.enabled=false --set liveview.enabled=false --set "
           f"source.seed=S --set source.speed=0 --set pipeline.policy=block --set source.limit={digits} --set "
           "console.decisions=false --set jsonl.path=<tmp> --set model.revive=true|false`; accuracy: decisions whose "
           "label is the window's (each window labelled with the digit filmed during most of it), test-then-train; "
           f"runs stopped after {timeout:g} s")
    return r


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_online", description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    p.add_argument("--digits", type=int, default=8000, help="digits filmed per run (about 6 windows each)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds before a run is stopped")
    p.add_argument("--quick", action="store_true", help="one seed, 2,000 digits")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    a = p.parse_args(argv)
    ctx = Context(quick=a.quick, out=a.out, data=DATA, stem="online")
    try:
        return run_alone("python -m benchmarks.bench_online", ctx,
                         lambda: run(ctx, tuple(a.seeds), tuple(a.arms), a.digits, a.timeout), argv=argv,
                         label="bench_online",
                         contention="Other work may share the machine (see the load average): seconds are upper "
                                    "bounds; accuracies do not depend on it (policy block: no window dropped).")
    except NotMeasurable as exc:
        print(f"not measurable: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
