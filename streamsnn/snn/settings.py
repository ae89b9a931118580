"""Checking and completing SpikingNetwork's constructor arguments: inputs, classes, learning settings, class rates.

Every value is checked against ``limits`` before anything is allocated; a wrong one is a ConfigError
of one line naming it. Defaults that depend on the network's layers come from ``arch.learning_defaults``.
"""

from __future__ import annotations

import numpy as np

from .. import classnames
from ..defaults import (
    REF_EVENTS,
    TIMING_FORGET,
    TIMING_LR,
    TIMING_LR_OUT,
    TIMING_READOUT,
    TIMING_SMOOTHING,
    TIMING_TAU_S_RATIO,
)
from ..errors import ConfigError
from ..textsafe import shown
from . import limits
from .arch import InputMap, format_arch, learning_defaults

LEARNING_MODES = ("counts", "spikes", "membrane", "timing")
#: Learning modes that learn from the timing of events (they need a leak, ``tau_us``).
TEMPORAL_MODES = ("membrane", "timing")
#: How learning "timing"'s output weighs a last-layer spike by its age (``timed.py``).
READOUTS = ("rise", "decay")


def inputs_and_classes(sizes, arch, input_shape, input_map, classes) -> tuple[object, InputMap, list[str]]:
    """(arch, input map, class names) from the constructor's ``sizes``/``arch``, ``input_shape``/``input_map``
    and ``classes`` (a count or names; default 10)."""
    if isinstance(input_map, dict):
        input_map = InputMap.from_dict(input_map)
    if sizes is not None:
        sizes = tuple(int(s) for s in sizes)
        if arch is not None or len(sizes) < 3 or min(sizes) <= 0:
            raise ConfigError(f"sizes must be (inputs, hidden..., classes), all positive, without arch; got {sizes}")
        arch = [f"dense:{h}" for h in sizes[1:-1]]
        given = classes if isinstance(classes, (int, np.integer)) or classes is None else len(classes)
        if given is not None and given != sizes[-1]:  # (a network of the names' count was built without a word)
            raise ConfigError(f"sizes end in {sizes[-1]} classes but classes gives {given}; make them agree")
        classes = sizes[-1] if classes is None else classes
    if input_map is None:
        grid = tuple(int(s) for s in (input_shape or (34, 34, 2)))
        if len(grid) != 3 or min(grid) <= 0 or grid[2] > 2:
            raise ConfigError(f"input_shape must be (width, height, polarities<=2), got {input_shape}")
        input_map = InputMap(sensor=grid[:2], grid=grid)
    if sizes is not None and input_map.n_inputs != sizes[0]:
        raise ConfigError(f"input_shape {input_map.grid} has {input_map.n_inputs} inputs but sizes[0] is {sizes[0]}")
    classes = 10 if classes is None else classes
    if isinstance(classes, (int, np.integer)):
        limits.check_classes(int(classes))
        names = [str(k) for k in range(int(classes))]
    else:
        if not isinstance(classes, (list, tuple)):
            raise ConfigError(f"classes must be a count or a list of names, got {type(classes).__name__}")
        limits.check_classes(len(classes))
        names = [c if isinstance(c, str) else str(c) for c in classes]
    if len(names) < 2:
        raise ConfigError(f"a classifier needs at least 2 classes, got {shown(classes)}: add a second class (for "
                          "instance recordings of the empty scene, as a class folder named background)")
    try:
        names = classnames.check_all(names)  # one rule for class names: see streamsnn/classnames.py
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return arch, input_map, names


def checked_mode(learning: str, tau_us) -> float | None:
    """The learning mode checked; returns ``tau_us`` as a float in (0, MAX_TAU_US], or None (no leak)."""
    if learning not in LEARNING_MODES:
        raise ConfigError(f"learning must be one of {', '.join(LEARNING_MODES)}, got {learning!r}")
    if tau_us is None:
        if learning in TEMPORAL_MODES:
            raise ConfigError(f"learning {learning!r} learns from membrane potentials that leak: give the network a "
                              "time constant: `train --tau-ms 100`, `--set model.tau_ms=100` in a pipeline, "
                              "tau_us=100000 in Python")
        return None
    return float(limits.finite("tau_us", tau_us, 0, limits.MAX_TAU_US, low_open=True))


def layer_taus(layer_tau_us, n_hidden: int, tau_us: float | None) -> tuple[float, ...] | None:
    """Each hidden layer's leak time constant (µs), checked; None when they all take the network's ``tau_us``.

    ``layer_tau_us``: None, or one value per hidden layer (each in (0, MAX_TAU_US]); the network must leak
    (``tau_us`` set, the output's time constant) for them to mean anything."""
    if layer_tau_us is None:
        return None
    if tau_us is None:
        raise ConfigError("layer_tau_us sets each layer's leak: the network needs one too (tau_us, the output's)")
    return per_layer("layer_tau_us", layer_tau_us, n_hidden, "time constant", limits.MAX_TAU_US, low_open=True)


def per_layer(name: str, given, n_hidden: int, what: str, high: float, low_open: bool = False) -> tuple[float, ...]:
    """``given`` as one finite value per hidden layer, each in [0, high] ((0, high] with ``low_open``); else
    ConfigError naming ``name`` and ``what`` one value is."""
    try:
        values = [float(v) for v in given]
    except (TypeError, ValueError):
        values = []
    if len(values) != n_hidden:
        raise ConfigError(f"{name} needs one {what} per hidden layer ({n_hidden}), got {given!r}")
    return tuple(float(limits.finite(name, v, 0, high, low_open=low_open)) for v in values)


def layer_prices(layer_price, n_hidden: int) -> tuple[float, ...] | None:
    """Each hidden layer's multiplier of the spike price ``activity``, checked; None when every layer pays it once.

    A spike's work is where it lands: one of the first convolution's feeds the next convolution (hundreds of adds),
    one of the last hidden layer only the output, so pricing the busy first layer higher buys most of the speed."""
    if layer_price is None:
        return None
    return per_layer("layer_price", layer_price, n_hidden, "multiplier", limits.MAX_LR_FACTOR)


def price_scale(net, k: int) -> float:
    """The multiplier of the spike price for hidden layer ``k`` of ``net`` (1 without ``layer_price``)."""
    return net.layer_price[k] if net.layer_price is not None else 1.0


def learning_settings(layers, *, lr, lr_out, lr_conv, max_step, activity, theta, init_gain, error_spikes, seed,
                      learning, ref_events=None, tau_s_ratio=None, layer_price=None, readout=None,
                      readout_forget=None, label_smoothing=None) -> dict:
    """The learning settings, each checked, with the measured defaults of this kind of network for the
    ones left None (``lr_out`` keeps the measured ratio to ``lr``). ``tau_s_ratio`` (learning "timing" only:
    each layer's postsynaptic-current time constant over its membrane one, in (0, 1); default
    ``defaults.TIMING_TAU_S_RATIO``) and ``readout`` (how the output weighs a last-layer spike by its age, ``timed.py``:
    "rise" or "decay"; default ``defaults.TIMING_READOUT``) and ``readout_forget`` (a "rise" readout forgets over this
    many leak time constants; default ``defaults.TIMING_FORGET``) and ``label_smoothing`` (the share s of the target
    spread over all classes, (1 - s) one-hot + s / classes, in [0, 0.5]; default ``defaults.TIMING_SMOOTHING``) are
    in the result only for "timing"."""
    preset = learning_defaults(layers)
    if learning == "timing":
        preset.update(lr=TIMING_LR, lr_out=TIMING_LR_OUT)
    if lr is not None:  # "fast" * a ratio gave a TypeError; finite() below checks the rest in one line
        lr = limits.finite("lr", lr, 0, limits.MAX_LR)
    if lr_out is None:  # the measured ratio to lr (1 for dense networks, as before)
        lr_out = preset["lr_out"] if lr is None else lr * preset["lr_out"] / preset["lr"]
    lr = preset["lr"] if lr is None else lr
    lr_conv = preset["lr_conv"] if lr_conv is None else lr_conv
    max_step = preset["max_step"] if max_step is None else max_step
    activity = preset["activity"] if activity is None else activity
    max_step = limits.finite("max_step", max_step, 0, limits.MAX_GAIN)
    activity = limits.finite("activity", activity, 0, limits.MAX_GAIN)
    lr, lr_out = limits.finite("lr", lr, 0, limits.MAX_LR), limits.finite("lr_out", lr_out, 0, limits.MAX_LR)
    lr_conv = limits.finite("lr_conv", lr_conv, 0, limits.MAX_LR_FACTOR)
    theta = limits.finite("theta", theta, 0, limits.MAX_GAIN, low_open=True)
    init_gain = limits.finite("init_gain", init_gain, 0, limits.MAX_GAIN)
    ref_events = limits.finite("ref_events", REF_EVENTS if ref_events is None else ref_events, 1,
                               limits.MAX_REF_EVENTS)
    if not (isinstance(error_spikes, (int, np.integer)) and 1 <= error_spikes <= limits.MAX_ERROR_SPIKES):
        raise ConfigError(f"error_spikes must be an integer 1..{limits.MAX_ERROR_SPIKES}, got {error_spikes!r}")
    if not (isinstance(seed, (int, np.integer)) and 0 <= seed < 2**63):
        raise ConfigError(f"seed must be an integer 0..2**63-1, got {seed!r}")
    if learning == "spikes" and not all(lay.cls.error_spikes_ok for lay in layers):
        raise ConfigError("learning 'spikes' (error spikes) works on dense layers only; use 'counts' "
                          f"for {format_arch(layers)}")
    timing = {}
    if learning == "timing":
        check_timing_layers(layers)
        ratio = TIMING_TAU_S_RATIO if tau_s_ratio is None else tau_s_ratio
        timing["tau_s_ratio"] = float(limits.finite("tau_s_ratio", ratio, 0, 0.99, low_open=True))
        timing["readout"] = TIMING_READOUT if readout is None else readout
        if timing["readout"] not in READOUTS:
            raise ConfigError(f"readout must be one of {', '.join(READOUTS)}, got {str(readout)[:40]!r}")
        forget = TIMING_FORGET if readout_forget is None else readout_forget
        timing["readout_forget"] = float(limits.finite("readout_forget", forget, 0, limits.MAX_FORGET, low_open=True))
        smooth = TIMING_SMOOTHING if label_smoothing is None else label_smoothing
        timing["label_smoothing"] = float(limits.finite("label_smoothing", smooth, 0, 0.5))
    else:
        for name, value in (("tau_s_ratio", tau_s_ratio), ("readout", readout), ("readout_forget", readout_forget),
                            ("label_smoothing", label_smoothing)):
            if value is not None:
                raise ConfigError(f"{name} is a setting of learning 'timing', not of {learning!r}")
    return {"seed": int(seed), "lr": float(lr), "lr_out": float(lr_out), "lr_conv": float(lr_conv),
            "layer_price": layer_prices(layer_price, len(layers)),
            "learning": learning, "theta": float(theta), "error_spikes": int(error_spikes),
            "init_gain": float(init_gain), "max_step": float(max_step), "activity": float(activity),
            "ref_events": float(ref_events), **timing}


def check_timing_layers(layers) -> None:
    """ConfigError (one line) unless every layer can run as current-based units with exact spike times."""
    bad = [lay.spec() for lay in layers if not lay.cls.timing_ok]
    if bad:
        raise ConfigError(f"learning 'timing' (exact spike-time gradients) works on dense:N and conv layers only, "
                          f"not {', '.join(bad)}; use --arch dense:N / conv:C:K[:S[:P]] or learning 'membrane'")


def class_rates(class_lr, n: int) -> np.ndarray:
    """float32 (n,): the output learning-rate multiplier per class (default 1; above 1 for classes added
    with a boost), each in (0, MAX_LR_FACTOR]."""
    try:
        rates = np.ones(n) if class_lr is None else np.asarray(class_lr, np.float64)
    except (TypeError, ValueError):
        rates = np.zeros(0)
    if rates.shape != (n,) or not np.all((rates > 0) & (rates <= limits.MAX_LR_FACTOR)):
        raise ConfigError(f"class_lr must hold one rate multiplier per class ({n}), each above 0 and "
                          f"at most {limits.MAX_LR_FACTOR:g}")
    return rates.astype(np.float32)


def checked_delays(learning: str, input_map):
    """``input_map``, or ConfigError (one line) when it has input delays and the rule cannot take them."""
    if learning == "timing" and input_map.delays > 1:
        raise ConfigError("learning 'timing' does not take input delays yet; use --delays 1 or learning membrane")
    return input_map
