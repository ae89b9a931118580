"""Input delays: a delay model's inference (whole samples and the continuous stream), the merging delay line
against the sorting one it replaced, one core, in one run.

    python -m benchmarks.bench_delays [--model M.npz --data DIR] [--repeats R] [--quick]
    # or: python -m benchmarks --only delays

A model with input delays (`snn/delays.py`) feeds its first layer every delayed copy in time order. The delay line
merges the pending copies and the K copies of a call's events (each already in time order) in one linear pass
(`delays.merge_runs`); before, it sorted them all (`delays.delayed`, a stable argsort) and cut at the last
event. Both arms run the same model on the same test split, interleaved in every repeat, one thread, CPU time
(`time.thread_time`, which other processes on a shared machine add to only through shared caches):
- whole samples: `predict_indices` one sample at a time from a fresh state, as `streamsnn eval` scores them;
- the stream: `streameval.stream_evaluate` (the live settings; a leaky model gets each event once, its state and
  its pending copies carried across windows), as `streamsnn eval --stream` and the daemon run it;
their input events per CPU-second (medians), the ratio merging / sorting (median of each repeat's own ratio), the
delay line's own share of the time, and whether both arms gave the very same decisions and scores.
Without --model: a small gesture set (`streamsnn synth --gestures --count 10 --test-count 5`) and a model trained on
it for 3 epochs (`train --choose off`, which gives it 3 input delays; about a minute). Writes delays[-quick].json/.md.
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from .common import DATA, ROOT, Context, NotMeasurable, Result, run_alone, streamsnn  # noqa: E402

REPEATS, QUICK_REPEATS = 7, 3


class SortingLine:
    """The delay line as it was before the merge (its whole algorithm, kept here to measure against): the pending
    copies held as copies, and every call's copies and the pending ones sorted (stable), cut at its last event."""

    def __init__(self, n_in: int, copies: int, delay_us: int):
        self.n_in, self.copies, self.delay_us = n_in, copies, delay_us
        self.reset()

    def reset(self) -> None:
        self.idx, self.t, self.now = np.zeros(0, np.int32), np.zeros(0, np.int64), None

    def take(self, idx, t):
        from streamsnn.snn.delays import delayed

        if not len(idx):
            return np.zeros(0, np.int32), np.zeros(0, np.int64)
        if self.now is not None and int(t[0]) < self.now:
            self.reset()
        ii, tt = delayed(idx, t, self.n_in, self.copies, self.delay_us, (self.idx, self.t))
        self.now = int(t[-1])
        cut = int(np.searchsorted(tt, self.now, side="right"))
        self.idx, self.t = ii[cut:].copy(), tt[cut:].copy()
        return np.ascontiguousarray(ii[:cut]), np.ascontiguousarray(tt[:cut])

    def save(self) -> tuple:
        return self.idx.copy(), self.t.copy(), self.now

    def restore(self, saved: tuple) -> None:
        self.idx, self.t, self.now = saved


def sorting_line(line) -> SortingLine:
    """A `SortingLine` with the copies of the delay line `line`."""
    return SortingLine(line.n_in, line.copies, line.delay_us)


def timed(line, clock: list):
    """`line` with its `take` adding its own CPU seconds to ``clock[0]``."""
    take = line.take

    def counted(idx, t):
        c0 = time.thread_time()
        try:
            return take(idx, t)
        finally:
            clock[0] += time.thread_time() - c0

    line.take = counted
    return line


def small_model(tmp: Path) -> tuple[Path, Path]:
    """A small gesture set and a model with input delays trained on it (see the module doc)."""
    data, model = tmp / "gestures", tmp / "gestures.npz"
    if streamsnn(["synth", "--gestures", "--out", str(data), "--quiet", "--count", "10", "--test-count", "5"]) != 0:
        raise NotMeasurable("streamsnn synth --gestures failed")
    if streamsnn(["train", "--data", str(data), "--out", str(model), "--epochs", "3", "--choose", "off"]) != 0:
        raise NotMeasurable("streamsnn train failed")
    return model, data


def measure(model: Path, data: Path, repeats: int) -> Result:
    from streamsnn.learn.streameval import load_samples, stream_evaluate
    from streamsnn.learn.training import load_split
    from streamsnn.snn import SpikingNetwork

    net = SpikingNetwork.load(model)
    if net.input_map.delays < 2:
        raise NotMeasurable(f"{model} has no input delays (InputMap.delays = 1)")
    test = load_split(data, "test", net, quiet=True)
    batches, classes, _ = load_samples(data, "test")
    merging = net.delay_line
    arms = {"merging": merging, "sorting": sorting_line(merging)}
    clocks = {name: [0.0] for name in arms}
    for name, line in arms.items():
        timed(line, clocks[name])
    net.warm_up()

    def whole():
        out, events = [], 0
        c0 = time.thread_time()
        for k in range(len(test)):
            net.reset()
            d = net.predict_indices(test.idx[k], test.t[k], count=False)
            out.append(d.scores)
            events += d.events
        return events / (time.thread_time() - c0), np.array(out)

    def stream():
        c0 = time.thread_time()
        res = stream_evaluate(net, batches, classes=classes, keep_decisions=True)
        return res["events"] / (time.thread_time() - c0), [(d["t_end_us"], d["label"]) for d in res["decision_list"]]

    rates = {(name, part): [] for name in arms for part in ("whole", "stream")}
    shares = {(name, part): [] for name in arms for part in ("whole", "stream")}
    same = {"whole": True, "stream": True}
    for r in range(repeats + 1):  # the first round warms the caches and is not counted
        seen = {}
        for name, line in arms.items():
            net.delay_line = line
            for part, fn in (("whole", whole), ("stream", stream)):
                clocks[name][0] = 0.0
                c0 = time.thread_time()
                rate, got = fn()
                spent = time.thread_time() - c0
                seen[(name, part)] = got
                if r:
                    rates[(name, part)].append(rate)
                    shares[(name, part)].append(clocks[name][0] / spent)
        same["whole"] &= bool(np.array_equal(seen[("merging", "whole")], seen[("sorting", "whole")]))
        same["stream"] &= seen[("merging", "stream")] == seen[("sorting", "stream")]
    net.delay_line = merging
    r = Result("delays", f"Input delays: the merging delay line against the sorting one ({net.arch}, "
                         f"{net.input_map.delays} copies {net.input_map.delay_us / 1000:g} ms apart, {net.learning})")
    rows = []
    for part, what in (("whole", "whole samples (predict_indices, fresh state each)"),
                       ("stream", "the stream (stream_evaluate, state carried)")):
        ratio = float(np.median(np.array(rates[("merging", part)]) / np.array(rates[("sorting", part)])))
        rows.append([what, f"{np.median(rates[('sorting', part)]) / 1e6:.3f}",
                     f"{np.median(rates[('merging', part)]) / 1e6:.3f}", f"{ratio:.3f}",
                     f"{100 * np.median(shares[('sorting', part)]):.1f}",
                     f"{100 * np.median(shares[('merging', part)]):.1f}", "yes" if same[part] else "**no**"])
        r.metric(f"{part}: merging / sorting, input events per CPU-second", ratio, "")
        r.metric(f"{part}: same decisions and scores", "yes" if same[part] else "no", "", target="yes", met=same[part])
    r.table("Input events per CPU-second, one thread (medians over the repeats)",
            ["path", "sorting M/s", "merging M/s", "ratio (median of each repeat's)", "delay line % (sorting)",
             "delay line % (merging)", "same decisions and scores"], rows)
    r.note(f"Model {model.name}, test split of {data}: {len(test)} samples, "
           f"{sum(len(i) for i in test.idx):,} input events; {repeats} repeats after a warm-up round, the arms "
           "interleaved in each. The rest of the time is the network's own layers (the same in both arms).")
    return r


def run(ctx: Context) -> Result:
    repeats = ctx.cache.get("repeats") or (QUICK_REPEATS if ctx.quick else REPEATS)
    model, data = ctx.cache.get("model"), ctx.cache.get("delay_data")
    if model is not None:
        if data is None:
            raise NotMeasurable("--model needs --data (the dataset folder whose test split to run)")
        return measure(Path(model), Path(data), repeats)
    with tempfile.TemporaryDirectory() as tmp:
        model, data = small_model(Path(tmp))
        res = measure(model, data, repeats)
        res.note("The model: a small gesture set (10 training and 5 test samples per class) trained for 3 epochs; "
                 "a trained default spikes more, so its layers take a larger share than here.")
        return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_delays", description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="a checkpoint with input delays (default: a small one trained here)")
    p.add_argument("--data", type=Path, help="the dataset folder of --model (its test split is run)")
    p.add_argument("--repeats", type=int, help=f"repeats (default {REPEATS}; {QUICK_REPEATS} with --quick)")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_REPEATS} repeats")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    a = p.parse_args(argv)
    ctx = Context(quick=a.quick, out=a.out.resolve(), data=DATA, stem="delays" + ("-quick" if a.quick else ""))
    for key, value in (("model", a.model), ("delay_data", a.data), ("repeats", a.repeats)):
        if value:
            ctx.cache[key] = value
    return run_alone("python -m benchmarks.bench_delays", ctx, lambda: run(ctx), argv=argv, label="bench_delays",
                     contention="Ratios are measured within each repeat; events/s depend on load (shared machine).",
                     unmeasurable=("delays", "Input delays"))


if __name__ == "__main__":
    sys.exit(main())
