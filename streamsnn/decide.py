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
    label = true_output(net, window)
    if learn and label is not None:
        return net.learn_one(window.batch, label)
    return net.predict_one(window.batch)


def true_output(net, window: Window) -> int | None:
    """The network output meant by the window's true label, or None (no label, or a class the model lacks).

    A dataset batch carries its class name (`meta["label_name"]`): it is matched to the network's class
    names, so a model whose classes are ordered differently from the dataset's still learns and is scored
    right. Without a name (or for a network without names, see `by_name`), the label is the output index.
    """
    if window.label is None:
        return None
    name = window.batch.meta.get("label_name") if window.batch is not None else None
    classes = list(getattr(net, "classes", None) or ())
    if name is not None and by_name(classes, [str(name)]):
        return classes.index(str(name)) if str(name) in classes else None
    return int(window.label)


def by_name(classes, names) -> bool:
    """Whether dataset class `names` are matched to a network's `classes` by name.

    Always, except for a network made from a class count (its classes are "0".."n-1") given names
    that are not among them: such a network has no names to match, so labels are output indices.
    """
    classes = [str(c) for c in classes]
    if not classes:
        return False
    numbered = classes == [str(i) for i in range(len(classes))]
    return not numbered or set(map(str, names)) <= set(classes)
