"""A kernel near its limit: the real inference path against a bare-loop ceiling for the same work, in one run.

    python -m benchmarks.bench_kernel --model M.npz [--quick] [--samples N] [--repeats R]
    # or: python -m benchmarks --only kernel --model M.npz

On the real N-MNIST test samples (nmnist_small, test split), one thread:
(a) the inference path `streamsnn eval` times (`SpikingNetwork.predict_indices`, one sample at a time): events/s;
(b) the ceiling: what the model really did on each sample is recorded first (for every input event and every
    spike of every hidden layer, the block of units of the next layer it adds into, and the spikes that block then
    fired), checked against the kernels' own spike sequence, then replayed as bare adds and threshold checks in a
    tight numba loop over the model's own weight arrays in their own memory layout, with no bookkeeping (no table
    look-ups, no output buffers, no multiplicity or leak arithmetic beyond one multiply per add);
(c) the kernel as a fraction of the ceiling (ceiling time / kernel time), also per layer (each layer's kernel
    alone on the same recorded input events);
(d) spikes per input event per layer (and adds per input event per layer).
The passes are interleaved in every repeat and the figures are medians over the repeats (the fraction is the
median of each repeat's own ratio), so load on a shared machine moves both sides together.
Writes kernel.json / kernel.md (kernel-quick.* with --quick) into benchmarks/results/.
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

from .common import DATA, ROOT, Context, NotMeasurable, Result, run_alone  # noqa: E402

SAMPLES, REPEATS = 100, 15
QUICK_SAMPLES, QUICK_REPEATS = 30, 5


# -- recording: which blocks each event adds into, and what they fired ---------------------------------------
@njit(cache=True, nogil=True)
def _blocks_conv(idx, tab, ow, st, co, kk):
    """(weight offset, unit offset, event) of every block a convolution's input events add into, in the
    kernel's order (``conv_forward``): flat offsets into K (C_in, k, k, C_out) and into the channel-last units."""
    n = 0
    for k in range(idx.shape[0]):
        n += tab[idx[k], 3] * tab[idx[k], 6]
    wo = np.empty(n, np.int64)
    po = np.empty(n, np.int64)
    ev = np.empty(n, np.int64)
    m = 0
    for k in range(idx.shape[0]):
        u = idx[k]
        c, dy0, oy0, ny, dx0, ox0, nx = tab[u, 0], tab[u, 1], tab[u, 2], tab[u, 3], tab[u, 4], tab[u, 5], tab[u, 6]
        for iy in range(ny):
            for ix in range(nx):
                wo[m] = ((c * kk + dy0 + iy * st) * kk + dx0 + ix * st) * co
                po[m] = ((oy0 - iy) * ow + ox0 - ix) * co
                ev[m] = k
                m += 1
    return wo, po, ev


@njit(cache=True, nogil=True, fastmath=True)
def _simulate(W, wo, po, g, n, theta, n_units):
    """Integrate-and-fire on the blocks, as the kernels do without a leak: returns the spikes (unit,
    multiplicity) in order and where each block's spikes start (``start[b]..start[b+1]``)."""
    phi = np.zeros(n_units, np.float32)
    su = np.empty(1024, np.int32)
    sc = np.empty(1024, np.float32)
    start = np.zeros(wo.shape[0] + 1, np.int64)
    m = 0
    for b in range(wo.shape[0]):
        w, p, gg = wo[b], po[b], g[b]
        for j in range(n):
            v = phi[p + j] + gg * W[w + j]
            phi[p + j] = v
        for j in range(n):
            v = phi[p + j]
            if v > theta:
                c = np.float32(np.ceil(v - theta))
                phi[p + j] = v - c
                if m == su.shape[0]:
                    su2 = np.empty(2 * m, np.int32)
                    sc2 = np.empty(2 * m, np.float32)
                    su2[:m] = su
                    sc2[:m] = sc
                    su, sc = su2, sc2
                su[m] = p + j
                sc[m] = c
                m += 1
        start[b + 1] = m
    return su[:m], sc[:m], start


@njit(cache=True, nogil=True, fastmath=True)
def replay(W, phi, wo, po, g, n, start, su, sc, thr):
    """The ceiling: add ``g[b] * W[wo[b] : wo[b] + n]`` into ``phi[po[b] : po[b] + n]`` and check each against
    ``thr``, block after block, then take off the spikes the block really fired. Returns the checks passed."""
    above = np.float32(0.0)
    for b in range(wo.shape[0]):
        w, p, gg = wo[b], po[b], g[b]
        pv = phi[p:p + n]  # views: indices known non-negative, so the loop vectorises
        wv = W[w:w + n]
        for j in range(n):
            v = pv[j] + gg * wv[j]
            pv[j] = v
            above += np.float32(v > thr)
        for q in range(start[b], start[b + 1]):
            phi[su[q]] -= sc[q]
    return above


def record(net, idx: np.ndarray) -> list[dict]:
    """What each hidden layer did on one sample (non-leaky network, fresh state), checked against the kernels."""
    from streamsnn.snn.layers.base import NO_CNT, NO_T

    theta = np.float32(net.theta)
    ev_i, ev_c = np.ascontiguousarray(idx, np.int32), NO_CNT
    out, last = [], len(net.hidden) - 1
    for k, layer in enumerate(net.hidden):
        g = layer.geo
        mult = ev_c if len(ev_c) else np.ones(len(ev_i), np.float32)
        if layer.kind == "conv":
            kk = g.layer.kernel
            wo, po, ev = _blocks_conv(ev_i, layer.table, g.out_shape[2], g.layer.stride, g.layer.units, kk)
            n = g.layer.units
        elif layer.kind == "dense":
            n = g.n_out
            wo, po, ev = ev_i.astype(np.int64) * n, np.zeros(len(ev_i), np.int64), np.arange(len(ev_i))
        else:
            raise NotMeasurable(f"the ceiling replays dense and conv layers, not {layer.kind}")
        gb = mult[ev].astype(np.float32)
        su, sc, start = _simulate(layer.weight.reshape(-1), wo, po, gb, n, theta, g.n_out)
        layer.counts[:] = 0
        layer.phi[:] = 0
        nxt = layer.forward(ev_i, ev_c, NO_T, k < last, theta, 0.0)
        if k < last:
            same = np.array_equal(nxt[0], su) and np.array_equal(nxt[1], sc)
        else:
            same = np.array_equal(layer.counts, np.bincount(su, weights=sc, minlength=g.n_out).astype(np.float32))
        if not same:
            raise NotMeasurable(f"layer {k + 1}: the recorded spikes differ from the kernel's")
        out.append({"wo": wo, "po": po, "g": gb, "n": n, "start": start, "su": su, "sc": sc,
                    "units": g.n_out, "spikes": float(sc.sum()), "adds": len(wo) * n})
        ev_i, ev_c = su, sc
    return out


def measure(net, test, repeats: int, log) -> dict:
    """Interleaved repeats of: the predict path, each layer's kernel alone, the ceiling (this thread's CPU time).
    Medians and the per-repeat ratio."""
    from streamsnn.snn.layers.base import NO_CNT, NO_T

    if net.tau_us is not None:
        raise NotMeasurable("the ceiling replays non-leaky models only (this one has tau_us)")
    net.warm_up()
    n = len(test)
    recs = [record(net, test.idx[k]) for k in range(n)]
    events = int(sum(len(test.idx[k]) for k in range(n)))
    L = len(net.hidden)
    theta = np.float32(net.theta)
    flat = [layer.weight.reshape(-1) for layer in net.hidden]
    assert all(np.shares_memory(f, layer.weight) for f, layer in zip(flat, net.hidden))
    phis = [np.zeros(layer.geo.n_out, np.float32) for layer in net.hidden]
    inputs = []  # each layer's input events per sample, for the kernels alone
    for k in range(n):
        ins, ev = [], (np.ascontiguousarray(test.idx[k], np.int32), NO_CNT)
        for j in range(L):
            ins.append(ev)
            ev = (recs[k][j]["su"], recs[k][j]["sc"])
        inputs.append(ins)
    replay(flat[0], phis[0], *(recs[0][0][x] for x in ("wo", "po", "g", "n", "start", "su", "sc")), theta)

    def predict():
        for k in range(n):
            net.predict_indices(test.idx[k], test.t[k], count=False)

    def layers_alone(times):
        for k in range(n):
            for j, layer in enumerate(net.hidden):
                t0 = time.thread_time()
                layer.counts[:] = 0
                layer.phi[:] = 0
                layer.forward(inputs[k][j][0], inputs[k][j][1], NO_T, j < L - 1, theta, 0.0)
                times[j] += time.thread_time() - t0

    def ceiling(times):
        for k in range(n):
            for j in range(L):
                r = recs[k][j]
                t0 = time.thread_time()
                phis[j][:] = 0
                replay(flat[j], phis[j], r["wo"], r["po"], r["g"], r["n"], r["start"], r["su"], r["sc"], theta)
                times[j] += time.thread_time() - t0

    t_pred, t_wall, t_ceil, t_layers, t_ceil_layers, ratio = [], [], [], [], [], []
    for rep in range(repeats):
        t0, c0 = time.perf_counter(), time.thread_time()
        predict()
        tp = time.thread_time() - c0
        t_wall.append(time.perf_counter() - t0)
        lt, ct = np.zeros(L), np.zeros(L)
        layers_alone(lt)
        ceiling(ct)
        t_pred.append(tp)
        t_ceil.append(ct.sum())
        t_layers.append(lt)
        t_ceil_layers.append(ct)
        ratio.append(ct.sum() / tp)
        log(f"kernel: repeat {rep + 1}/{repeats}: predict {events / tp / 1e6:.2f} M events per CPU-s, ceiling "
            f"{events / ct.sum() / 1e6:.2f} M, fraction {ct.sum() / tp:.3f}")
    med = lambda xs: float(np.median(xs))  # noqa: E731
    spikes = np.array([sum(r[j]["spikes"] for r in recs) for j in range(L)])
    adds = np.array([sum(r[j]["adds"] for r in recs) for j in range(L)])
    lay = np.median(np.array(t_layers), axis=0)
    cl = np.median(np.array(t_ceil_layers), axis=0)
    frac_l = np.median(np.array(t_ceil_layers) / np.array(t_layers), axis=0)
    return {"samples": n, "events": events, "repeats": repeats,
            "predict_events_per_s": events / med(t_pred), "predict_events_per_s_wall": events / med(t_wall),
            "ceiling_events_per_s": events / med(t_ceil),
            "fraction": med(ratio), "layer_seconds": lay.tolist(), "ceiling_layer_seconds": cl.tolist(),
            "layer_fraction": frac_l.tolist(), "spikes_per_event": (spikes / events).tolist(),
            "adds_per_event": (adds / events).tolist()}


def run(ctx: Context) -> Result:
    from streamsnn.learn.training import load_split
    from streamsnn.snn import SpikingNetwork

    log = ctx.cache.get("log", lambda *a: print(*a, file=sys.stderr, flush=True))
    model = ctx.cache.get("model_path")
    if model is None:
        raise NotMeasurable("give a checkpoint: --model M.npz (made by `streamsnn train`)")
    net = SpikingNetwork.load(model)
    n = ctx.cache.get("samples") or (QUICK_SAMPLES if ctx.quick else SAMPLES)
    repeats = ctx.cache.get("repeats") or (QUICK_REPEATS if ctx.quick else REPEATS)
    test = load_split(ctx.nmnist, "test", net, limit=n, quiet=True)
    m = measure(net, test, repeats, log)
    r = Result("kernel", f"The kernel against its bare-loop ceiling ({net.arch}, {m['samples']} real test samples)")
    r.metric("inference, predict_indices one sample at a time, one thread", m["predict_events_per_s"],
             "events per CPU-second")
    r.metric("the same, wall clock", m["predict_events_per_s_wall"], "events/s")
    r.metric("bare-loop ceiling for the same adds and threshold checks", m["ceiling_events_per_s"],
             "events per CPU-second")
    r.metric("kernel as a fraction of the ceiling (ceiling time / kernel time)", m["fraction"], "",
             target=">= 0.5", met=m["fraction"] >= 0.5)
    rows = []
    for j, layer in enumerate(net.hidden):
        rows.append([f"{j + 1}: {layer.geo.layer.spec()}" + ("" if j < len(net.hidden) - 1 else " (last, silent)"),
                     m["spikes_per_event"][j], m["adds_per_event"][j],
                     1e9 * m["layer_seconds"][j] / m["events"], 1e9 * m["ceiling_layer_seconds"][j] / m["events"],
                     m["layer_fraction"][j]])
    r.table("Per hidden layer, per input event (medians over the repeats)",
            ["layer", "spikes per input event", "adds per input event", "kernel alone ns", "ceiling ns",
             "fraction"], rows)
    r.note(f"Model {Path(model).name} ({net.arch}); {m['events']:,} input events; {m['repeats']} repeats, "
           "the passes interleaved in each; medians. One thread (NUMBA_NUM_THREADS=1). Times are this thread's CPU "
           "time (time.thread_time), which a busy machine's other processes do not add to, except through shared "
           "caches; the wall-clock rate of the predict path is shown too.")
    r.note("Ceiling: per block of units an event or spike adds into, `phi[p:p+n] += g * W[w:w+n]` and `phi > thr` "
           "counted, then the spikes that block really fired subtracted; the block offsets, multiplicities and "
           "spikes are recorded beforehand (checked equal to the kernels' spike sequence). The predict path also "
           "does the output layer, the finiteness check and the decision; the ceiling does not.")
    return r


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_kernel", description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="a checkpoint made by `streamsnn train`")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_SAMPLES} samples, {QUICK_REPEATS} repeats")
    p.add_argument("--samples", type=int, help=f"test samples (default {SAMPLES})")
    p.add_argument("--repeats", type=int, help=f"interleaved repeats (default {REPEATS})")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    a = p.parse_args(argv)
    ctx = Context(quick=a.quick, out=a.out.resolve(), data=a.data.resolve(),
                  stem="kernel" + ("-quick" if a.quick else ""))
    for key, value in (("model_path", a.model), ("samples", a.samples), ("repeats", a.repeats)):
        if value:
            ctx.cache[key] = value
    return run_alone("python -m benchmarks.bench_kernel", ctx, lambda: run(ctx), argv=argv, label="bench_kernel",
                     contention="The fraction is a ratio within each repeat; events/s depend on load (shared "
                                "machine).", unmeasurable=("kernel", "Kernel"))


if __name__ == "__main__":
    sys.exit(main())
