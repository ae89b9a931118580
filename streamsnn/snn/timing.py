"""Kernels of learning "timing" (Yamamoto, Sakemi & Aihara 2022): current-based LIF units, exact spike times.

A unit of a dense layer holds two numbers, ``A`` (decays with the membrane time constant tau_m) and ``B``
(decays with the synaptic one, tau_s < tau_m); its potential is ``v = A - B``. An input spike of weight w
adds ``c * w`` to both (the potential does not jump: a postsynaptic current starts, decaying with tau_s,
and the membrane integrates it and leaks with tau_m); ``c`` makes the peak of one input's PSP, the kernel
``K(u) = c (exp(-u/tau_m) - exp(-u/tau_s))``, equal to its weight. Between two input events the state
evolves in closed form; a spike is fired where ``v`` crosses ``theta``, found exactly on the closed form, and
the unit is reset by subtraction (``A -= theta``). So a spike's time moves continuously with the weights and the
input spike times, and every unit may fire many times. When tau_s = tau_m / 2 (the default ``tau_s_ratio``) the
potential is a quadratic in x = exp(-u/tau_m), ``v = A x - B x^2``, and both the crossing and the potential's
largest value in an interval have closed forms (a square root and a logarithm). For other ratios the extremum of
the two exponentials splits the interval into monotone pieces and bracketed Newton finds the crossing to machine
precision.

The forward pass of a dense layer is ``timing_dense.cuba_forward``, of a convolution ``timing_conv``'s. The
backward pass holds every unit's adjoint sums as at one shared time, so its pass per input event is a vectorised
one.

``cuba_backward`` is the exact gradient through the spike times of every spike that happened (implicit
function theorem at each crossing, dt/dp = -(dv/dp)/(dv/dt), chained through every later spike a spike
influences: the next layer's and the unit's own through its reset), visiting the layer's input events
and spikes once, backwards in time, with two adjoint sums per unit (``P``, ``Q``: the later spikes'
dL/dt / (dv/dt), decayed with tau_m and tau_s). Times are float64 µs.

The kernels here (but ``_slope_dot``, which does not divide) and in ``timing_dense`` and ``timing_conv`` are
compiled with ``error_model="numpy"``: a division by zero gives inf or NaN (which the network's guard refuses)
instead of numba's check and exception at every division; a seed-0 `dense:800` model evaluated the 100 real test
samples 1.1-1.3x as fast (three runs interleaved with the code before, 2026-12-07), with the same scores and spikes
to the bit.
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
#: The backward pass holds its sums as at a shared time, at most this many synaptic time constants after a spike it
#: adds to them (exp(300) is far from overflow).
FRAME = 300.0


def psp_norm(inv_m: float, inv_s: float) -> float:
    """``c``: 1 / the peak of exp(-u/tau_m) - exp(-u/tau_s) (tau_s < tau_m)."""
    u = math.log(inv_s / inv_m) / (inv_s - inv_m)
    return 1.0 / (math.exp(-u * inv_m) - math.exp(-u * inv_s))


@njit(cache=True, nogil=True, error_model="numpy")
def _v(a, b, u, inv_m, inv_s):
    return a * math.exp(-u * inv_m) - b * math.exp(-u * inv_s)


@njit(cache=True, nogil=True, error_model="numpy")
def _root(a, b, lo, hi, vlo, vhi, theta, inv_m, inv_s):
    """The u in (lo, hi] where v(u) = theta, v monotone rising there with v(lo) = vlo < theta <= v(hi) = vhi:
    Newton from the chord's crossing, kept inside the bracket (bisection when it leaves it), to machine precision."""
    x = lo + (theta - vlo) * (hi - lo) / (vhi - vlo)
    if not (lo < x < hi):
        x = hi
    for _ in range(100):
        ea, eb = math.exp(-x * inv_m), math.exp(-x * inv_s)
        f = a * ea - b * eb - theta
        if f >= 0.0:
            hi = x
        else:
            lo = x
        d = b * inv_s * eb - a * inv_m * ea
        nx = x - f / d if d > 0.0 else 0.5 * (lo + hi)
        if not (lo < nx < hi) or nx != nx:
            nx = 0.5 * (lo + hi)
        if abs(nx - x) <= 1e-13 * (1.0 + abs(x)):
            return min(max(nx, lo), hi)
        if hi - lo <= 1e-13 * (1.0 + hi):
            break
        x = nx
    return hi


@njit(cache=True, nogil=True, error_model="numpy")
def root_half(a, b, xe, theta):
    """Where the potential first reaches theta when tau_s = tau_m / 2 (the default ``tau_s_ratio``), as
    x = exp(-u / tau_m), or -1.0: the potential is a x - b x^2, so it meets theta at the roots of b x^2 - a x + theta
    = 0. x runs down from 1 as time goes on and v(x = 1) < theta, so the first crossing is the largest root below 1,
    if it comes before the span ends (x >= ``xe`` = exp(-span / tau_m)). ``spans_spikes`` wants x itself (the state
    after the spike is a x - theta, b x^2), so it takes no logarithm to then undo it with an exponential."""
    if b == 0.0:  # v = a x rises in time only when a < 0, below theta > 0
        return -1.0
    d = a * a - 4.0 * b * theta
    if d < 0.0:
        return -1.0
    q = 0.5 * (a + math.sqrt(d)) if a >= 0.0 else 0.5 * (a - math.sqrt(d))  # the roots q / b and theta / q
    r1 = q / b
    r2 = theta / q if q != 0.0 else -1.0
    x = -1.0
    if r1 < 1.0:
        x = r1
    if x < r2 < 1.0:
        x = r2
    if x <= 0.0 or x < xe:
        return -1.0
    return x


@njit(cache=True, nogil=True, error_model="numpy")
def crossing_half(a, b, xe, theta, inv_m):
    """``first_crossing`` when tau_s = tau_m / 2, in closed form (``root_half``), as a time u."""
    x = root_half(a, b, xe, theta)
    return -math.log(x) / inv_m if x > 0.0 else -1.0


@njit(cache=True, nogil=True, error_model="numpy")
def crossing_any(a, b, span, xa, xb, theta, inv_m, inv_s):
    """``first_crossing`` for any tau_s < tau_m: the extremum (one at most, where the derivative changes sign)
    splits the span into monotone pieces, and Newton finds the crossing in the first piece that rises through
    theta."""
    lo, vlo = 0.0, a - b
    if vlo >= theta:
        return 0.0
    if a * b > 0.0:
        us = math.log((b * inv_s) / (a * inv_m)) / (inv_s - inv_m)
        if 0.0 < us < span:
            vm = _v(a, b, us, inv_m, inv_s)
            if vm >= theta:
                return _root(a, b, 0.0, us, vlo, vm, theta, inv_m, inv_s)
            lo, vlo = us, vm
    vs = a * xa - b * xb
    if vlo < theta <= vs:
        return _root(a, b, lo, span, vlo, vs, theta, inv_m, inv_s)
    return -1.0


@njit(cache=True, nogil=True, error_model="numpy")
def first_crossing(a, b, span, xa, xb, theta, inv_m, inv_s):
    """The first u in (0, span] where a exp(-u/tau_m) - b exp(-u/tau_s) rises through theta, or -1.0; ``xa``,
    ``xb``: the two exponentials at u = span. In closed form when tau_s = tau_m / 2, else by Newton."""
    if a - b >= theta:
        return 0.0
    if inv_s == 2.0 * inv_m:
        return crossing_half(a, b, xa, theta, inv_m)
    return crossing_any(a, b, span, xa, xb, theta, inv_m, inv_s)


@njit(cache=True, nogil=True, error_model="numpy")
def room(oi, ot, od, m, more):
    """The output buffers, grown (doubled at least) when they cannot take ``more`` spikes after the first ``m``."""
    if m + more <= oi.shape[0]:
        return oi, ot, od
    size = max(2 * oi.shape[0], m + more) + 16
    ni, nt, nd = np.empty(size, oi.dtype), np.empty(size, ot.dtype), np.empty(size, od.dtype)
    ni[:m], nt[:m], nd[:m] = oi[:m], ot[:m], od[:m]
    return ni, nt, nd


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def spans_spikes(j, span, t0, ea, eb, A, B, counts, theta, inv_m, inv_s, floor, oi, ot, od, m):
    """Move unit ``j`` on by ``span`` µs from ``t0`` (``ea``, ``eb``: the span's decay factors), writing its spikes
    in between (unit, time, dv/dt at the crossing, at least ``floor``) into the buffers at ``m``, which must have
    room for ``MAX_BURST`` more (``room``); returns the new ``m``. For a unit whose potential may reach theta in the
    span (the kernels skip the others with a bound). The buffers are not returned: an array returned from a helper
    called in a loop costs the loop reference counting, several times the work of the loop."""
    a, b = A[j], B[j]
    u0 = 0.0
    half = inv_s == 2.0 * inv_m
    for _ in range(MAX_BURST):
        if half:  # the crossing as x = exp(-u / tau_m): one logarithm for its time, no exponential
            xa = 1.0 if a - b >= theta else root_half(a, b, ea, theta)
            if xa < 0.0:
                break
            u = -math.log(xa) / inv_m
            xb = xa * xa
        else:
            u = first_crossing(a, b, span - u0, ea, eb, theta, inv_m, inv_s)
            if u < 0.0:
                break
            xa, xb = math.exp(-u * inv_m), math.exp(-u * inv_s)
        oi[m], ot[m] = j, t0 + u0 + u
        od[m] = max(b * inv_s * xb - a * inv_m * xa, floor)
        m += 1
        counts[j] += 1.0
        a, b = a * xa - theta, b * xb
        u0 += u
        if half:  # what is left of the span: exp(-(span - u0) / tau_m), the span's factor less the crossing's
            ea = min(ea / xa, 1.0)
            eb = ea * ea
        else:
            ea, eb = math.exp(-(span - u0) * inv_m), math.exp(-(span - u0) * inv_s)
        if (a if a > 0.0 else 0.0) - (b if b < 0.0 else 0.0) < theta:  # v stays below theta from here on
            break
    A[j], B[j] = a * ea, b * eb
    return m


@njit(cache=True, nogil=True, error_model="numpy")
def flag_limits(theta, inv_m, inv_s):
    """(the level ``may_cross`` flags at, whether tau_s = tau_m / 2): theta less a rounding margin, so that a unit
    reaching theta to within rounding is flagged and ``first_crossing`` decides."""
    return theta * (1.0 - 1e-12), inv_s == 2.0 * inv_m


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def may_cross(a, b, ea, eb, lim, half):
    """Whether a unit's potential may reach ``lim`` in a span whose decay factors are ``ea``, ``eb``. In general a
    cheap bound: the A term's largest value minus the B term's smallest. When tau_s = tau_m / 2 (``half``) the
    potential is a x - b x^2 (x = exp(-u/tau_m) from 1 down to ea), so its largest value is exact: at an end, or at
    the top of the parabola, x = a / 2b, where it is a^2 / 4b."""
    if half:
        return (a - b >= lim) | (a * ea - b * eb >= lim) | (
            (b > 0.0) & (a < 2.0 * b) & (a > 2.0 * b * ea) & (a * a >= 4.0 * b * lim))
    return (a if a > 0.0 else a * ea) - (b * eb if b > 0.0 else b) >= lim


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _slope_dot(row, P, Q, inv_m, inv_s):
    """sum_j row[j] (Q[j] / tau_s - P[j] / tau_m), in any order (so that the compiler vectorises it)."""
    acc = 0.0
    for j in range(row.shape[0]):
        acc += row[j] * (Q[j] * inv_s - P[j] * inv_m)
    return acc


@njit(cache=True, nogil=True, error_model="numpy")
def cuba_backward(in_i, in_t, sp_i, sp_t, sp_d, sp_g, W, row_of, grad, theta, inv_m, inv_s, c, want):
    """The exact gradient of a dense current-based LIF layer, backwards over its input events and spikes.

    ``in_i``/``in_t``: the layer's input events (as ``cuba_forward`` took them); ``sp_i``/``sp_t``/``sp_d``:
    its spikes (unit, time, dv/dt); ``sp_g`` (float64, one per spike): dL/dt of each spike from above (the
    next layer's or the output's), completed here in place with the effect of the unit's own resets on its
    later spikes. ``grad`` (float64, (n_active, n_out)) gets dL/dW of the active inputs' rows (``row_of``:
    input unit -> row). Returns dL/dt of every input event (float64; zeros unless ``want``).
    """
    no = W.shape[1]
    P = np.zeros(no)  # the adjoint sums, all held as at time tp (a unit's value at t <= tp: x exp(-(tp - t) / tau))
    Q = np.zeros(no)
    g_in = np.zeros(in_i.shape[0])
    p = sp_i.shape[0] - 1
    tp = in_t[in_t.shape[0] - 1] if in_t.shape[0] else 0.0
    if p >= 0 and sp_t[p] > tp:
        tp = sp_t[p]
    for k in range(in_i.shape[0] - 1, -1, -1):
        s = in_t[k]
        while p >= 0 and sp_t[p] > s:  # the spikes after this event, latest first
            ts = sp_t[p]
            if (tp - ts) * inv_s > FRAME:  # keep exp((tp - ts) / tau) finite: every sum on to ts first
                fa, fb = math.exp(-(tp - ts) * inv_m), math.exp(-(tp - ts) * inv_s)
                for j in range(no):
                    P[j] *= fa
                    Q[j] *= fb
                tp = ts
            j = sp_i[p]
            ea, eb = math.exp(-(tp - ts) * inv_m), math.exp(-(tp - ts) * inv_s)
            g = sp_g[p] + theta * inv_m * P[j] * ea  # its reset lowers every later potential of its unit
            sp_g[p] = g
            P[j] += g / sp_d[p] / ea
            Q[j] += g / sp_d[p] / eb
            p -= 1
        ea, eb = math.exp(-(tp - s) * inv_m), math.exp(-(tp - s) * inv_s)
        r = row_of[in_i[k]]
        row = W[in_i[k]]
        for j in range(no):
            pj, qj = P[j] * ea, Q[j] * eb
            P[j], Q[j] = pj, qj
            grad[r, j] -= c * (pj - qj)
        if want:
            g_in[k] = c * _slope_dot(row, P, Q, inv_m, inv_s)
        tp = s
    return g_in
