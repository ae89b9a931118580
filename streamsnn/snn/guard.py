"""Keeping learning finite: what one update touches is kept, checked after the step, and put back when it is not finite.

Not finite here also means beyond ``limits.MAX_WEIGHT`` (what a checkpoint may hold): such weights
are finite but overflow the potentials or scores of the next sample.

``touched`` copies, before a step, exactly what the step may change: per hidden layer what its
``Layer.touched`` names (a dense layer: the weight rows of the active inputs; a convolution: its
whole kernel, which is small), the output rows of the active last-layer units, the bias, and (for
learning "spikes") the error herders. ``damaged`` checks those same parts after the step, ``undo``
writes the copies back, bit for bit. The cost is one copy and one check (finite, within MAX_WEIGHT) over what the
step wrote, about as much memory traffic as the step itself; nothing is kept between samples.
A step found non-finite also halves the network's ``lr_backoff`` (kept in the checkpoint's counters).
"""

from __future__ import annotations

import math

from ..errors import StreamsnnError
from .layers.base import sound

#: ``lr_backoff`` never goes below this (after 30 halvings learning has stopped in all but name).
MIN_BACKOFF = 2.0 ** -30


class NonFinite(StreamsnnError):
    """The network computed non-finite scores or weights: the decision is withheld, the update undone.

    ``undone``: the weights are as they were before the update that failed (False: the scores were
    not finite with the weights as they are, e.g. after a run of steps that made them too large)."""

    def __init__(self, message: str, undone: bool = False, cause: str = "its scores were not finite"):
        super().__init__(message)
        self.undone = undone
        self.cause = cause  # what went wrong, as a revival names it


def herds(net) -> list:
    """The error herders of every hidden layer, then the output's."""
    return [layer.herd for layer in net.hidden] + [net.out_herd]


def touched(net, acts) -> tuple:
    """Copies of everything one update of ``net`` on the activity ``acts`` (``learn.activity``) may change."""
    layers = [layer.touched(acts[k][0]) for k, layer in enumerate(net.hidden)]
    kept = [h.copy() for h in herds(net)] if net.learning == "spikes" else None
    return layers, net.out_weight[acts[-1][0]], net.bias.copy(), kept


def damaged(net, acts) -> str | None:
    """The first layer whose touched part holds a non-finite number after an update, or None."""
    for k, layer in enumerate(net.hidden):
        if not layer.finite(acts[k][0]):
            return f"hidden layer {k + 1} ({layer.geo.layer.spec()})"
    if not (sound(net.bias) and sound(net.out_weight[acts[-1][0]])):
        return "the output layer"
    if net.learning == "spikes" and not all(math.isfinite(float(h.sum())) for h in herds(net)):
        return "the error herders"
    return None


def undo(net, acts, saved: tuple) -> None:
    """Write back what ``touched`` copied: the network is bit for bit as it was before the update."""
    layers, out, bias, kept = saved
    for k, layer in enumerate(net.hidden):
        layer.untouch(acts[k][0], layers[k])
    net.out_weight[acts[-1][0]] = out
    net.bias[:] = bias
    if kept is not None:
        for h, old in zip(herds(net), kept):
            h[:] = old


def snapshot(net) -> list:
    """A copy of every weight of ``net``: each hidden layer's arrays, then the output weights and the bias (to go back
    to a healthy state: ``restore``; training's ``learn/watch.py``, the daemon's ``pipeline/revive.py``)."""
    return [{sfx: a.copy() for sfx, a in layer.arrays().items()} for layer in net.hidden] + [
        net.out_weight.copy(), net.bias.copy()]


def restore(net, snap: list) -> None:
    """Write ``snapshot``'s copy back into ``net`` (same shapes) and reset its running state, error herders too
    (learning "spikes": what they held came from the weights being replaced)."""
    *layers, out, bias = snap
    for layer, arrays in zip(net.hidden, layers):
        for sfx, a in layer.arrays().items():
            a[...] = arrays[sfx]
    net.out_weight[...] = out
    net.bias[:] = bias
    for h in herds(net):
        h[:] = 0
    net.reset()


def back_off(net) -> float:
    """Halve the network's step multiplier ``lr_backoff`` (not below ``MIN_BACKOFF``); returns the new value."""
    net.lr_backoff = max(MIN_BACKOFF, net.lr_backoff * 0.5)
    return net.lr_backoff


def withheld(net) -> NonFinite:
    """The NonFinite a decision of ``net`` with non-finite scores raises: one line saying why (a layer whose activity
    ran away, ``Layer.ran_away``, or damaged weights) and what to do; ``net.nonfinite`` counts them."""
    away = [(k, layer.ran_away) for k, layer in enumerate(net.hidden) if getattr(layer, "ran_away", None)]
    if away:
        k, (m, n) = away[0]
        return NonFinite(f"the model's activity ran away ({net.nonfinite} so far): hidden layer {k + 1} would fire "
                         f"more than {m:,} spike events on {n:,} incoming events (limits.MAX_SPIKE_EVENTS); decision "
                         "withheld; if it keeps happening, lower the learning rates (train: --lr, --lr-out; a daemon: "
                         "an earlier checkpoint, or lower model.lr / model.lr_out)",
                         cause=f"its activity ran away in hidden layer {k + 1}")
    return NonFinite(f"the model's scores are not finite ({net.nonfinite} so far; its weights are damaged): "
                     "decision withheld; train: it is revived from earlier weights; a daemon: restart from an earlier "
                     "checkpoint")


def state_finite(layers, spikes) -> bool:
    """True when every hidden layer's potentials and spike counts are finite; ``spikes`` holds each layer's
    count sum already taken by the caller, so only the potentials are summed here."""
    return all(math.isfinite(s) and math.isfinite(float(layer.phi.sum())) for layer, s in zip(layers, spikes))
