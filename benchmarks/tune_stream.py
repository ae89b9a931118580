"""Choosing the stream transforms and the live decision settings on a validation stream (never the test split).

`python -m benchmarks.tune_stream [--epochs E] [--arms A,B] [--seed S]` trains the default deep
network on the real N-MNIST training samples minus a fixed validation tenth (every tenth sample,
`deep_train.validation_split`) plus the synthetic samples, once per arm (stream transforms on or off,
with their shares), then plays the 100 held-out real training samples back to back as one stream
and scores every grid setting (window, hop, leak, smoothing, min_events) with `stream_evaluate`.
Writes benchmarks/results/stream-tune.{json,md}.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

from .common import DATA, ROOT, Result, command_line, machine, write

SYNTH = Path("/work/synth")
#: Arms: name -> (StreamCrops arguments or None for whole samples only, SpikingNetwork arguments).
ARMS = {
    "whole": (None, {}),
    "crops": ({"whole": 0.4, "crossing": 0.2}, {}),
    "crops-lr1": ({"whole": 0.4, "crossing": 0.2}, {"lr": 0.001}),
    "crops-act": ({"whole": 0.4, "crossing": 0.2}, {"activity": 1e-4}),
    "crops-more-lr1": ({"whole": 0.2, "crossing": 0.3}, {"lr": 0.001}),
    "whole-lr1": (None, {"lr": 0.001}),
}
WINDOWS_US = (50_000, 100_000, 150_000, 200_000)
HOPS_US = (25_000, 50_000)
TAUS_US = (0, 30_000)
SMOOTH_US = (0, 50_000, 100_000, 200_000)
MIN_EVENTS = (100, 200, 400)


def train_arm(arm: tuple, train, *, epochs: int, seed: int):
    from streamsnn.learn.augment import StreamCrops
    from streamsnn.learn.training import Augment, train_epoch
    from streamsnn.snn import SpikingNetwork

    from .deep_train import AUGMENT

    crops, settings = arm
    net = SpikingNetwork(seed=seed, **settings)
    stream = StreamCrops(**crops) if crops is not None else None
    t0 = time.perf_counter()
    for ep in range(epochs):
        r = train_epoch(net, train, epoch=ep, epochs=epochs, seed=seed, augment=Augment(**AUGMENT), stream=stream,
                        quiet=True)
        print(f"  epoch {ep + 1}: train {r['accuracy']:.3f}, {r['seconds']:.0f} s", file=sys.stderr, flush=True)
        if not all(np.isfinite(w).all() for w in net.weights):
            return None, time.perf_counter() - t0
    return net, time.perf_counter() - t0


def grid(net, samples, classes) -> dict:
    """Every grid setting's figures. The network runs once per (window, hop, leak) at the lowest
    min_events; higher min_events drop the windows with fewer events, and smoothing folds the kept
    windows' scores with a fresh `Decider`, as `stream_evaluate` would (the same decisions, cheaper)."""
    from streamsnn.learn.streameval import make_stream, model_classes, play, score, targets
    from streamsnn.pipeline.decide import Decider

    stream = make_stream(samples)
    names = list(classes)
    out = {}
    for w, h, tau in itertools.product(WINDOWS_US, HOPS_US, TAUS_US):
        if h > w:
            continue
        saved = net.tau_us
        net.tau_us = float(tau) if tau else None
        try:
            net.reset()
            pairs, _ = play(net, stream, window_us=w, hop_us=h, min_events=min(MIN_EVENTS))
        finally:
            net.tau_us = saved
            net.reset()
        for me, sm in itertools.product(MIN_EVENTS, SMOOTH_US):
            dec = Decider(sm)
            kept = [(win, d) for win, d in pairs if d.events >= me]
            if sm:
                kept = [(win, _smoothed(dec, win, d)) for win, d in kept]
            r = score(stream, kept, targets(net, names, len(names)), names, model_classes(net))
            out[(w, h, tau, sm, me)] = {k: r[k] for k in ("stream_accuracy", "decisions", "delay_median_ms",
                                                          "delay_p90_ms", "never_right")}
            out[(w, h, tau, sm, me)]["stream_accuracy"] = r["stream_accuracy"] or 0.0  # None: no decision at all
    return out


def _smoothed(dec, win, d):
    from dataclasses import replace

    mean = dec.smooth(win.t_end_us, d.scores)
    return replace(d, label=int(np.argmax(mean)), scores=mean)


def main(argv=None) -> int:
    from streamsnn.learn.streameval import load_samples
    from streamsnn.learn.training import evaluate

    from .deep_train import load_data, validation_split

    p = argparse.ArgumentParser(prog="python -m benchmarks.tune_stream", description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--synth", type=Path, default=SYNTH)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    t_start = time.perf_counter()
    nmnist = DATA / "nmnist_small"
    real, _test, syn = load_data(nmnist, args.synth)
    fit, val = validation_split(real)
    train = fit + syn
    batches, classes, _ = load_samples(nmnist, "train")
    val_ids = set(val.ids)
    val_samples = [b for b in batches if b.sample in val_ids]
    assert len(val_samples) == len(val), (len(val_samples), len(val))
    r = Result("stream-tune", f"Stream transforms and decision settings on a validation stream "
                              f"({len(val_samples)} held-out real training samples), seed {args.seed}")
    rows, best_rows = [], []
    for arm in args.arms.split(","):
        try:
            net, secs = train_arm(ARMS[arm], train, epochs=args.epochs, seed=args.seed)
        except (OverflowError, FloatingPointError) as exc:
            net, secs = None, float("nan")
            print(f"{arm}: {exc}", file=sys.stderr)
        if net is None:
            print(f"{arm}: diverged (weights not finite)", file=sys.stderr, flush=True)
            best_rows.append([arm, None, secs, None, "diverged", None])
            continue
        whole = evaluate(net, val)["accuracy"]
        g = grid(net, val_samples, classes)
        print(f"{arm}: whole {whole:.3f}, {secs:.0f} s, best {max(v['stream_accuracy'] for v in g.values()):.3f}",
              file=sys.stderr, flush=True)
        for key, v in sorted(g.items(), key=lambda kv: -kv[1]["stream_accuracy"]):
            rows.append([arm, key[0] // 1000, key[1] // 1000, key[2] // 1000 or "off", key[3] // 1000 or "off",
                         key[4], v["stream_accuracy"], v["delay_median_ms"], v["delay_p90_ms"], v["never_right"],
                         v["decisions"]])
        top = max(g, key=lambda k: g[k]["stream_accuracy"])
        best_rows.append([arm, whole, round(secs), g[top]["stream_accuracy"], str(top),
                          g.get((100_000, 50_000, 0, 0, 200), {}).get("stream_accuracy")])
    r.table("Per arm: validation whole-sample accuracy, training time, best grid setting "
            "(window, hop, tau, smooth, min_events in us/events)",
            ["arm", "whole accuracy", "train s", "best stream accuracy", "best setting",
             "stream accuracy 100/50 ms, no leak, no smoothing, min 200"], best_rows)
    r.table("Every grid setting (sorted by stream accuracy within an arm)",
            ["arm", "window ms", "hop ms", "leak ms", "smooth ms", "min events", "stream accuracy",
             "delay median ms", "delay p90 ms", "never right", "decisions"], rows)
    r.note(f"arms: {ARMS}; {args.epochs} epochs on {len(train)} samples (real minus validation, plus synthetic)")
    r.seconds = time.perf_counter() - t_start
    run = {"command": command_line().replace("python -m benchmarks", "python -m benchmarks.tune_stream", 1),
           "quick": False, "machine": machine(), "results": [r.as_dict()],
           "contention": "Other work shares the machine (see the load average): seconds are upper bounds."}
    js, md = write(run, args.out, f"stream-tune-{args.arms.replace(',', '-')}-s{args.seed}")
    print(f"wrote {js} and {md}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
