"""The ReLU network with a SpikingNetwork's weights (NumPy): the spiking network's limit, and its twin.

Fed long enough, the spike counts of every layer approach these activations (the paper's limit
property, tested in tests/test_snn_limit.py). ``learn`` trains the same weights as a conventional
ReLU network on count maps, with the spiking network's own sparse update kernels and schedule, so
the two differ only in spikes against real-valued activations (the benchmarks' "ReLU twin").
"""

from __future__ import annotations

import numpy as np

from .layers.conv import conv_pre
from .network import softmax

__all__ = ["conv_pre", "forward", "learn", "predict"]


def forward(net, x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """ReLU activations of every hidden layer (flat, in the spiking layer's unit order) and the scores.

    ``x``: the input, one value per input unit (e.g. event counts; planar p*H*W + y*W + x).
    Computed in float32, the precision of the weights.
    """
    a = np.asarray(x, np.float32).reshape(-1)
    acts = []
    for layer in net.hidden:
        a = np.maximum(layer.relu(a), np.float32(0.0))
        acts.append(a)
    return acts, a @ net.out_weight + net.bias


def learn(net, x: np.ndarray, label: int, lr_scale: float = 1.0) -> int:
    """One online SGD step of the ReLU network on input ``x``; returns the label predicted before it."""
    from .learn import backprop_counts

    acts, scores = forward(net, x)
    e = softmax(scores).astype(np.float32)
    pred = int(np.argmax(scores))
    e[int(label)] -= 1.0
    x = np.asarray(x, np.float32).reshape(-1)
    act0 = np.flatnonzero(x).astype(np.int32)
    pairs = [(act0, x[act0])]
    for a in acts:
        act = np.flatnonzero(a).astype(np.int32)
        pairs.append((act, a[act].astype(np.float32)))
    backprop_counts(net, pairs, e, lr_scale)
    net.updates, net.hidden_updates = net.updates + 1, net.hidden_updates + 1
    return pred


def predict(net, x: np.ndarray) -> int:
    return int(np.argmax(forward(net, x)[1]))
