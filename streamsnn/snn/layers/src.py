"""The recurrent spiking layer kind ("src:N"): dense input plus recurrent weights, its cascade kernel and class.

After the Spiking Recurrent Cell (De Geeter et al. 2023) in two respects: the units talk only by spikes and
their own spikes feed back into the layer, and the layer learns by backpropagation through time. ``W`` is
(n_in, N) like a dense layer's; ``R`` is (N, N), float32, C-contiguous, zero on its diagonal: a spike of
unit j with multiplicity c adds ``c * R[j]`` to the potentials of the layer's own units at the same time,
which may make further units fire (a *cascade* within one event time).

Learning: while the network runs a window it learns from, ``forward`` records the window's event trace
(each input event, each spike and the step that fired it; nothing when only predicting) and
``SrcLayer.backward`` walks it back once (``bptt.src_bptt``): the error goes back through R across the
recurrent spikes in reverse order, so W and R get the gradient along every recurrent path, not only the
last step. It is the exact gradient of a differentiable model (the counts rule's surrogate, slope 1 where a
unit spiked, taken spike by spike; under "membrane" weighted by time as the traces are), checked against a
NumPy reference by finite differences (tests/test_src_bptt.py). Its cost follows the trace: one pass over
the recorded events and spikes, N per step, at most what the forward did (the cascade cap bounds both).

It is not the paper's cell: the units are the same integrate-and-fire units with subtractive reset as every
other kind, event-driven and leaky with the layer's time constant; the paper's cell is a discrete-time cell
derived from the bistable recurrent cell (a filtered input current, a fast variable whose positive feedback
makes each spike, a slow variable that brings it back), smooth enough to train by plain BPTT over time
steps. Here there is no such slow variable (an event-driven adaptation, the threshold raised by each spike
and decaying with its own time constant, was tried on the order-only task and did not help), and BPTT needs
the surrogate above because the spikes are real events.

Event conventions (idx, cnt, t; the leak's scaled frame): see kernels.py.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..kernels import integrate, renormalise
from .base import Layer, bounded_lr, sound
from .bptt import bounded_by_norm, src_bptt, step_norm, sub_rows
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
    N + cap events beyond ``m``. Records nothing (``src_run`` with ``record`` off).
    """
    return src_run(idx, cnt, t, start, W, R, phi, counts, theta, inv_tau, ref, emit, oi, oc, ot, m, cap, qi, qc,
                   capped, None)


@njit(cache=True, nogil=True, fastmath=True)
def src_run(idx, cnt, t, start, W, R, phi, counts, theta, inv_tau, ref, emit, oi, oc, ot, m, cap, qi, qc, capped,
            trace):
    """``src_forward``, and with ``trace`` (not None) the event trace that ``bptt.src_bptt`` walks back.

    ``trace`` is None (a compiled copy without any of the recording: inference pays nothing) or the tuple
    (r_ev, r_g, r_t, r_sp, r_c, r_n): per input event e (``r_n[0]`` so far) ``r_ev[e]`` = (input unit, its
    first spike's number, the number after the spikes its own row fired), ``r_g[e]`` its multiplicity and,
    with a leak, ``r_t[e]`` its time (int64 µs); per spike s of the layer (``r_n[1]`` so far, numbered in
    the order fired; every spike, direct or recurrent, is one entry) ``r_sp[s]`` = (unit, the number after
    the spikes that its row of R fired) and ``r_c[s]`` its multiplicity. Returns early (like a full output)
    when the trace may not hold the next event: room for one event and N + cap spikes is needed; the caller
    grows the arrays and calls again.
    """
    no = W.shape[1]
    leak = inv_tau > 0.0
    ones = cnt.shape[0] == 0
    t_ref = ref[0]
    zero = np.float32(0.0)
    budget0 = np.float32(cap)
    room = oi.shape[0] - no - cap
    ne = ns = 0
    if trace is not None:
        r_ev, r_g, r_t, r_sp, r_c, r_n = trace
        ne, ns = r_n[0], r_n[1]
    for k in range(start, idx.shape[0]):
        full = emit and m > room
        if trace is not None:
            full = full or ne >= r_ev.shape[0] or ns + no + cap > r_sp.shape[0]
        if full:
            ref[0] = t_ref
            if trace is not None:
                r_n[0], r_n[1] = ne, ns
            return k, m
        g = np.float32(1.0) if ones else cnt[k]
        if trace is not None:
            r_ev[ne, 0] = idx[k]
            r_ev[ne, 1] = ns
            r_g[ne] = g
            if leak:
                r_t[ne] = t[k]
        f = np.float32(1.0)
        if leak:
            a, t_ref = renormalise(phi, t[k], t_ref, inv_tau)
            f = np.float32(math.exp(a))
            g *= f
        thr = theta * f
        nq = 0
        if integrate(phi, 0, W[idx[k]], g, thr) > zero:
            m, nq, _ = fire_push(phi, thr, f, np.float32(-1.0), leak, t, k, emit, oi, oc, ot, m, counts, qi, qc, nq)
        if trace is not None:
            r_ev[ne, 2] = ns + nq
        budget = budget0
        q = 0
        while q < nq:  # the cascade: each spike adds its row of R, at the same time
            above = integrate(phi, 0, R[qi[q]], qc[q] * f, thr)
            q += 1
            if above > zero and budget > zero:
                m, nq, spent = fire_push(phi, thr, f, budget, leak, t, k, emit, oi, oc, ot, m, counts, qi, qc, nq)
                budget -= spent
            if trace is not None:
                r_sp[ns + q - 1, 1] = ns + nq
        if budget <= zero:  # the cap was reached: drop the charge that would fire on
            capped[0] += 1
            for j in range(no):
                if phi[j] > thr:
                    phi[j] = thr
        if trace is not None:
            for q in range(nq):
                r_sp[ns + q, 0] = qi[q]
                r_c[ns + q] = qc[q]
            ne += 1
            ns += nq
    ref[0] = t_ref
    if trace is not None:
        r_n[0], r_n[1] = ne, ns
    return idx.shape[0], m


def _grown(a, used, size):
    return np.concatenate([a[:used], np.empty(size - used, a.dtype)])


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
        #: Record the event trace in ``forward`` (set by the network around a window it learns from).
        self.recording = False
        self.trace_n = np.zeros(2, np.int64)  # events and spikes in the trace of the last recorded forward
        self._trace = (np.empty((64, 3), np.int32), np.empty(64, np.float32), np.empty(64, np.int64),
                       np.empty((64 + n + self.cap, 2), np.int32), np.empty(64 + n + self.cap, np.float32))
        self._readout = None  # learning "membrane": (readout time, 1/tau of this layer) for the step
        self._traced = False
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

    def forward(self, ev_i, ev_c, ev_t, emit, theta, inv_tau):
        self.trace_n[:] = 0
        self._traced = self.recording
        return super().forward(ev_i, ev_c, ev_t, emit, theta, inv_tau)

    def kernel(self, ev_i, ev_c, ev_t, start, theta, inv_tau, ref, emit, bi, bc, bt, m):
        trace = None
        if self._traced:  # room for the remaining events and one event's spikes (the kernel stops at a full trace)
            ev, g, tt, sp, c = self._trace
            ne, ns = (int(v) for v in self.trace_n)
            if ev.shape[0] < ne + len(ev_i) - start:
                size = max(2 * ev.shape[0], ne + len(ev_i) - start)
                ev, g, tt = (np.concatenate([ev[:ne], np.empty((size - ne, 3), np.int32)]), _grown(g, ne, size),
                             _grown(tt, ne, size))
            need = ns + self.geo.n_out + self.cap + 1
            if sp.shape[0] < need:
                size = max(2 * sp.shape[0], need)
                sp, c = np.concatenate([sp[:ns], np.empty((size - ns, 2), np.int32)]), _grown(c, ns, size)
            self._trace = (ev, g, tt, sp, c)
            self._inv_tau = inv_tau
            trace = (ev, g, tt, sp, c, self.trace_n)
        return src_run(ev_i, ev_c, ev_t, start, self.weight, self.rec, self.phi, self.counts, theta, inv_tau, ref,
                       emit, bi, bc, bt, m, self.cap, self.queue_i, self.queue_c, self.capped, trace)

    def note_activity(self, act, h):
        self._noted = (act, h)

    def note_readout(self, t_end):
        self._readout = t_end

    def backward(self, a_in, x_in, act_out, d_out, delta, lr, max_step, want):
        """Backpropagation through time over the window's own event trace (recorded by ``forward`` when the
        network learns; without a trace, the one-step truncation alone). The gradient has two parts:

        - the direct terms, the one-step truncation: W as a dense layer's (``x_in`` times ``delta``) and R with
          the layer's own spikes taken as extra inputs, ``h_j * delta_i`` (h_j unit j's count; under "membrane"
          its spikes weighted by exp(-(T - t) / tau) with this layer's tau, T from ``note_readout``);
        - the terms through the recurrent spikes (``bptt.src_bptt``): the error sent back through R across the
          trace's spikes in reverse order, reaching W and R along every recurrent path.

        The sum is the exact gradient of ``src_bptt``'s differentiable model (tests/test_src_bptt.py checks it by
        finite differences): under "counts" the counts rule's surrogate taken spike by spike, under "membrane"
        the same with the activities weighted by time as the traces are. The error handed to the layer below is
        ``W @ delta`` (per unit of the input's activity, as a dense layer's) plus the recurrent paths' part per
        input spike (exact under "counts"). Each array's step is bounded as a whole (``max_step``); R's
        diagonal is left as it is; the cascade cap's clamp counts as a constant."""
        act, h = self._noted if self._noted is not None else (act_out, self.counts[act_out])
        self._noted = None
        t_end, self._readout = self._readout, None
        EW = ER = None
        if self._traced and self.trace_n[1] > 0 and len(a_in):
            ne, ns = (int(v) for v in self.trace_n)
            pos = np.full(self.weight.shape[0], -1, np.int32)
            pos[a_in] = np.arange(len(a_in), dtype=np.int32)
            ev, g, tt, sp, c = self._trace
            om = np.ones(ne, np.float32)
            if t_end is not None and self._inv_tau > 0:  # "membrane": the charges weighted by their decay to T
                om = np.exp(np.minimum(tt[:ne] - t_end, 0) * self._inv_tau).astype(np.float32)
                spikes = np.bincount(sp[:ns, 0], c[:ns] * np.repeat(om, np.diff(np.append(ev[:ne, 1], ns))),
                                     minlength=self.geo.n_out)
                act = np.flatnonzero(spikes).astype(np.int32)  # R's direct term: the spikes as this layer sees them
                h = spikes[act].astype(np.float32)
            EW, ER, EX = src_bptt(ev, g, om, sp, c, ne, ns, self.weight, self.rec, delta, pos, len(a_in))
        self._traced = False
        if EW is None or not (EW.any() or ER.any()):  # nothing went through R: the one-step step is the gradient
            lr_w = bounded_lr(max_step, self.weight, lr, x_in, d_out)
            d_in = dense_backward(a_in, x_in, delta, act_out, self.weight, lr_w, want)
            if len(act):
                lr_r = bounded_lr(max_step, self.rec, lr, h, d_out)
                diag = self.rec[act, act]
                dense_backward(act, h, delta, act_out, self.rec, lr_r, False)
                self.rec[act, act] = diag
            return d_in
        n = self.geo.n_out
        d_all, h_all = np.zeros(n, np.float32), np.zeros(n, np.float32)
        d_all[act_out] = d_out
        h_all[act] = h
        lr_w = bounded_by_norm(max_step, self.weight, lr, step_norm(x_in, d_all, EW))
        lr_r = bounded_by_norm(max_step, self.rec, lr, step_norm(h_all, d_all, ER))
        d_in = dense_backward(a_in, x_in, delta, act_out, self.weight, lr_w, want)
        sub_rows(self.weight, a_in, EW, lr_w)
        diag = self.rec[act, act]
        if len(act):
            dense_backward(act, h, delta, act_out, self.rec, lr_r, False)
        self.rec -= lr_r * ER
        self.rec[act, act] = diag
        if want:  # per unit of the input's count (its spikes scaled together)
            ev, g = self._trace[:2]
            d_in += EX / np.bincount(ev[:int(self.trace_n[0]), 0], g[:int(self.trace_n[0])],
                                     minlength=self.weight.shape[0])[a_in].astype(np.float32)
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
