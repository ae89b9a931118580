"""The recurrent spiking layer kind ("src:N"): dense input plus recurrent weights, its cascade kernel and class.

After the Spiking Recurrent Cell (De Geeter et al. 2023) in one respect: the units talk only by spikes and
their own spikes feed back into the layer. ``W`` is (n_in, N) like a dense layer's; ``R`` is (N, N),
float32, C-contiguous, zero on its diagonal: a spike of unit j with multiplicity c adds ``c * R[j]`` to the
potentials of the layer's own units at the same time, which may make further units fire (a *cascade*
within one event time). It is not the paper's cell: the units are the same integrate-and-fire units with
subtractive reset as every other kind (no slow adaptation or bistability variables), and learning is a
one-step truncation of backpropagation through time (see ``SrcLayer.backward``), not BPTT.

Event conventions (idx, cnt, t; the leak's scaled frame): see kernels.py.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..kernels import integrate, renormalise
from .base import Layer, bounded_lr, sound
from .dense import DenseLayer, dense_backward

#: The cascade's cap: one input event may cause at most CASCADE * N recurrent spikes (multiplicities counted)
#: in a layer of N units. Beyond it the cascade stops firing: the spikes already fired still add their rows of R,
#: then every potential above threshold is clamped to it (the excess charge is dropped) and the event is counted
#: in the layer's ``capped``. A runaway positive loop therefore always ends.
CASCADE = 4


@njit(inline="always")
def fire_push(phi, thr, f, budget, leak, t, k, emit, oi, oc, ot, m, counts, qi, qc, nq):
    """Fire the units of ``phi`` above ``thr``, in unit order, at most ``budget`` spikes in all (< 0: no bound).

    A unit fires c = ceil((v - thr) / f) spikes (fewer when the budget runs out) and loses c * f; ``counts``
    gains c; each firing is queued (``qi`` int32 unit, ``qc`` float32 c at ``nq``) for its recurrent input and,
    with ``emit``, written as an event (``oi``/``oc``/``ot`` at ``m``, ``ot`` only when ``leak``).
    Returns (m, nq, spikes fired).
    """
    spent = np.float32(0.0)
    for j in range(phi.shape[0]):
        v = phi[j]
        if v > thr:
            c = np.float32(math.ceil((v - thr) / f))
            if budget >= 0 and c > budget - spent:
                c = budget - spent
                if c <= 0:
                    break
            phi[j] = v - c * f
            counts[j] += c
            qi[nq] = j
            qc[nq] = c
            nq += 1
            spent += c
            if emit:
                oi[m] = j
                oc[m] = c
                if leak:
                    ot[m] = t[k]
                m += 1
    return m, nq, spent


@njit(cache=True, nogil=True, fastmath=True)
def src_forward(idx, cnt, t, start, W, R, phi, counts, theta, inv_tau, ref, emit, oi, oc, ot, m, cap, qi, qc,
                capped):
    """Feed events ``idx[start:]`` through a recurrent layer of integrate-and-fire units, in order.

    Same contract as ``dense.dense_forward`` (updates ``phi``/``counts``; with ``emit`` writes the spikes in
    the order they happen; returns (events consumed, events written)), plus the cascade: an event adds its
    row of ``W`` and fires the units above threshold; then each spike (j, c), first in first out, adds
    ``c * R[j]`` and fires the units it pushes above threshold, whose spikes join the queue, all at the
    event's time. At most ``cap`` recurrent spikes per input event: then the queue is drained without firing
    and potentials above threshold are clamped to it; ``capped[0]`` counts those events. Without ``emit``
    the spikes are still queued (the recurrence needs them) but not written.

    Arguments: as ``dense_forward``, plus ``R`` float32 (N, N); ``cap`` int (spikes); ``qi`` int32 and ``qc``
    float32 (N + cap,), the work queue; ``capped`` int64 (1,), updated. The output arrays need room for
    N + cap events beyond ``m``.
    """
    no = W.shape[1]
    leak = inv_tau > 0.0
    ones = cnt.shape[0] == 0
    t_ref = ref[0]
    zero = np.float32(0.0)
    budget0 = np.float32(cap)
    room = oi.shape[0] - no - cap
    for k in range(start, idx.shape[0]):
        if emit and m > room:
            ref[0] = t_ref
            return k, m
        g = np.float32(1.0) if ones else cnt[k]
        f = np.float32(1.0)
        if leak:
            a, t_ref = renormalise(phi, t[k], t_ref, inv_tau)
            f = np.float32(math.exp(a))
            g *= f
        thr = theta * f
        nq = 0
        if integrate(phi, 0, W[idx[k]], g, thr) > zero:
            m, nq, _ = fire_push(phi, thr, f, np.float32(-1.0), leak, t, k, emit, oi, oc, ot, m, counts, qi, qc, nq)
        budget = budget0
        q = 0
        while q < nq:  # the cascade: each spike adds its row of R, at the same time
            above = integrate(phi, 0, R[qi[q]], qc[q] * f, thr)
            q += 1
            if above > zero and budget > zero:
                m, nq, spent = fire_push(phi, thr, f, budget, leak, t, k, emit, oi, oc, ot, m, counts, qi, qc, nq)
                budget -= spent
        if budget <= zero:  # the cap was reached: drop the charge that would fire on
            capped[0] += 1
            for j in range(no):
                if phi[j] > thr:
                    phi[j] = thr
    ref[0] = t_ref
    return idx.shape[0], m


class SrcLayer(DenseLayer):
    """``src:N``: N integrate-and-fire units with dense input weights (n_in, N) and recurrent weights (N, N).

    The spec and the input weights' shape come from ``DenseLayer``; the kernel, the recurrent array, the step,
    the guard (which covers R too) and the error spikes (refused) are its own."""

    kind = "src"
    error_spikes_ok = False
    timing_ok = False
    usage = "src:N"

    @classmethod
    def array_shapes(cls, geo):
        return {"": cls.weight_shape(geo), "rec": (geo.n_out, geo.n_out)}

    @classmethod
    def fan_out(cls, geo):  # the event's own firings, then at most CASCADE * N recurrent spikes
        return geo.n_out * (1 + CASCADE)

    @classmethod
    def line(cls, d):
        return f"src {d['units']} units, recurrent (their spikes feed back into the layer)"

    #: Recurrent weights start as He-scaled input weights times this gain (small: the untrained layer is stable).
    REC_GAIN = 0.5

    def __init__(self, geo):
        n = geo.n_out
        self.rec = np.zeros((n, n), np.float32)
        self.cap = CASCADE * n
        self.queue_i = np.empty(n + self.cap, np.int32)  # the cascade's work queue (scratch)
        self.queue_c = np.empty(n + self.cap, np.float32)
        self.capped = np.zeros(1, np.int64)  # input events whose cascade reached the cap (not saved)
        self._noted = None
        super().__init__(geo)

    def init_weights(self, rng, gain):
        super().init_weights(rng, gain)
        n = self.geo.n_out
        rec = rng.standard_normal((n, n)) * gain * self.REC_GAIN * math.sqrt(2.0 / n)
        np.fill_diagonal(rec, 0.0)
        self.rec = rec.astype(np.float32)

    def arrays(self):
        return {"": self.weight, "rec": self.rec}

    def set_arrays(self, arrays):
        super().set_arrays(arrays)
        self.rec = np.ascontiguousarray(arrays["rec"], dtype=np.float32)

    def kernel(self, ev_i, ev_c, ev_t, start, theta, inv_tau, ref, emit, bi, bc, bt, m):
        return src_forward(ev_i, ev_c, ev_t, start, self.weight, self.rec, self.phi, self.counts, theta, inv_tau,
                           ref, emit, bi, bc, bt, m, self.cap, self.queue_i, self.queue_c, self.capped)

    def note_activity(self, act, h):
        self._noted = (act, h)

    def backward(self, a_in, x_in, act_out, d_out, delta, lr, max_step, want):
        """The input weights learn as a dense layer's; the recurrent weights by a one-step truncation of
        backpropagation through time: the layer's own spikes in the window are taken as extra inputs,
        ``R[j, i] -= lr * h_j * delta_i`` with h_j unit j's activity (its count, or its trace under "membrane":
        what ``note_activity`` was given, else its count), the diagonal left as it is. The error is not sent
        back through R across the window's spikes (full BPTT over the event trace is not done)."""
        act, h = self._noted if self._noted is not None else (act_out, self.counts[act_out])
        self._noted = None
        lr_w = bounded_lr(max_step, self.weight, lr, x_in, d_out)
        d_in = dense_backward(a_in, x_in, delta, act_out, self.weight, lr_w, want)
        if len(act):
            lr_r = bounded_lr(max_step, self.rec, lr, h, d_out)
            diag = self.rec[act, act]
            dense_backward(act, h, delta, act_out, self.rec, lr_r, False)
            self.rec[act, act] = diag
        return d_in

    def touched(self, a_in):  # the input rows of the active inputs, and all of R (N x N, small beside W)
        return {"": self.weight[a_in], "rec": self.rec.copy()}

    def untouch(self, a_in, saved):
        self.weight[a_in] = saved[""]
        self.rec[...] = saved["rec"]

    def finite(self, a_in):
        return sound(self.weight[a_in]) and sound(self.rec)

    error_spikes = Layer.error_spikes  # the paper's error spikes are for dense layers only
    # relu: DenseLayer's, the input part only (``a @ W``): the recurrence has no twin
