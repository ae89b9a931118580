"""Architecture as data: layer specs (``conv:16:5:2:2,dense:128``), their shapes, and the input mapping.

A network is a stack of hidden layers, each of a kind in the registry (``layers/``: dense,
convolutional or recurrent), then an output layer of one unit per class. The compact text form used by
``streamsnn train --arch`` and the pipeline key ``[model] arch`` is a comma-separated list of

- ``conv:C:K[:S[:P]]``: C output channels, K x K kernel, stride S (default 1), zero padding P
  (default 0); its units form a map of ``C x H' x W'`` with ``H' = (H + 2P - K) // S + 1``;
- ``dense:N``: N units, each connected to every unit of the layer below;
- ``src:N``: N recurrent units (``layers/src.py``): dense input, and their own spikes feed back into the
  layer through recurrent weights (N x N), kept in checkpoints as ``weight_k_rec``.

The same layers are kept as a list of dicts (``{"kind": "conv", "channels": 16, "kernel": 5,
"stride": 2, "padding": 2}``, ``{"kind": "dense", "units": 128}``, ``{"kind": "src", "units": 64}``) in
checkpoints. Unit indices: the input grid is planar (``p * H * W + y * W + x``); a convolution's own units
are channel-last (``(y * W' + x) * C + c``), the order its event-driven kernel writes them in.

Each layer is an ``layers.LayerSpec`` (kind plus sizes); what the sizes mean, how the text and dict
forms read, and the shapes on an input all come from the kind's class in the registry
(``layers/__init__.py``), so this module names no kind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import defaults
from ..errors import ConfigError, InputError
from . import limits
from .delays import MAX_DELAYS
from .layers import KINDS, LayerSpec, usage
from .limits import MAX_GRID_SIDE, check_grid

# The defaults live in streamsnn/defaults.py; kept here under their old names for callers.
DEFAULT_ARCH, CONV_SETTINGS, DENSE_SETTINGS = defaults.DEFAULT_ARCH, defaults.CONV_SETTINGS, defaults.DENSE_SETTINGS


def _layer_from_text(text: str) -> LayerSpec:
    parts = [p.strip() for p in text.strip().split(":")]
    cls = KINDS.get(parts[0].lower())
    try:
        nums = [int(p) for p in parts[1:]]
    except ValueError:
        raise ConfigError(f"layer {text!r}: sizes must be integers ({usage()})") from None
    spec = cls.from_numbers(nums) if cls is not None else None
    if spec is None:
        raise ConfigError(f"layer {text!r} is not {usage()} (e.g. conv:16:5:2:2,dense:128)")
    return _checked(spec, text)


def _layer_from_dict(d: dict) -> LayerSpec:
    try:
        cls = KINDS.get(d.get("kind"))
        if cls is not None:
            return _checked(cls.from_dict(d), str(d))
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError):
        pass
    raise ConfigError(f"layer {d!r} is not a layer of a known kind ({usage()}) with its sizes")


def _checked(layer: LayerSpec, text: str) -> LayerSpec:
    if not layer.cls.valid(layer):
        rule = " (padding 0..kernel-1)" if layer.conv_like else ""
        raise ConfigError(f"layer {text!r}: sizes must be positive{rule}")
    return layer


def parse_arch(arch) -> tuple[LayerSpec, ...]:
    """Layers from a spec string, a list of strings or dicts (TOML, checkpoints), or LayerSpec objects."""
    if isinstance(arch, str):
        items = arch.replace(" ", "").split(",")
        if "" in items and arch.strip():  # "dense:4,,dense:4" or a trailing comma: a layer left out by mistake
            raise ConfigError(f"architecture {arch!r} has an empty layer between its commas; "
                              "e.g. conv:16:5:2:2,dense:800")
        items = [p for p in items if p]
    else:
        items = list(arch)
    layers = []
    for item in items:
        if isinstance(item, LayerSpec):
            layers.append(_checked(item, item.spec()))
        elif isinstance(item, str):
            layers.append(_layer_from_text(item))
        elif isinstance(item, dict):
            layers.append(_layer_from_dict(item))
        else:
            raise ConfigError(f"layer {item!r} is not a spec string or a dict")
    if not layers:
        raise ConfigError("an architecture needs at least one hidden layer (e.g. dense:800)")
    return tuple(layers)


def learning_defaults(layers) -> dict:
    """A copy of CONV_SETTINGS when any layer takes the convolution settings, else of DENSE_SETTINGS."""
    conv = any(lay.conv_like for lay in (parse_arch(layers) if layers else ()))
    return dict(CONV_SETTINGS if conv else DENSE_SETTINGS)


def format_arch(layers) -> str:
    return ",".join(layer.spec() for layer in layers)


@dataclass(frozen=True)
class Geometry:
    """A layer placed on its input: shapes in and out (C, H, W; dense has H = W = 1) and unit counts.

    ``weight_shape``, ``fan_in``, ``fan_out`` and the checkpoint ``array_shapes`` come from the layer's kind."""

    layer: LayerSpec
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    planar_in: bool   # input units numbered p*H*W + y*W + x (the input grid) rather than channel-last

    @property
    def n_in(self) -> int:
        return math.prod(self.in_shape)

    @property
    def n_out(self) -> int:
        return math.prod(self.out_shape)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return self.layer.cls.weight_shape(self)

    @property
    def fan_in(self) -> int:
        return self.layer.cls.fan_in(self)

    @property
    def fan_out(self) -> int:
        """The most units one input event can reach (and make spike)."""
        return self.layer.cls.fan_out(self)

    @property
    def parameters(self) -> int:
        """Values in the layer's checkpoint arrays."""
        return sum(math.prod(s) for s in self.layer.cls.array_shapes(self).values())


def place(layers, grid) -> tuple[Geometry, ...]:
    """Geometry of every layer on an input grid (W, H, P); raises ConfigError when a kernel does not fit."""
    w, h, p = grid
    shape = (p, h, w)
    planar = True
    out = []
    for i, lay in enumerate(layers):
        out_shape = lay.cls.out_shape(lay, shape)
        if out_shape is None:
            raise ConfigError(f"layer {i + 1} ({lay.spec()}) does not fit its {shape[2]}x{shape[1]} input; "
                              "use a smaller kernel or more padding")
        geo = Geometry(lay, shape, tuple(int(v) for v in out_shape), planar)
        out.append(geo)
        shape = geo.out_shape
        planar = False
    return tuple(out)


@dataclass(frozen=True)
class InputMap:
    """Which sensor events reach which input unit: crop to a region, scale onto a grid.

    ``sensor`` (width, height) the sensor the model was made for; ``roi`` (x0, y0, w, h) the part
    of it that is used (default: all of it); ``grid`` (W, H, P) the input units, P = 2 keeps
    polarity (unit ``p*H*W + y*W + x``), P = 1 ignores it. Events outside the region are dropped.
    A batch from a sensor of another size is scaled onto the grid when the region is the whole
    sensor (the field of view maps to the grid, as a 34x34 N-MNIST model reads a 640x480 camera);
    when the region is part of the sensor (measured on that sensor's recordings) such a batch is
    refused with InputError (`check_sensor`): the region would mean another place on another sensor.
    ``delays`` K > 1 gives the first layer K copies of every unit, copy k receiving each event ``delay_us``
    * k later (synaptic delays, ``delays.py``): ``units`` = K * ``n_inputs`` first-layer inputs, ``layer_grid``
    (W, H, P * K) their shape. K = 1 (no delays) is the map of older checkpoints.
    """

    sensor: tuple[int, int] = (34, 34)
    roi: tuple[int, int, int, int] | None = None
    grid: tuple[int, int, int] = (34, 34, 2)
    delays: int = 1
    delay_us: int = 0

    def __post_init__(self):
        sensor = tuple(int(v) for v in self.sensor)
        grid = tuple(int(v) for v in self.grid)
        roi = (0, 0, *sensor) if self.roi is None else tuple(int(v) for v in self.roi)
        if len(sensor) != 2 or min(sensor) < 1 or max(sensor) > MAX_GRID_SIDE:
            raise ConfigError(f"input sensor must be (width, height), 1..{MAX_GRID_SIDE} each, got {self.sensor}")
        if len(grid) != 3 or min(grid) < 1 or grid[2] > 2:
            raise ConfigError(f"input grid must be (width, height, polarities 1 or 2), got {self.grid}")
        check_grid(grid)
        x0, y0, w, h = roi if len(roi) == 4 else (-1, -1, 0, 0)
        if x0 < 0 or y0 < 0 or w < 1 or h < 1 or x0 + w > sensor[0] or y0 + h > sensor[1]:
            raise ConfigError(f"input roi must be (x0, y0, w, h) inside the {sensor[0]}x{sensor[1]} sensor, "
                              f"got {self.roi}")
        try:
            delays, delay_us = int(self.delays), int(self.delay_us)
        except (TypeError, ValueError, OverflowError):
            delays = delay_us = -1
        if not 1 <= delays <= MAX_DELAYS or not 0 <= delay_us <= limits.MAX_TAU_US or (delays > 1) != (delay_us > 0):
            raise ConfigError(f"input delays must be 1..{MAX_DELAYS} copies, each a delay of "
                              f"1..{limits.MAX_TAU_US:.0f} us apart (1 copy: none), got {self.delays} copies "
                              f"{self.delay_us} us apart")
        check_grid((grid[0], grid[1], grid[2] * delays))
        object.__setattr__(self, "sensor", sensor)
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "roi", roi)
        object.__setattr__(self, "delays", delays)
        object.__setattr__(self, "delay_us", delay_us if delays > 1 else 0)

    @property
    def n_inputs(self) -> int:
        """The grid's units: where events are mapped (``units`` counts the first layer's inputs)."""
        return math.prod(self.grid)

    @property
    def units(self) -> int:
        """The first layer's inputs: every grid unit once per delayed copy."""
        return self.n_inputs * self.delays

    @property
    def layer_grid(self) -> tuple[int, int, int]:
        """The shape the first layer reads: (W, H, P * delays), copy k in planes k*P .. k*P + P - 1."""
        return (self.grid[0], self.grid[1], self.grid[2] * self.delays)

    def describe_delays(self) -> str:
        return (f"{self.delays} delayed copies {self.delay_us / 1000:g} ms apart" if self.delays > 1
                else "no delays")

    @property
    def whole_sensor(self) -> bool:
        """True when the region is the whole sensor (then any sensor size is scaled onto the grid)."""
        return self.roi == (0, 0, *self.sensor)

    def check_sensor(self, width: int, height: int, source: str = "events") -> None:
        """InputError (one line) when events of a width x height sensor cannot be mapped (see the class doc)."""
        if (int(width), int(height)) != self.sensor and not self.whole_sensor:
            x0, y0, w, h = self.roi
            raise InputError(f"{source}: {width}x{height} sensor, but the model reads the region ({x0}, {y0}) "
                             f"{w}x{h} of a {self.sensor[0]}x{self.sensor[1]} sensor; use a model trained on "
                             f"this camera's recordings (or one trained with --roi 0,0,{self.sensor[0]},"
                             f"{self.sensor[1]}, which is scaled to any sensor)")

    def to_dict(self) -> dict:
        delays = {"delays": self.delays, "delay_us": self.delay_us} if self.delays > 1 else {}
        return {"sensor": list(self.sensor), "roi": list(self.roi), "grid": list(self.grid), **delays}

    @classmethod
    def from_dict(cls, d: dict) -> InputMap:
        try:
            return cls(tuple(d["sensor"]), tuple(d["roi"]) if d.get("roi") is not None else None, tuple(d["grid"]),
                       d.get("delays", 1), d.get("delay_us", 0))
        except (KeyError, TypeError, ValueError, OverflowError):
            raise ConfigError(f"input map {d!r} needs sensor [w, h], roi [x0, y0, w, h] and grid [W, H, P]") from None

    def events(self, batch) -> tuple[np.ndarray, np.ndarray]:
        """(int32 input unit, int64 time) of every event of an EventBatch inside the region, in order."""
        if not hasattr(batch, "events"):  # e.g. the bare event array: say what is wanted, not an AttributeError
            raise InputError(f"the network reads an EventBatch (streamsnn.events.EventBatch(events, width, height)), "
                             f"got {type(batch).__name__}")
        ev = batch.events
        gw, gh, gp = self.grid
        x0, y0, w, h = self.roi
        bw, bh = int(batch.width), int(batch.height)
        if (bw, bh) != self.sensor:  # another sensor size: the whole sensor scaled onto the grid, or refused
            self.check_sensor(bw, bh, str(batch.source or "events"))
            w, h = bw, bh
        x = ev["x"].astype(np.int32) - x0
        y = ev["y"].astype(np.int32) - y0
        t = ev["t"]
        if x0 or y0 or w < bw or h < bh:
            keep = (x >= 0) & (x < w) & (y >= 0) & (y < h)
            if not keep.all():
                x, y, t, ev = x[keep], y[keep], t[keep], ev[keep]
        if w != gw:
            x = x * gw // w
        if h != gh:
            y = y * gh // h
        idx = y * gw + x
        if gp == 2:
            idx += ev["p"].astype(np.int32) * (gw * gh)
        return np.ascontiguousarray(idx, dtype=np.int32), np.ascontiguousarray(t, dtype=np.int64)

    def event_indices(self, batch) -> np.ndarray:
        """int32 input unit of every event inside the region (see ``events``)."""
        return self.events(batch)[0]


def check_sizes(layers, grid, n_classes: int) -> tuple:
    """The layers' geometry on ``grid`` when the whole network is within the limits, else ConfigError.

    Only shapes are computed (nothing is allocated), so a declared network of 10^9 units is refused
    in microseconds.
    """
    limits.check_grid(grid)
    limits.check_classes(n_classes)
    if len(layers) > limits.MAX_LAYERS:
        raise ConfigError(f"{len(layers)} hidden layers are more than {limits.MAX_LAYERS}")
    for i, lay in enumerate(layers):  # before place: a layer's own sizes alone may be absurd
        if lay.units > limits.MAX_LAYER_UNITS or lay.kernel > 2 * limits.MAX_GRID_SIDE:
            raise ConfigError(f"layer {i + 1} ({lay.spec()}) is larger than {limits.MAX_LAYER_UNITS} units "
                              f"(or a kernel wider than {2 * limits.MAX_GRID_SIDE})")
    geometry = place(layers, tuple(int(v) for v in grid))
    total = n_classes
    for i, g in enumerate(geometry):
        if g.n_out > limits.MAX_LAYER_UNITS:
            raise ConfigError(f"layer {i + 1} ({g.layer.spec()}) has {g.n_out} units on this grid, more than "
                              f"{limits.MAX_LAYER_UNITS}")
        total += g.parameters
    total += geometry[-1].n_out * n_classes
    if total > limits.MAX_PARAMETERS:
        raise ConfigError(f"the network would have {total:,} parameters, more than {limits.MAX_PARAMETERS:,}; "
                          "use fewer or smaller layers, or a coarser grid")
    return geometry
