"""Benchmark of the one-layer spiking network (2312-800-10) on nmnist_small: accuracy vs a ReLU MLP, progressive
accuracy, events/s. The deep default network has its own benchmark, bench_deep.py.

    NUMBA_NUM_THREADS=1 python -m benchmarks.bench_snn [--quick] [--seeds 0 1 2] [--data DIR]

Writes benchmarks/results/snn.json and benchmarks/results/snn.md. Speed figures depend on the
machine and on other load; accuracy figures do not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from streamsnn.learn.training import Augment, SampleArrays, evaluate, load_split, lr_schedule, train_epoch  # noqa: E402
from streamsnn.snn import SpikingNetwork  # noqa: E402

from .stamp import stamp, stamp_line  # noqa: E402

#: The one-layer network this benchmark is about (`streamsnn train --arch dense:800`) and its settings.
DEFAULTS = {"epochs": 20, "hidden": 800, "lr": 0.001}
ROOT = Path(__file__).resolve().parent
DATA = ROOT.parent.parent / "shared" / "data" / "nmnist_small"
#: Learning rate of the ReLU MLP baseline (tuned like the SNN's: best of a small grid).
MLP_LR = 0.0005


def train_mlp(Xtr, ytr, Xte, yte, *, hidden: int, epochs: int, lr: float, seed: int) -> dict:
    """Conventional ReLU MLP of the same shape (no hidden bias, output bias), per-sample SGD on counts.

    Same initialisation, epochs, shuffling and cosine learning-rate schedule as the spiking network;
    h = ReLU(W1^T x) (real-valued), softmax cross-entropy, and the same sparse SGD step (the
    network's own update kernels, gate h > 0) with h in place of the spike counts (snn.relu).
    """
    from streamsnn.snn import relu

    net = SpikingNetwork((Xtr.shape[1], hidden, 10), seed=seed, lr=lr)
    t0 = time.perf_counter()
    for ep in range(epochs):
        r = np.random.default_rng([seed, ep])
        scale = lr_schedule(ep, epochs)
        for k in r.permutation(len(Xtr)):
            relu.learn(net, Xtr[k], int(ytr[k]), scale)
    secs = time.perf_counter() - t0
    pred = np.array([relu.predict(net, x) for x in Xte])
    return {"accuracy": float((pred == yte).mean()), "seconds": secs}


def train_snn(train: SampleArrays, test: SampleArrays, *, hidden: int, epochs: int, lr: float, seed: int,
              augment: bool, learning: str = "counts"):
    """Train the default spiking network (as `streamsnn train` does) and evaluate it on the test split."""
    net = SpikingNetwork((2312, hidden, 10), seed=seed, lr=lr, learning=learning)
    aug = Augment() if augment else None
    t0 = time.perf_counter()
    epochs_out = []
    for ep in range(epochs):
        r = train_epoch(net, train, epoch=ep, epochs=epochs, seed=seed, augment=aug, quiet=True)
        epochs_out.append(r)
    secs = time.perf_counter() - t0
    ev = evaluate(net, test)
    return net, {"accuracy": ev["accuracy"], "seconds": secs, "per_class": ev["per_class"],
                 "learn_events_per_s": float(np.median([e["events_per_s"] for e in epochs_out])),
                 "learn_events_per_cpu_s": float(np.median([e["events_per_cpu_s"] for e in epochs_out]))}


def progressive(train: SampleArrays, *, hidden: int, lr: float, seed: int) -> dict:
    """One pass over the training stream in file order from random weights, test-then-train."""
    net = SpikingNetwork((2312, hidden, 10), seed=seed, lr=lr)
    t0 = time.perf_counter()
    for k in range(len(train)):
        net.learn_indices(train.idx[k], int(train.labels[k]), train.t[k])
    secs = time.perf_counter() - t0
    return {"accuracy": net.progressive_accuracy, "events_per_s": train.n_events / secs}


def inference_speed(net: SpikingNetwork, data: SampleArrays, repeats: int = 5) -> dict:
    """Events/s of predict_indices over whole samples, of the bare kernel, and of the leaky network.

    Best of ``repeats``, in wall-clock time and in CPU time of this thread (``time.thread_time``):
    the latter is what the kernel achieves when it has a core, the former what it got here.
    """
    def best(fn):
        wall = cpu = 0.0
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.thread_time()
            n = fn()
            wall = max(wall, n / (time.perf_counter() - t0))
            cpu = max(cpu, n / max(time.thread_time() - c0, 1e-9))
        return wall, cpu

    def predict_all(m):
        for k in range(len(data)):
            m.predict_indices(data.idx[k], data.t[k])
        return data.n_events

    net.warm_up()
    out = {}
    out["predict_events_per_s"], out["predict_events_per_cpu_s"] = best(lambda: predict_all(net))
    from streamsnn.snn.layers.dense import dense_forward

    phi = np.zeros(net.sizes[1], np.float32)
    counts = np.zeros_like(phi)
    spikes = [0]
    theta = np.float32(net.theta)
    none_c, none_t, buf = np.zeros(0, np.float32), np.zeros(0, np.int64), np.zeros(1, np.int32)

    def kernel():  # the dense layer's kernel per sample from a reset state, then the output sum
        spikes[0] = 0
        for idx in data.idx:
            phi[:] = 0
            counts[:] = 0
            dense_forward(idx, none_c, none_t, 0, net.W1, phi, counts, theta, 0.0, np.zeros(1), False,
                          buf, none_c, none_t, 0)
            act = np.flatnonzero(counts)
            counts[act] @ net.W2[act]
            spikes[0] += int(counts.sum())
        return data.n_events

    out["kernel_events_per_s"], out["kernel_events_per_cpu_s"] = best(kernel)
    out["hidden_spikes_per_event"] = spikes[0] / data.n_events
    leaky = SpikingNetwork(net.sizes, tau_us=50_000.0)
    leaky.weights, leaky.bias = list(net.weights), net.bias
    leaky.warm_up()
    out["leaky_predict_events_per_s"], out["leaky_predict_events_per_cpu_s"] = best(lambda: predict_all(leaky))
    return out


def mean_sd(xs):
    xs = np.asarray(xs, dtype=float)
    return float(xs.mean()), float(xs.std(ddof=1)) if len(xs) > 1 else 0.0


def measure(data: Path, *, seeds, epochs: int, hidden: int, lr: float, mlp_lr: float, quick: bool,
            log=lambda *x: None) -> dict:
    """Run every measurement; returns the JSON-ready record (summary plus per-seed runs)."""
    start = stamp()  # the tree, machine and load this run measures
    probe = SpikingNetwork((2312, 1, 10))
    train = load_split(data, "train", probe, quiet=True)
    test = load_split(data, "test", probe, quiet=True)
    Xtr, Xte = train.counts(2312), test.counts(2312)
    log(f"data: {len(train)} train / {len(test)} test samples, {train.n_events + test.n_events} events")
    res = {"snn": [], "snn_no_augment": [], "mlp": [], "progressive": []}
    net0 = None
    for seed in seeds:
        net, r = train_snn(train, test, hidden=hidden, epochs=epochs, lr=lr, seed=seed, augment=True)
        net0 = net0 or net
        res["snn"].append(r)
        log(f"seed {seed}: SNN (augmented) {r['accuracy']:.3f} in {r['seconds']:.0f} s")
        _, r = train_snn(train, test, hidden=hidden, epochs=epochs, lr=lr, seed=seed, augment=False)
        res["snn_no_augment"].append(r)
        log(f"seed {seed}: SNN (no augmentation) {r['accuracy']:.3f} in {r['seconds']:.0f} s")
        r = train_mlp(Xtr, train.labels, Xte, test.labels, hidden=hidden, epochs=epochs, lr=mlp_lr, seed=seed)
        res["mlp"].append(r)
        log(f"seed {seed}: ReLU MLP {r['accuracy']:.3f} in {r['seconds']:.0f} s")
        r = progressive(train, hidden=hidden, lr=lr, seed=seed)
        res["progressive"].append(r)
        log(f"seed {seed}: progressive single pass {r['accuracy']:.3f}")
    if not quick:
        _, r = train_snn(train, test, hidden=hidden, epochs=epochs, lr=lr, seed=seeds[0], augment=True,
                         learning="spikes")
        res["snn_spikes"] = [r]
        log(f"seed {seeds[0]}: SNN learning by error spikes {r['accuracy']:.3f} in {r['seconds']:.0f} s")
    speed = inference_speed(net0, test)
    log(f"inference {speed['predict_events_per_s'] / 1e6:.2f} M events/s")
    summary = {
        "snn_accuracy": mean_sd([r["accuracy"] for r in res["snn"]]),
        "snn_no_augment_accuracy": mean_sd([r["accuracy"] for r in res["snn_no_augment"]]),
        "mlp_accuracy": mean_sd([r["accuracy"] for r in res["mlp"]]),
        "progressive_accuracy": mean_sd([r["accuracy"] for r in res["progressive"]]),
        "snn_train_seconds": mean_sd([r["seconds"] for r in res["snn"]]),
        "learn_events_per_s": mean_sd([r["learn_events_per_s"] for r in res["snn_no_augment"]]),
        "learn_events_per_cpu_s": mean_sd([r["learn_events_per_cpu_s"] for r in res["snn_no_augment"]]),
        "snn_spikes_accuracy": res["snn_spikes"][0]["accuracy"] if res.get("snn_spikes") else None,
        "progressive_learn_events_per_s": mean_sd([r["events_per_s"] for r in res["progressive"]]),
        **speed,
    }
    return {"benchmark": "snn", "stamp": start, "quick": quick, "seeds": list(seeds), "epochs": epochs,
            "hidden": hidden,
            "lr": lr, "mlp_lr": mlp_lr, "numba_threads": os.environ.get("NUMBA_NUM_THREADS"),
            "machine": platform.machine(), "cpus": os.cpu_count(), "load_average": os.getloadavg(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "summary": summary, "runs": res}


QUICK = {"seeds": [0], "epochs": 3, "hidden": 200}
FULL = {"seeds": [0, 1, 2, 3, 4], "epochs": DEFAULTS["epochs"], "hidden": DEFAULTS["hidden"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--quick", action="store_true", help="1 seed, 3 epochs, 200 hidden units: a smoke run")
    ap.add_argument("--seeds", type=int, nargs="+", default=FULL["seeds"])
    ap.add_argument("--epochs", type=int, default=FULL["epochs"])
    ap.add_argument("--hidden", type=int, default=FULL["hidden"])
    ap.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    ap.add_argument("--mlp-lr", type=float, default=MLP_LR)
    ap.add_argument("--out", type=Path, default=ROOT / "results")
    a = ap.parse_args(argv)
    if a.quick:
        a.seeds, a.epochs, a.hidden = a.seeds[:1], QUICK["epochs"], QUICK["hidden"]
    out = measure(a.data, seeds=a.seeds, epochs=a.epochs, hidden=a.hidden, lr=a.lr, mlp_lr=a.mlp_lr,
                  quick=a.quick, log=lambda *x: print(*x, file=sys.stderr, flush=True))
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "snn.json").write_text(json.dumps(out, indent=2) + "\n")
    (a.out / "snn.md").write_text(markdown(out))
    print(markdown(out))
    return 0


def run(ctx):
    """Entry point for `python -m benchmarks` (benchmarks/common.py Context -> Result)."""
    from .common import Result

    cfg = QUICK if ctx.quick else FULL
    out = measure(ctx.nmnist, lr=DEFAULTS["lr"], mlp_lr=MLP_LR, quick=ctx.quick, **cfg)
    s = out["summary"]
    r = Result("snn", "Accuracy vs a ReLU MLP (SNN engineer's benchmark)")
    snn, mlp = s["snn_accuracy"][0], s["mlp_accuracy"][0]
    r.metric("SNN test accuracy (mean of seeds)", round(100 * snn, 1), "%", target=">= 88",
             met=None if ctx.quick else snn >= 0.88)
    r.metric("ReLU MLP test accuracy (mean of seeds)", round(100 * mlp, 1), "%")
    r.metric("SNN minus MLP", round(100 * (snn - mlp), 1), "points", target=">= -2",
             met=None if ctx.quick else snn - mlp >= -0.02)
    r.metric("progressive single-pass accuracy", round(100 * s["progressive_accuracy"][0], 1), "%")
    r.metric("training time (augmented)", round(s["snn_train_seconds"][0], 1), "s", target="< 600",
             met=None if ctx.quick else s["snn_train_seconds"][0] < 600)
    r.metric("inference (wall clock)", s["predict_events_per_s"], "events/s", target=">= 5e6",
             met=s["predict_events_per_s"] >= 5e6)
    r.metric("inference (per CPU-second of the thread)", s["predict_events_per_cpu_s"], "events/s")
    r.metric("learning (wall clock)", s["learn_events_per_s"][0], "events/s", target=">= 1e6",
             met=s["learn_events_per_s"][0] >= 1e6)
    r.metric("learning (per CPU-second of the thread)", s["learn_events_per_cpu_s"][0], "events/s")
    r.note(markdown(out))
    ctx.out.mkdir(parents=True, exist_ok=True)
    (ctx.out / "snn.json").write_text(json.dumps(out, indent=2) + "\n")
    (ctx.out / "snn.md").write_text(markdown(out))
    return r


def markdown(out: dict) -> str:
    s = out["summary"]
    n = len(out["seeds"])
    pm = lambda ms, k=100, f=".1f": f"{ms[0] * k:{f}} ± {ms[1] * k:{f}}"  # noqa: E731
    runs = out["runs"]
    each = lambda key: " (" + ", ".join(f"{100 * r['accuracy']:.1f}" for r in runs[key]) + ")"  # noqa: E731
    rows = [
        ("Spiking network, test accuracy (%), augmented training", pm(s["snn_accuracy"]) + each("snn")),
        ("Spiking network, test accuracy (%), no augmentation",
         pm(s["snn_no_augment_accuracy"]) + each("snn_no_augment")),
        ("ReLU MLP same shape on spike counts, test accuracy (%)", pm(s["mlp_accuracy"]) + each("mlp")),
        ("Progressive single-pass accuracy from random weights (%)",
         pm(s["progressive_accuracy"]) + each("progressive")),
        ("Training time, augmented (s)", pm(s["snn_train_seconds"], 1)),
        ("Spiking network learning by error spikes (K=32), 1 seed, augmented (%)",
         "–" if s.get("snn_spikes_accuracy") is None else f"{100 * s['snn_spikes_accuracy']:.1f}"),
        ("Inference, predict path (M events/s wall / per CPU-second, 1 thread)",
         f"{s['predict_events_per_s'] / 1e6:.2f} / {s['predict_events_per_cpu_s'] / 1e6:.2f}"),
        ("Inference, forward kernel alone (M events/s wall / per CPU-second)",
         f"{s['kernel_events_per_s'] / 1e6:.2f} / {s['kernel_events_per_cpu_s'] / 1e6:.2f}"),
        ("Inference, leaky network tau 50 ms (M events/s wall / per CPU-second)",
         f"{s['leaky_predict_events_per_s'] / 1e6:.2f} / {s['leaky_predict_events_per_cpu_s'] / 1e6:.2f}"),
        ("Learning on, counts mode (M events/s wall / per CPU-second, 1 thread)",
         f"{pm(s['learn_events_per_s'], 1e-6, '.2f')} / {pm(s['learn_events_per_cpu_s'], 1e-6, '.2f')}"),
        ("Hidden spikes per input event (trained)", f"{s['hidden_spikes_per_event']:.3f}"),
    ]
    head = (f"nmnist_small: 1,000 train / 100 test samples; 2312-{out['hidden']}-10; {out['epochs']} epochs; "
            f"seeds {out['seeds']} (mean ± sd over {n}, then each seed); {out['time']}, load average "
            f"{out['load_average'][0]:.1f} on {out['cpus']} CPUs (speed figures under that load)"
            f"{'; QUICK MODE' if out['quick'] else ''}.\n\n")
    table = "| measure | value |\n|---|---|\n" + "".join(f"| {a} | {b} |\n" for a, b in rows)
    return stamp_line(out["stamp"]) + "\n\n" + head + table


if __name__ == "__main__":
    sys.exit(main())
