"""Inference against the snnTorch peer, synaptic operations per sample, and learning throughput."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import ROOT, Context, Result, Timer

SIZES = (2312, 800, 10)


# -- the network under test ---------------------------------------------------------------------
def online_net(ctx: Context):
    """A 2312-800-10 network after one online pass (learn_one) over the training split.

    Timed on the way, so the learning figures come from the same pass. With `--model` the
    given checkpoint is used for inference instead (the pass still runs for the learning figures).
    """
    if "online_net" not in ctx.cache:
        from streamsnn.snn import SpikingNetwork

        train = ctx.samples("train", 300 if ctx.quick else None)
        SpikingNetwork(SIZES, seed=1).learn_one(train[0], train[0].label)  # load/compile the kernels
        net = SpikingNetwork(SIZES, seed=0)
        with Timer() as t:
            for b in train:
                net.learn_one(b, b.label)
        ctx.cache["online_net"] = net
        ctx.cache["learning"] = {"samples": len(train), "events": sum(len(b) for b in train),
                                 "seconds": t.seconds, "progressive_accuracy": net.progressive_accuracy,
                                 "learning": net.learning}
    return ctx.cache["online_net"]


def inference_net(ctx: Context):
    """The network whose inference is timed: `--model` if given, else the online-trained one."""
    model = ctx.cache.get("model_path")
    if model:
        from streamsnn.snn import SpikingNetwork

        return SpikingNetwork.load(model), f"checkpoint {model}"
    n = len(ctx.samples("train", 300 if ctx.quick else None))
    return online_net(ctx), f"trained here by one online pass (learn_one) over {n} training samples"


def time_predict(net, samples, repeats: int) -> dict:
    """Median and best wall time of predict_one over all samples, one at a time, `repeats` times."""
    net.predict_one(samples[0])  # load/compile the kernels
    times = []
    decisions = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        decisions = [net.predict_one(b) for b in samples]
        times.append(time.perf_counter() - t0)
    return {"median": statistics.median(times), "best": min(times), "decisions": decisions, "times": times}


def bare_loop_rate(samples, width: int = 800, repeats: int = 3) -> float:
    """Events/s of the ceiling the issue names: a numba loop that only adds one weight row per event."""
    from numba import njit

    @njit(nogil=True, fastmath=True)
    def add_rows(idx, W, phi):
        for k in range(idx.shape[0]):
            row = W[idx[k]]
            for j in range(W.shape[1]):
                phi[j] += row[j]

    W = np.random.default_rng(0).standard_normal((2312, width)).astype(np.float32)
    phi = np.zeros(width, np.float32)
    idx = [(b.events["p"].astype(np.int32) * 1156 + b.events["y"].astype(np.int32) * 34
            + b.events["x"].astype(np.int32)) for b in samples]
    add_rows(idx[0], W, phi)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in idx:
            phi[:] = 0
            add_rows(i, W, phi)
        best = min(best, time.perf_counter() - t0)
    return sum(len(i) for i in idx) / best


# -- 1. inference ---------------------------------------------------------------------------------
def run_inference(ctx: Context) -> Result:
    r = Result("inference", "Inference: event-driven streamsnn vs snnTorch (time-stepped, 1 ms frames)")
    test = ctx.samples("test")
    events = sum(len(b) for b in test)
    net, origin = inference_net(ctx)
    repeats = 3 if ctx.quick else 10
    a = time_predict(net, test, repeats)
    try:
        from . import peer_snntorch as peer

        net_b = peer.make_peer(SIZES)
    except ImportError as exc:
        r.status = f"peer not measurable: {exc} (install the extra: pip install -e '.[bench]')"
        net_b = None
    if net_b is not None:
        n_b = 20 if ctx.quick else len(test)
        peer.run_streaming(net_b, test[:1])  # warm-up
        b = peer.run_streaming(net_b, test[:n_b])
        peer.run_batched(net_b, test[:2])  # warm-up
        c = peer.run_batched(net_b, test)
        # (a) again after the peer, so that load changing during the run weighs on both sides alike
        a["times"] += time_predict(net, test, repeats)["times"]
    a_time = statistics.median(a["times"])
    a_rate = events / a_time
    acc_a = np.mean([d.label == s.label for d, s in zip(a["decisions"], test)])
    r.metric("(a) streamsnn predict_one, one sample at a time", a_rate, "events/s",
             target=">= 5,000,000", met=a_rate >= 5e6)
    r.metric("(a) time per sample", 1000 * a_time / len(test), "ms")
    r.metric("(a) accuracy on the 100 test samples (for information)", float(acc_a), "")
    r.metric("reference: bare numba loop adding one 800-wide row per event (ceiling)",
             bare_loop_rate(test), "events/s")
    r.note(f"(a) network: {origin}; median of {len(a['times'])} passes over the {len(test)} test samples "
           f"({events:,} events; half before the peer, half after), best pass "
           f"{events / min(a['times']):,.0f} events/s; includes mapping events to input indices, per call.")
    if net_b is None:
        return r
    b_rate = b["events"] / b["seconds"]
    r.metric("(b) snnTorch batch 1, streaming", b_rate, "events/s")
    r.metric("(b) time per sample (frames included)", 1000 * b["seconds"] / n_b, "ms")
    r.metric("(b) of which frame conversion (tonic ToFrame)", 1000 * b["frame_seconds"] / n_b, "ms")
    c_rate = c["events"] / c["seconds"]
    r.metric(f"(c) snnTorch batched ({c['batch']} samples padded to {c['steps']} steps)", c_rate, "events/s")
    r.metric("(c) time per sample (frames included)", 1000 * c["seconds"] / c["batch"], "ms")
    r.metric("(c) of which frame conversion and padding", 1000 * c["frame_seconds"] / c["batch"], "ms")
    r.metric("ratio (a)/(b), events/s", a_rate / b_rate, "x", target=">= 100", met=a_rate / b_rate >= 100)
    r.metric("ratio (a)/(c), events/s", a_rate / c_rate, "x", target=">= 10", met=a_rate / c_rate >= 10)
    r.note(f"(b) timed on the first {n_b} test samples ({b['events']:,} events, {b['frames']:,} frames), "
           f"(c) on all {c['batch']}. Peer: {peer.describe()}.")
    r.note("One thread for both: NUMBA_NUM_THREADS=1, torch.set_num_threads(1).")
    return r


# -- 2. operations ---------------------------------------------------------------------------------
def run_ops(ctx: Context) -> Result:
    r = Result("ops", "Synaptic operations per sample: event-driven vs dense time-stepped (1 ms steps)")
    from . import peer_snntorch as peer_frames  # tonic only; no torch needed here

    test = ctx.samples("test")
    net, origin = inference_net(ctx)
    n_in, n_h, n_out = net.sizes
    ev_ops, dense_ops, steps, hidden = [], [], [], []
    for b in test:
        d = net.predict_one(b)
        T = peer_frames.to_frames(b.events).shape[0]
        ev_ops.append(len(b) * n_h + d.spikes[0] * n_out)
        dense_ops.append(T * (n_in * n_h + n_h * n_out))
        steps.append(T)
        hidden.append(d.spikes[0])
    ratio = np.asarray(dense_ops, float) / np.asarray(ev_ops, float)
    r.metric("input events per sample (mean)", float(np.mean([len(b) for b in test])), "")
    r.metric("hidden spikes per sample (mean)", float(np.mean(hidden)), "")
    r.metric("1 ms steps per sample (mean)", float(np.mean(steps)), "")
    r.metric("event-driven synaptic updates per sample (mean)", float(np.mean(ev_ops)), "",)
    r.metric("dense time-stepped synaptic updates per sample (mean)", float(np.mean(dense_ops)), "")
    r.metric("dense / event-driven (ratio of means)", float(np.mean(dense_ops) / np.mean(ev_ops)), "x",
             target="> 5 (Lee et al. 2016 claim about 5x)", met=float(np.mean(dense_ops) / np.mean(ev_ops)) > 5)
    r.metric("dense / event-driven, smallest per-sample ratio", float(ratio.min()), "x")
    r.note(f"Counted on the {len(test)} test samples with the network {origin}. Event-driven = "
           f"input events x {n_h} + hidden spikes x {n_out}; dense = steps x ({n_in}x{n_h} + {n_h}x{n_out}), "
           "steps = tonic ToFrame 1 ms frames of the sample (as the peer runs it).")
    return r


# -- 3. learning -----------------------------------------------------------------------------------
def run_learning(ctx: Context) -> Result:
    r = Result("learning", "Learning: online learn_one throughput and `streamsnn train` wall time")
    online_net(ctx)
    L = ctx.cache["learning"]
    rate = L["events"] / L["seconds"]
    r.metric("learn_one (test-then-train), one thread", rate, "events/s", target=">= 1,000,000",
             met=rate >= 1e6)
    r.metric("time per sample with learning", 1000 * L["seconds"] / L["samples"], "ms")
    r.metric(f"progressive accuracy, one pass over {L['samples']} training samples from random weights",
             L["progressive_accuracy"], "")
    r.note(f"learn_one over {L['samples']} training samples ({L['events']:,} events), "
           f"learning={L['learning']!r}, default hyper-parameters, seed 0.")
    train_wall_time(ctx, r)
    return r


def train_wall_time(ctx: Context, r: Result) -> None:
    """Run `streamsnn train` (defaults; `--epochs 1` in quick mode) on 2 threads, then `eval --json`."""
    from importlib.util import find_spec

    if not (find_spec("streamsnn.commands.train") and find_spec("streamsnn.commands.eval")):
        r.note("`streamsnn train` / `eval` not available yet: training wall time not measured.")
        return
    exe = [sys.executable, "-m", "streamsnn"]
    env = {**os.environ, "NUMBA_NUM_THREADS": str(os.cpu_count() or 2), "OMP_NUM_THREADS": str(os.cpu_count() or 2)}
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model.npz"
        cmd = ["train", "--data", str(ctx.nmnist), "--out", str(model)]
        if ctx.quick:
            cmd += ["--epochs", "1"]
        t0 = time.perf_counter()
        p = subprocess.run(exe + cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
        wall = time.perf_counter() - t0
        shown = "streamsnn " + " ".join(cmd).replace(str(model), "model.npz")
        if p.returncode != 0:
            r.note(f"`{shown}` failed (exit {p.returncode}): {p.stderr.strip().splitlines()[-1:]}")
            return
        r.metric(f"`{shown}` wall time, {env['NUMBA_NUM_THREADS']} threads", wall, "s",
                 target=None if ctx.quick else "< 600 s", met=None if ctx.quick else wall < 600)
        e = subprocess.run(exe + ["eval", "--data", str(ctx.nmnist), "--model", str(model), "--json"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        try:
            acc = float(json.loads(e.stdout)["accuracy"])
        except (ValueError, KeyError, TypeError):
            r.note(f"`streamsnn eval --json` gave no readable accuracy (exit {e.returncode})")
            return
        r.metric("test accuracy of that model (`streamsnn eval --json`)", acc, "",
                 target=None if ctx.quick else ">= 0.88", met=None if ctx.quick else acc >= 0.88)
        epochs = [ln.strip() for ln in p.stderr.splitlines() if re.match(r"\s*epoch \d+/\d+", ln)]
        if epochs:
            r.note(f"`streamsnn train`, last epoch: {epochs[-1][:160]}")
        if ctx.quick:
            r.note("Quick mode trains one epoch only; the full run trains with the command's defaults.")
