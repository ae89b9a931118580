"""Numba kernels of a convolutional spiking layer: event-driven forward pass and count backprop.

Weights ``K[c_in, dy, dx, c_out]`` (float32, C-contiguous), potentials channel-last
``phi[(oy * OW + ox) * C_out + c_out]``. An input event at (c, y, x) reaches only the output
positions whose receptive field holds it: ``oy = (y + pad - dy) / stride`` for the kernel rows dy
that make this a whole number in range (about ceil(K/S) of them; the same for x), and at each it
adds the contiguous row ``K[c, dy, dx, :]`` to the C_out potentials there. Which rows and positions
an input unit reaches is worked out once per layer (``conv_table``), so an event costs no integer
division: table row u = (c, dy0, oy0, ny, dx0, ox0, nx), the first kernel row/column and output
row/column it reaches and how many; the others follow with stride S (dy0 + i*S, oy0 - i).
Event conventions (idx, cnt, t; the leak's scaled frame): see kernels.py.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .kernels import RENORM


def conv_table(geo) -> np.ndarray:
    """int32 (n_in, 7) table of what each input unit of a convolution (an ``arch.Geometry``) reaches.

    Input units are numbered p*H*W + y*W + x when ``geo.planar_in`` (the input grid), otherwise
    channel-last ((y*W + x)*C + c) like a convolution's own units.
    """
    c_in, h, w = geo.in_shape
    _, oh, ow = geo.out_shape
    k, s, p = geo.layer.kernel, geo.layer.stride, geo.layer.padding
    u = np.arange(c_in * h * w)
    if geo.planar_in:
        c, r = u // (h * w), u % (h * w)
    else:
        c, r = u % c_in, u // c_in
    y, x = r // w, r % w

    def axis(v, n_out):
        d0 = (v + p) % s
        o0 = (v + p - d0) // s
        over = np.maximum(o0 - (n_out - 1), 0)  # output rows past the end: start further into the kernel
        d0, o0 = d0 + s * over, o0 - over
        n = np.where(d0 < k, np.minimum((k - d0 + s - 1) // s, o0 + 1), 0)
        return d0, o0, n

    dy0, oy0, ny = axis(y, oh)
    dx0, ox0, nx = axis(x, ow)
    return np.ascontiguousarray(np.stack([c, dy0, oy0, ny, dx0, ox0, nx], axis=1), dtype=np.int32)


@njit(cache=True, nogil=True, fastmath=True)
def conv_forward(idx, cnt, t, start, K, tab, ow, st, phi, counts, theta, inv_tau, ref, emit, oi, oc, ot, m):
    """Feed events ``idx[start:]`` through a convolutional layer of integrate-and-fire units, in order.

    Same contract as ``dense.dense_forward``: updates ``phi``/``counts`` in place and, with
    ``emit``, writes the spikes in order (channel-last unit, multiplicity, time) into oi/oc/ot
    from position m; returns (events consumed, events written). ``tab``: ``conv_table`` of the
    layer; ``ow``: output width; ``st``: stride.
    """
    co = K.shape[3]
    ks = K.shape[1]
    leak = inv_tau > 0.0
    ones = cnt.shape[0] == 0
    t_ref = ref[0]
    zero = np.float32(0.0)
    reach = (ks + st - 1) // st
    cap = oi.shape[0] - reach * reach * co
    for k in range(start, idx.shape[0]):
        if emit and m > cap:
            ref[0] = t_ref
            return k, m
        row = tab[idx[k]]
        c, dy0, oy0, ny, dx0, ox0, nx = row[0], row[1], row[2], row[3], row[4], row[5], row[6]
        g = np.float32(1.0) if ones else cnt[k]
        f = np.float32(1.0)
        if leak:
            a = (t[k] - t_ref) * inv_tau
            if a > RENORM:
                d = np.float32(math.exp(-a))
                for j in range(phi.shape[0]):
                    phi[j] *= d
                t_ref = float(t[k])
                a = 0.0
            f = np.float32(math.exp(a))
            g *= f
        thr = theta * f
        for iy in range(ny):
            dy = dy0 + iy * st
            oy = oy0 - iy
            for ix in range(nx):
                dx = dx0 + ix * st
                ox = ox0 - ix
                wrow = K[c, dy, dx]
                base = (oy * ow + ox) * co
                if not emit:
                    for j in range(co):
                        v = phi[base + j] + g * wrow[j]
                        n = np.ceil(v - theta)
                        n = n if n > zero else zero
                        phi[base + j] = v - n
                        counts[base + j] += n
                    continue
                above = zero
                for j in range(co):
                    v = phi[base + j] + g * wrow[j]
                    phi[base + j] = v
                    above += np.float32(v > thr)
                if above > zero:
                    left = int(above)
                    for j in range(co):
                        v = phi[base + j]
                        if v > thr:
                            n = np.float32(math.ceil((v - thr) / f))
                            phi[base + j] = v - n * f
                            counts[base + j] += n
                            oi[m] = base + j
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
def conv_backward(act_in, a_in, delta, K, tab, ow, st, lr, want_delta_in, max_norm=0.0):
    """One SGD step of a convolution on spike counts, sparse over the active inputs, in place.

    ``act_in``/``a_in``: active input units and their counts; ``delta`` (OH*OW*C_out,
    channel-last): the error of each output unit (zero where it did not spike). The kernel
    gradient ``dK[c, dy, dx, :] = sum a(c, y, x) * delta(oy, ox, :)`` is gathered over the active
    inputs only and applied once at the end (``K -= lr * dK``). Returns the error at the active
    inputs, ``sum K[c, dy, dx, :] . delta(oy, ox, :)`` over the positions they reach, with K
    before the step (zeros unless ``want_delta_in``). With ``max_norm > 0`` the step is scaled down
    so that its norm ``lr * |dK|`` is at most ``max_norm``.
    """
    co = K.shape[3]
    dK = np.zeros(K.shape, np.float32)
    d_in = np.zeros(act_in.shape[0], np.float32)
    for ii in range(act_in.shape[0]):
        row = tab[act_in[ii]]
        c, dy0, oy0, ny, dx0, ox0, nx = row[0], row[1], row[2], row[3], row[4], row[5], row[6]
        a = a_in[ii]
        s = np.float32(0.0)
        for iy in range(ny):
            dy = dy0 + iy * st
            oy = oy0 - iy
            for ix in range(nx):
                dx = dx0 + ix * st
                ox = ox0 - ix
                wrow = K[c, dy, dx]
                gk = dK[c, dy, dx]
                base = (oy * ow + ox) * co
                if want_delta_in:
                    for j in range(co):
                        s += wrow[j] * delta[base + j]
                for j in range(co):
                    gk[j] += a * delta[base + j]
        d_in[ii] = s
    flat = K.reshape(-1)
    gflat = dK.reshape(-1)
    step = lr
    if max_norm > 0.0:
        sq = 0.0
        for j in range(gflat.shape[0]):
            sq += gflat[j] * gflat[j]
        norm = lr * math.sqrt(sq)
        if norm > max_norm:
            step = np.float32(lr * max_norm / norm)
    for j in range(flat.shape[0]):
        flat[j] -= step * gflat[j]
    return d_in
