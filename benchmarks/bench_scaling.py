"""Scaling: inference throughput and cost per event as hidden width and input event rate grow (table + PNG)."""

from __future__ import annotations

import numpy as np

from .bench_ops import online_net, time_predict
from .common import Context, Result, Timer

WIDTHS = (100, 200, 400, 800, 1600)
#: Input event rate relative to the recording: <1 keeps a random subset, >1 repeats each event.
RATE_FACTORS = (0.25, 0.5, 1, 2, 4)


def resample(batch, factor: float, rng: np.random.Generator):
    """The same sample with `factor` times as many events over the same time span."""
    ev = batch.events
    if factor < 1:
        keep = np.sort(rng.choice(len(ev), size=max(1, round(len(ev) * factor)), replace=False))
        return batch.with_events(ev[keep])
    return batch.with_events(np.repeat(ev, int(factor)))


def run(ctx: Context) -> Result:
    from streamsnn.snn import SpikingNetwork

    r = Result("scaling", "Scaling: inference throughput vs hidden width and input event rate")
    test = ctx.samples("test")
    train = ctx.samples("train", 100 if ctx.quick else 300)
    repeats = 3 if ctx.quick else 7
    events = sum(len(b) for b in test)

    SpikingNetwork((2312, 100, 10), seed=1).learn_one(train[0], train[0].label)  # load/compile kernels
    rows_w = []
    for h in WIDTHS:
        net = SpikingNetwork((2312, h, 10), seed=0)
        with Timer() as t:
            for b in train:
                net.learn_one(b, b.label)
        res = time_predict(net, test, repeats)
        rate = events / res["best"]
        spikes = sum(d.spikes[0] for d in res["decisions"]) / len(test)
        acc = float(np.mean([d.label == b.label for d, b in zip(res["decisions"], test)]))
        rows_w.append([h, rate, 1e9 / rate, 1e9 / rate / h, spikes, acc, sum(len(b) for b in train) / t.seconds])
    r.table("hidden width (2312-H-10, one online pass over "
            f"{len(train)} training samples, then inference on the {len(test)} test samples)",
            ["hidden units", "inference events/s", "ns per event", "ns per event per hidden unit",
             "hidden spikes per sample", "test accuracy", "learning events/s"], rows_w)

    net = online_net(ctx)
    rng = np.random.default_rng(0)
    rows_r = []
    for f in RATE_FACTORS:
        batches = [resample(b, f, rng) for b in test]
        n = sum(len(b) for b in batches)
        sensor_s = sum(max(b.duration_us, 1) for b in batches) / 1e6
        res = time_predict(net, batches, repeats)
        rate = n / res["best"]
        spikes = sum(d.spikes[0] for d in res["decisions"]) / len(batches)
        rows_r.append([f, n / sensor_s, n / len(batches), rate, 1e9 / rate, spikes])
    r.table("input event rate (2312-800-10 trained online; events subsampled or each repeated, same time span)",
            ["factor", "input events per sensor second", "events per sample", "inference events/s",
             "ns per event", "hidden spikes per sample"], rows_r)
    r.note(f"Best of {repeats} passes (the one least disturbed by other load), one thread, predict_one one "
           "sample at a time.")

    try:
        r.files.append(plot(ctx, rows_w, rows_r))
    except ImportError as exc:
        r.note(f"no plot: {exc} (install the bench extra)")
    return r


def plot(ctx: Context, rows_w, rows_r) -> str:
    """Write `scaling.png` (`scaling-quick.png` in quick mode) beside the results; returns its name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, rows, xi, xlabel in ((axes[0], rows_w, 0, "hidden units"),
                                 (axes[1], rows_r, 1, "input events per second of sensor time")):
        x = [row[xi] for row in rows]
        rate = [row[3 if rows is rows_r else 1] / 1e6 for row in rows]
        ns = [row[4 if rows is rows_r else 2] for row in rows]
        ax.plot(x, rate, "o-", color="tab:blue", label="inference (M events/s)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(x, [f"{v:,.0f}" for v in x])
        ax.minorticks_off()
        ax.set_xlabel(xlabel)
        ax.set_ylabel("million input events per second", color="tab:blue")
        ax.set_ylim(bottom=0)
        ax2 = ax.twinx()
        ax2.plot(x, ns, "s--", color="tab:red", label="ns per event")
        ax2.set_ylabel("ns per event", color="tab:red")
        ax2.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].set_title("2312-H-10, one thread")
    axes[1].set_title("2312-800-10, event rate scaled")
    fig.suptitle("streamsnn event-driven inference (" + ctx.cache.get("machine_line", "") + ")", fontsize=9)
    fig.tight_layout()
    ctx.out.mkdir(parents=True, exist_ok=True)
    name = "scaling-quick.png" if ctx.quick else "scaling.png"
    fig.savefig(ctx.out / name, dpi=110)
    plt.close(fig)
    return name
