"""Online learning of a layered spiking network, minibatch 1: backprop on spike counts, or error spikes.

Both work on what the forward pass left behind: the input counts and every hidden layer's spike
counts for one window. ``counts`` mode sends the output error (softmax - one-hot) back layer by
layer, gated by "the unit spiked" (count > 0), and each layer's weights change by the gradient of
its count maps, computed only over active inputs and units (the kernels in dense.py, conv.py).
``spikes`` mode is the paper's event-driven form for dense layers: the error travels back as
spikes through non-resetting herders and each error spike moves one weight column.
"""

from __future__ import annotations

import numpy as np

from .conv import conv_backward
from .dense import dense_backward, dense_error_spikes
from .kernels import output_error_spikes


def activity(net, idx: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(active units, their counts) of the input (from the event indices) and of every hidden layer."""
    from .kernels import input_counts

    n = input_counts(idx, net.input_map.n_inputs, net._buf_active, net._buf_x)
    acts = [(net._buf_active[:n].copy(), net._buf_x[:n].copy())]
    for counts in net.counts:
        act = np.flatnonzero(counts).astype(np.int32)
        acts.append((act, counts[act]))
    return acts


def _dense_lr(net, W, lr: float, x: np.ndarray, d: np.ndarray) -> np.float32:
    """``lr``, scaled down so that the step lr * |x (x) d| is at most net.max_step * |W|."""
    if net.max_step > 0 and len(x) and len(d):
        norm = lr * float(np.linalg.norm(x)) * float(np.linalg.norm(d))
        limit = net.max_step * float(np.linalg.norm(W))
        if norm > limit:
            lr *= limit / norm
    return np.float32(lr)


def boost_new_classes(net, acts, e: np.ndarray, lr: float) -> None:
    """The extra output step of classes whose rate multiplier ``net.class_lr`` is above 1 (see add_class):
    their weights from the active last-layer units and their bias move (class_lr - 1) times further."""
    extra = (net.class_lr - np.float32(1.0)) * e
    if not np.any(extra):
        return
    act, h = acts[-1]
    W = net.weights[-1]
    W[act] -= np.float32(lr) * np.outer(h, extra).astype(np.float32)
    net.bias -= np.float32(lr) * extra


def backprop_counts(net, acts, e: np.ndarray, lr_scale: float) -> None:
    """One SGD step on the spike counts that occurred: output layer, then each hidden layer down.

    ``net.activity`` (>= 0) adds the gradient of ``activity * (spikes of every hidden layer)`` to the
    loss: the network learns to reach its answer with fewer spikes (less work per event, and no
    drift towards ever larger counts). With ``net.max_step > 0`` no layer's weights move by more than
    that fraction of their norm in one step (a sample with a huge error cannot wreck a layer; online
    learning has no batch to average it away).
    """
    n_cls = e.shape[0]
    act, h = acts[-1]
    W = net.weights[-1]
    lr_out = _dense_lr(net, W, net.lr_out * lr_scale, h, e)
    d = dense_backward(act, h, e, np.arange(n_cls, dtype=np.int32), W, lr_out, True)
    net.bias -= lr_out * e
    boost_new_classes(net, acts, e, lr_out)
    for layer in range(len(net.geometry) - 1, -1, -1):
        geo = net.geometry[layer]
        act_out = acts[layer + 1][0]
        delta = np.zeros(geo.n_out, np.float32)
        delta[act_out] = d + net.activity  # the spikes' own cost: d(activity * sum h)/dh
        a_in, x_in = acts[layer]
        lr = net.layer_lr(layer) * lr_scale
        W = net.weights[layer]
        want = layer > 0
        if geo.layer.kind == "dense":
            d = dense_backward(a_in, x_in, delta, act_out, W, _dense_lr(net, W, lr, x_in, d), want)
        else:
            limit = net.max_step * float(np.linalg.norm(W)) if net.max_step > 0 else 0.0
            d = conv_backward(a_in, x_in, delta, W, *net._geo[layer], np.float32(lr), want, limit)


def backprop_spikes(net, acts, e: np.ndarray, lr_scale: float) -> tuple[int, ...]:
    """The error sent back as spikes (dense layers only); returns the error spikes per layer, top first."""
    K = net.error_spikes
    units, signs = output_error_spikes(e.astype(np.float32), K, net._herd[-1])
    step = np.float32(net.lr_out * lr_scale / K)
    np.add.at(net.bias, units, -step * signs)
    boost_new_classes(net, acts, e, net.lr_out * lr_scale)
    made = [len(units)]
    L = len(net.geometry)
    act, h = acts[-1]
    units, signs = dense_error_spikes(units, signs, act, h, net.weights[-1], step, net._herd[L - 1], True)
    made.append(len(units))
    for layer in range(L - 1, -1, -1):
        a_in, x_in = acts[layer]
        step = np.float32(net.layer_lr(layer) * lr_scale / K)
        herd = net._herd[layer - 1] if layer > 0 else net._herd[-1]  # the input has no herders
        units, signs = dense_error_spikes(units, signs, a_in, x_in, net.weights[layer], step, herd, layer > 0)
        if layer > 0:
            made.append(len(units))
    return tuple(made)
