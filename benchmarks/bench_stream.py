"""Models that work live: whole-sample and stream accuracy of `streamsnn train`'s default model; the daemon keeping up.

Run with `python -m benchmarks --only stream` (or `--quick`), or alone:
`python -m benchmarks.bench_stream [--quick] [--model M] [--seeds N] [--epochs E] [--arms a,b] [--no-daemon]`.
Without `--model` it trains, through the CLI, once per seed and arm: the default model
(`streamsnn train --data nmnist_small --data SYNTH`, stream transforms on), the same with
`--no-stream-crops`, and real samples only (`--data nmnist_small`). Each model is scored on the 100
real test samples as whole samples and played back to back as one stream at the live settings and
over a grid of decision settings. Then `streamsnn run` classifies that stream replayed at real time
with the live settings (MQTT to a local Mosquitto): the window rate it publishes against the rate
the stream offers, drops, and the per-decision compute and queue times.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import (
    DATA,
    ROOT,
    Context,
    NotMeasurable,
    Result,
    command_line,
    machine,
    percentile,
    stopped,
    streamsnn,
    write,
)

#: The synthetic samples of `streamsnn synth --mnist ../shared/data/mnist --first 101 --out synth`.
SYNTH = Path(os.environ.get("STREAMSNN_SYNTH", ROOT.parent / "synth"))
WINDOWS_US = (50_000, 100_000, 200_000)
HOPS_US = (25_000, 50_000)
TAUS_US = (0, 30_000)  # 0: no leak
SMOOTHS_US = (0, 50_000, 100_000)  # 0: no smoothing
SEEDS = (0, 1, 2)
QUICK_EPOCHS = 2  # --quick trains one seed of the default arm for this many epochs
#: arm -> (uses the synthetic samples, extra `streamsnn train` arguments)
ARMS = {
    "default (real + synthetic, stream transforms)": (True, []),
    "without stream transforms (real + synthetic, --no-stream-crops)": (True, ["--no-stream-crops"]),
    "real only (stream transforms)": (False, []),
}
DEFAULT_ARM = next(iter(ARMS))


def train_model(data: list[Path], seed: int, out: Path, epochs: int | None, extra: list[str]) -> float:
    """`streamsnn train` with its defaults (and `seed`, maybe `epochs`, `extra`); returns the wall seconds."""
    argv = ["train", *[a for d in data for a in ("--data", str(d))], "--seed", str(seed), "--out", str(out),
            "--quiet", *extra]
    if epochs:
        argv += ["--epochs", str(epochs)]
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # its "saved ..." line is not a result
        rc = streamsnn(argv)
    if rc != 0:
        raise RuntimeError(f"streamsnn {' '.join(argv)} failed")
    return time.perf_counter() - t0


def live() -> dict:
    """The live pipelines' decision settings (`streameval.LIVE_*`) as stream_evaluate arguments."""
    from streamsnn.learn.streameval import (
        LIVE_HOP_US,
        LIVE_MIN_EVENTS,
        LIVE_OVERLAP,
        LIVE_SMOOTH_US,
        LIVE_TAU_US,
        LIVE_WINDOW_US,
    )

    return {"window_us": LIVE_WINDOW_US, "hop_us": LIVE_HOP_US, "min_events": LIVE_MIN_EVENTS,
            "tau_us": LIVE_TAU_US, "smooth_us": LIVE_SMOOTH_US, "overlap": LIVE_OVERLAP}


FIGURES = ("stream_accuracy", "decisions", "delay_median_ms", "delay_p90_ms", "never_right", "events_per_s")


def measure(model: Path, data: Path, samples: list, classes: list[str], grid: bool) -> dict:
    """Whole-sample accuracy (as `eval`), the stream figures at the live settings and without smoothing
    (as `eval --stream`), and with `grid` every grid setting (at the live min_events)."""
    from streamsnn.learn.streameval import stream_evaluate
    from streamsnn.learn.training import evaluate, load_split
    from streamsnn.snn import SpikingNetwork

    net = SpikingNetwork.load(model)
    whole = evaluate(net, load_split(data, "test", net, quiet=True))["accuracy"]
    settings = live()
    at_live = stream_evaluate(net, samples, classes=classes, keep_decisions=True, **settings)
    res = {"live": at_live,
           "live_unsmoothed": stream_evaluate(net, samples, classes=classes, **{**settings, "smooth_us": 0})}
    for r in res.values():  # None: no window reached min_events; as a figure, none right
        r["stream_accuracy"] = r["stream_accuracy"] or 0.0
    res = {"whole_accuracy": whole, **{k: {f: v[f] for f in FIGURES} for k, v in res.items()}}
    res["live"].update(straddle(samples, at_live["decision_list"]))
    res["grid"] = {}
    if grid:
        for w in WINDOWS_US:
            for h in HOPS_US:
                for tau in TAUS_US:
                    for sm in sorted({*SMOOTHS_US, settings["smooth_us"]}):
                        r = stream_evaluate(net, samples, window_us=w, hop_us=h, tau_us=tau, smooth_us=sm,
                                            min_events=settings["min_events"], classes=classes,
                                            overlap=settings["overlap"] if w % h == 0 else "repeat")
                        res["grid"][(w, h, tau, sm)] = {f: r[f] for f in FIGURES}
                        res["grid"][(w, h, tau, sm)]["stream_accuracy"] = r["stream_accuracy"] or 0.0
    return res


def straddle(samples: list, decisions: list) -> dict:
    """How the decisions whose window spans a boundary between two samples fare against the others."""
    from streamsnn.learn.streameval import make_stream

    st = make_stream(samples)
    inner = np.searchsorted(st.ends, [d["t_start_us"] for d in decisions], side="right")
    across = np.array([k + 1 < len(st.starts) and d["t_end_us"] > st.starts[k + 1]
                       for k, d in zip(inner, decisions)], bool)
    ok = np.array([d["correct"] for d in decisions], bool)
    return {"straddling": int(across.sum()), "straddling_accuracy": float(ok[across].mean()) if across.any() else None,
            "inside_accuracy": float(ok[~across].mean()) if (~across).any() else None,
            "errors_straddling": int((~ok & across).sum()), "errors": int((~ok).sum())}


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _per(values, spec=".3f") -> str:
    return " / ".join("-" if v is None else format(v, spec) for v in values)


def run(ctx: Context, seeds: tuple[int, ...] | None = None, epochs: int | None = None,
        arms: list[str] | None = None, daemon: bool = True, keep_models: Path | None = None) -> Result:
    from streamsnn.io.dataset import open_dataset

    data = ctx.nmnist
    samples = ctx.samples("test")
    classes = list(open_dataset(data).classes)
    given = ctx.cache.get("model_path")
    full = not ctx.quick and given is None and seeds is None and epochs is None
    seeds = seeds or ((0,) if ctx.quick else SEEDS)
    epochs = epochs or (QUICK_EPOCHS if ctx.quick else None)
    arms = arms or ([DEFAULT_ARM] if ctx.quick else list(ARMS))
    if any(ARMS[a][0] for a in arms) and not given and not SYNTH.is_dir():
        raise NotMeasurable(f"synthetic samples not found in {SYNTH}: run `streamsnn synth --mnist "
                            f"../shared/data/mnist --first 101 --out {SYNTH}` or set STREAMSNN_SYNTH")
    settings = live()
    what = (f"the model {given}" if given else
            f"`streamsnn train` defaults{f' with --epochs {epochs}' if epochs else ''}, seeds {list(seeds)}")
    r = Result("stream", f"Models that work live: {what}")
    results: dict[str, list] = {}
    train_s: dict[str, list] = {}
    keep = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    try:
        daemon_model = None
        if given:
            results["given"] = [measure(Path(given), data, samples, classes, grid=True)]
            daemon_model = Path(given)
        else:
            for arm in arms:
                synth, extra = ARMS[arm]
                folders = [data, SYNTH] if synth else [data]
                for seed in seeds:
                    path = keep / f"{len(results)}-{seed}.npz"
                    train_s.setdefault(arm, []).append(train_model(folders, seed, path, epochs, extra))
                    results.setdefault(arm, []).append(measure(path, data, samples, classes, grid=arm == DEFAULT_ARM))
                    if keep_models is not None:
                        keep_models.mkdir(parents=True, exist_ok=True)
                        shutil.copy(path, keep_models / f"{list(ARMS).index(arm) + 1}-{seed}.npz")  # arm number
                    if arm == DEFAULT_ARM and daemon_model is None:
                        daemon_model = path
                    print(f"{arm}, seed {seed}: whole {results[arm][-1]['whole_accuracy']:.3f}, stream "
                          f"{results[arm][-1]['live']['stream_accuracy']:.3f}", file=sys.stderr, flush=True)
        report_models(r, results, train_s, settings, full)
        if daemon and daemon_model is not None:
            keeps_up(r, ctx, daemon_model, samples, keep)
    finally:
        shutil.rmtree(keep, ignore_errors=True)
    span = sum(s.duration_us + 1 for s in samples) / 1e6
    r.note(f"Stream: nmnist_small's 100 test samples joined without gaps ({span:.1f} s, "
           f"{sum(len(s) for s in samples):,} events), as `streamsnn eval --stream`; a decision is scored against "
           "the sample covering most of its window; delay: from a sample's start to the end of the first window "
           "scored against it that names its class. Settings chosen on a validation stream of held-out training "
           "samples (benchmarks/tune_stream.py), never on this test stream.")
    if ctx.quick and not given:
        r.note(f"quick: one seed of the default arm, {QUICK_EPOCHS} epochs; targets are judged only on full runs")
    return r


def _live_name(s: dict) -> str:
    tau = "no leak" if not s["tau_us"] else f"leak {s['tau_us'] / 1000:g} ms"
    sm = "no smoothing" if not s["smooth_us"] else f"smoothing {s['smooth_us'] / 1000:g} ms"
    return (f"{s['window_us'] // 1000} ms windows every {s['hop_us'] // 1000} ms, min {s['min_events']} events, "
            f"{tau}, {sm}, overlap {s.get('overlap', 'repeat')}")


def report_models(r: Result, results: dict, train_s: dict, settings: dict, full: bool) -> None:
    name = _live_name(settings)
    rows = []
    for arm, runs in results.items():
        acc = _mean([x["live"]["stream_accuracy"] for x in runs])
        rows.append([arm, _mean([x["whole_accuracy"] for x in runs]), _per([x["whole_accuracy"] for x in runs]),
                     acc, _per([x["live"]["stream_accuracy"] for x in runs]),
                     _mean([x["live_unsmoothed"]["stream_accuracy"] for x in runs]),
                     _mean([x["live"]["delay_median_ms"] for x in runs]),
                     _mean([x["live"]["delay_p90_ms"] for x in runs]),
                     _mean([x["live"]["never_right"] for x in runs]),
                     _mean([x["live"]["inside_accuracy"] for x in runs]),
                     _mean([x["live"]["straddling_accuracy"] for x in runs]),
                     f"{sum(x['live']['errors_straddling'] for x in runs)} of {sum(x['live']['errors'] for x in runs)}",
                     _mean(train_s.get(arm, [None]))])
    r.table(f"Per arm (means over seeds; live settings: {name})",
            ["model", "whole-sample accuracy", "per seed", "stream accuracy", "per seed",
             "stream accuracy without smoothing", "delay median ms", "delay p90 ms", "samples never right",
             "accuracy, windows inside one sample", "accuracy, windows across a boundary",
             "errors across a boundary (all seeds)", "training s"], rows)
    main_arm = DEFAULT_ARM if DEFAULT_ARM in results else next(iter(results))
    runs = results[main_arm]
    whole = _mean([x["whole_accuracy"] for x in runs])
    acc = _mean([x["live"]["stream_accuracy"] for x in runs])
    delay = _mean([x["live"]["delay_median_ms"] for x in runs])
    r.metric("whole-sample test accuracy (eval), default model", whole, "", target="~0.99" if full
             else None, met=whole >= 0.985 if full else None)
    r.metric(f"stream accuracy, default model, live settings ({name})", acc, "", target=">= 0.90" if full else None,
             met=acc >= 0.90 if full else None)
    r.metric("median delay to the first right decision, live settings", delay, "ms",
             target="<= 150 ms" if full else None, met=(delay is not None and delay <= 150) if full else None)
    r.metric("p90 delay to the first right decision, live settings",
             _mean([x["live"]["delay_p90_ms"] for x in runs]), "ms")
    if train_s.get(main_arm):
        r.metric("training time per default model", _mean(train_s[main_arm]), "s")
    if not runs[0]["grid"]:
        return
    grid_rows = []
    for key in runs[0]["grid"]:
        cells = [x["grid"][key] for x in runs]
        grid_rows.append([key[0] // 1000, key[1] // 1000, "off" if not key[2] else key[2] // 1000,
                          "off" if not key[3] else key[3] // 1000, _mean([c["stream_accuracy"] for c in cells]),
                          _per([c["stream_accuracy"] for c in cells]), _mean([c["delay_median_ms"] for c in cells]),
                          _mean([c["delay_p90_ms"] for c in cells]), _mean([c["never_right"] for c in cells]),
                          cells[0]["decisions"], _mean([c["events_per_s"] for c in cells])])
    r.table(f"Grid, {main_arm} (min {settings['min_events']} events per window)",
            ["window ms", "hop ms", "leak τ ms", "smoothing ms", "stream accuracy", "per model", "delay median ms",
             "delay p90 ms", "samples never right", "decisions", "stream events/s"], grid_rows)
    r.note("stream events/s: events of the stream per wall second of segmenting and deciding (one thread); "
           "overlapping windows feed each event window/hop times.")


def write_stream_recording(samples: list, path: Path) -> None:
    """The samples joined as `eval --stream` joins them, as one AEDAT4 recording (dv-processing)."""
    import dv_processing as dv

    from streamsnn.learn.streameval import make_stream
    from streamsnn.sources._dv import array_to_store

    st = make_stream(samples)
    ev = np.concatenate([b.events for b in st.batches])
    writer = dv.io.MonoCameraWriter(str(path), dv.io.MonoCameraWriter.EventOnlyConfig("bench", (34, 34)))
    writer.writeEvents(array_to_store(ev))
    del writer  # closes the file


def keeps_up(r: Result, ctx: Context, model: Path, samples: list, tmp: Path) -> None:
    """`streamsnn run pipelines/live-camera.toml` on the test stream replayed at real time (a recording in
    place of the camera), publishing to Mosquitto; rates from what a subscriber receives."""
    from .bench_e2e import daemon_command, mosquitto, shown, subscribed, wait_process

    rec = tmp / "test-stream.aedat4"
    write_stream_recording(samples, rec)
    ckpt = tmp / "daemon.npz"
    shutil.copy(model, ckpt)  # the daemon saves its checkpoint at exit
    s = live()
    overrides = ["source.kind=replay", f"source.path={rec}", "source.speed=1", "source.chunk_us=10000",
                 f"model.checkpoint={ckpt}", "model.save_every_s=0", "pipeline.metrics_every_s=1"]
    broker = mosquitto(tmp)
    try:
        port = broker.port
        cmd = daemon_command("pipelines/live-camera.toml", port, overrides)

        async def go():
            async with subscribed(port) as sub:
                t0 = time.monotonic()
                proc = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                code = await wait_process(proc, 300)
                await asyncio.sleep(1.0)
                return sub, code, proc, time.monotonic() - t0

        sub, code, proc, wall = asyncio.run(go())
    finally:
        broker.stop()
    if code != 0:
        raise NotMeasurable(f"`{shown(cmd, tmp)}` exited {code}: {proc.stderr.read().strip()[-300:]}")
    dec = [p for _, p in sub.decisions()]
    metrics = [p for _, p in sub.metrics()]
    if len(dec) < 10 or not metrics:
        raise NotMeasurable(f"the subscriber got {len(dec)} decisions and {len(metrics)} metrics messages")
    t_end = np.array([p["t_end_us"] for p in dec], np.int64)
    span_s = (t_end[-1] - t_end[0]) / 1e6
    published = (len(dec) - 1) / span_s if span_s > 0 else 0.0
    expected = 1e6 / s["hop_us"]
    last = metrics[-1]
    queue = np.array([p["queue_ms"] for p in dec])
    compute = np.array([p["compute_ms"] for p in dec])
    span = sum(x.duration_us + 1 for x in samples) / 1e6
    drops = int(last.get("drops", 0))
    r.metric("daemon: decisions published per second of stream time (live settings, real-time replay)",
             published, "/s", target=f"= {expected:g}/s (one per hop), no drops",
             met=abs(published - expected) <= 0.02 * expected and drops == 0)
    r.metric("daemon: windows dropped", drops, "")
    r.metric("daemon: compute time per decision, median / p99", f"{np.median(compute):.2f} / "
             f"{percentile(compute, 99):.2f}", "ms")
    r.metric("daemon: queue time per decision, median / p99",
             f"{np.median(queue):.2f} / {percentile(queue, 99):.2f}", "ms")
    r.table("`streamsnn run` on the test stream at real time",
            ["stream s", "wall s (start to exit)", "decisions", "expected (one per hop)", "decisions/s", "drops",
             "compute ms median", "compute ms p99", "queue ms median", "queue ms p99", "deepest window queue"],
            [[round(span, 1), round(wall, 1), len(dec), int(span * expected), published, drops,
              float(np.median(compute)), percentile(compute, 99), float(np.median(queue)), percentile(queue, 99),
              max((m.get("queues", {}).get("windows", 0) for m in metrics), default=None)]])
    r.note(f"Daemon run: `{shown(cmd, tmp)}` ($TMP/test-stream.aedat4: the test stream written as one AEDAT4 "
           "recording; replay delivers it in 10 ms chunks on real-time deadlines, as a camera would). "
           "Decisions/s: decisions received by a subscriber over the stream time they span.")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_stream", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help=f"one seed of the default arm, {QUICK_EPOCHS} epochs")
    p.add_argument("--model", type=Path, help="evaluate this checkpoint instead of training")
    p.add_argument("--seeds", type=int, default=None, help="train this many seeds (default 3, 1 with --quick)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: train's)")
    p.add_argument("--arms", default=None, help="comma-separated arm numbers (1-based) of: " + "; ".join(ARMS))
    p.add_argument("--no-daemon", action="store_true", help="skip the `streamsnn run` measurement")
    p.add_argument("--keep-models", type=Path, default=None, metavar="DIR",
                   help="copy every trained model there as ARM-SEED.npz, ARM the arm's number (e.g. 1-0.npz: the "
                        "README's training command, seed 0, for bench_kernel / bench_live --model)")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    ctx = Context(quick=args.quick, out=args.out.resolve(), data=args.data.resolve())
    if args.model:
        ctx.cache["model_path"] = args.model.resolve()
    arms = [list(ARMS)[int(a) - 1] for a in args.arms.split(",")] if args.arms else None
    run_info = {"command": command_line().replace("python -m benchmarks", "python -m benchmarks.bench_stream", 1),
                "quick": args.quick, "machine": machine(),
                "contention": "Other work may share the machine (see the load average): events/s are lower bounds.",
                "results": []}
    t0 = time.perf_counter()
    try:
        result = run(ctx, tuple(range(args.seeds)) if args.seeds else None, args.epochs, arms, not args.no_daemon,
                     args.keep_models)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM while a streamsnn command ran (Interrupted)
        return stopped("bench_stream", exc, "no results written")
    result.seconds = time.perf_counter() - t0
    run_info["results"].append(result.as_dict())
    js, md = write(run_info, ctx.out, "stream" + ("-quick" if args.quick else ""))
    print(md.read_text())
    print(f"wrote {js} and {md}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
