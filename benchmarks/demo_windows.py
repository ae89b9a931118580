"""Where the live demo's window decisions go wrong: right or wrong by a window's place inside the sample it is
labelled with.

    python -m benchmarks.demo_windows [--digits] [--decisions 4168] [--speed 2]
    python -m benchmarks.demo_windows --jsonl FILE        # decisions already written by the jsonl sink
    python -m benchmarks.demo_windows -- --set source.seed=1  # more arguments for the demo (another camera)

Runs `streamsnn demo --gestures --port 0 --speed S --set jsonl.path=FILE` (with a cache folder of its own, so it
trains the demo's model afresh as `--retrain` does and never touches the user's), stops it with SIGINT once FILE
holds `--decisions` lines, and reads them: the demo films one sample after another on one clock, and each window
is labelled with the sample filmed during most of it (`segment.label_windows`), so consecutive lines with the same
`sample` are one sample's windows in order. The tables: right by place from the sample's first window, per class
in the sample's middle (from its fifth window to its third last), and the most common mistakes. The demo is
deterministic (the same samples in the same order, learning from each window's label), so the figures repeat.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from .common import ROOT, Context, Result, run_alone

#: Windows from a sample's start counted apart (the rest are pooled as "8+").
PLACES = 8
#: The middle of a sample: from its MIDDLE[0]-th window (0-based) to MIDDLE[1] windows before its end.
MIDDLE = (4, 2)
#: The demo's aim for its windows (issue 20): what the windows after the first two would need for it.
AIM = 0.85


def read(path: Path, limit: int | None = None) -> list[dict]:
    """The labelled decisions of a jsonl sink's file, in order (at most ``limit``)."""
    rows = []
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if r.get("true_label") is not None:
                rows.append(r)
                if limit is not None and len(rows) >= limit:
                    break
    return rows


def samples(rows: list[dict]) -> list[list[dict]]:
    """Consecutive decisions of the same sample, in order."""
    out: list[list[dict]] = []
    for r in rows:
        if out and out[-1][-1]["sample"] == r["sample"]:
            out[-1].append(r)
        else:
            out.append([r])
    return out


def places(rows: list[dict]) -> dict:
    """Right and wrong by place: {"from_start": {place: [right, windows]}, "middle": {class: [right, windows]},
    "mistakes": Counter((true name, decided name)), "right", "windows", "samples"}."""
    start: dict[int, list[int]] = {}
    middle: dict[str, list[int]] = {}
    mistakes: Counter = Counter()
    runs = samples(rows)
    for run in runs:
        for i, r in enumerate(run):
            ok = int(r["label"] == r["true_label"])
            s = start.setdefault(min(i, PLACES), [0, 0])
            s[0] += ok
            s[1] += 1
            if i >= MIDDLE[0] and len(run) - 1 - i >= MIDDLE[1]:
                m = middle.setdefault(r["true_label_name"], [0, 0])
                m[0] += ok
                m[1] += 1
            if not ok:
                mistakes[(r["true_label_name"], r["label_name"])] += 1
    right = sum(v[0] for v in start.values())
    return {"from_start": start, "middle": middle, "mistakes": mistakes, "right": right, "windows": len(rows),
            "samples": len(runs)}


def report(p: dict, r: Result) -> Result:
    n, right = p["windows"], p["right"]
    wrong = max(n - right, 1)
    first = [p["from_start"].get(k, [0, 0]) for k in (0, 1)]
    first_right, first_n = sum(v[0] for v in first), sum(v[1] for v in first)
    rest_n = n - first_n
    r.metric("window decisions", n, "")
    r.metric("samples (runs of windows labelled with one sample)", p["samples"], "")
    r.metric("windows right", round(right / n, 3) if n else None, "")
    r.metric("a sample's first two windows right", round(first_right / first_n, 3) if first_n else None, "")
    r.metric("its other windows right", round((right - first_right) / rest_n, 3) if rest_n else None, "")
    if rest_n:
        r.metric(f"what its other windows would need for {AIM:.0%} of all windows, the first two as they are",
                 round((AIM * n - first_right) / rest_n, 3), "")
    r.table("Right by the window's place from its sample's first window (place 0: the first window labelled with it)",
            ["place", "windows", "right", "share of all mistakes"],
            [[f"{k}+" if k == PLACES else k, v[1], round(v[0] / v[1], 3), round((v[1] - v[0]) / wrong, 3)]
             for k, v in sorted(p["from_start"].items())])
    r.table(f"A sample's middle (from its window {MIDDLE[0]} to {MIDDLE[1]} windows before its end), per class",
            ["class", "windows", "right"],
            [[c, v[1], round(v[0] / v[1], 3)] for c, v in sorted(p["middle"].items())])
    r.table("The most common mistakes", ["filmed", "decided", "windows", "share of all mistakes"],
            [[t, d, c, round(c / wrong, 3)] for (t, d), c in p["mistakes"].most_common(12)])
    return r


def run_demo(out: Path, decisions: int, speed: float, gestures: bool, extra=(), timeout_s: float = 1800.0) -> Path:
    """Run the demo (its model trained afresh in a cache folder of its own; ``extra``: more of its arguments) until
    ``out`` holds ``decisions`` labelled lines; returns ``out``."""
    cache = Path(tempfile.mkdtemp(prefix="streamsnn-demo-windows-"))
    cmd = [sys.executable, "-m", "streamsnn", "demo", "--port", "0", "--speed", f"{speed:g}",
           "--set", f"jsonl.path={out}", *(["--gestures"] if gestures else []), *extra]
    print("running:", " ".join(cmd[2:]), file=sys.stderr)
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "XDG_CACHE_HOME": str(cache)},
                            stdout=subprocess.DEVNULL, stderr=sys.stderr)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the demo stopped (exit {proc.returncode}) before {decisions} decisions")
            if out.is_file() and len(read(out, decisions)) >= decisions:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"fewer than {decisions} decisions after {timeout_s:.0f} s")
            time.sleep(2.0)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.demo_windows", description=__doc__.splitlines()[0])
    p.add_argument("--jsonl", type=Path, help="read these decisions (a jsonl sink's file) instead of running the demo")
    p.add_argument("--digits", action="store_true", help="the digit demo instead of the gesture demo")
    p.add_argument("--decisions", type=int, default=4168,
                   help="labelled decisions read (default 4168: about 3.5 minutes of the demo at real time)")
    p.add_argument("--speed", type=float, default=2.0, help="the demo's --speed (default 2: twice real time)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("extra", nargs="*", metavar="DEMO_ARG",
                   help="more arguments for streamsnn demo, after --: e.g. -- --synthetic 500 --set source.seed=1")
    a = p.parse_args(argv)
    if a.decisions < 1:
        p.error(f"--decisions must be at least 1, got {a.decisions}")
    what = "digits" if a.digits else "gestures"
    ctx = Context(out=a.out.resolve(), stem=f"demo-windows-{what}")

    def measure() -> Result:
        path = a.jsonl
        if path is None:
            path = run_demo(Path(tempfile.mkdtemp(prefix="streamsnn-demo-windows-")) / "decisions.jsonl",
                            a.decisions, a.speed, not a.digits, a.extra)
        rows = read(path, a.decisions)
        if not rows:
            raise SystemExit(f"{path}: no labelled decisions (lines with true_label); the demo labels its windows")
        r = Result(f"demo-windows-{what}", f"The {what} demo's window decisions by place inside their sample")
        r.note(f"{len(rows)} labelled decisions" + (f" read from {a.jsonl}" if a.jsonl else
               f" of `streamsnn demo{' --gestures' if not a.digits else ''} --speed {a.speed:g}"
               f"{''.join(' ' + x for x in a.extra)}`, its model "
               "trained afresh (its defaults), learning from each window's label as it goes"))
        return report(places(rows), r)

    return run_alone("python -m benchmarks.demo_windows", ctx, measure, argv=argv, label="demo_windows",
                     contention="Accuracy does not depend on load (the demo drops no window at this speed here).")


if __name__ == "__main__":
    sys.exit(main())
