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


def backprop_counts(net, acts, e: np.ndarray, lr_scale: float) -> None:
    """One SGD step on the spike counts that occurred: output layer, then each hidden layer down."""
    lr_out = np.float32(net.lr_out * lr_scale)
    n_cls = e.shape[0]
    act, h = acts[-1]
    d = dense_backward(act, h, e, np.arange(n_cls, dtype=np.int32), net.weights[-1], lr_out, True)
    net.bias -= lr_out * e
    for layer in range(len(net.geometry) - 1, -1, -1):
        geo = net.geometry[layer]
        act_out = acts[layer + 1][0]
        delta = np.zeros(geo.n_out, np.float32)
        delta[act_out] = d
        a_in, x_in = acts[layer]
        lr = np.float32(net.layer_lr(layer) * lr_scale)
        want = layer > 0
        if geo.layer.kind == "dense":
            d = dense_backward(a_in, x_in, delta, act_out, net.weights[layer], lr, want)
        else:
            d = conv_backward(a_in, x_in, delta, net.weights[layer], net._geo[layer], lr, want)


def backprop_spikes(net, acts, e: np.ndarray, lr_scale: float) -> tuple[int, ...]:
    """The error sent back as spikes (dense layers only); returns the error spikes per layer, top first."""
    K = net.error_spikes
    units, signs = output_error_spikes(e.astype(np.float32), K, net._herd[-1])
    step = np.float32(net.lr_out * lr_scale / K)
    np.add.at(net.bias, units, -step * signs)
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
