"""Numba kernels shared by every layer kind: input counts, the leak's scaled frame, the output layer.

Conventions of all kernels (here, in ``layers/dense.py`` and in ``layers/conv.py``): plain arrays, no Python
objects. A stream of *events* into a layer is three parallel arrays: ``idx`` (int32 unit of the
layer below, or input unit), ``cnt`` (float32 multiplicity: a unit that fires n spikes at once
sends one event of multiplicity n; an empty array means 1 for every event) and ``t`` (int64 µs;
empty when the network does not leak). Integrate-and-fire units fire while their potential is
above ``theta`` and subtract 1 per spike; ``n = ceil(v - theta)`` spikes are emitted at once.

The leak keeps each layer's potentials in a scaled frame: the true state is
``stored * exp(-(t - t_ref)/tau)``, so an event at time t adds ``w * exp((t - t_ref)/tau)`` and is
compared with ``theta * exp((t - t_ref)/tau)``: one ``exp`` per event and nothing while idle. When
the factor passes exp(RENORM) the frame is renormalised (one pass over the layer's state).

The blocks every kind repeats are shared here as inline helpers (compiled into each caller, so a
kernel keeps one loop and its SIMD passes): ``renormalise`` (the leak's frame), ``integrate_span``
and ``fire`` (add a weight row to a block of units, noting the span of units now above threshold,
then fire those and, unless silent, emit their spikes), ``integrate`` (the add with a count of the
units above threshold, for the recurrent layer), and ``herd_emit`` (a non-resetting signed herder
that turns an error into spikes).

Speed (issue 21, ``benchmarks/bench_kernel.py`` measures the kernels against a bare loop of the same
adds): a block of units is addressed by unsigned (uint64) offsets into the flat arrays, which numba knows
are not negative, so the add loops vectorise (indexing ``phi[base + j]`` with signed integers makes numba
wrap negative indices and keeps the loop scalar). Not through views (``phi[base:base + n]``): each view is
an array object whose reference count numba raises and drops, a few atomic operations per block, which
cost a leaky layer about a quarter of its time (issue 20, ``benchmarks/bench_delays.py``). The add reduces
the span of units above threshold with integer min/max (which vectorise), so firing scans one or two units,
not the block. A leaky dense or convolutional layer runs its own kernel (``dense_forward_leaky``,
``conv_forward_leaky``), compiled with ``error_model="numpy"`` (a unit's spikes divide by the frame's factor,
which numba otherwise checks for zero on every division) and with the frame's restart (``restart``, a loop over
the layer's state) outside the event loop: an event whose factor passed exp(RENORM) leaves the loop, the frame
restarts, and the loop goes on from that event. Together they took a fifth off the leaky convolutions of the
order-only task's model (the first 0.85x, the second 0.77x of their time, the same spikes); either alone made no
clear difference, and the layers without a leak keep their loop as it was (issue 20, 2026-12-07).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: Renormalise a scaled frame once its factor exceeds exp(RENORM).
RENORM = 16.0


@njit(cache=True, nogil=True)
def grow(a, need):
    """``a`` (1-D, any dtype) copied into a new array of the same dtype with at least ``need`` (and
    twice ``len(a)``) entries; the entries past ``len(a)`` are uninitialised."""
    b = np.empty(max(need, 2 * a.shape[0]), a.dtype)
    b[:a.shape[0]] = a
    return b


@njit(cache=True, nogil=True)
def decay_factor(t_now, inv_tau, ref):
    """exp(-(t_now - t_ref)/tau) (float): multiply state stored in the scaled frame by this to read it.

    ``t_now`` int µs; ``inv_tau`` float 1/µs; ``ref`` float64 (1,), the frame's reference time ``t_ref``.
    """
    return math.exp(-(t_now - ref[0]) * inv_tau)


@njit(inline="always")
def renormalise(state, t_k, t_ref, inv_tau):
    """The leak's scaled frame at an event of time ``t_k`` (int64 µs): returns (a, t_ref), a = (t_k - t_ref)/tau.

    When the factor exp(a) passes exp(RENORM), every entry of ``state`` (float32, 1-D, in place) is
    multiplied by exp(-a) and the frame restarts at ``t_k`` (returns a = 0 and t_ref = t_k).
    ``t_ref`` float (µs), ``inv_tau`` float (1/µs).
    """
    a = (t_k - t_ref) * inv_tau
    if a > RENORM:
        return 0.0, restart(state, t_k, t_ref, inv_tau)
    return a, t_ref


@njit(inline="always")
def restart(state, t_k, t_ref, inv_tau):
    """Restart the leak's scaled frame at ``t_k`` (int64 µs): every entry of ``state`` (float32, 1-D, in place)
    multiplied by exp(-(t_k - t_ref)/tau); returns the new reference time, ``t_k`` (float).

    The dense and convolutional kernels call it outside their event loop (see ``kernels`` at the top: speed)."""
    d = np.float32(math.exp(-(t_k - t_ref) * inv_tau))
    for j in range(state.shape[0]):
        state[j] *= d
    return float(t_k)


@njit(inline="always")
def integrate(phi, base, row, g, thr):
    """Add ``g * row`` to the potentials ``phi[base : base + len(row)]``; returns how many are now above ``thr``.

    ``phi`` float32 (n_units,), in place; ``row`` float32 (n,); ``g`` float32 (multiplicity times the frame
    factor); ``thr`` float32. Returns float32 (a float count vectorises; a running max does not).
    """
    above = np.float32(0.0)
    ph = phi[base:base + row.shape[0]]  # a view: ph[j] needs no negative-index wrap, so the loop vectorises
    for j in range(row.shape[0]):
        v = ph[j] + g * row[j]
        ph[j] = v
        above += np.float32(v > thr)
    return above


@njit(inline="always")
def integrate_span(phi, base, W, w, n, g, thr):
    """Add ``g * W[w : w + n]`` to the potentials ``phi[base : base + n]``; returns (lo, hi) (int32): the units
    now above ``thr`` all lie in ``lo .. hi - 1`` (relative to ``base``); hi = 0 when there are none.

    ``phi`` float32 (n_units,), in place; ``W`` float32, flat (the layer's weights); ``base``, ``w`` uint64
    offsets; ``n`` int; ``g`` float32 (multiplicity times the frame factor); ``thr`` float32. Integer min/max
    reductions vectorise, so the caller scans only that span (usually one or two units) instead of the whole block.
    """
    lo = np.int32(n)
    hi = np.int32(0)
    for j in range(n):
        q = np.uint64(j)  # unsigned offsets: no negative-index wrap, so the loop vectorises
        v = phi[base + q] + g * W[w + q]
        phi[base + q] = v
        a = v > thr
        hi = max(hi, np.int32(j + 1) if a else np.int32(0))
        lo = min(lo, np.int32(j) if a else np.int32(n))
    return lo, hi


@njit(inline="always")
def fire(phi, counts, base, lo, hi, thr, f, leak, emit, t, k, oi, oc, ot, m):
    """Fire the units of ``phi[base + lo : base + hi]`` that are above ``thr`` and (with ``emit``) emit their spikes.

    ``base`` uint64 (as ``integrate_span``'s). A unit fires c = ceil((v - thr) / f) spikes at once and loses
    c * f (``f``, float32: the leak frame's factor, 1 without a leak); ``counts`` float32 (n_units,) gains c.
    With ``emit`` each firing unit is written as one event at position m: ``oi`` int32 unit (base + j),
    ``oc`` float32 c, ``ot`` int64 ``t[k]`` (the event's time; only when ``leak``, ``t`` is empty without one).
    The caller leaves room for hi - lo events. Returns the new m.
    """
    for j in range(lo, hi):
        p = base + np.uint64(j)
        v = phi[p]
        if v > thr:
            c = np.float32(math.ceil((v - thr) / f))
            phi[p] = v - c * f  # one expression for both cases: with f = 1 it is exact, and it stays one fused op
            counts[p] += c
            if emit:
                oi[m] = np.int64(p)
                oc[m] = c
                if leak:
                    ot[m] = t[k]
                m += 1
    return m


#: A herder holds at most this much error, so one call emits at most HERD_CAP spikes. A herder stays below
#: 0.5 + |x| after each call, and x (an output error, or an error spike times one weight) stays below 1 in training;
#: an absurd weight or rate would otherwise make it so large that subtracting 1 no longer changes it in float32
#: (or infinite), and the emit loop would never end.
HERD_CAP = np.float32(64.0)
#: Most error spikes one layer sends down per sample: 15 times the most seen in training (17k, a 2-hidden-layer
#: dense network on N-MNIST); beyond it the layer's weights still move but no more error goes down this sample.
MAX_LAYER_ERROR_SPIKES = 1 << 18


@njit(inline="always")
def herd_emit(herd, i, x, out_u, out_s, m):
    """Add ``x`` (float32) to the signed herder ``herd[i]`` (float32 array, in place), clipped to +-HERD_CAP;
    while |herd[i]| > 0.5 emit a spike s = +-1 (``out_u[m] = i`` int32, ``out_s[m] = s`` float32) and subtract s.

    Returns (out_u, out_s, m): the arrays are replaced by larger copies when they fill up.
    """
    herd[i] += x
    if herd[i] > HERD_CAP:
        herd[i] = HERD_CAP
    elif herd[i] < -HERD_CAP:
        herd[i] = -HERD_CAP
    while herd[i] > 0.5 or herd[i] < -0.5:
        s = np.float32(1.0) if herd[i] > 0 else np.float32(-1.0)
        herd[i] -= s
        if m == out_u.shape[0]:
            out_u = grow(out_u, m + 1)
            out_s = grow(out_s, m + 1)
        out_u[m] = i
        out_s[m] = s
        m += 1
    return out_u, out_s, m


@njit(cache=True, nogil=True, fastmath=True)
def input_counts(idx, n_in, active, x):
    """Count events per input: fills ``x[:n]`` and ``active[:n]`` with the distinct inputs and counts.

    ``idx`` int32 (n_events,) input units in 0..n_in-1; ``active`` (int32) and ``x`` (float32) need
    room for min(len(idx), n_in) entries; returns n. Inputs appear in increasing index order.
    """
    buf = np.zeros(n_in, np.int32)
    for k in range(idx.shape[0]):
        buf[idx[k]] += 1
    n = 0
    for i in range(n_in):
        if buf[i] > 0:
            active[n] = i
            x[n] = buf[i]
            n += 1
    return n


@njit(cache=True, nogil=True, fastmath=True)
def output_leaky(idx, cnt, t, W, scores, inv_tau, ref):
    """Add the rows ``W[idx[k]] * cnt[k]`` to the decaying output evidence ``scores`` (scaled frame).

    ``idx`` int32, ``cnt`` float32, ``t`` int64 (n_events,): the last hidden layer's spikes; ``W``
    float32 (n_last, n_classes); ``scores`` float32 (n_classes,), in place; ``inv_tau`` float (1/µs);
    ``ref`` float64 (1,): the frame's reference time, updated in place.
    """
    no = W.shape[1]
    t_ref = ref[0]
    for k in range(idx.shape[0]):
        a, t_ref = renormalise(scores, t[k], t_ref, inv_tau)
        g = cnt[k] * np.float32(math.exp(a))
        row = W[idx[k]]
        for c in range(no):
            scores[c] += g * row[c]
    ref[0] = t_ref


@njit(cache=True, nogil=True)
def output_error_spikes(e, K, herd):
    """The output error as spikes: ``K`` steps of adding ``e`` into non-resetting signed herders.

    ``e`` float32 (n_classes,): softmax - one-hot; ``K`` int: steps (the resolution); ``herd``
    float32 (n_classes,), updated in place (kept between samples, residuals add up over the stream).
    Each step adds e_c to ``herd[c]``; while |herd[c]| > 0.5 it emits a spike s = +-1 and subtracts s.
    Returns (units int32, signs float32) of the spikes in the order they were emitted.
    """
    no = e.shape[0]
    units = np.empty(16, np.int32)
    signs = np.empty(16, np.float32)
    m = 0
    for _ in range(K):
        for c in range(no):
            units, signs, m = herd_emit(herd, c, e[c], units, signs, m)
    return units[:m], signs[:m]
