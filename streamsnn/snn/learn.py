"""Online learning of a layered spiking network, minibatch 1: backprop on spike counts, or error spikes.

Both work on what the forward pass left behind: the input counts and every hidden layer's spike
counts for one window. ``counts`` mode sends the output error (softmax - one-hot) back layer by
layer, gated by "the unit spiked" (count > 0), and each layer's weights change by the gradient of
its count maps, computed only over active inputs and units (each layer's ``backward``).
``spikes`` mode is the paper's event-driven form for dense layers: the error travels back as
spikes through non-resetting herders and each error spike moves one weight column. The output
layer is dense: its steps use the dense kernels directly.
"""

from __future__ import annotations

import numpy as np

from . import guard, timed
from .decision import softmax
from .guard import NonFinite
from .kernels import input_counts, output_error_spikes
from .layers.base import bounded_lr
from .layers.dense import dense_backward, dense_error_spikes
from .settings import price_scale


def activity(net, idx: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(active units, their counts) of the input (from the event indices) and of every hidden layer."""
    n_in = net.input_map.units
    room = min(len(idx), n_in)
    active, x = np.empty(room, np.int32), np.empty(room, np.float32)
    n = input_counts(idx, n_in, active, x)
    acts = [(active[:n], x[:n])]
    for counts in net.counts:
        act = np.flatnonzero(counts).astype(np.int32)
        acts.append((act, counts[act]))
    return acts


def traces(net, idx: np.ndarray, t: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Learning "membrane" (Lee, Delbruck & Pfeiffer 2016): (active units, their traces) of the input and of every
    hidden layer, in place of ``activity``'s counts.

    A unit's trace is what its spikes left at the readout time T (the window's last input event) in the units
    above it, which leak with their layer's time constant (``layer_tau_us``; the output's is ``tau_us``):
    ``sum_k c_k exp(-(T - t_k) / tau)`` over its spikes
    (time t_k, multiplicity c_k). The output evidence of a window on a fresh state is exactly the output
    weights times the last layer's traces, so the output step is the exact gradient; for a hidden unit the
    paper's rule treats its (leaky) membrane potential as the differentiable signal and the jumps at its
    spikes as noise: its activity passes the error on with slope 1 where it spiked, and the error reaches
    each weight times the trace of the input that drove it. The traces weigh recent events more, so the
    step depends on the order of events, which counts cannot see. ``backprop_counts`` then makes the step.
    """
    # a unit's trace decays as the membrane it drives: the layer above's time constant (the output's for the last)
    invs = [1.0 / tau for tau in (*net.layer_tau_us, net.tau_us)]
    n_in = net.input_map.units
    t_end = int(t[-1])
    x = np.bincount(idx, weights=np.exp((np.asarray(t, np.float64) - t_end) * invs[0]), minlength=n_in)
    act = np.flatnonzero(x).astype(np.int32)
    acts = [(act, x[act].astype(np.float32))]
    for layer, train, inv in zip(net.hidden, net.spike_trains, invs[1:]):
        layer.note_readout(t_end)
        ev_i, ev_c, ev_t = train
        h = np.bincount(ev_i, weights=ev_c * np.exp((ev_t.astype(np.float64) - t_end) * inv),
                        minlength=layer.geo.n_out)
        act = np.flatnonzero(h).astype(np.int32)
        acts.append((act, h[act].astype(np.float32)))
    return acts


def boost_new_classes(net, acts, e: np.ndarray, lr: float) -> None:
    """The extra output step of classes whose rate multiplier ``net.class_lr`` is above 1 (see add_class):
    their weights from the active last-layer units and their bias move (class_lr - 1) times further."""
    extra = (net.class_lr - np.float32(1.0)) * e
    if not np.any(extra):
        return
    act, h = acts[-1]
    net.out_weight[act] -= np.float32(lr) * np.outer(h, extra).astype(np.float32)
    net.bias -= np.float32(lr) * extra


def backprop_counts(net, acts, e: np.ndarray, lr_scale: float, price: float | None = None, hidden: float = 1.0) -> None:
    """One SGD step on the spike counts that occurred: output layer, then each hidden layer down.

    ``net.activity`` (>= 0) adds the gradient of ``activity * (spikes of every hidden layer)`` to the
    loss: the network learns to reach its answer with fewer spikes (less work per event, and no
    drift towards ever larger counts). With ``net.max_step > 0`` no layer's weights move by more than
    that fraction of their norm in one step (a sample with a huge error cannot wreck a layer; online
    learning has no batch to average it away). ``price`` replaces ``net.activity`` (learning "membrane" prices the
    spikes in a pass of its own, ``backprop_price``). ``hidden`` multiplies the hidden layers' rates (0: only the
    output layer learns, ``learn_step``).
    """
    price = net.activity if price is None else price
    n_cls = e.shape[0]
    act, h = acts[-1]
    W = net.out_weight
    lr_out = bounded_lr(net.max_step, W, net.lr_out * lr_scale, h, e)
    d = dense_backward(act, h, e, np.arange(n_cls, dtype=np.int32), W, lr_out, True)
    net.bias -= lr_out * e
    boost_new_classes(net, acts, e, lr_out)
    hidden_down(net, acts, d, price, lr_scale, hidden, passed_on=False)


def hidden_down(net, acts, d: np.ndarray, price: float, lr_scale: float, hidden: float, passed_on: bool) -> None:
    """The hidden layers' steps, top down: each layer's output gradient is ``d`` (from the layer above) plus
    ``price`` (times the layer's ``net.layer_price``) where a unit spiked (the spikes' own cost: d(price * sum h)/dh);
    the layer steps on it and passes it down, so a layer's price also moves the layers below it. ``passed_on``
    picks what a layer's step bound (``max_step``) is measured on: the priced gradient (``backprop_price``) or only
    ``d`` (``backprop_counts``)."""
    for k in range(len(net.hidden) - 1, -1, -1):
        layer = net.hidden[k]
        act_out = acts[k + 1][0]
        delta = np.zeros(layer.geo.n_out, np.float32)
        delta[act_out] = d + price * price_scale(net, k)
        a_in, x_in = acts[k]
        layer.note_activity(*acts[k + 1])
        d = layer.backward(a_in, x_in, act_out, delta[act_out] if passed_on else d, delta,
                           net.layer_lr(k) * lr_scale * hidden, net.max_step, k > 0)


def backprop_price(net, acts, lr_scale: float, hidden: float = 1.0) -> None:
    """Learning "membrane": the step of the spikes' own cost, ``net.activity`` times every hidden spike, on the
    spike counts ``acts`` (``activity``), as learning "counts" prices them: each layer down by the gradient of the
    price of its own spikes and of those above (slope 1 where a unit spiked), the output untouched.

    The error's step (``backprop_counts`` on the traces) sees a spike by what is left of it at the readout: priced
    on the traces too, a spike early in the window cost almost nothing (exp(-6) of a late one on N-MNIST, whose
    samples last six leak time constants), and the convolutions' activity grew unchecked: on N-MNIST real +
    synthetic (seed 1) from 3.5 and 1.9 spikes per input event to 7.6 and 12.4 within two epochs, then ran away
    (limits.MAX_SPIKE_EVENTS). Every spike costs its work whenever it happened."""
    hidden_down(net, acts, np.zeros(len(acts[-1][0]), np.float32), net.activity, lr_scale, hidden, passed_on=True)


def backprop_spikes(net, acts, e: np.ndarray, lr_scale: float, hidden_rate: float = 1.0) -> tuple[int, ...]:
    """The error sent back as spikes (dense layers only); returns the error spikes per layer, top first."""
    K = net.error_spikes
    units, signs = output_error_spikes(e.astype(np.float32), K, net.out_herd)
    step = np.float32(net.lr_out * lr_scale / K)
    np.add.at(net.bias, units, -step * signs)
    boost_new_classes(net, acts, e, net.lr_out * lr_scale)
    made = [len(units)]
    hidden = net.hidden
    act, h = acts[-1]
    units, signs = dense_error_spikes(units, signs, act, h, net.out_weight, step, hidden[-1].herd, True)
    made.append(len(units))
    for k in range(len(hidden) - 1, -1, -1):
        a_in, x_in = acts[k]
        step = np.float32(net.layer_lr(k) * lr_scale * hidden_rate / K)
        herd = hidden[k - 1].herd if k > 0 else net.out_herd  # the input has no herders (not touched)
        units, signs = hidden[k].error_spikes(units, signs, a_in, x_in, step, herd, k > 0)
        if k > 0:
            made.append(len(units))
    return tuple(made)


def learn_step(net, idx: np.ndarray, t: np.ndarray | None, scores: np.ndarray, label: int, lr_scale: float,
               hidden: bool = True) -> None:
    """One online update of ``net`` towards ``label`` from a window it has just run (``scores``; the layers'
    counts and, for "membrane", its spike trains are still those of that window); ``net.learn_indices`` makes
    the checks, the forward pass and the scoring around it.

    The step is scale-free (``net.learn_scale``), the error is softmax - one-hot on the scores (under "timing"
    the one-hot smoothed, ``label_smoothing``), the activities
    are the counts (``activity``) or, for "membrane", the traces ("timing": ``timed.backprop_timing``, the exact
    spike-time gradient); a step that leaves non-finite or huge weights
    is undone, the rates halved, and NonFinite raised (``guard``). ``hidden=False``: the hidden layers' rates are
    0 (only the output layer learns; their counts are still noted).
    """
    over = net.learn_scale(len(idx))
    e = softmax(scores / np.float32(over)).astype(np.float32)
    e[label] -= 1.0
    smooth = getattr(net, "label_smoothing", 0.0)
    if smooth:  # learning "timing": towards (1 - s) one-hot + s / classes (defaults.TIMING_SMOOTHING)
        e[label] += np.float32(smooth)
        e -= np.float32(smooth / len(e))
    idx = np.ascontiguousarray(idx, dtype=np.int32)
    counts = None
    if net.learning == "timing":
        acts = timed.activity(net, idx)
    elif net.learning == "membrane":
        acts, counts = traces(net, idx, t), activity(net, idx)  # counts: a superset of the traces' active units
    else:
        acts = activity(net, idx)
    seen = acts if counts is None else counts
    old = guard.touched(net, seen)  # what this update may change: kept to undo a bad step
    step = lr_scale * net.lr_backoff / over
    rate = 1.0 if hidden else 0.0  # the hidden layers' share of the step
    if net.learning == "counts":
        backprop_counts(net, acts, e, step, hidden=rate)
    elif net.learning == "membrane":  # the error through the traces, the spikes' price on the counts
        backprop_counts(net, acts, e, step, price=0.0, hidden=rate)
        if net.activity:
            backprop_price(net, counts, step, hidden=rate)
    elif net.learning == "timing":
        act, h, lr_out = timed.backprop_timing(net, idx, t, e, step, hidden=rate)
        boost_new_classes(net, [(act, h)], e, lr_out)
    else:
        backprop_spikes(net, acts, e, step, hidden_rate=rate)
    where = guard.damaged(net, seen)
    if where is not None:
        guard.undo(net, seen, old)
        net.nonfinite += 1
        raise NonFinite(f"an update made the weights of {where} non-finite or huge ({net.nonfinite} so far); "
                        f"it was undone and the learning rates halved (now x{guard.back_off(net):g})", undone=True)
