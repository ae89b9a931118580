"""Sim-to-real: does adding synthetic saccade-camera samples (MNIST test images 101-10000) to the
1,000 real N-MNIST training samples raise accuracy on the 100 real test samples?

Run: `python -m benchmarks.bench_sim2real [--quick]` (writes benchmarks/results/sim2real.{json,md}),
or as `run(ctx)` from the benchmarks runner. MNIST test images 1-100 are the sources of the real
test samples 60001-60100, so they are never recorded synthetically.
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from .common import DATA, ROOT, Context, NotMeasurable, Result, run_alone  # noqa: E402

#: Training setup shared by every arm (the `streamsnn train` defaults).
HIDDEN, LR = 800, 0.001


def synthetic_arrays(mnist_dir, first: int, count: int, net, seed: int = 0):
    """SampleArrays of synthetic recordings of MNIST test images first..first+count-1 (1-based)."""
    from streamsnn.learn.training import SampleArrays, _bar
    from streamsnn.synth import SaccadeCamera
    from streamsnn.synth.images import mnist_digits

    cam = SaccadeCamera(seed=seed)
    digits = _bar(mnist_digits(mnist_dir, "test", first, count), "synthesising", quiet=False)
    return SampleArrays.from_batches(net, (cam.record(d.image, sample=d.name, label=d.label) for d in digits))


def train_and_test(train, test, epochs: int, seed: int) -> dict:
    """Train a fresh network online (augmented, cosine lr) and evaluate it on the real test split."""
    from streamsnn.learn.training import Augment, evaluate, train_epoch
    from streamsnn.snn import SpikingNetwork

    net = SpikingNetwork((2312, HIDDEN, 10), seed=seed, lr=LR)
    aug = Augment()
    t0 = time.perf_counter()
    for ep in range(epochs):
        train_epoch(net, train, epoch=ep, epochs=epochs, seed=seed, augment=aug, quiet=True)
    res = evaluate(net, test)
    res["seconds"] = time.perf_counter() - t0
    res["updates"] = epochs * len(train)
    return res


def run(ctx: Context) -> Result:
    from streamsnn.learn.training import load_split
    from streamsnn.snn import SpikingNetwork

    r = Result("sim2real", "Sim-to-real: synthetic saccade-camera samples added to real N-MNIST training")
    mnist = ctx.data / "mnist"
    if not (mnist / "t10k-images-idx3-ubyte.gz").is_file():
        raise NotMeasurable(f"MNIST idx files not found in {mnist}")
    quick = ctx.quick
    n_syn = ctx.cache.get("synthetic", 2000 if quick else 9900)
    seeds = ctx.cache.get("seeds", 1 if quick else 3)
    real_epochs = ctx.cache.get("real_epochs", 20)
    mix_epochs = ctx.cache.get("mix_epochs", 3 if quick else 6)
    template = SpikingNetwork((2312, 10, 10))
    real = load_split(ctx.nmnist, "train", template, quiet=True)
    test = load_split(ctx.nmnist, "test", template, quiet=True)
    t0 = time.perf_counter()
    syn = synthetic_arrays(mnist, 101, n_syn, template)
    gen_s = time.perf_counter() - t0
    mixed = real + syn
    # Control for the mixed arm's extra updates: real only, trained for as many updates.
    long_epochs = -(-mix_epochs * len(mixed) // len(real))
    arms = {
        "real only": (real, real_epochs),
        f"real only, {long_epochs} epochs": (real, long_epochs),
        "real + synthetic": (mixed, mix_epochs),
        "synthetic only": (syn, mix_epochs),
    }
    rows, per_class, acc = [], {}, {}
    for name, (train, epochs) in arms.items():
        runs = [train_and_test(train, test, epochs, s) for s in range(seeds if name != "synthetic only" else 1)]
        a = [x["accuracy"] for x in runs]
        acc[name] = float(np.mean(a))
        rows.append([name, len(train), epochs, runs[0]["updates"], len(runs), float(np.mean(a)),
                     float(np.std(a)), float(np.mean([x["seconds"] for x in runs]))])
        per_class[name] = [np.mean([x["per_class"][str(c)] for x in runs]) for c in range(10)]
        print(f"sim2real: {name}: accuracy {np.mean(a):.3f} over seeds {a}", file=sys.stderr, flush=True)
    best_real = max(acc["real only"], acc[f"real only, {long_epochs} epochs"])
    r.metric("accuracy, real only", acc["real only"], "", target="baseline")
    r.metric(f"accuracy, real only, {long_epochs} epochs (as many updates as the mixed arm)",
             acc[f"real only, {long_epochs} epochs"], "")
    r.metric("accuracy, real + synthetic", acc["real + synthetic"], "",
             target="> both real-only arms", met=acc["real + synthetic"] > best_real)
    r.metric("accuracy, synthetic only (sim-to-real gap)", acc["synthetic only"], "")
    r.metric("synthetic samples generated", n_syn, "", target=None)
    r.metric("generation time per synthetic sample", 1000 * gen_s / n_syn, "ms")
    r.table("Accuracy on the 100 real test samples (mean over seeds)",
            ["training set", "samples", "epochs", "updates", "seeds", "accuracy", "std", "seconds"], rows)
    counts = np.bincount(test.labels, minlength=10)
    r.table("Per-class accuracy (test samples per class in brackets)",
            ["training set"] + [f"{c} ({counts[c]})" for c in range(10)],
            [[name] + [float(v) for v in per_class[name]] for name in arms])
    r.note("Synthetic samples: streamsnn.synth.SaccadeCamera defaults, seed 0, MNIST test images "
           f"101-{100 + n_syn}; real: nmnist_small train 1-1000, test 60001-60100.")
    r.note("Same network, learning rate schedule and augmentation in every arm; the mixed arm sees "
           "more updates per epoch, so it runs fewer epochs, and a real-only arm with as many updates "
           "controls for that. 100 test samples: one sample is 1 point.")
    return r


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_sim2real", description=__doc__)
    p.add_argument("--quick", action="store_true", help="2,000 synthetic samples, one seed, 3 mixed epochs")
    p.add_argument("--synthetic", type=int, help="synthetic samples (default 9,900: images 101-10000)")
    p.add_argument("--seeds", type=int, help="seeds per arm (default 3, quick 1)")
    p.add_argument("--mix-epochs", type=int, help="epochs of the mixed and synthetic-only arms (default 6)")
    p.add_argument("--real-epochs", type=int, help="epochs of the real-only arm (default 20)")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    ctx = Context(quick=args.quick, out=args.out.resolve(), data=args.data.resolve(), stem="sim2real")
    for key, val in (("synthetic", args.synthetic), ("seeds", args.seeds), ("mix_epochs", args.mix_epochs),
                     ("real_epochs", args.real_epochs)):
        if val is not None:
            ctx.cache[key] = val
    return run_alone("python -m benchmarks.bench_sim2real", ctx, lambda: run(ctx), label="sim2real",
                     contention="Accuracy does not depend on load; the seconds do (shared machine).")

if __name__ == "__main__":
    sys.exit(main())
