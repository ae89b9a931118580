"""Learning "timing" in a SpikingNetwork: the current-based forward pass, the readout, and the exact spike-time step.

After Yamamoto, Sakemi & Aihara, "Timing-Based Backpropagation in Spiking Neural Networks Without Single-Spike
Restrictions" (2022). Every hidden layer (dense or conv) is a layer of current-based LIF units (``timing.py``;
convolutions through their table, ``timing_conv.py``):
its membrane time constant tau_m is the layer's leak (``layer_tau_us``), its postsynaptic-current time
constant tau_s = ``tau_s_ratio`` x tau_m. The output is not a spiking layer: it is evidence,
``score_c = bias_c + sum over last-layer spikes (j, t) of W[j, c] f(T - t)`` read at the window's last input event
T, a differentiable readout of the last layer's spike times. ``readout`` "rise" (the default):
``f(u) = exp(-u / tau_f) - exp(-u (1/tau + 1/tau_f))``, tau = ``tau_us``, tau_f = ``readout_forget`` x tau
(``defaults.TIMING_FORGET``, kept in the checkpoint): a fresh spike weighs 0, an earlier one more (up to 0.38 at
u = 1.1 tau), and the evidence is forgotten over tau_f. Each term
decays exponentially, so the network carries two sums per class (``scores`` = their difference, ``scores_fast``
the second) and decays them lazily as the other modes' evidence. Its exact gradient moves a helpful unit's
spikes earlier, towards more spikes, and a harmful unit's later, towards fewer, as spikes appearing and
vanishing (which the gradient cannot see) do. ``readout`` "decay" (checkpoints written before "rise"): the
leaky evidence of the other modes, ``f(u) = exp(-u / tau)``, whose gradient points against them, so a long run
must learn its hidden layer slower (``commands._train_choose.timing_lr``). The loss is the softmax cross-entropy
of those scores against a smoothed target (``label_smoothing``, ``learn.learn_step``; the paper's own output loss,
on output spike times, is not reproduced). Its gradient is exact
with respect to every weight, through the times of every spike that happened (``timing.cuba_backward``), for the
spikes as they are: a weight change small enough that no spike appears or disappears moves the loss by the
gradient times the change.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .layers.base import bounded_lr
from .settings import price_scale
from .timing import cuba_backward, psp_norm
from .timing_conv import cuba_conv_backward, cuba_conv_forward
from .timing_dense import cuba_forward


def constants(net, k: int) -> tuple[float, float, float]:
    """(1/tau_m, 1/tau_s, c) of hidden layer ``k``."""
    inv_m = 1.0 / net.layer_tau_us[k]
    inv_s = inv_m / net.tau_s_ratio
    return inv_m, inv_s, psp_norm(inv_m, inv_s)


def forward(net, idx: np.ndarray, t) -> tuple[np.ndarray, tuple[int, ...]]:
    """``propagate.forward`` for learning "timing": (scores incl. bias, spikes per hidden layer).

    The state (each layer's ``cuba`` pair and its time ``ref``, the output evidence at ``out_ref``) carries
    over between calls as a leaky network's does; each layer keeps its spikes of this call in ``spikes``
    (unit, time, dv/dt) for the learning step."""
    if t is None or len(t) != len(idx):
        raise InputError("a leaky network (tau_us set) needs event times")
    ev_i, ev_t = idx, np.ascontiguousarray(t, dtype=np.float64)
    theta = float(net.theta)
    T = float(t[-1]) if len(idx) else np.nan  # the readout time: every layer runs up to it
    for k, layer in enumerate(net.hidden):
        n = layer.geo.n_out
        if layer.cuba is None:
            layer.cuba = (np.zeros(n), np.zeros(n))
        if len(idx) and layer.ref[0] > float(t[0]):  # a new stream or a looped replay: the state stays as it was
            layer.ref[0] = float(t[0])
        layer.counts[:] = 0
        A, B = layer.cuba
        size = max(64, 2 * len(ev_i))
        if not len(idx):
            layer.spikes = (ev_i[:0], ev_t[:0], ev_t[:0])
            continue
        bufs = (np.empty(size, np.int32), np.empty(size), np.empty(size))
        if layer.conv_like:
            ev_i, ev_t, vdot = cuba_conv_forward(ev_i, ev_t, T, layer.weight.reshape(-1), *_conv_geometry(layer), A, B,
                                                 layer.counts, theta, *constants(net, k), layer.ref, *bufs)
        else:
            ev_i, ev_t, vdot = cuba_forward(ev_i, ev_t, T, layer.weight, A, B, layer.counts, theta,
                                            *constants(net, k), layer.ref, *bufs)
        layer.spikes = (ev_i, ev_t, vdot)
    spikes = tuple(int(len(layer.spikes[0])) for layer in net.hidden)
    if not all(np.isfinite(layer.cuba[0].sum() + layer.cuba[1].sum()) for layer in net.hidden):
        return np.full(net.n_classes, np.nan, np.float32), tuple(0 for _ in net.hidden)
    if len(idx):
        _read_out(net, ev_i, ev_t, T)
        net.out_ref[0] = T
        net.t_last = int(t[-1])
    if net.t_last is None:
        return net.bias.copy(), spikes
    return (net.scores + net.bias).astype(np.float32), spikes


def _conv_geometry(layer) -> tuple:
    """(table, output width, stride, kernel size, output channels) of a convolution, for ``timing_conv``."""
    geo = layer.geo
    return layer.table, geo.out_shape[2], geo.layer.stride, geo.layer.kernel, geo.layer.units


def rates(net) -> tuple[float, ...]:
    """The decay rates (1/µs) of the readout's sums: (1/tau,) for "decay"; (1/tau_f, 1/tau + 1/tau_f) for "rise",
    whose score is the first sum minus the second."""
    inv = 1.0 / net.tau_us
    if net.readout == "decay":
        return (inv,)
    return inv / net.readout_forget, inv + inv / net.readout_forget


def kernel(net, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(f(u), df/dt) of the readout for spikes of age u = T - t (the weight a spike at t has at T, and how it
    changes as the spike moves later)."""
    r = rates(net)
    a = np.exp(-u * r[0])
    if len(r) == 1:
        return a, a * r[0]
    b = np.exp(-u * r[1])
    return a - b, r[0] * a - r[1] * b


def _decayed(net, T: float) -> tuple[list[np.ndarray], tuple[float, ...]]:
    """The readout's sums (float64, one per rate of ``rates``; the score is ``_score`` of them) decayed from
    ``out_ref`` to T, and those rates. A fresh state carries nothing; a looped replay (T before ``out_ref``) decays
    nothing."""
    r, ref = rates(net), float(net.out_ref[0])
    if np.isnan(ref):
        return [np.zeros(net.n_classes) for _ in r], r
    sums = [net.scores.astype(np.float64)]
    if net.readout != "decay":  # "rise": scores is the first sum minus the second, scores_fast the second
        sums = [sums[0] + net.scores_fast, net.scores_fast.astype(np.float64)]
    return [x * np.exp(-max(0.0, T - ref) * k) for x, k in zip(sums, r)], r


def _score(sums: list[np.ndarray]) -> np.ndarray:
    """The evidence the readout's sums stand for: the one sum ("decay"), or the first minus the second ("rise")."""
    return sums[0] - sums[1] if len(sums) > 1 else sums[0]


def _read_out(net, ev_i: np.ndarray, ev_t: np.ndarray, T: float) -> None:
    """Decay the evidence from ``out_ref`` to T and add the last layer's spikes (``ev_i`` at ``ev_t``)."""
    carried, r = _decayed(net, T)
    with np.errstate(over="ignore", invalid="ignore"):
        rows = net.out_weight[ev_i].astype(np.float64)
        sums = [x + (np.exp((ev_t - T) * k) @ rows if len(ev_i) else 0.0) for x, k in zip(carried, r)]
    net.scores = _score(sums).astype(np.float32)
    if len(sums) > 1:
        net.scores_fast = sums[1].astype(np.float32)


def evidence_at(net, t_us: float) -> np.ndarray:
    """The scores (incl. bias) of a network's evidence read out at ``t_us`` (after its last readout ``out_ref``)
    without adding anything: each sum decayed by its own rate."""
    return (_score(_decayed(net, float(t_us))[0]) + net.bias).astype(np.float32)


def activity(net, idx: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(active units, their spike counts) of the input and of every hidden layer, as ``learn.activity``:
    what the guard copies before the step (the weight rows of the active inputs of every layer)."""
    act = np.unique(idx).astype(np.int32)
    acts = [(act, np.bincount(idx)[act].astype(np.float32))]
    for layer in net.hidden:
        act = np.flatnonzero(layer.counts).astype(np.int32)
        acts.append((act, layer.counts[act]))
    return acts


def gradients(net, idx: np.ndarray, t, e: np.ndarray, price: float = 0.0) -> tuple[np.ndarray, np.ndarray, list]:
    """The exact gradient of the loss whose score gradient is ``e`` (softmax - one-hot), for the window the
    network has just run: (active last-layer units, their traces at T (the output-weight gradient rows are
    their outer product with ``e``), [(active inputs, their weight-gradient rows) per hidden layer, bottom first;
    for a convolution (None, the whole kernel's gradient)]); the bias gradient is ``e`` itself.

    ``price`` (>= 0) adds ``price * sum over every hidden spike of (T - t) / tau_m`` (its layer's) to the loss:
    a spike moved to the readout time costs nothing, as one that did not happen; its gradient pushes spikes
    later, towards fewer (the regulariser of spike counts in the exact, spike-time form)."""
    T = float(t[-1])
    last = net.hidden[-1]
    sp_i, sp_t, sp_d = last.spikes
    keep, slope = kernel(net, T - sp_t)
    h = np.bincount(sp_i, weights=keep, minlength=last.geo.n_out)
    act = np.flatnonzero(h).astype(np.int32)
    e64 = e.astype(np.float64)
    g = (net.out_weight[sp_i].astype(np.float64) @ e64) * slope  # dL/dt of each last-layer spike
    grads = []
    theta = float(net.theta)
    for k in range(len(net.hidden) - 1, -1, -1):
        layer = net.hidden[k]
        if price:  # the spikes' own cost, price * (T - t) / tau_m each (x its layer's): it falls as a spike moves later
            g = g - price * price_scale(net, k) / net.layer_tau_us[k]
        if k:
            in_i, in_t, in_d = net.hidden[k - 1].spikes
        else:
            in_i, in_t, in_d = np.ascontiguousarray(idx, np.int32), np.ascontiguousarray(t, np.float64), None
        if layer.conv_like:  # every kernel weight is used at many positions: the gradient is the whole kernel's
            act_in, grad = None, np.zeros(layer.weight.size)
            g_in = cuba_conv_backward(in_i, in_t, sp_i, sp_t, sp_d, np.ascontiguousarray(g), layer.weight.reshape(-1),
                                      *_conv_geometry(layer), layer.geo.n_out, grad, theta, *constants(net, k), k > 0)
            grad = grad.reshape(layer.weight.shape)
        else:
            act_in = np.unique(in_i).astype(np.int32)
            row_of = np.full(layer.geo.n_in, -1, np.int32)
            row_of[act_in] = np.arange(len(act_in), dtype=np.int32)
            grad = np.zeros((len(act_in), layer.geo.n_out))
            g_in = cuba_backward(in_i, in_t, sp_i, sp_t, sp_d, np.ascontiguousarray(g), layer.weight, row_of, grad,
                                 theta, *constants(net, k), k > 0)
        grads.append((act_in, grad))
        g, sp_i, sp_t, sp_d = g_in, in_i, in_t, in_d
    return act, h[act], grads[::-1]


def normalised_lr(lr: float, W: np.ndarray, grad: np.ndarray, err: float) -> float:
    """The rate that makes a hidden layer's step ``lr * |W| * |e|`` long, in the direction of its gradient.

    The exact gradient's length grows with the spikes (every spike adds its dL/dt, each divided by the
    slope dv/dt at its crossing, some nearly grazing): a raw step of a fixed rate is tiny for one sample and
    runs away for the next. Normalised, every sample moves a layer by the same fraction of its norm, times
    how wrong the sample was (``err``, the length of softmax - one-hot), whatever its spike count."""
    norm = float(np.linalg.norm(grad))
    if not (norm > 0.0 and np.isfinite(norm)):
        return 0.0
    return lr * float(np.linalg.norm(W)) * err / norm


def backprop_timing(net, idx: np.ndarray, t, e: np.ndarray, lr_scale: float,
                    hidden: float = 1.0) -> tuple[np.ndarray, np.ndarray, float]:
    """One step down the exact gradient (``gradients``, with ``net.activity`` as the spike price), every weight
    moved after all were computed; each hidden layer's step normalised (``normalised_lr``), and every layer's
    bounded to ``max_step`` of its weights' norm (``bounded_lr``), as the other modes'. Returns
    (active last-layer units, their traces, the output rate used) for ``learn.boost_new_classes``."""
    act, h, grads = gradients(net, idx, t, e, net.activity)
    g_out = np.outer(h, e)
    one = np.ones(1, np.float32)
    err = float(np.linalg.norm(e))
    for k, (act_in, grad) in enumerate(grads):
        layer = net.hidden[k]
        rate = normalised_lr(net.layer_lr(k) * lr_scale * hidden, layer.weight, grad, err)
        lr = bounded_lr(net.max_step, layer.weight, rate, grad.ravel(), one)
        with np.errstate(over="ignore", invalid="ignore"):
            if act_in is None:  # a convolution: its whole kernel
                layer.weight -= (float(lr) * grad).astype(np.float32)
            else:
                layer.weight[act_in] -= (float(lr) * grad).astype(np.float32)
    W = net.out_weight
    lr_out = bounded_lr(net.max_step, W, net.lr_out * lr_scale, g_out.ravel(), one)
    with np.errstate(over="ignore", invalid="ignore"):
        W[act] -= (float(lr_out) * g_out).astype(np.float32)
        net.bias -= lr_out * e
    return act, h.astype(np.float32), float(lr_out)


def warm_up(net) -> None:
    """Load (or compile) the kernels of learning "timing" without touching the network's state or weights."""
    none, empty = np.zeros(0, np.int32), np.zeros(0)
    for k, layer in enumerate(net.hidden):
        n = layer.geo.n_out
        if layer.conv_like:
            Kf = layer.weight.reshape(-1)
            cuba_conv_forward(none, empty, 0.0, Kf, *_conv_geometry(layer), np.zeros(n), np.zeros(n),
                              np.zeros(n, np.float32), float(net.theta), *constants(net, k), np.full(1, np.nan),
                              np.empty(1, np.int32), np.empty(1), np.empty(1))
            cuba_conv_backward(none, empty, none, empty, empty, empty, Kf, *_conv_geometry(layer), n,
                               np.zeros(Kf.size), float(net.theta), *constants(net, k), True)
            continue
        cuba_forward(none, empty, 0.0, layer.weight, np.zeros(n), np.zeros(n), np.zeros(n, np.float32),
                     float(net.theta), *constants(net, k), np.full(1, np.nan), np.empty(1, np.int32), np.empty(1),
                     np.empty(1))
        cuba_backward(none, empty, none, empty, empty, empty, layer.weight, np.zeros(layer.geo.n_in, np.int32),
                      np.zeros((0, n)), float(net.theta), *constants(net, k), True)
