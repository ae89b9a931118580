"""Choosing the default network: candidate architectures and settings on a validation split.

    python -m benchmarks.tune_deep [--synth DIR] [--seeds 0 1] [--only NAME ...]
    python -m benchmarks.tune_deep --cv [--only NAME ...]     # real only, 5-fold cross-validation

Every candidate trains as `streamsnn train` does on the real training samples minus a fixed
validation split of 100 (every tenth sample), with and without the synthetic samples, and is
scored on that split only; the test split is never looked at here. Writes
benchmarks/results/deep-candidates.{json,md}.
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from .common import DATA, ROOT, machine  # noqa: E402
from .deep_train import load_data, mean_sd, train_snn, validation_split  # noqa: E402
from .stamp import stamp_line  # noqa: E402

#: name -> (arch, settings). Every candidate trains 6 epochs on real + synthetic and 20 on real only.
C16, C32 = "conv:16:5:2:2,conv:32:3:2:1,dense:128", "conv:32:5:2:2,conv:64:3:2:1,dense:256"
LR1 = {"lr": 0.001, "lr_out": 0.0003}
CANDIDATES = {
    "c16-c32-d128, no activity cost": (C16, {**LR1, "activity": 0.0}),
    "c16-c32-d128, activity 1e-5": (C16, {**LR1, "activity": 1e-5}),
    "c16-c32-d128, activity 3e-5": (C16, {**LR1, "activity": 3e-5}),
    "c16-c32-d128, activity 1e-4": (C16, {**LR1, "activity": 1e-4}),
    "c8-c16-d64, activity 3e-5": ("conv:8:5:2:2,conv:16:3:2:1,dense:64", {**LR1, "activity": 3e-5}),
    "c32-c64-d256, activity 3e-5": (C32, {**LR1, "activity": 3e-5}),
    "c32-d256, activity 3e-5": ("conv:32:5:2:2,dense:256", {**LR1, "activity": 3e-5}),
    "c16-c32-c64-d128, activity 3e-5": ("conv:16:5:2:2,conv:32:3:2:1,conv:64:3:2:1,dense:128",
                                        {**LR1, "activity": 3e-5}),
    "c32-c64-d256, activity 3e-5, lr 0.002": (C32, {"lr": 0.002, "lr_out": 0.0006, "activity": 3e-5}),
}
EPOCHS = {"real + synthetic": 6, "real only": 20}


#: Real-only training on 1,000 samples, 5-fold cross-validation (``--cv``): name -> (arch, settings, epochs).
CV_CANDIDATES = {
    "c16-c32-d128, lr 0.001, 20 epochs": (C16, {"lr": 0.001, "lr_out": 0.0003}, 20),
    "c16-c32-d128, lr 0.002, 40 epochs": (C16, {"lr": 0.002, "lr_out": 0.0006}, 40),
    "c32-c64-d256, lr 0.001, 20 epochs": (C32, {"lr": 0.001, "lr_out": 0.0003}, 20),
    "c32-c64-d256, lr 0.002, 40 epochs": (C32, {"lr": 0.002, "lr_out": 0.0006}, 40),
    "c32-d256, lr 0.001, 20 epochs": ("conv:32:5:2:2,dense:256", {"lr": 0.001, "lr_out": 0.0003}, 20),
}


def cross_validate(real, arch: str, settings: dict, epochs: int, folds: int = 5) -> list[float]:
    """Accuracy on each fold k (samples k, k + folds, ...) after training on the others (seed k)."""
    accs = []
    for k in range(folds):
        val = np.arange(k, len(real), folds)
        rest = np.setdiff1d(np.arange(len(real)), val)
        r = train_snn(arch, real.pick(rest), real.pick(val), epochs=epochs, seed=k,
                      **{"activity": 3e-5, **settings})
        accs.append(r["accuracy"])
        print(f"tune: cv {arch} {settings} {epochs} epochs, fold {k}: {r['accuracy']:.3f}", file=sys.stderr, flush=True)
    return accs


def run_cv(a) -> int:
    real, _, _ = load_data(a.data / "nmnist_small", n_synth=0)
    rows, start = [], machine()  # stamped when the run starts
    for name in a.only or CV_CANDIDATES:
        arch, settings, epochs = CV_CANDIDATES[name]
        accs = cross_validate(real, arch, settings, epochs)
        rows.append(f"| {name} | `{arch}` | {settings} | {epochs} | {100 * np.mean(accs):.1f} | "
                    + ", ".join(f"{100 * x:.1f}" for x in accs) + " |")
        m = machine()
        text = ["# Real-only training, 5-fold cross-validation on the 1,000 real training samples", "",
                stamp_line(start["stamp"]),
                f"- date: {m['date']}; commit: {m['commit']}; command: `python -m benchmarks.tune_deep --cv"
                + "".join(f" {x}" for x in sys.argv[1:] if x != "--cv") + "`",
                "- fold k holds out samples k, k+5, ... (200), trains on the other 800 with seed k, as "
                "`streamsnn train` does (augmentation, cosine schedule, activity 3e-5 unless stated).", "",
                "| candidate | layers | settings | epochs | mean % | folds % |",
                "| --- | --- | --- | ---: | ---: | --- |",
                *rows]
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "deep-cv.md").write_text("\n".join(text) + "\n")
    return 0


def cpu_rate(net, data, repeats: int = 3) -> float:
    """Inference events per CPU-second of this thread (best of ``repeats`` passes)."""
    net.warm_up()
    best = 0.0
    for _ in range(repeats):
        c0 = time.thread_time()
        for k in range(len(data)):
            net.predict_indices(data.idx[k], data.t[k])
        best = max(best, data.n_events / max(time.thread_time() - c0, 1e-9))
    return best


def spikes_per_event(net, data) -> list[float]:
    tot = np.zeros(len(net.layers))
    for k in range(len(data)):
        tot += net.predict_indices(data.idx[k], data.t[k]).spikes
    return [float(x) for x in tot / data.n_events]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.tune_deep", description=__doc__.splitlines()[0])
    p.add_argument("--synth", type=Path, help="folder written by `streamsnn synth` (default: record here)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--only", action="append", choices=list(CANDIDATES) + list(CV_CANDIDATES), metavar="NAME")
    p.add_argument("--cv", action="store_true", help="real-only 5-fold cross-validation of CV_CANDIDATES instead")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    a = p.parse_args(argv)
    if a.cv:
        return run_cv(a)
    start = machine()  # stamped when the run starts
    real, _, syn = load_data(a.data / "nmnist_small", a.synth, a.data / "mnist")
    train, val = validation_split(real)
    rows = []
    for name in a.only or CANDIDATES:
        arch, extra = CANDIDATES[name]
        runs = {}
        for label, data in (("real + synthetic", train + syn), ("real only", train)):
            epochs = EPOCHS[label]
            res = []
            for seed in a.seeds:
                r = train_snn(arch, data, val, epochs=epochs, seed=seed, **extra)
                r["cpu_rate"] = cpu_rate(r["net"], val)
                r["spikes"] = spikes_per_event(r["net"], val)
                res.append(r)
                print(f"tune: {name}, {label}, seed {seed}: val {r['accuracy']:.2f}, {r['seconds']:.0f} s, "
                      f"{r['cpu_rate'] / 1e6:.2f} M events/s, spikes/event {np.round(r['spikes'], 2)}",
                      file=sys.stderr, flush=True)
            runs[label] = res
        mix, rl = runs["real + synthetic"], runs["real only"]
        rows.append({"name": name, "arch": arch, **extra, "parameters": mix[0]["net"].parameters,
                     "val_mixed": mean_sd([r["accuracy"] for r in mix]),
                     "val_real": mean_sd([r["accuracy"] for r in rl]),
                     "train_s_mixed": float(np.mean([r["seconds"] for r in mix])),
                     "infer_cpu": float(np.mean([r["cpu_rate"] for r in mix])),
                     "spikes_per_event": [float(x) for x in np.mean([r["spikes"] for r in mix], axis=0)],
                     "each_mixed": [r["accuracy"] for r in mix], "each_real": [r["accuracy"] for r in rl]})
        write(a, rows, start)
    return 0


def write(a, rows, m: dict) -> None:
    """deep-candidates.{json,md}: this run's rows replace rows of the same name from earlier runs; `m` is
    `machine()` taken when the run started, stamp included (rows kept from earlier runs keep their own date)."""
    old = a.out / "deep-candidates.json"
    rows = [{"date": m["date"], **r} for r in rows]
    if old.is_file():
        names = {r["name"] for r in rows}
        before = json.loads(old.read_text())
        rows = [{"date": before["machine"]["date"], **r} for r in before["candidates"] if r["name"] not in names] + rows
    out = {"command": "python -m benchmarks.tune_deep" + "".join(f" {x}" for x in sys.argv[1:]),
           "seeds": a.seeds, "stamp": m["stamp"], "machine": m, "candidates": rows}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "deep-candidates.json").write_text(json.dumps(out, indent=2) + "\n")
    pct = lambda ms: f"{100 * ms[0]:.1f} ± {100 * ms[1]:.1f}"  # noqa: E731
    lines = ["# Choosing the default network (validation split, never the test split)", "",
             stamp_line(m["stamp"]),
             f"- date: {m['date']}; commit: {m['commit']}; machine: {m['cores']} cores, {m['cpu']}; "
             f"load average at start {m['load_average_1m']}; rows measured on: "
             + ", ".join(sorted({r['date'] for r in rows})),
             f"- command: `{out['command']}`; seeds {a.seeds}",
             "- validation: 100 of the 1,000 real training samples (every tenth), held out of training; "
             "training: the other 900, plus 9,900 synthetic samples in the mixed arm; as `streamsnn train` "
             "(6 epochs mixed, 20 real only; augmentation; cosine schedule).",
             "- speed: inference events per CPU-second of one thread on the validation samples, models of the "
             "mixed arm (CPU time, so other load on the machine weighs less).", "",
             "| candidate | layers | parameters | val %, real + synthetic | val %, real only | "
             "M events/s | spikes per input event, per layer | training s (mixed) |",
             "| --- | --- | ---: | --- | --- | ---: | --- | ---: |"]
    for r in rows:
        lines.append(f"| {r['name']} | `{r['arch']}` | {r['parameters']:,} | {pct(r['val_mixed'])} | "
                     f"{pct(r['val_real'])} | {r['infer_cpu'] / 1e6:.2f} | "
                     f"{' / '.join(f'{x:.2f}' for x in r['spikes_per_event'])} | {r['train_s_mixed']:.0f} |")
    (a.out / "deep-candidates.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
