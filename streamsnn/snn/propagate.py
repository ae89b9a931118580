"""Moving events through a SpikingNetwork: layer by layer, spikes passed on as events, leak clocks.

Each hidden layer's kernel (dense.py, conv.py) takes the events of the layer below in order and
returns its own spikes, in the order they happen, as events for the next; without a leak the output
evidence is linear in the last layer's counts and summed once at the end.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from . import kernels
from .conv import conv_forward
from .dense import dense_forward

NO_CNT = np.zeros(0, np.float32)
NO_T = np.zeros(0, np.int64)


def run_layer(net, k: int, ev_i, ev_c, ev_t, emit: bool, inv_tau: float):
    """Feed events through hidden layer k of ``net``; returns its spikes as events (idx, cnt, t).

    Calls the layer's kernel until every event is consumed, growing the layer's output buffers
    whenever the kernel stops because the next event's spikes might not fit.
    """
    g = net.geometry[k]
    bi, bc, bt = net._out[k]
    most = g.fan_out
    theta = np.float32(net.theta)
    done = m = 0
    while True:
        if emit and bi.shape[0] < m + most + 1:
            size = max(2 * bi.shape[0], m + most + 1)
            bi, bc, bt = (np.concatenate([b[:m], np.empty(size - m, b.dtype)]) for b in (bi, bc, bt))
            net._out[k] = (bi, bc, bt)
        if g.layer.kind == "dense":
            done, m = dense_forward(ev_i, ev_c, ev_t, done, net.weights[k], net.phi[k], net.counts[k], theta,
                                    inv_tau, net._refs[k], emit, bi, bc, bt, m)
        else:
            done, m = conv_forward(ev_i, ev_c, ev_t, done, net.weights[k], *net._geo[k], net.phi[k], net.counts[k],
                                   theta, inv_tau, net._refs[k], emit, bi, bc, bt, m)
        if done == len(ev_i):
            return bi[:m], bc[:m], (bt[:m] if inv_tau > 0 else NO_T)


def forward(net, idx: np.ndarray, t: np.ndarray | None) -> tuple[np.ndarray, tuple[int, ...]]:
    """Feed input units (and times, for a leaky network) through every layer of ``net``.

    Returns (scores incl. bias, spikes per hidden layer); leaves each layer's counts in ``net.counts``.
    """
    idx = np.ascontiguousarray(idx, dtype=np.int32)
    n_in = net.input_map.n_inputs
    if idx.size and (idx.min() < 0 or idx.max() >= n_in):
        raise InputError(f"input index out of range 0..{n_in - 1}")
    leak = net.tau_us is not None
    inv = 1.0 / net.tau_us if leak else 0.0
    if leak:
        if t is None or len(t) != len(idx):
            raise InputError("a leaky network (tau_us set) needs event times")
        t = np.ascontiguousarray(t, dtype=np.int64)
        if idx.size:
            align_clock(net, int(t[0]))
    else:
        t = NO_T
        net.scores[:] = 0
    ev_i, ev_c, ev_t = idx, NO_CNT, t
    last = len(net.geometry) - 1
    for k in range(len(net.geometry)):
        net.counts[k][:] = 0
        if not leak:
            net.phi[k][:] = 0
        ev_i, ev_c, ev_t = run_layer(net, k, ev_i, ev_c, ev_t, leak or k < last, inv)
    W_out = net.weights[-1]
    if leak:
        if len(ev_i):
            kernels.output_leaky(ev_i, ev_c, ev_t, W_out, net.scores, inv, net._refs[-1])
        if idx.size:
            net._t_last = int(t[-1])
        if net._t_last is None:
            scores = net.bias.copy()
        else:
            scores = net.scores * np.float32(kernels.decay_factor(net._t_last, inv, net._refs[-1])) + net.bias
    else:
        h = net.counts[-1]
        act = np.flatnonzero(h)
        scores = h[act] @ W_out[act] + net.bias
    return scores.astype(np.float32), tuple(int(c.sum()) for c in net.counts)


def align_clock(net, t0: int) -> None:
    """Start every scaled frame at the first event; carry the state over when time goes backwards."""
    inv = 1.0 / net.tau_us
    states = [*net.phi, net.scores]
    for state, ref in zip(states, net._refs):
        if np.isnan(ref[0]):
            ref[0] = float(t0)
        elif t0 < ref[0]:  # a new stream or a looped replay: keep the state as it was at the last event
            state *= np.float32(kernels.decay_factor(net._t_last, inv, ref))
            ref[0] = float(t0)


def warm_up(net) -> None:
    """Load (or compile) the forward kernels of ``net`` without touching its state or weights."""
    none = np.zeros(0, np.int32)
    theta = np.float32(net.theta)
    inv = 1.0 / net.tau_us if net.tau_us else 0.0
    for k, g in enumerate(net.geometry):
        bi, bc, bt = net._out[k]
        phi, cnt, ref = net.phi[k], net.counts[k], np.zeros(1)
        for emit in (True, False):
            if g.layer.kind == "dense":
                dense_forward(none, NO_CNT, NO_T, 0, net.weights[k], phi, cnt, theta, inv, ref, emit,
                              bi, bc, bt, 0)
            else:
                conv_forward(none, NO_CNT, NO_T, 0, net.weights[k], *net._geo[k], phi, cnt, theta, inv, ref,
                             emit, bi, bc, bt, 0)
    kernels.output_leaky(none, NO_CNT, NO_T, net.weights[-1], net.scores, 1.0, np.zeros(1))
