"""Numba kernels of the event-driven spiking network: integrate-and-fire passes and weight updates.

Plain arrays in, plain arrays out; no Python objects. Conventions shared by every kernel:

- ``W1`` is (n_in, n_hidden) float32, C-contiguous: one input event ``i`` adds the row ``W1[i]``
  to the hidden potentials ``phi``. ``W2`` is (n_hidden, n_out): one hidden spike of unit ``j``
  adds the row ``W2[j]`` to the output evidence ``scores``.
- A hidden unit fires while ``phi_j > theta`` and subtracts 1 per spike (a rectified
  sigma-delta / herding quantizer). ``n = ceil(phi_j - theta)`` spikes are emitted at once, which
  is the same as the ``while`` loop but needs one subtraction (exact in float32: Sterbenz).
- The leaky variant keeps potentials in a scaled frame (see ``forward_leaky``) so that decay costs
  one scalar ``exp`` per event and nothing while the network is idle.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: Renormalise the scaled frame of the leaky kernel once the scale factor exceeds exp(RENORM).
RENORM = 16.0


@njit(cache=True, nogil=True, fastmath=True)
def forward(idx, W1, W2, phi, counts, scores, theta):
    """Feed input events ``idx`` (int32 row indices of W1) through one hidden layer, in order.

    Updates ``phi`` (hidden potentials), ``counts`` (hidden spike counts, float32) and ``scores``
    (output evidence) in place and returns the number of hidden spikes fired.

    Each event is one branch-free SIMD pass over its weight row that adds, fires and resets:
    ``v = phi + w; n = max(ceil(v - theta), 0); phi = v - n; counts += n``. Without a leak the
    output evidence is linear in the hidden spike counts, so the W2 rows of the spikes fired during
    the call are summed once at its end (exactly what adding them spike by spike gives, up to
    float rounding order) instead of inside the per-event loop.
    """
    nh = W1.shape[1]
    no = W2.shape[1]
    before = counts.copy()
    zero = np.float32(0.0)
    for k in range(idx.shape[0]):
        row = W1[idx[k]]
        for j in range(nh):
            v = phi[j] + row[j]
            n = np.ceil(v - theta)
            n = n if n > zero else zero
            phi[j] = v - n
            counts[j] += n
    total = 0
    for j in range(nh):
        fn = counts[j] - before[j]
        if fn > 0:
            total += int(fn)
            w2 = W2[j]
            for c in range(no):
                scores[c] += fn * w2[c]
    return total


@njit(cache=True, nogil=True, fastmath=True)
def forward_leaky(idx, t, W1, W2, phi, counts, scores, theta, inv_tau, ref):
    """Like ``forward`` with potentials and scores decaying as exp(-(t - t_last)/tau).

    ``t`` holds the event times (int64 us), ``inv_tau`` is 1/tau in 1/us and ``ref`` a float64
    array of one element holding the reference time ``t_ref`` of the scaled frame. The true state
    is ``stored * exp(-(t - t_ref)/tau)``: an event at time t adds ``w * exp((t - t_ref)/tau)``
    and is compared with ``theta * exp((t - t_ref)/tau)``. When the factor grows past exp(RENORM)
    the frame is renormalised (one pass over the state). Returns the number of hidden spikes.
    """
    nh = W1.shape[1]
    no = W2.shape[1]
    t_ref = ref[0]
    total = 0
    for k in range(idx.shape[0]):
        a = (t[k] - t_ref) * inv_tau
        if a > RENORM:
            d = np.float32(math.exp(-a))
            for j in range(nh):
                phi[j] *= d
            for c in range(no):
                scores[c] *= d
            t_ref = float(t[k])
            a = 0.0
        f = np.float32(math.exp(a))
        thr = np.float32(theta) * f
        row = W1[idx[k]]
        above = np.float32(0.0)
        for j in range(nh):
            v = phi[j] + row[j] * f
            phi[j] = v
            above += np.float32(v > thr)  # a float count vectorises; a running max does not
        if above > 0:
            left = int(above)
            for j in range(nh):
                if left == 0:
                    break
                v = phi[j]
                if v > thr:
                    n = math.ceil((v - thr) / f)
                    fn = np.float32(n)
                    phi[j] = v - fn * f
                    counts[j] += n
                    total += n
                    w2 = W2[j]
                    for c in range(no):
                        scores[c] += fn * f * w2[c]
                    left -= 1
    ref[0] = t_ref
    return total


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
def update_counts(active, x, act_h, h, e, W1, W2, b2, lr1, lr2):
    """Backpropagation on spike counts for one sample (minibatch 1, plain SGD), in place.

    ``active``/``x``: distinct active inputs and their event counts; ``act_h``/``h``: hidden units
    that spiked and their spike counts; ``e``: output error (softmax - one-hot). With W2 taken
    before the update: dh = W2[act_h] @ e (the ReLU gate is "unit spiked");
    W2[j] -= lr2 * h_j * e, b2 -= lr2 * e, W1[i, j] -= lr1 * x_i * dh_j over active i, j only.
    Returns dh (the hidden error of the active units).
    """
    na = act_h.shape[0]
    no = e.shape[0]
    dh = np.zeros(na, np.float32)
    for jj in range(na):
        w2 = W2[act_h[jj]]
        s = np.float32(0.0)
        for c in range(no):
            s += w2[c] * e[c]
        dh[jj] = s
    for jj in range(na):
        w2 = W2[act_h[jj]]
        g = lr2 * h[jj]
        for c in range(no):
            w2[c] -= g * e[c]
    for c in range(no):
        b2[c] -= lr2 * e[c]
    for ii in range(active.shape[0]):
        row = W1[active[ii]]
        g = lr1 * x[ii]
        for jj in range(na):
            row[act_h[jj]] -= g * dh[jj]
    return dh


@njit(cache=True, nogil=True)
def update_spikes(active, x, act_h, h, e, W1, W2, b2, lr1, lr2, K, qo, qh):
    """The paper's event-driven update: the error travels back as spikes and each spike updates a column.

    The output error ``e`` (|e_c| <= 1) is fed for ``K`` steps into one non-resetting signed
    quantizer (herder) per output unit: each step adds e_c, and while |state| > 0.5 it emits a
    spike s = +-1 and subtracts s. An output error spike (c, s) first passes through the synapses
    W2[j, c] into a herder of every active hidden unit j (the ReLU gate), then updates its weight
    column: W2[act_h, c] -= lr2/K * s * h, b2[c] -= lr2/K * s. A hidden error spike (j, s) updates
    the column W1[active, j] -= lr1/K * s * x. The totals equal ``update_counts`` up to the
    quantization bound (0.5/K per herder) plus O(lr) order effects.

    ``qo`` (n_out) and ``qh`` (n_hidden) hold the herders' states and are updated in place: pass
    zeros for one isolated sample, or keep them between samples so that errors too small to make
    a spike within one sample still add up over the stream. Returns the numbers of output and
    hidden error spikes.
    """
    na = act_h.shape[0]
    no = e.shape[0]
    n_out = 0
    n_hid = 0
    s2 = lr2 / K
    s1 = lr1 / K
    for _ in range(K):
        for c in range(no):
            qo[c] += e[c]
            while qo[c] > 0.5 or qo[c] < -0.5:
                s = np.float32(1.0) if qo[c] > 0 else np.float32(-1.0)
                qo[c] -= s
                n_out += 1
                for jj in range(na):
                    j = act_h[jj]
                    qh[j] += s * W2[j, c]
                    while qh[j] > 0.5 or qh[j] < -0.5:
                        sh = np.float32(1.0) if qh[j] > 0 else np.float32(-1.0)
                        qh[j] -= sh
                        n_hid += 1
                        for ii in range(active.shape[0]):
                            W1[active[ii], j] -= s1 * sh * x[ii]
                for jj in range(na):
                    W2[act_h[jj], c] -= s2 * s * h[jj]
                b2[c] -= s2 * s
    return n_out, n_hid


@njit(cache=True, nogil=True, fastmath=True)
def dense_hidden(active, x, W1):
    """Pre-activations of the equivalent ReLU MLP: sum_i x_i * W1[active_i] (float32, n_hidden)."""
    nh = W1.shape[1]
    z = np.zeros(nh, np.float32)
    for ii in range(active.shape[0]):
        row = W1[active[ii]]
        xi = x[ii]
        for j in range(nh):
            z[j] += xi * row[j]
    return z
