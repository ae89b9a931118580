"""Numba kernels of a dense spiking layer: event-driven forward pass, count backprop, error spikes.

``W`` is (n_in, n_out) float32, C-contiguous: an event of input unit i adds the row ``W[i]`` (times
its multiplicity) to the potentials ``phi`` of all n_out units. Event conventions: see kernels.py.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .kernels import RENORM, grow


@njit(cache=True, nogil=True, fastmath=True)
def dense_forward(idx, cnt, t, start, W, phi, counts, theta, inv_tau, ref, emit, oi, oc, ot, m):
    """Feed events ``idx[start:]`` through a dense layer of integrate-and-fire units, in order.

    Updates ``phi`` and ``counts`` (spikes per unit, float32) in place. With ``emit`` the spikes are
    written in the order they happen, as events for the next layer, into ``oi``/``oc``/``ot`` from
    position ``m`` on (``ot`` only with a leak, ``inv_tau > 0``). Returns (k, m): events consumed
    up to k and events written up to m; k < len(idx) when the output arrays may not hold the next
    event's spikes: grow them and call again from k (see ``propagate.run_layer``). Without ``emit``
    (only without a leak: the last hidden layer, whose output is linear in its counts) each event
    is one branch-free SIMD pass that adds, fires and resets.
    """
    no = W.shape[1]
    leak = inv_tau > 0.0
    ones = cnt.shape[0] == 0
    t_ref = ref[0]
    zero = np.float32(0.0)
    cap = oi.shape[0] - no
    for k in range(start, idx.shape[0]):
        if emit and m > cap:
            ref[0] = t_ref
            return k, m
        row = W[idx[k]]
        g = np.float32(1.0) if ones else cnt[k]
        f = np.float32(1.0)
        if leak:
            a = (t[k] - t_ref) * inv_tau
            if a > RENORM:
                d = np.float32(math.exp(-a))
                for j in range(no):
                    phi[j] *= d
                t_ref = float(t[k])
                a = 0.0
            f = np.float32(math.exp(a))
            g *= f
        if not emit:
            for j in range(no):
                v = phi[j] + g * row[j]
                n = np.ceil(v - theta)
                n = n if n > zero else zero
                phi[j] = v - n
                counts[j] += n
            continue
        thr = theta * f
        above = zero
        for j in range(no):
            v = phi[j] + g * row[j]
            phi[j] = v
            above += np.float32(v > thr)  # a float count vectorises; a running max does not
        if above > zero:
            left = int(above)
            for j in range(no):
                v = phi[j]
                if v > thr:
                    n = np.float32(math.ceil((v - thr) / f))
                    phi[j] = v - n * f
                    counts[j] += n
                    oi[m] = j
                    oc[m] = n
                    if leak:
                        ot[m] = t[k]
                    m += 1
                    left -= 1
                    if left == 0:
                        break
    ref[0] = t_ref
    return idx.shape[0], m


@njit(cache=True, nogil=True, fastmath=True)
def dense_backward(act_in, a_in, delta, act_out, W, lr, want_delta_in):
    """One SGD step of a dense layer on spike counts, sparse over the active units, in place.

    ``act_in``/``a_in``: the input units that were active and their counts; ``delta`` (n_out): the
    error of each output unit (zero where the unit did not spike), ``act_out`` the units where it
    is not zero. ``W[i, j] -= lr * a_i * delta_j`` for active i, j. Returns the error at the active
    inputs, ``sum_j W[i, j] * delta_j`` with W before the step (or zeros unless ``want_delta_in``).
    """
    no = W.shape[1]
    d_in = np.zeros(act_in.shape[0], np.float32)
    full = act_out.shape[0] * 4 > no  # many active outputs: one contiguous pass beats a gather
    for ii in range(act_in.shape[0]):
        row = W[act_in[ii]]
        g = lr * a_in[ii]
        s = np.float32(0.0)
        if full:
            if want_delta_in:
                for j in range(no):
                    s += row[j] * delta[j]
            for j in range(no):
                row[j] -= g * delta[j]
        else:
            for jj in range(act_out.shape[0]):
                j = act_out[jj]
                s += row[j] * delta[j]
                row[j] -= g * delta[j]
        d_in[ii] = s
    return d_in


@njit(cache=True, nogil=True)
def dense_error_spikes(units, signs, act_in, a_in, W, step, herd, propagate):
    """The paper's event-driven update of a dense layer: each error spike updates one weight column.

    An error spike (j, s) at output unit j first passes through the synapses ``W[i, j]`` into the
    herder of every active input unit i (the ReLU gate: only units that spiked carry error), when
    ``propagate``; each herder emits a spike +-1 whenever |state| > 0.5. Then the column moves:
    ``W[act_in, j] -= step * s * a_in``. ``herd`` (n_in) is updated in place. Returns the (units,
    signs) of the input error spikes, in order, for the layer below.
    """
    out_u = np.empty(64, np.int32)
    out_s = np.empty(64, np.float32)
    m = 0
    for q in range(units.shape[0]):
        j = units[q]
        s = signs[q]
        if propagate:
            for ii in range(act_in.shape[0]):
                i = act_in[ii]
                herd[i] += s * W[i, j]
                while herd[i] > 0.5 or herd[i] < -0.5:
                    sh = np.float32(1.0) if herd[i] > 0 else np.float32(-1.0)
                    herd[i] -= sh
                    if m == out_u.shape[0]:
                        out_u = grow(out_u, m + 1)
                        out_s = grow(out_s, m + 1)
                    out_u[m] = i
                    out_s[m] = sh
                    m += 1
        g = step * s
        for ii in range(act_in.shape[0]):
            W[act_in[ii], j] -= g * a_in[ii]
    return out_u[:m], out_s[:m]


@njit(cache=True, nogil=True, fastmath=True)
def dense_relu(act_in, a_in, W):
    """Pre-activations of the equivalent ReLU layer: sum_i a_i * W[act_i] (float32, n_out)."""
    no = W.shape[1]
    z = np.zeros(no, np.float32)
    for ii in range(act_in.shape[0]):
        row = W[act_in[ii]]
        xi = a_in[ii]
        for j in range(no):
            z[j] += xi * row[j]
    return z
