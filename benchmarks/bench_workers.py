"""Workers: the pipeline's decisions per second and events per second with pipeline.workers = 1 and 2 (and more).

The daemon's `Pipeline` in this process (no MQTT, a sink that only counts), learning off, fed as fast as it
takes them: (a) the 100 real N-MNIST test samples looped, one decision per sample; (b) the same samples on
one clock cut into the live settings' sliding windows (100 ms every 50 ms, segment.overlap "auto" as the daemon
has it: "chunks", each 50 ms chunk computed once, on any worker, see pipeline/chunkpool.py); (c) that stream played
30 times faster (three times over), as a busy camera fills each chunk (about 0.4 M events per second of sensor time,
19 k events per chunk, against 13 k/s and 600 in (b)). Worker start-up and stopping are excluded (start-up timed
apart; each run is timed to its last decision); every run's decisions are checked equal to the one-worker run's.
Alone: `python -m benchmarks.bench_workers [--quick] [--model M.npz] [--workers 1,2]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

import numpy as np

from .common import Context, NotMeasurable, Result, command_line, machine, write

REPEATS, REPEATS_QUICK = 10, 3


class _Source:
    def __init__(self, batches):
        self.batches = batches

    def __aiter__(self):
        return self._gen()

    async def _gen(self):
        for b in self.batches:
            await asyncio.sleep(0)
            yield b

    async def aclose(self):
        pass


def _count_sink():
    """A sink that keeps each decision's label and scores (the rest of the Sink protocol: stages.QuietSink)."""
    from streamsnn.pipeline.stages import QuietSink

    class Count(QuietSink):
        def __init__(self):
            self.got = []

        def publish_decision(self, window, decision, info) -> None:
            self.got.append((int(decision.label), decision.scores.tobytes()))
            self.last = time.perf_counter()  # the last decision out: the run's end (not the workers' stopping)

    return Count()


def _network(model: Path | None):
    from streamsnn.snn import SpikingNetwork

    net = SpikingNetwork.load(model) if model else SpikingNetwork(classes=10, seed=0, input_shape=(34, 34, 2))
    net.warm_up()
    return net


def _stream(samples, speed: int = 1) -> list:
    """The samples one after the other on one clock (1 ms apart), played `speed` times faster, in 10 ms batches."""
    from streamsnn.events import EventBatch

    parts, t0 = [], 0
    for s in samples:
        ev = s.events.copy()
        ev["t"] = (ev["t"] - ev["t"][0]) // speed + t0
        t0 = int(ev["t"][-1]) + 1000 // speed + 1
        parts.append(ev)
    return EventBatch(np.concatenate(parts), 34, 34, source="stream").split_time(10_000)


def _one(batches, model, workers: int, window: bool) -> dict:
    from streamsnn.pipeline import Pipeline
    from streamsnn.pipeline.segment import Segmenter
    from streamsnn.pipeline.workers import InferencePool

    net = _network(model)
    sink = _count_sink()
    seg = Segmenter("window", 100_000, 50_000, overlap="auto") if window else Segmenter()

    async def go():
        pool = None
        t0 = time.perf_counter()
        if workers > 1:
            pool = InferencePool(net, workers, 1.0)
            await pool.start()
        started = time.perf_counter() - t0
        pipe = Pipeline(_Source(batches), net, [sink], learn_from_labels=False, metrics_every_s=60, segmenter=seg,
                        pool=pool)
        cpu0, t1 = os.times(), time.perf_counter()
        await pipe.run()
        wall = getattr(sink, "last", time.perf_counter()) - t1  # to the last decision: stopping the workers is apart
        cpu1 = os.times()
        m = pipe.metrics()
        return started, wall, cpu1.children_user + cpu1.children_system - cpu0.children_user - cpu0.children_system, m

    started, wall, child_cpu, m = asyncio.run(go())
    events = sum(len(b) for b in batches)
    return {"workers": workers, "decisions": len(sink.got), "events": events, "seconds": wall,
            "events_per_s": events / wall, "decisions_per_s": len(sink.got) / wall, "start_s": started,
            "on_copies": m.get("workers", {}).get("on_copies", 0),
            "chunks": (m.get("workers", {}).get("chunks_on_copies", 0), m.get("workers", {}).get("chunks_on_main", 0)),
            "got": sink.got}


def _predict_all(net_bytes: bytes, batches: list) -> float:
    """In a process: the seconds `predict_one` takes over `batches` (kernels loaded first)."""
    import pickle

    net = pickle.loads(net_bytes)
    net.warm_up()
    net.predict_one(batches[0])
    t0 = time.perf_counter()
    for b in batches:
        net.predict_one(b)
    return time.perf_counter() - t0


def _ceiling(batches, model, n: int) -> float:
    """Events/s of n processes each running `predict_one` over `batches` at once, no pipeline: what this machine
    gives n independent copies of the kernel now (the other load included)."""
    import multiprocessing
    import pickle
    from concurrent.futures import ProcessPoolExecutor

    blob = pickle.dumps(_network(model))
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn")) as ex:
        list(ex.map(_predict_all, [blob] * n, [batches[:2]] * n))  # start and load every process first
        t0 = time.perf_counter()
        list(ex.map(_predict_all, [blob] * n, [batches] * n))
        wall = time.perf_counter() - t0
    return n * sum(len(b) for b in batches) / wall


def run(ctx: Context, model: Path | None = None, counts=(1, 2)) -> Result:
    model = model or ctx.cache.get("model_path")
    samples = ctx.samples("test")
    if not samples:
        raise NotMeasurable("no N-MNIST test samples")
    repeats = REPEATS_QUICK if ctx.quick else REPEATS
    arms = {"samples": (samples * repeats, False), "windows 100/50 ms": (_stream(samples), True),
            # a busy camera: 30x the N-MNIST stream's event rate, ~19 k events per 50 ms chunk instead of ~600
            "windows 100/50 ms, 30x denser": (_stream(samples * (1 if ctx.quick else 3), 30), True)}
    r = Result("workers", "pipeline.workers: decisions and events per second with 1 and 2 worker processes")
    rows = []
    for arm, (batches, window) in arms.items():
        base = None
        for n in counts:
            out = _one(batches, model, n, window)
            same = None if base is None else out["got"] == base["got"]
            base = base or out
            ratio = out["events_per_s"] / base["events_per_s"]
            rows.append([arm, n, out["decisions"], f"{out['events_per_s'] / 1e6:.2f}", f"{out['decisions_per_s']:.0f}",
                         f"{ratio:.2f}", out["on_copies"], "{} / {}".format(*out["chunks"]) if window else "-",
                         f"{out['start_s']:.1f}", "-" if same is None else same])
            r.metric(f"{arm}, {n} workers", round(out["events_per_s"] / 1e6, 3), "M events/s")
    bare = [(n, _ceiling(samples * (1 if ctx.quick else 3), model, n)) for n in counts]
    r.table("The kernel alone in n independent processes at once (no pipeline): what the machine gives now",
            ["processes", "M events/s", "x one"], [[n, f"{v / 1e6:.2f}", f"{v / bare[0][1]:.2f}"] for n, v in bare])
    r.table("Throughput (learning off, as fast as possible)",
            ["input", "workers", "decisions", "M events/s", "decisions/s", "x one worker", "decided by copies",
             "chunks on copies / main", "start-up s", "decisions equal"], rows)
    fresh = "a fresh default network (seed 0), untrained: its spike rates differ from a trained one"
    r.note(f"model: {model or fresh}; "
           f"{os.cpu_count()} cores; NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS')}")
    return r


def main(argv=None) -> int:
    from .common import DATA, ROOT

    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_workers", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--workers", default="1,2", help="worker counts, comma separated (default 1,2)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    stem = "workers" + ("-quick" if args.quick else "")
    ctx = Context(quick=args.quick, out=args.out.resolve(), data=DATA, stem=stem)
    t0 = time.perf_counter()
    res = run(ctx, args.model, tuple(int(x) for x in args.workers.split(",")))
    res.seconds = time.perf_counter() - t0
    out = {"command": command_line(), "quick": args.quick, "machine": machine(), "results": [res.as_dict()],
           "contention": "other processes on the machine were not stopped (see the load average)"}
    js, md = write(out, ctx.out, ctx.stem)
    print(md.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
