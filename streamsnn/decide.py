"""The one step from a window to a decision, shared by the daemon's pipeline and stream evaluation."""

from __future__ import annotations

from .segment import Window


def decide(net, window: Window, *, learn: bool = False):
    """The network's Decision on one window.

    With `learn` and a window that carries its true label (dataset replay), the network learns
    test-then-train and the returned Decision is the prediction made before the update; otherwise
    it only predicts. Any later step between a window and its decision (e.g. smoothing evidence
    over windows) belongs here, so that `streamsnn run` and `streamsnn eval --stream` stay alike.
    """
    if learn and window.label is not None:
        return net.learn_one(window.batch, window.label)
    return net.predict_one(window.batch)
