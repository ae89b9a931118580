"""The forward pass of a dense layer of learning "timing" (``timing.py``: current-based LIF units, exact spike times).

Cost per input event: two multiply-adds and a bound per unit, which the compiler vectorises. The events go
through in batches (``BATCH``); a unit whose potential cannot reach theta in a batch's interval (its potential left
alone, plus each input's positive weight times its PSP's largest value before the interval ends) takes the batch's
inputs at once. Only the flagged units, about as many as fire in the batch, are moved through it event by event and
have their crossings solved. On a trained dense:800 N-MNIST layer this halves the time of a pass that moved every
unit on to every event.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .timing import MAX_BURST, MIN_SLOPE, flag_limits, may_cross, room, spans_spikes

#: Units a dense layer's pass flags in one go: the units whose crossings are solved are found block by block.
BLOCK = 64
#: Input events a dense layer takes in one go: per event, three multiply-adds per unit; per batch, the test that
#: picks the units to move through it event by event (``cuba_forward``). 8, 12 and 16 ran about alike on N-MNIST.
BATCH = 12


@njit(cache=True, nogil=True, error_model="numpy")
def _exps(span, inv_m, inv_s):
    """(exp(-span/tau_m), exp(-span/tau_s), whether crossings are looked for): none in an empty span."""
    if span > 0.0:
        return math.exp(-span * inv_m), math.exp(-span * inv_s), True
    return 1.0, 1.0, False


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _factors(t, s1, c, inv_m, inv_s, half, peak):
    """(what an input event at ``t`` adds to A and to B per unit of weight, as at ``s1``; the most it adds to a
    potential per unit of positive weight up to ``s1``: its PSP rises from 0 to its weight at the kernel's peak)."""
    x = math.exp(-(s1 - t) * inv_m)
    u = min(s1 - t, peak)
    rise = c * (math.exp(-u * inv_m) - math.exp(-u * inv_s)) * (1.0 + 1e-9)  # a rounding margin
    return c * x, (c * x * x if half else c * math.exp(-(s1 - t) * inv_s)), rise


@njit(cache=True, nogil=True, error_model="numpy")
def _batch_sums(idx, t, k, k1, s1, W, c, inv_m, inv_s, half, sa, sb, pos):
    """For the batch of input events ``k``..``k1 - 1``: what they add to each unit's ``A`` and ``B`` as at ``s1``
    (``sa``, ``sb``: c w exp(-(s1 - t) / tau)), and the most they add to its potential at any time up to ``s1``
    (``pos``: the positive weights, each times its kernel at s1 - t or at the peak if that comes first). Four
    events at a time, so that each unit's sums are loaded and stored once for four of them."""
    peak = math.log(inv_s / inv_m) / (inv_s - inv_m)
    sa[:] = 0.0
    sb[:] = 0.0
    pos[:] = 0.0
    i = k
    while i < k1:
        if i + 4 <= k1:
            a0, b0, p0 = _factors(t[i], s1, c, inv_m, inv_s, half, peak)
            a1, b1, p1 = _factors(t[i + 1], s1, c, inv_m, inv_s, half, peak)
            a2, b2, p2 = _factors(t[i + 2], s1, c, inv_m, inv_s, half, peak)
            a3, b3, p3 = _factors(t[i + 3], s1, c, inv_m, inv_s, half, peak)
            r0, r1, r2, r3 = W[idx[i]], W[idx[i + 1]], W[idx[i + 2]], W[idx[i + 3]]
            for j in range(sa.shape[0]):
                w0, w1, w2, w3 = np.float64(r0[j]), np.float64(r1[j]), np.float64(r2[j]), np.float64(r3[j])
                sa[j] += a0 * w0 + a1 * w1 + a2 * w2 + a3 * w3
                sb[j] += b0 * w0 + b1 * w1 + b2 * w2 + b3 * w3
                pos[j] += p0 * max(w0, 0.0) + p1 * max(w1, 0.0) + p2 * max(w2, 0.0) + p3 * max(w3, 0.0)
            i += 4
        else:
            a0, b0, p0 = _factors(t[i], s1, c, inv_m, inv_s, half, peak)
            r0 = W[idx[i]]
            for j in range(sa.shape[0]):
                w0 = np.float64(r0[j])
                sa[j] += a0 * w0
                sb[j] += b0 * w0
                pos[j] += p0 * max(w0, 0.0)
            i += 1


@njit(cache=True, nogil=True, error_model="numpy")
def _flag_batch(A, B, ea, eb, lim, half, sa, sb, pos, cand, blocks):
    """Flag the units whose potential may reach ``lim`` in the batch's interval, its inputs counted at their most
    (``may_cross`` of the unit left alone, against ``lim`` less ``pos``); move every other unit on to the interval's
    end with the batch's inputs (it cannot spike there). Lists the blocks of ``BLOCK`` units holding a flagged one;
    returns how many it listed."""
    nbl = 0
    for q in range(blocks.shape[0]):
        j0 = q * BLOCK
        cb = 0  # a count of the block's own, or the compiler does not vectorise the loop
        for i in range(min(A.shape[0] - j0, BLOCK)):
            j = j0 + i
            a, b = A[j], B[j]
            f = may_cross(a, b, ea, eb, lim - pos[j], half)
            cand[j] = f
            A[j] = a if f else a * ea + sa[j]
            B[j] = b if f else b * eb + sb[j]
            cb += f
        blocks[nbl] = q
        nbl += cb > 0
    return nbl


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _as_layer_units_in_time_order(units, oi, ot, od, m0, m):
    """The spikes ``m0``..``m - 1`` of one span, written by the gathered units' positions: as the layer's units
    (``units``), in time order (few: insertion)."""
    for p in range(m0, m):
        oi[p] = units[oi[p]]
        r = p
        while r > m0 and ot[r - 1] > ot[r]:
            oi[r - 1], oi[r] = oi[r], oi[r - 1]
            ot[r - 1], ot[r] = ot[r], ot[r - 1]
            od[r - 1], od[r] = od[r], od[r - 1]
            r -= 1


@njit(cache=True, nogil=True, error_model="numpy")
def cuba_forward(idx, t, t_end, W, A, B, counts, theta, inv_m, inv_s, c, ref, oi, ot, od):
    """Feed input events (``idx`` int32, ``t`` float64 µs, in order) through a dense layer of current-based
    LIF units; returns its spikes (unit int32, time float64, dv/dt at the crossing float64), in time order.

    ``A``, ``B`` (float64, n_out): the state at time ``ref[0]`` (NaN: fresh, starts at the first event),
    updated in place, as are ``counts`` (float32) and ``ref``; ``W`` float32 (n_in, n_out); ``oi``, ``ot``,
    ``od``: output buffers (grown and returned when too small). Crossings are looked for from the state's
    time to each event and on to ``t_end`` (the readout time, at or after the last event), not beyond.

    The events go through in batches of ``BATCH``. A batch costs each unit, per event, two multiply-adds into its
    sums and one into a bound (``_batch_sums``, vectorised), and once per batch a test: its potential left alone,
    plus the most the batch's inputs can add to it before the batch ends (``_flag_batch``). A unit that cannot reach
    theta in the batch's interval takes the batch's inputs at once, decayed to the interval's end; only the flagged
    units, about as many as fire, are gathered and moved through the batch event by event, their crossings solved
    exactly (``spans_spikes``) in every span where their potential may reach theta.
    """
    no = W.shape[1]
    m = 0
    n = idx.shape[0]
    if ref[0] != ref[0]:
        ref[0] = t[0] if n else t_end
    floor = MIN_SLOPE * theta * inv_m
    near, half = flag_limits(theta, inv_m, inv_s)
    cand = np.zeros(no, np.bool_)
    blocks = np.empty(-(-no // BLOCK), np.int64)
    sa, sb, pos = np.empty(no), np.empty(no), np.empty(no)
    units = np.empty(no, np.int64)  # the flagged units of a batch, and their states (A, B, spikes, may cross)
    fa, fb, fc, hit = np.empty(no), np.empty(no), np.empty(no, np.float32), np.empty(no, np.bool_)
    k = 0
    while True:
        k1 = min(n, k + BATCH)
        cur = ref[0]
        s1 = max(cur, t_end if k1 == n else t[k1 - 1])  # the batch's interval is (cur, s1]
        _batch_sums(idx, t, k, k1, s1, W, c, inv_m, inv_s, half, sa, sb, pos)
        ea, eb, look = _exps(s1 - cur, inv_m, inv_s)
        nbl = _flag_batch(A, B, ea, eb, near if look else np.inf, half, sa, sb, pos, cand, blocks)
        nf = 0
        for q in range(nbl):  # the flagged units' states, gathered
            for j in range(blocks[q] * BLOCK, min(no, blocks[q] * BLOCK + BLOCK)):
                if cand[j]:
                    units[nf], fa[nf], fb[nf], fc[nf] = j, A[j], B[j], 0.0
                    nf += 1
        t0 = cur
        for i in range(k, k1 + 1 if nf else k):  # the flagged units through the batch: the span to event i, its weight
            te = max(t0, t[i] if i < k1 else s1)
            span = te - t0
            if span > 0.0:
                ea = math.exp(-span * inv_m)
                eb = ea * ea if half else math.exp(-span * inv_s)
                nx = 0
                for q in range(nf):  # which may cross in this span; the others moved on to its end
                    a, b = fa[q], fb[q]
                    f = may_cross(a, b, ea, eb, near, half)
                    hit[q] = f
                    fa[q] = a if f else a * ea
                    fb[q] = b if f else b * eb
                    nx += f
                if nx:
                    if m + nx * MAX_BURST > oi.shape[0]:
                        oi, ot, od = room(oi, ot, od, m, nx * MAX_BURST)
                    m0 = m
                    for q in range(nf):
                        if hit[q]:
                            m = spans_spikes(q, span, t0, ea, eb, fa, fb, fc, theta, inv_m, inv_s, floor, oi, ot, od, m)
                    _as_layer_units_in_time_order(units, oi, ot, od, m0, m)
                t0 = te
            if i < k1:
                row = W[idx[i]]
                for q in range(nf):
                    w = c * row[units[q]]
                    fa[q] += w
                    fb[q] += w
        for q in range(nf):  # ... scattered back
            j = units[q]
            A[j], B[j] = fa[q], fb[q]
            counts[j] += fc[q]
        ref[0] = s1
        k = k1
        if k == n:
            break
    return oi[:m], ot[:m], od[:m]
