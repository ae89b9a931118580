"""Editing a network's classes: add an output unit for a new class (and imprint it), find a class, remove, rename."""

from __future__ import annotations

import math

import numpy as np

from .. import classnames
from ..errors import ConfigError
from ..textsafe import shown
from . import limits


def add_class(net, name: str, *, bias: float | None = None, lr_boost: float = 1.0) -> int:
    """Append an output unit for the class ``name`` to ``net``; returns its index (see
    ``SpikingNetwork.add_class``)."""
    try:
        name = classnames.normalise(name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if classnames.find(name, net.classes) is not None:
        raise ConfigError(f"class name '{shown(name)}' is taken (names are matched regardless of case; "
                          f"classes: {', '.join(shown(c, 40) for c in net.classes)})")
    lr_boost = limits.finite("lr_boost", lr_boost, 0, limits.MAX_LR_FACTOR, low_open=True)
    bias = None if bias is None else limits.finite("bias", bias, -limits.MAX_GAIN, limits.MAX_GAIN)  # before any change
    limits.check_classes(net.n_classes + 1)
    W = net.out_weight
    net.out_weight = np.ascontiguousarray(np.concatenate([W, np.zeros((W.shape[0], 1), np.float32)], axis=1))
    b = float(net.bias.mean()) if bias is None else bias
    net.bias = np.append(net.bias, np.float32(b)).astype(np.float32)
    net.class_lr = np.append(net.class_lr, np.float32(lr_boost)).astype(np.float32)
    net.classes.append(name)
    net.scores = np.append(net.scores, np.float32(0.0)).astype(np.float32)
    net.scores_fast = np.append(net.scores_fast, np.float32(0.0)).astype(np.float32)
    net.out_herd = np.append(net.out_herd, np.float32(0.0)).astype(np.float32)
    net.updates += 1  # the model changed: a new model_version
    return net.n_classes - 1


def class_index(net, name) -> int:
    """The output of class `name` in `net`: the exact stored name, else `classnames.find` (normalised,
    regardless of case); `#N` (or the int N) names output N. ConfigError naming the classes when there is none."""
    if isinstance(name, (int, np.integer)) and not isinstance(name, bool) and 0 <= name < net.n_classes:
        return int(name)
    text = str(name)
    if text in net.classes:
        return net.classes.index(text)
    if text.startswith("#") and text[1:].isascii() and text[1:].isdigit() and int(text[1:]) < net.n_classes:
        return int(text[1:])
    try:
        index = classnames.find(classnames.normalise(text), net.classes)
    except ValueError:
        index = None
    if index is None:
        raise ConfigError(f"the model has no class '{shown(text)}' (classes: "
                          f"{', '.join(shown(c, 40) for c in net.classes)}); name one of them, or #N for output N")
    return index


def output_index(net, value, what: str = "label") -> int:
    """The output `value` names for learning: an integer 0..n_classes-1, or a class name (`class_index`). InputError
    otherwise: a float, a bool or a name the model lacks is never taken as some other output."""
    from ..errors import InputError

    if isinstance(value, str):
        try:
            return class_index(net, value)
        except ConfigError as exc:
            raise InputError(f"{what}: {exc}") from None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{what} must be an output index (an integer 0..{net.n_classes - 1}) or a class name, got "
                         f"{shown(repr(value), 40)}")
    if not 0 <= value < net.n_classes:
        raise InputError(f"{what} {value} outside the network's classes 0..{net.n_classes - 1}")
    return int(value)


def remove_class(net, name) -> int:
    """Remove the output unit of class `name`; returns the index it had.

    Undoes for any class what `SpikingNetwork.add_class` does for a new one: its column of the output
    weights, its bias, its output learning-rate multiplier (`class_lr`), its evidence (`scores`, `scores_fast`) and
    its error-spike state go, and `model_version` changes. The other classes keep their weights and
    biases, so their scores for any input are unchanged; the classes after it move down by one
    output (and so do their kept examples, ``memory``; the removed class's go). A model keeps at least 2
    classes. Meant for a model at rest (`streamsnn classes`): a
    running daemon's recent decisions name outputs by index.
    """
    index = class_index(net, name)
    if net.n_classes <= 2:
        raise ConfigError(f"cannot remove class '{shown(net.classes[index])}': a model keeps at least 2 classes")
    keep = np.arange(net.n_classes) != index
    net.out_weight = np.ascontiguousarray(net.out_weight[:, keep])
    net.bias = np.ascontiguousarray(net.bias[keep])
    net.class_lr = np.ascontiguousarray(net.class_lr[keep])
    net.scores = np.ascontiguousarray(net.scores[keep])
    net.scores_fast = np.ascontiguousarray(net.scores_fast[keep])
    net.out_herd = np.ascontiguousarray(net.out_herd[keep])
    del net.classes[index]
    net.memory.drop_class(index)
    net.updates += 1  # the model changed: a new model_version
    return index


def rename_class(net, old, new: str) -> int:
    """Give class `old` (see `class_index`) the name `new`, normalised; returns its index. Refused (ConfigError)
    when `new` is not a class name or names another class. Weights and everything learned stay."""
    index = class_index(net, old)
    rename_classes(net, {index: new})
    return index


def rename_classes(net, renames: dict[int, str], *, removed=()) -> None:
    """Rename several classes at once (output index -> new name, normalised), so that names may be swapped.
    Refused (ConfigError, nothing renamed) when a new name is not a class name or when a renamed class would
    share its name (regardless of case) with another class left, the ``removed`` outputs aside."""
    names = list(net.classes)
    for index, new in renames.items():
        try:
            names[index] = classnames.normalise(new)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if index in removed:
            continue
        first = seen.setdefault(classnames.key(name), index)
        if first != index and (index in renames or first in renames):  # (an old model's own pair: not this edit's)
            new, other = (index, first) if index in renames else (first, index)
            raise ConfigError(f"class name '{shown(names[new])}' is taken by output {other} (names are matched "
                              "regardless of case)")
    for index in renames:
        net.classes[index] = names[index]
        net.updates += 1


def imprints(net) -> bool:
    """Whether ``net``'s scores are its last hidden layer's spike counts times the output weights plus the bias (no
    leak, not learning "timing"): then `imprint` can place a new unit; any other network keeps zero weights."""
    return (getattr(net, "tau_us", None) is None and getattr(net, "learning", "counts") != "timing"
            and hasattr(net, "features") and hasattr(net, "out_weight"))


def imprint(net, index: int, h: np.ndarray, *, margin: float, centre: np.ndarray | None = None) -> bool:
    """Set output ``index``'s weights and bias from ``h``, the last-layer spike counts of a window of its class
    (weight imprinting, Qi, Brown & Lowe 2018); returns False (nothing changed) when it cannot.

    The weights point along ``h - centre`` (``centre``: the mean counts of examples of the other classes, or none):
    the way this window stands out from the others, whose scores it lowers, with the median length of the other
    classes' weight columns (the new unit is as loud as they are). The bias puts the window's score ``margin`` above
    the best other class's, so the window and windows like it are decided as the new class at once while the other
    classes' scores do not change at all (only the windows the new unit now beats change decision)."""
    if not imprints(net) or net.n_classes < 2 or not 0 <= index < net.n_classes:
        return False
    h = np.asarray(h, np.float64).reshape(-1)
    W = net.out_weight
    if h.shape != (W.shape[0],) or not np.any(h) or not np.all(np.isfinite(h)):
        return False
    d = h - (np.asarray(centre, np.float64) if centre is not None else 0.0)
    if not np.any(d):
        d = h
    others = np.arange(net.n_classes) != index
    scale = float(np.median(np.linalg.norm(W[:, others].astype(np.float64), axis=0)))
    if not (scale > 0 and math.isfinite(scale)):
        return False
    w = d / np.linalg.norm(d) * scale
    best = float(np.max(h @ W[:, others].astype(np.float64) + net.bias[others]))
    bias = best + float(margin) - float(h @ w)
    if not math.isfinite(bias):
        return False
    W[:, index] = w.astype(np.float32)
    net.bias[index] = np.float32(bias)
    net.updates += 1
    return True


def fit_class(net, index: int, positives: np.ndarray, negatives: np.ndarray, *, steps: int, rate: float,
              weight: float) -> bool:
    """Fit output ``index``'s weights and bias, and only those, to tell ``positives`` (last-layer spike counts of
    windows of its class, one a row) from ``negatives`` (windows of the other classes): ``steps`` steps down the
    softmax cross-entropy of the whole output on both sets (each set's mean; the negatives' weighing ``weight``
    times as much), the step ``rate`` divided by the rows' mean squared length (the same step on any counts' scale).
    The other units are not touched. Returns whether it changed the weights (not without both sets)."""
    P = np.asarray(positives, np.float64).reshape(-1, net.out_weight.shape[0])
    N = np.asarray(negatives, np.float64).reshape(-1, net.out_weight.shape[0])
    if not (len(P) and len(N) and steps > 0 and 0 <= index < net.n_classes):
        return False
    if not (np.all(np.isfinite(P)) and np.all(np.isfinite(N))):
        return False
    W, b = net.out_weight.astype(np.float64), net.bias.astype(np.float64)
    size = float(np.mean(np.concatenate([np.sum(P * P, axis=1), np.sum(N * N, axis=1)])))
    lr = float(rate) / (size + 1.0)
    SP, SN = P @ W + b, N @ W + b  # the other units' scores do not change: only this column is updated
    w, bias = W[:, index].copy(), float(b[index])
    for _ in range(int(steps)):
        SP[:, index], SN[:, index] = P @ w + bias, N @ w + bias
        pp, pn = _share(SP, index), _share(SN, index)
        w -= lr * (((pp - 1.0) @ P) / len(P) + weight * (pn @ N) / len(N))
        bias -= lr * (float(np.mean(pp - 1.0)) + weight * float(np.mean(pn)))
    if not (np.all(np.isfinite(w)) and math.isfinite(bias)):
        return False
    net.out_weight[:, index] = w.astype(np.float32)
    net.bias[index] = np.float32(bias)
    net.updates += 1
    return True


def _share(S: np.ndarray, index: int) -> np.ndarray:
    """The softmax probability of output ``index`` for each row of scores ``S``."""
    E = np.exp(S - S.max(axis=1, keepdims=True))
    return E[:, index] / E.sum(axis=1)
