"""Moving events through a SpikingNetwork: layer by layer, spikes passed on as events, leak clocks.

Each hidden layer (``layers/``) takes the events of the layer below in order and returns its own
spikes, in the order they happen, as events for the next; without a leak the output evidence is
linear in the last layer's counts and summed once at the end. Potentials or counts that overflowed
give NaN scores (never an exception or a warning here): the network refuses them (``NonFinite``).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from . import guard, kernels
from .layers.base import NO_CNT, NO_T


def checked(net, idx: np.ndarray) -> np.ndarray:
    """``idx`` as contiguous int32 input units, InputError when one is outside the network's inputs."""
    idx = np.ascontiguousarray(idx, dtype=np.int32)
    n_in = net.input_map.n_inputs
    if idx.size and (idx.min() < 0 or idx.max() >= n_in):
        raise InputError(f"input index out of range 0..{n_in - 1}")
    return idx


def forward(net, idx: np.ndarray, t: np.ndarray | None) -> tuple[np.ndarray, tuple[int, ...]]:
    """Feed input units (and times, for a leaky network) through every layer of ``net``.

    Returns (scores incl. bias, spikes per hidden layer); leaves each layer's counts in ``net.counts``.
    """
    idx = checked(net, idx)
    if net.learning == "timing":  # current-based units with exact spike times (timed.py)
        from .timed import forward as timed_forward

        net.fed = (idx, t)
        return timed_forward(net, idx, t)
    leak = net.tau_us is not None
    if net.delay_line.copies > 1:  # every delayed copy due by the last event, in time order (``delays``)
        if t is None or len(t) != len(idx):
            raise InputError("a network with input delays needs event times")
        if not leak:
            net.delay_line.reset()  # a whole window from a fresh state: copies still pending come after its readout
        idx, t = net.delay_line.take(idx, np.ascontiguousarray(t, dtype=np.int64))
    net.fed = (idx, t)
    inv = 1.0 / net.tau_us if leak else 0.0  # the output's
    invs = [1.0 / tau for tau in net.layer_tau_us] if leak else [0.0] * len(net.hidden)
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
    last = len(net.hidden) - 1
    theta = np.float32(net.theta)
    for k, layer in enumerate(net.hidden):
        layer.counts[:] = 0
        if not leak:
            layer.phi[:] = 0
        ev_i, ev_c, ev_t = layer.forward(ev_i, ev_c, ev_t, leak or k < last, theta, invs[k])
        if leak:  # each layer's spikes (unit, multiplicity, time) of this call, for learning "membrane"
            net.spike_trains[k] = (ev_i, ev_c, ev_t)
    spikes = [float(layer.counts.sum()) for layer in net.hidden]  # one pass: the decision's spikes and the check
    if not guard.state_finite(net.hidden, spikes):
        return np.full(net.n_classes, np.nan, np.float32), tuple(0 for _ in net.hidden)
    W_out = net.out_weight
    if leak:
        if len(ev_i):
            kernels.output_leaky(ev_i, ev_c, ev_t, W_out, net.scores, inv, net.out_ref)
        if idx.size:
            net.t_last = int(t[-1])
        if net.t_last is None:
            scores = net.bias.copy()
        else:
            scores = net.scores * np.float32(kernels.decay_factor(net.t_last, inv, net.out_ref)) + net.bias
    else:
        scores = scores_of(net, net.hidden[-1].counts)
    return scores.astype(np.float32), tuple(int(s) for s in spikes)


def scores_of(net, h: np.ndarray) -> np.ndarray:
    """A network without a leak: its scores (incl. bias) from the last hidden layer's spike counts ``h``
    (linear in them; summed over the active units only). Non-finite values are checked by the caller."""
    act = np.flatnonzero(h)
    with np.errstate(over="ignore", invalid="ignore"):
        return (h[act] @ net.out_weight[act] + net.bias).astype(np.float32)


def feed(net, idx: np.ndarray) -> None:
    """A network without a leak: feed input units through every layer, continuing from the layers' current
    potentials and counts (``forward`` starts from the reset state; feeding a window's events in pieces
    gives the same potentials and counts as one call, the kernels taking events one by one in order). Not for a
    network with input delays (their copies need times: `forward`)."""
    if net.delay_line.copies > 1:
        raise InputError("a network with input delays is fed whole windows with times (forward), not pieces")
    idx = checked(net, idx)
    ev_i, ev_c, ev_t = idx, NO_CNT, NO_T
    last = len(net.hidden) - 1
    theta = np.float32(net.theta)
    for k, layer in enumerate(net.hidden):
        ev_i, ev_c, ev_t = layer.forward(ev_i, ev_c, ev_t, k < last, theta, 0.0)
    if net.hidden[-1].ran_away is None and any(layer.ran_away is not None for layer in net.hidden):
        net.hidden[-1].counts[:] = np.nan  # a layer below ran away: the readout of these counts must not be finite


def align_clock(net, t0: int) -> None:
    """Start every scaled frame at the first event; carry the state over when time goes backwards (before the last
    event: a frame's start usually lies further back, so comparing with it read a state carried from the last event
    up to exp(RENORM) times too strong)."""
    back = net.t_last is not None and t0 < net.t_last
    frames = [(layer.phi, layer.ref, 1.0 / tau) for layer, tau in zip(net.hidden, net.layer_tau_us)]
    for state, ref, inv in frames + [(net.scores, net.out_ref, 1.0 / net.tau_us)]:
        if np.isnan(ref[0]):
            ref[0] = float(t0)
        elif back or t0 < ref[0]:  # a new stream or a looped replay: keep the state as it was at the last event
            state *= np.float32(kernels.decay_factor(net.t_last, inv, ref))
            ref[0] = float(t0)


def warm_up(net) -> None:
    """Load (or compile) the forward kernels of ``net`` without touching its state or weights."""
    none = np.zeros(0, np.int32)
    theta = np.float32(net.theta)
    if net.learning == "timing":
        from .timed import warm_up as timed_warm_up

        timed_warm_up(net)
    for layer, tau in zip(net.hidden, net.layer_tau_us or [0.0] * len(net.hidden)):
        layer.warm_up(theta, 1.0 / tau if tau else 0.0)
    kernels.output_leaky(none, NO_CNT, NO_T, net.out_weight, net.scores, 1.0, np.zeros(1))
