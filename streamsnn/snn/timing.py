"""Kernels of learning "timing" (Yamamoto, Sakemi & Aihara 2022): current-based LIF units, exact spike times.

A unit of a dense layer holds two numbers, ``A`` (decays with the membrane time constant tau_m) and ``B``
(decays with the synaptic one, tau_s < tau_m); its potential is ``v = A - B``. An input spike of weight w
adds ``c * w`` to both (the potential does not jump: a postsynaptic current starts, decaying with tau_s,
and the membrane integrates it and leaks with tau_m); ``c`` makes the peak of one input's PSP, the kernel
``K(u) = c (exp(-u/tau_m) - exp(-u/tau_s))``, equal to its weight. Between two input events the state
evolves in closed form; a spike is fired where ``v`` crosses ``theta`` (found exactly on the closed form:
the extremum of the two-exponential splits the interval into monotone pieces, then bracketed Newton to
machine precision) and the unit is reset by subtraction (``A -= theta``). So a spike's time moves
continuously with the weights and the input spike times, and every unit may fire many times.

``cuba_backward`` is the exact gradient through the spike times of every spike that happened (implicit
function theorem at each crossing, dt/dp = -(dv/dp)/(dv/dt), chained through every later spike a spike
influences: the next layer's and the unit's own through its reset), visiting the layer's input events
and spikes once, backwards in time, with two adjoint sums per unit (``P``, ``Q``: the later spikes'
dL/dt / (dv/dt), decayed with tau_m and tau_s). Times are float64 µs.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: Spikes one unit may fire between two input events (a damaged network cannot loop forever).
MAX_BURST = 256
#: dv/dt at a crossing is used as at least this fraction of theta / tau_m (a grazing crossing's exact
#: gradient is unbounded; the guard and the step bound catch what remains).
MIN_SLOPE = 1e-3


def psp_norm(inv_m: float, inv_s: float) -> float:
    """``c``: 1 / the peak of exp(-u/tau_m) - exp(-u/tau_s) (tau_s < tau_m)."""
    u = math.log(inv_s / inv_m) / (inv_s - inv_m)
    return 1.0 / (math.exp(-u * inv_m) - math.exp(-u * inv_s))


@njit(cache=True, nogil=True)
def _v(a, b, u, inv_m, inv_s):
    return a * math.exp(-u * inv_m) - b * math.exp(-u * inv_s)


@njit(cache=True, nogil=True)
def _dv(a, b, u, inv_m, inv_s):
    return -a * inv_m * math.exp(-u * inv_m) + b * inv_s * math.exp(-u * inv_s)


@njit(cache=True, nogil=True)
def _root(a, b, lo, hi, theta, inv_m, inv_s):
    """The u in (lo, hi] where v(u) = theta, v monotone rising there with v(lo) < theta <= v(hi)."""
    x = hi
    for _ in range(100):
        f = _v(a, b, x, inv_m, inv_s) - theta
        if f >= 0.0:
            hi = x
        else:
            lo = x
        d = _dv(a, b, x, inv_m, inv_s)
        nx = x - f / d if d > 0.0 else 0.5 * (lo + hi)
        if not (lo < nx < hi) or nx != nx:
            nx = 0.5 * (lo + hi)
        if abs(nx - x) <= 1e-13 * (1.0 + abs(x)):
            return min(max(nx, lo), hi)
        if hi - lo <= 1e-13 * (1.0 + hi):
            break
        x = nx
    return hi


@njit(cache=True, nogil=True)
def first_crossing(a, b, span, theta, inv_m, inv_s):
    """The first u in (0, span] where a exp(-u/tau_m) - b exp(-u/tau_s) rises through theta, or -1.0."""
    if a - b >= theta:
        return 0.0
    cuts = np.empty(3)
    cuts[0] = 0.0
    n = 1
    if a * b > 0.0:  # one extremum at most, where the derivative changes sign
        r = (b * inv_s) / (a * inv_m)
        if r > 0.0:
            us = math.log(r) / (inv_s - inv_m)
            if 0.0 < us < span:
                cuts[n] = us
                n += 1
    cuts[n] = span
    for p in range(n):
        lo, hi = cuts[p], cuts[p + 1]
        if _v(a, b, lo, inv_m, inv_s) < theta <= _v(a, b, hi, inv_m, inv_s):
            return _root(a, b, lo, hi, theta, inv_m, inv_s)
    return -1.0


@njit(cache=True, nogil=True)
def _grow(a, m):
    if m < a.shape[0]:
        return a
    b = np.empty(2 * a.shape[0] + 16, a.dtype)
    b[:m] = a[:m]
    return b


@njit(cache=True, nogil=True, inline="always")
def spans_spikes(j, span, t0, A, B, counts, theta, inv_m, inv_s, floor, oi, ot, od, m):
    """Move unit ``j`` on by ``span`` µs from ``t0``, appending its spikes in between (unit, time, dv/dt at the
    crossing, at least ``floor``) to the buffers at ``m`` (grown when full); returns (oi, ot, od, m). For a unit whose
    potential may reach theta in the span (the kernels skip the others with a cheap bound)."""
    a, b = A[j], B[j]
    u0 = 0.0
    for _ in range(MAX_BURST):
        u = first_crossing(a, b, span - u0, theta, inv_m, inv_s)
        if u < 0.0:
            break
        oi, ot, od = _grow(oi, m), _grow(ot, m), _grow(od, m)
        oi[m], ot[m] = j, t0 + u0 + u
        od[m] = max(_dv(a, b, u, inv_m, inv_s), floor)
        m += 1
        counts[j] += 1.0
        a, b = a * math.exp(-u * inv_m) - theta, b * math.exp(-u * inv_s)
        u0 += u
    rest = span - u0
    A[j], B[j] = a * math.exp(-rest * inv_m), b * math.exp(-rest * inv_s)
    return oi, ot, od, m


@njit(cache=True, nogil=True)
def cuba_forward(idx, t, t_end, W, A, B, counts, theta, inv_m, inv_s, c, ref, oi, ot, od):
    """Feed input events (``idx`` int32, ``t`` float64 µs, in order) through a dense layer of current-based
    LIF units; returns its spikes (unit int32, time float64, dv/dt at the crossing float64), in time order.

    ``A``, ``B`` (float64, n_out): the state at time ``ref[0]`` (NaN: fresh, starts at the first event),
    updated in place, as are ``counts`` (float32) and ``ref``; ``W`` float32 (n_in, n_out); ``oi``, ``ot``,
    ``od``: output buffers (grown and returned when too small). Crossings are looked for from the state's
    time to each event and on to ``t_end`` (the readout time, at or after the last event), not beyond.
    """
    no = W.shape[1]
    m = 0
    n = idx.shape[0]
    if ref[0] != ref[0]:
        ref[0] = t[0] if n else t_end
    floor = MIN_SLOPE * theta * inv_m
    for k in range(n + 1):
        span = (t[k] if k < n else t_end) - ref[0]
        if span > 0.0:
            ea, eb = math.exp(-span * inv_m), math.exp(-span * inv_s)
            m0 = m
            for j in range(no):
                a, b = A[j], B[j]
                top = (a if a > 0.0 else a * ea) - (b * eb if b > 0.0 else b)
                if top < theta:  # v cannot reach theta in this interval
                    A[j], B[j] = a * ea, b * eb
                    continue
                oi, ot, od, m = spans_spikes(j, span, ref[0], A, B, counts, theta, inv_m, inv_s, floor, oi, ot, od, m)
            for p in range(m0 + 1, m):  # this interval's spikes of every unit, in time order (few: insertion)
                q = p
                while q > m0 and ot[q - 1] > ot[q]:
                    oi[q - 1], oi[q] = oi[q], oi[q - 1]
                    ot[q - 1], ot[q] = ot[q], ot[q - 1]
                    od[q - 1], od[q] = od[q], od[q - 1]
                    q -= 1
            ref[0] = t[k] if k < n else t_end
        if k == n:
            break
        row = W[idx[k]]
        for j in range(no):
            w = c * row[j]
            A[j] += w
            B[j] += w
    return oi[:m], ot[:m], od[:m]


@njit(cache=True, nogil=True)
def cuba_backward(in_i, in_t, sp_i, sp_t, sp_d, sp_g, W, row_of, grad, theta, inv_m, inv_s, c, want):
    """The exact gradient of a dense current-based LIF layer, backwards over its input events and spikes.

    ``in_i``/``in_t``: the layer's input events (as ``cuba_forward`` took them); ``sp_i``/``sp_t``/``sp_d``:
    its spikes (unit, time, dv/dt); ``sp_g`` (float64, one per spike): dL/dt of each spike from above (the
    next layer's or the output's), completed here in place with the effect of the unit's own resets on its
    later spikes. ``grad`` (float64, (n_active, n_out)) gets dL/dW of the active inputs' rows (``row_of``:
    input unit -> row). Returns dL/dt of every input event (float64; zeros unless ``want``).
    """
    no = W.shape[1]
    P = np.zeros(no)
    Q = np.zeros(no)
    stamp = np.zeros(no)
    g_in = np.zeros(in_i.shape[0])
    p = sp_i.shape[0] - 1
    tp = in_t[in_t.shape[0] - 1] if in_t.shape[0] else 0.0
    if p >= 0 and sp_t[p] > tp:
        tp = sp_t[p]
    stamp[:] = tp
    for k in range(in_i.shape[0] - 1, -1, -1):
        s = in_t[k]
        while p >= 0 and sp_t[p] > s:  # the spikes after this event, latest first
            j = sp_i[p]
            dt = stamp[j] - sp_t[p]
            pj = P[j] * math.exp(-dt * inv_m)
            qj = Q[j] * math.exp(-dt * inv_s)
            g = sp_g[p] + theta * inv_m * pj  # its reset lowers every later potential of its unit
            sp_g[p] = g
            P[j] = pj + g / sp_d[p]
            Q[j] = qj + g / sp_d[p]
            stamp[j] = sp_t[p]
            p -= 1
        ea, eb = math.exp(-(tp - s) * inv_m), math.exp(-(tp - s) * inv_s)
        r = row_of[in_i[k]]
        row = W[in_i[k]]
        acc = 0.0
        for j in range(no):
            if stamp[j] == tp:
                P[j] *= ea
                Q[j] *= eb
            else:
                P[j] *= math.exp(-(stamp[j] - s) * inv_m)
                Q[j] *= math.exp(-(stamp[j] - s) * inv_s)
            stamp[j] = s
            grad[r, j] -= c * (P[j] - Q[j])
            if want:
                acc += row[j] * c * (Q[j] * inv_s - P[j] * inv_m)
        g_in[k] = acc
        tp = s
    return g_in
