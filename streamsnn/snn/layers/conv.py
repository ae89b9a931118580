"""The convolutional layer kind ("conv:C:K[:S[:P]]"): its event-driven kernels, its ReLU twin and its class.

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

from ..kernels import RENORM, fire, integrate_span, restart
from .base import Layer, LayerSpec


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


@njit(inline="always")
def conv_event(row, Kf, ks, co, ow, st, phi, counts, g, thr, f, leak, emit, t, k, oi, oc, ot, m):
    """One event of ``conv_forward``: its table ``row`` (c, dy0, oy0, ny, dx0, ox0, nx); adds ``g`` times the kernel
    rows to the positions it reaches and fires them (``kernels.fire``: threshold ``thr``, frame factor ``f``).
    ``Kf``: the flat K. One loop over the ny * nx blocks (dy outer, dx inner, as the table orders them), the
    offsets stepped, not recomputed: fewer loop exits to mispredict than two nested loops. Returns the new m."""
    c, dy0, oy0, ny, dx0, ox0, nx = row[0], row[1], row[2], row[3], row[4], row[5], row[6]
    w_row = (c * ks + dy0) * ks + dx0  # the kernel row K[c, dy, dx] as a row number of the flat K
    w = w_row * co
    base_row = (oy0 * ow + ox0) * co
    base = base_row
    ix = 0
    for _ in range(ny * nx):
        b = np.uint64(base)  # never negative: unsigned offsets into the flat arrays (kernels.integrate_span)
        lo, hi = integrate_span(phi, b, Kf, np.uint64(w), co, g, thr)
        if hi > 0:
            m = fire(phi, counts, b, lo, hi, thr, f, leak, emit, t, k, oi, oc, ot, m)
        ix += 1
        w += st * co  # dx += st, ox -= 1
        base -= co
        if ix == nx:  # next kernel row: dy += st, oy -= 1
            ix = 0
            w_row += st * ks
            w = w_row * co
            base_row -= ow * co
            base = base_row
    return m


@njit(cache=True, nogil=True, fastmath=True)
def conv_forward(idx, cnt, t, start, K, tab, ow, st, phi, counts, theta, inv_tau, ref, emit, oi, oc, ot, m):
    """Feed events ``idx[start:]`` through a convolutional layer of integrate-and-fire units, in order.

    Same contract as ``dense.dense_forward``: updates ``phi``/``counts`` in place and, with
    ``emit``, writes the spikes in order (channel-last unit, multiplicity, time) into oi/oc/ot
    from position m; returns (events consumed, events written). ``tab``: ``conv_table`` of the
    layer; ``ow``: output width; ``st``: stride.

    Arguments: ``idx`` int32, ``cnt`` float32 (or empty: all 1), ``t`` int64 µs (or empty without a
    leak), all (n_events,); ``start`` int; ``K`` float32 (C_in, k, k, C_out), C-contiguous; ``tab`` int32
    (n_in, 7); ``ow``, ``st`` int; ``phi``, ``counts`` float32 (OH*OW*C_out,), channel-last; ``theta`` float32;
    ``inv_tau`` float 1/µs (0: no leak); ``ref`` float64 (1,), updated; ``emit`` bool; ``oi`` int32,
    ``oc`` float32, ``ot`` int64 (capacity,), capacity at least ceil(k/S)^2 * C_out beyond ``m``; ``m`` int.
    """
    co = K.shape[3]
    ks = K.shape[1]
    Kf = K.reshape(-1)
    ones = cnt.shape[0] == 0
    reach = (ks + st - 1) // st
    cap = oi.shape[0] - reach * reach * co
    n = idx.shape[0]
    if inv_tau > 0.0:
        return conv_forward_leaky(idx, cnt, t, start, Kf, ks, co, tab, ow, st, phi, counts, theta, inv_tau, ref, emit,
                                  oi, oc, ot, m, cap)
    for k in range(start, n):  # f = 1 as a constant: no leak arithmetic in this loop
        if emit and m > cap:
            return k, m
        g = np.float32(1.0) if ones else cnt[k]
        m = conv_event(tab[idx[k]], Kf, ks, co, ow, st, phi, counts, g, theta, np.float32(1.0), False, emit, t, k,
                       oi, oc, ot, m)
    return n, m


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def conv_forward_leaky(idx, cnt, t, start, Kf, ks, co, tab, ow, st, phi, counts, theta, inv_tau, ref, emit, oi, oc, ot,
                       m, cap):
    """``conv_forward`` with a leak (``inv_tau > 0``); ``Kf`` the flat kernel, ``ks`` its size, ``co`` its output
    channels, ``cap`` the last output position with room for an event's spikes. Compiled on its own, without
    numba's division-by-zero checks (``kernels``, speed): a unit's spikes divide by the frame's factor, never 0."""
    ones = cnt.shape[0] == 0
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
            g = f if ones else cnt[k] * f
            m = conv_event(tab[idx[k]], Kf, ks, co, ow, st, phi, counts, g, theta * f, f, True, emit, t, k,
                           oi, oc, ot, m)
            k += 1
        if k == n:
            break
        t_ref = restart(phi, t[k], t_ref, inv_tau)
    ref[0] = t_ref
    return n, m


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

    Arguments: ``act_in`` int32, ``a_in`` float32 (n_active,); ``delta`` float32 (OH*OW*C_out,);
    ``K`` float32 (C_in, k, k, C_out), in place; ``tab`` int32 (n_in, 7); ``ow``, ``st`` int; ``lr``
    float32; ``want_delta_in`` bool; ``max_norm`` float. Returns float32 (n_active,).
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


def conv_pre(x: np.ndarray, K: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """Pre-activations (OH, OW, C_out) of a convolution of x (C, H, W) with K (C, k, k, C_out) (NumPy)."""
    c, h, w = x.shape
    k = K.shape[1]
    oh = (h + 2 * pad - k) // stride + 1
    ow = (w + 2 * pad - k) // stride + 1
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((oh, ow, K.shape[3]), np.result_type(x, K))
    for dy in range(k):
        for dx in range(k):
            patch = xp[:, dy: dy + stride * (oh - 1) + 1: stride, dx: dx + stride * (ow - 1) + 1: stride]
            out += np.tensordot(patch, K[:, dy, dx, :], axes=([0], [0]))
    return out


class ConvLayer(Layer):
    """``conv:C:K[:S[:P]]``: C channels of K x K kernels, stride S, zero padding P (weights (C_in, K, K, C))."""

    kind = "conv"
    conv_like = True
    timing_ok = True  # learning "timing": timing_conv.py
    usage = "conv:C:K[:S[:P]]"

    @classmethod
    def from_numbers(cls, nums):
        if not 2 <= len(nums) <= 4:
            return None
        c, k, s, p = nums + [1, 0][len(nums) - 2:]  # stride 1, padding 0 unless given
        return LayerSpec("conv", c, k, s, p)

    @classmethod
    def from_dict(cls, d):
        return LayerSpec("conv", int(d["channels"]), int(d["kernel"]), int(d.get("stride", 1)),
                         int(d.get("padding", 0)))

    @classmethod
    def text(cls, spec):
        return f"conv:{spec.units}:{spec.kernel}:{spec.stride}:{spec.padding}"

    @classmethod
    def as_dict(cls, spec):
        return {"kind": "conv", "channels": spec.units, "kernel": spec.kernel, "stride": spec.stride,
                "padding": spec.padding}

    @classmethod
    def valid(cls, spec):
        return spec.units >= 1 and spec.kernel >= 1 and spec.stride >= 1 and 0 <= spec.padding < spec.kernel

    @classmethod
    def out_shape(cls, spec, in_shape):
        _, h, w = in_shape
        oh = (h + 2 * spec.padding - spec.kernel) // spec.stride + 1
        ow = (w + 2 * spec.padding - spec.kernel) // spec.stride + 1
        return (spec.units, oh, ow) if oh >= 1 and ow >= 1 else None

    @classmethod
    def weight_shape(cls, geo):
        return (geo.in_shape[0], geo.layer.kernel, geo.layer.kernel, geo.layer.units)

    @classmethod
    def fan_in(cls, geo):
        return geo.in_shape[0] * geo.layer.kernel ** 2

    @classmethod
    def fan_out(cls, geo):
        return ((geo.layer.kernel + geo.layer.stride - 1) // geo.layer.stride) ** 2 * geo.layer.units

    @classmethod
    def line(cls, d):
        return f"conv {d['channels']} ch, {d['kernel']}x{d['kernel']} kernel, stride {d['stride']}, pad {d['padding']}"

    def __init__(self, geo):
        super().__init__(geo)
        self.table = conv_table(geo)  # what each input unit reaches (see conv_table)

    def kernel(self, ev_i, ev_c, ev_t, start, theta, inv_tau, ref, emit, bi, bc, bt, m):
        return conv_forward(ev_i, ev_c, ev_t, start, self.weight, self.table, self.geo.out_shape[2],
                            self.geo.layer.stride, self.phi, self.counts, theta, inv_tau, ref, emit, bi, bc, bt, m)

    def backward(self, a_in, x_in, act_out, d_out, delta, lr, max_step, want):
        limit = max_step * float(np.linalg.norm(self.weight)) if max_step > 0 else 0.0
        return conv_backward(a_in, x_in, delta, self.weight, self.table, self.geo.out_shape[2], self.geo.layer.stride,
                             np.float32(lr), want, limit)

    def relu(self, a):
        c, h, w = self.geo.in_shape
        img = a.reshape(c, h, w) if self.geo.planar_in else a.reshape(h, w, c).transpose(2, 0, 1)
        return conv_pre(img, self.weight, self.geo.layer.stride, self.geo.layer.padding).reshape(-1)
