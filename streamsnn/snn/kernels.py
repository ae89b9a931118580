"""Numba kernels shared by every layer kind: input counts, the leak's scaled frame, the output layer.

Conventions of all kernels (here, in ``dense.py`` and in ``conv.py``): plain arrays, no Python
objects. A stream of *events* into a layer is three parallel arrays: ``idx`` (int32 unit of the
layer below, or input unit), ``cnt`` (float32 multiplicity: a unit that fires n spikes at once
sends one event of multiplicity n; an empty array means 1 for every event) and ``t`` (int64 µs;
empty when the network does not leak). Integrate-and-fire units fire while their potential is
above ``theta`` and subtract 1 per spike; ``n = ceil(v - theta)`` spikes are emitted at once.

The leak keeps each layer's potentials in a scaled frame: the true state is
``stored * exp(-(t - t_ref)/tau)``, so an event at time t adds ``w * exp((t - t_ref)/tau)`` and is
compared with ``theta * exp((t - t_ref)/tau)``: one ``exp`` per event and nothing while idle. When
the factor passes exp(RENORM) the frame is renormalised (one pass over the layer's state).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: Renormalise a scaled frame once its factor exceeds exp(RENORM).
RENORM = 16.0


@njit(cache=True, nogil=True)
def grow(a, need):
    """``a`` copied into an array of at least ``need`` (and twice its) entries."""
    b = np.empty(max(need, 2 * a.shape[0]), a.dtype)
    b[:a.shape[0]] = a
    return b


@njit(cache=True, nogil=True)
def decay_factor(t_now, inv_tau, ref):
    """exp(-(t_now - t_ref)/tau): multiply stored state by this to read its true value."""
    return math.exp(-(t_now - ref[0]) * inv_tau)


@njit(cache=True, nogil=True, fastmath=True)
def input_counts(idx, n_in, active, x):
    """Count events per input: fills ``x[:n]`` and ``active[:n]`` with the distinct inputs and counts.

    ``active`` (int32) and ``x`` (float32) need room for min(len(idx), n_in) entries; returns n.
    Inputs appear in increasing index order.
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
    """Add the rows ``W[idx[k]] * cnt[k]`` to the decaying output evidence ``scores`` (scaled frame)."""
    no = W.shape[1]
    t_ref = ref[0]
    for k in range(idx.shape[0]):
        a = (t[k] - t_ref) * inv_tau
        if a > RENORM:
            d = np.float32(math.exp(-a))
            for c in range(no):
                scores[c] *= d
            t_ref = float(t[k])
            a = 0.0
        g = cnt[k] * np.float32(math.exp(a))
        row = W[idx[k]]
        for c in range(no):
            scores[c] += g * row[c]
    ref[0] = t_ref


@njit(cache=True, nogil=True)
def output_error_spikes(e, K, herd):
    """The output error as spikes: ``K`` steps of adding ``e`` into non-resetting signed herders.

    Each step adds e_c to ``herd[c]``; while |herd[c]| > 0.5 it emits a spike s = +-1 and subtracts
    s. ``herd`` is updated in place (kept between samples, residuals add up over the stream).
    Returns (units, signs) of the spikes in the order they were emitted.
    """
    no = e.shape[0]
    units = np.empty(16, np.int32)
    signs = np.empty(16, np.float32)
    m = 0
    for _ in range(K):
        for c in range(no):
            herd[c] += e[c]
            while herd[c] > 0.5 or herd[c] < -0.5:
                s = np.float32(1.0) if herd[c] > 0 else np.float32(-1.0)
                herd[c] -= s
                if m == units.shape[0]:
                    units = grow(units, m + 1)
                    signs = grow(signs, m + 1)
                units[m] = c
                signs[m] = s
                m += 1
    return units[:m], signs[:m]
