"""The dense layer kind ("dense:N"): N units, each connected to every unit below; its kernels and class.

``W`` is (n_in, n_out) float32, C-contiguous: an event of input unit i adds the row ``W[i]`` (times
its multiplicity) to the potentials ``phi`` of all n_out units. Event conventions: see kernels.py.
The output layer of every network is dense too (``dense_backward``, ``dense_error_spikes``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..kernels import MAX_LAYER_ERROR_SPIKES, RENORM, fire, herd_emit, integrate_span, restart
from .base import Layer, LayerSpec, bounded_lr, sound


@njit(cache=True, nogil=True, fastmath=True)
def dense_forward(idx, cnt, t, start, W, phi, counts, theta, inv_tau, ref, emit, oi, oc, ot, m):
    """Feed events ``idx[start:]`` through a dense layer of integrate-and-fire units, in order.

    Updates ``phi`` and ``counts`` (spikes per unit, float32) in place. With ``emit`` the spikes are
    written in the order they happen, as events for the next layer, into ``oi``/``oc``/``ot`` from
    position ``m`` on (``ot`` only with a leak, ``inv_tau > 0``). Returns (k, m): events consumed
    up to k and events written up to m; k < len(idx) when the output arrays may not hold the next
    event's spikes: grow them and call again from k (see ``propagate.run_layer``). Without ``emit``
    (only without a leak: the last hidden layer, whose output is linear in its counts) the units
    fire and reset the same way but no spikes are written.

    Arguments: ``idx`` int32, ``cnt`` float32 (or empty: all 1), ``t`` int64 µs (or empty without a
    leak), all (n_events,); ``start`` int; ``W`` float32 (n_in, n_out), C-contiguous; ``phi``, ``counts`` float32
    (n_out,); ``theta`` float32; ``inv_tau`` float 1/µs (0: no leak); ``ref`` float64 (1,), the leak
    frame's reference time, updated; ``emit`` bool; ``oi`` int32, ``oc`` float32, ``ot`` int64, all
    (capacity,), capacity at least n_out beyond ``m``; ``m`` int.
    """
    no = W.shape[1]
    Wf = W.reshape(-1)
    ones = cnt.shape[0] == 0
    cap = oi.shape[0] - no
    zero = np.uint64(0)
    n = idx.shape[0]
    if inv_tau > 0.0:
        return dense_forward_leaky(idx, cnt, t, start, Wf, no, phi, counts, theta, inv_tau, ref, emit, oi, oc, ot, m,
                                   cap)
    for k in range(start, n):  # f = 1 as a constant: no leak arithmetic in this loop
        if emit and m > cap:
            return k, m
        w = np.uint64(idx[k]) * np.uint64(no)  # the row W[idx[k]], as an offset (kernels.integrate_span)
        lo, hi = integrate_span(phi, zero, Wf, w, no, np.float32(1.0) if ones else cnt[k], theta)
        if hi > 0:
            m = fire(phi, counts, zero, lo, hi, theta, np.float32(1.0), False, emit, t, k, oi, oc, ot, m)
    return n, m


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def dense_forward_leaky(idx, cnt, t, start, Wf, no, phi, counts, theta, inv_tau, ref, emit, oi, oc, ot, m, cap):
    """``dense_forward`` with a leak (``inv_tau > 0``); ``Wf`` the flat weights, ``no`` the units, ``cap`` the last
    output position with room for an event's spikes. Compiled on its own, without numba's division-by-zero checks
    (``kernels``, speed): a unit's spikes divide by the frame's factor, never 0."""
    ones = cnt.shape[0] == 0
    zero = np.uint64(0)
    t_ref = ref[0]
    n = idx.shape[0]
    k = start
    while True:  # events until one whose frame factor passed exp(RENORM); then the frame restarts there (kernels)
        while k < n:
            if emit and m > cap:
                ref[0] = t_ref
                return k, m
            a = (t[k] - t_ref) * inv_tau
            if a > RENORM:
                break
            f = np.float32(math.exp(a))
            w = np.uint64(idx[k]) * np.uint64(no)
            lo, hi = integrate_span(phi, zero, Wf, w, no, f if ones else cnt[k] * f, theta * f)
            if hi > 0:
                m = fire(phi, counts, zero, lo, hi, theta * f, f, True, emit, t, k, oi, oc, ot, m)
            k += 1
        if k == n:
            break
        t_ref = restart(phi, t[k], t_ref, inv_tau)
    ref[0] = t_ref
    return n, m


@njit(cache=True, nogil=True, fastmath=True)
def dense_backward(act_in, a_in, delta, act_out, W, lr, want_delta_in):
    """One SGD step of a dense layer on spike counts, sparse over the active units, in place.

    ``act_in``/``a_in``: the input units that were active and their counts; ``delta`` (n_out): the
    error of each output unit (zero where the unit did not spike), ``act_out`` the units where it
    is not zero. ``W[i, j] -= lr * a_i * delta_j`` for active i, j. Returns the error at the active
    inputs, ``sum_j W[i, j] * delta_j`` with W before the step (or zeros unless ``want_delta_in``).

    Arguments: ``act_in`` int32, ``a_in`` float32 (n_active,); ``delta`` float32 (n_out,); ``act_out``
    int32 (n_active_out,); ``W`` float32 (n_in, n_out), in place; ``lr`` float32; ``want_delta_in``
    bool. Returns float32 (n_active,).
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
    signs) of the input error spikes, in order, for the layer below: at most about
    ``kernels.MAX_LAYER_ERROR_SPIKES`` (an absurd step could otherwise send down billions).

    Arguments: ``units`` int32, ``signs`` float32 (n_spikes,): the error spikes at the outputs;
    ``act_in`` int32, ``a_in`` float32 (n_active,); ``W`` float32 (n_in, n_out), in place; ``step``
    float32; ``herd`` float32 (n_in,); ``propagate`` bool. Returns (int32, float32) arrays.
    """
    out_u = np.empty(64, np.int32)
    out_s = np.empty(64, np.float32)
    m = 0
    for q in range(units.shape[0]):
        j = units[q]
        s = signs[q]
        if propagate and m < MAX_LAYER_ERROR_SPIKES:
            for ii in range(act_in.shape[0]):
                i = act_in[ii]
                out_u, out_s, m = herd_emit(herd, i, s * W[i, j], out_u, out_s, m)
        g = step * s
        for ii in range(act_in.shape[0]):
            W[act_in[ii], j] -= g * a_in[ii]
    return out_u[:m], out_s[:m]


class DenseLayer(Layer):
    """``dense:N``: N integrate-and-fire units, each connected to every unit below (weights (n_in, N))."""

    kind = "dense"
    error_spikes_ok = True
    timing_ok = True
    usage = "dense:N"

    # the spec side reads the kind from the class: a kind of N fully connected units (``src``) inherits it
    @classmethod
    def from_numbers(cls, nums):
        return LayerSpec(cls.kind, nums[0]) if len(nums) == 1 else None

    @classmethod
    def from_dict(cls, d):
        return LayerSpec(cls.kind, int(d["units"]))

    @classmethod
    def text(cls, spec):
        return f"{cls.kind}:{spec.units}"

    @classmethod
    def as_dict(cls, spec):
        return {"kind": cls.kind, "units": spec.units}

    @classmethod
    def out_shape(cls, spec, in_shape):
        return (spec.units, 1, 1)

    @classmethod
    def weight_shape(cls, geo):
        return (geo.n_in, geo.n_out)

    @classmethod
    def fan_in(cls, geo):
        return geo.n_in

    @classmethod
    def fan_out(cls, geo):
        return geo.n_out

    @classmethod
    def line(cls, d):
        return f"dense {d['units']} units"

    def kernel(self, ev_i, ev_c, ev_t, start, theta, inv_tau, ref, emit, bi, bc, bt, m):
        return dense_forward(ev_i, ev_c, ev_t, start, self.weight, self.phi, self.counts, theta, inv_tau, ref, emit,
                             bi, bc, bt, m)

    def backward(self, a_in, x_in, act_out, d_out, delta, lr, max_step, want):
        lr = bounded_lr(max_step, self.weight, lr, x_in, d_out)
        return dense_backward(a_in, x_in, delta, act_out, self.weight, lr, want)

    def touched(self, a_in):  # a step changes only the rows of the active inputs
        return {"": self.weight[a_in]}

    def untouch(self, a_in, saved):
        self.weight[a_in] = saved[""]

    def finite(self, a_in):
        return sound(self.weight[a_in])

    def error_spikes(self, units, signs, a_in, x_in, step, herd_in, propagate):
        return dense_error_spikes(units, signs, a_in, x_in, self.weight, step, herd_in, propagate)

    def relu(self, a):
        return a @ self.weight
