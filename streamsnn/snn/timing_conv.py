"""Kernels of learning "timing" for convolutional layers: the units of ``timing.py``, reached through a table.

A convolution's input event reaches only the output positions whose receptive field holds it
(``layers.conv.conv_table``: row u = (c, dy0, oy0, ny, dx0, ox0, nx); the kernel rows dy0 + i*S meet the
output rows oy0 - i, the same for x), and at each it adds ``c * K[c, dy, dx, :]`` to the (A, B) pair of the
C_out units there (channel-last: unit ``(oy * OW + ox) * C_out + o``). So, unlike a dense layer's units, which
every input event reaches and which all move on together, each output position keeps its own time ``stamp``:
its units are moved on (decayed in closed form, their threshold crossings found exactly, as
``timing_dense.cuba_forward`` does) only when an event reaches them, and every unit once more at the readout time. A
unit's spikes depend only on its own inputs, so the spikes are those of the same units run densely (a test
compares them with a dense layer holding the expanded kernel); they are found position by position and sorted
by time at the end.

``cuba_conv_backward`` is ``timing.cuba_backward`` with the same table: the adjoint sums ``P``, ``Q`` of a
position's units are decayed lazily to each input event that reaches them, and the gradient of a kernel weight
sums over every position it is used at. Its cost follows the input events times the units each reaches, as the
forward's. Every event reaches all C_out units of a position together, so they share one time and one pair
of exponentials per position, not per unit.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .timing import MAX_BURST, MIN_SLOPE, flag_limits, may_cross, room, spans_spikes


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _reach(row, i, st, ks, co, ow):
    """(first flat kernel index, output position) of the ``i``-th of the ny x nx blocks an input unit's table ``row``
    (c, dy0, oy0, ny, dx0, ox0, nx) reaches: kernel row dy0 + a*S meets output row oy0 - a, the same for x."""
    a, b = i // row[6], i % row[6]
    dy, dx = row[1] + a * st, row[4] + b * st
    return ((row[0] * ks + dy) * ks + dx) * co, (row[2] - a) * ow + (row[5] - b)


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _advance(p, s, co, A, B, stamp, counts, theta, inv_m, inv_s, floor, near, half, oi, ot, od, m):
    """Move the ``co`` units at position ``p`` (units p*co .. p*co + co - 1, which every event reaches together)
    from their time ``stamp[p]`` to ``s``, appending their spikes in between at ``m`` (``near``, ``half``:
    ``timing.flag_limits``)."""
    span = s - stamp[p]
    if not span > 0.0:
        return oi, ot, od, m
    t0 = stamp[p]
    stamp[p] = s
    ea, eb = math.exp(-span * inv_m), math.exp(-span * inv_s)
    if m + co * MAX_BURST > oi.shape[0]:
        oi, ot, od = room(oi, ot, od, m, co * MAX_BURST)
    for j in range(p * co, p * co + co):
        a, b = A[j], B[j]
        if not may_cross(a, b, ea, eb, near, half):  # v cannot reach theta in this interval
            A[j], B[j] = a * ea, b * eb
            continue
        m = spans_spikes(j, span, t0, ea, eb, A, B, counts, theta, inv_m, inv_s, floor, oi, ot, od, m)
    return oi, ot, od, m


@njit(cache=True, nogil=True, error_model="numpy")
def cuba_conv_forward(idx, t, t_end, Kf, tab, ow, st, ks, co, A, B, counts, theta, inv_m, inv_s, c, ref, oi, ot,
                      od):
    """Feed input events (``idx`` int32, ``t`` float64 µs, in order) through a convolution of current-based LIF
    units; returns its spikes (unit int32, time float64, dv/dt at the crossing float64), in time order.

    ``Kf``: the flat kernel K[c_in, dy, dx, c_out] (float32); ``tab``: its ``conv_table``; ``ow``: output
    width; ``st``: stride; ``ks``: kernel size; ``co``: output channels. ``A``, ``B`` (float64, n_out): the state
    at time ``ref[0]`` (NaN: fresh, starts at the first event), updated in place, as are ``counts`` (float32) and
    ``ref``: every unit is moved on to ``t_end`` (the readout time, at or after the last event) before returning,
    so between calls all units share one time, as a dense layer's do. ``oi``, ``ot``, ``od``: output buffers
    (grown when too small)."""
    m = 0
    floor = MIN_SLOPE * theta * inv_m
    near, half = flag_limits(theta, inv_m, inv_s)
    if ref[0] != ref[0]:
        ref[0] = t[0] if idx.shape[0] else t_end
    n_pos = A.shape[0] // co
    stamp = np.full(n_pos, ref[0])  # the time of each position's units
    for k in range(idx.shape[0]):
        s = t[k]
        row = tab[idx[k]]
        for i in range(row[3] * row[6]):
            w0, p = _reach(row, i, st, ks, co, ow)
            oi, ot, od, m = _advance(p, s, co, A, B, stamp, counts, theta, inv_m, inv_s, floor, near, half, oi, ot, od,
                                     m)
            j0 = p * co
            for q in range(co):
                w = c * Kf[w0 + q]
                A[j0 + q] += w
                B[j0 + q] += w
    for p in range(n_pos):
        oi, ot, od, m = _advance(p, t_end, co, A, B, stamp, counts, theta, inv_m, inv_s, floor, near, half, oi,
                                 ot, od, m)
    ref[0] = t_end
    order = np.argsort(ot[:m], kind="mergesort")
    return oi[:m][order], ot[:m][order], od[:m][order]


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _decay(p, s, co, P, Q, stamp, inv_m, inv_s):
    """Decay the adjoint sums of the ``co`` units at position ``p`` from ``stamp[p]`` back to ``s``."""
    du = stamp[p] - s
    if du > 0.0:
        ea, eb = math.exp(-du * inv_m), math.exp(-du * inv_s)
        for j in range(p * co, p * co + co):
            P[j] *= ea
            Q[j] *= eb
        stamp[p] = s


@njit(cache=True, nogil=True, error_model="numpy")
def cuba_conv_backward(in_i, in_t, sp_i, sp_t, sp_d, sp_g, Kf, tab, ow, st, ks, co, n_out, grad, theta, inv_m,
                       inv_s, c, want):
    """The exact gradient of a convolution of current-based LIF units, backwards over its input events and spikes
    (``timing.cuba_backward``'s contract, through the table): ``grad`` (float64, flat like ``Kf``) gets dL/dK;
    ``sp_g`` is completed in place with the effect of each unit's own resets; returns dL/dt of every input event
    (zeros unless ``want``). The sums of a position's units share one time, as in the forward pass."""
    P = np.zeros(n_out)
    Q = np.zeros(n_out)
    g_in = np.zeros(in_i.shape[0])
    p = sp_i.shape[0] - 1
    tp = in_t[in_t.shape[0] - 1] if in_t.shape[0] else 0.0
    if p >= 0 and sp_t[p] > tp:
        tp = sp_t[p]
    stamp = np.full(n_out // co, tp)
    for k in range(in_i.shape[0] - 1, -1, -1):
        s = in_t[k]
        while p >= 0 and sp_t[p] > s:  # the spikes after this event, latest first
            j = sp_i[p]
            _decay(j // co, sp_t[p], co, P, Q, stamp, inv_m, inv_s)
            g = sp_g[p] + theta * inv_m * P[j]  # its reset lowers every later potential of its unit
            sp_g[p] = g
            P[j] += g / sp_d[p]
            Q[j] += g / sp_d[p]
            p -= 1
        row = tab[in_i[k]]
        acc = 0.0
        for i in range(row[3] * row[6]):
            w0, pos = _reach(row, i, st, ks, co, ow)
            _decay(pos, s, co, P, Q, stamp, inv_m, inv_s)
            j0 = pos * co
            for q in range(co):
                grad[w0 + q] -= c * (P[j0 + q] - Q[j0 + q])
                if want:
                    acc += Kf[w0 + q] * c * (Q[j0 + q] * inv_s - P[j0 + q] * inv_m)
        g_in[k] = acc
    return g_in
