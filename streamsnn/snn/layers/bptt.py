"""Backpropagation through time over a recurrent layer's recorded event trace (``src:N``), and its step's helpers.

The trace is recorded by ``src.src_run`` while the network runs a window it learns from; ``src_bptt`` walks it
back once. The differentiable model, the cost and how the step is applied: see ``src_bptt`` and
``SrcLayer.backward``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, fastmath=True)
def src_bptt(r_ev, r_g, w_ev, r_sp, r_c, ne, ns, W, R, delta, pos, n_act):
    """Backpropagation through time over a recorded event trace (``src_run``), beyond the direct terms.

    The differentiable model (the counts rule's surrogate, slope 1 where a unit spiked, taken spike by spike):
    the trace is a sequence of steps, each input event's row of W then, in the order they happened, each
    spike's row of R, each step followed by the spikes it fired. A unit's spike carries the charge the unit
    received since its previous spike (up to and including the step that fired it), with slope 1; its row of R
    passes that on; a unit that spiked has as its activity all the charge it received (its count, slope 1);
    a unit that never spiked has none. ``delta`` (float32, N) is the loss's gradient at the activities. Under
    learning "membrane" a charge reaches the activity weighted by ``w_ev`` (float32, per event: exp(-(T - t) /
    tau) of its time t, T the readout; all 1 under "counts"), the traces' rule, while the spikes still respond to
    the charge itself.

    The loss's gradient is then the direct terms (the dense step: input activities times ``delta`` for W, the
    layer's own spikes (weighted) times ``delta`` for R; the one-step truncation) plus what this returns, found by
    walking the steps backwards once: ``nb[j]`` is the gradient at unit j's next spike (0 after its last), a
    step's charge to j has gradient ``w * delta[j] + nb[j]``, and a spike's gradient is its row of R times that
    at its own step.

    ``pos`` int32 (n_in,): row of an input unit among the active inputs (-1: none), ``n_act`` their number.
    Returns (EW float32 (n_act, N): W's extra gradient by active input (non-zero only at units that spiked);
    ER float32 (N, N): R's; EX float32 (n_act,): the extra error at each active input times its count (the
    derivative when all its events scale together, once divided by the count)). Cost: one pass over the recorded
    events and spikes, N per step (as the forward's adds), none for the events after the window's last spike
    that carries a gradient.
    """
    n = R.shape[0]
    EW = np.zeros((n_act, n), np.float32)
    ER = np.zeros((n, n), np.float32)
    EX = np.zeros(n_act, np.float32)
    nb = np.zeros(n, np.float32)
    beta = np.zeros(ns, np.float32)
    live = False  # some nb is non-zero (walking back: from the last spike that carries a gradient on)
    hi = ns
    for e in range(ne - 1, -1, -1):
        lo = r_ev[e, 1]
        direct = r_ev[e, 2]
        om = w_ev[e]
        for q in range(hi - 1, lo - 1, -1):  # the spikes' rows of R, last first
            for p in range(direct if q == lo else r_sp[q - 1, 1], r_sp[q, 1]):  # the spikes that row fired
                nb[r_sp[p, 0]] = beta[p]
                live = live or beta[p] != 0
            row = R[r_sp[q, 0]]
            er = ER[r_sp[q, 0]]
            c = r_c[q]
            b = np.float32(0.0)
            for j in range(n):
                b += row[j] * (om * delta[j] + nb[j])
                er[j] += c * nb[j]
            beta[q] = b
        for p in range(lo, direct):  # the spikes the event's own row fired
            nb[r_sp[p, 0]] = beta[p]
            live = live or beta[p] != 0
        hi = lo
        i = r_ev[e, 0]
        r = pos[i]
        if r < 0:
            continue
        if not live:
            continue
        g = r_g[e]
        ew = EW[r]
        w = W[i]
        s = np.float32(0.0)
        for j in range(n):
            ew[j] += g * nb[j]
            s += w[j] * nb[j]
        EX[r] += g * s
    return EW, ER, EX


def bounded_by_norm(max_step, W, lr, norm):
    """``lr``, scaled down so that a step of gradient norm ``norm`` is at most ``max_step * |W|`` (0: no bound)."""
    if max_step > 0 and lr * norm > 0:
        limit = max_step * float(np.linalg.norm(W))
        if lr * norm > limit:
            lr *= limit / (lr * norm)
    return np.float32(lr)


@njit(cache=True, nogil=True, fastmath=True)
def step_norm(x, d, E):
    """The norm of the gradient whose row r is ``x[r] * d + E[r]`` (a dense step plus the terms through time)."""
    s = 0.0
    for r in range(E.shape[0]):
        e = E[r]
        xr = x[r]
        for j in range(E.shape[1]):
            v = xr * d[j] + e[j]
            s += v * v
    return math.sqrt(s)


@njit(cache=True, nogil=True, fastmath=True)
def sub_rows(W, rows, E, lr):
    """``W[rows[r]] -= lr * E[r]`` for every r, in place."""
    for r in range(rows.shape[0]):
        w = W[rows[r]]
        e = E[r]
        for j in range(w.shape[0]):
            w[j] -= lr * e[j]
