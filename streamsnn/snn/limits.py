"""Hard limits on what a network may declare (checked before anything is allocated) and on its learning settings.

A checkpoint, a pipeline file or a command line that asks for more is refused with one line, so
an absurd size never turns into a MemoryError and an absurd rate never into NaN weights. The
limits are far above every network this project trains (the default one has 1.35 M parameters
on a 34x34 grid; training grids are at most 48 units wide).
"""

from __future__ import annotations

import math

from ..errors import ConfigError

#: Widest and tallest input grid or sensor (the sensor bound of the event readers, events.MAX_SENSOR_SIDE),
#: and most input units (width x height x polarities: 1920x1080x2 fits).
MAX_GRID_SIDE = 4096
MAX_INPUT_UNITS = 1 << 22
#: Largest magnitude of a weight or bias: a checkpoint holding more is refused, an update making more is undone
#: (float32 reaches 3.4e38; trained weights stay below 100).
MAX_WEIGHT = 1e6
#: Most output classes of a network.
MAX_CLASSES = 4096
#: Most hidden layers, and most units in one hidden layer (a convolution's units are channels x height x width).
MAX_LAYERS = 32
MAX_LAYER_UNITS = 1 << 23
#: Most weights plus biases of a whole network: 64 Mi parameters, 256 MiB of float32.
MAX_PARAMETERS = 1 << 26
#: Learning rates (``lr``, ``lr_out``) lie in [0, MAX_LR]; multipliers of a rate (``lr_conv``, a class's
#: ``class_lr`` / ``lr_boost``, feedback's ``lr_scale``) in [0, MAX_LR_FACTOR]. The defaults are 0.0006-0.002
#: for rates and 0.1-100 for multipliers.
MAX_LR = 10.0
MAX_LR_FACTOR = 10_000.0
#: Other settings: spike threshold and initial gain in (0, MAX_GAIN], error spikes per sample, leak time constant.
MAX_GAIN = 1000.0
#: How many leak time constants a "rise" readout forgets over (``readout_forget``, learning timing): (0, MAX_FORGET].
MAX_FORGET = 1e6
#: ``ref_events`` (the events a window learns as at most, defaults.REF_EVENTS) lies in [1, MAX_REF_EVENTS].
MAX_REF_EVENTS = 1 << 40
MAX_ERROR_SPIKES = 4096
MAX_TAU_US = 1e18
#: Spike events (unit, multiplicity, time) one hidden layer may emit on one call (a window or a piece of one): a network
#: whose activity runs away (every unit firing on every event, layer after layer) would otherwise grow its buffers
#: until the machine runs out of memory (a membrane run on N-MNIST was killed at 22 GiB). 2**25 entries are 0.5 GiB
#: of buffer; a sound default model emits 2-3 per input event, so a window of 10 million events stays below it.
MAX_SPIKE_EVENTS = 1 << 25
#: Largest value of a training counter (samples, events, updates, epochs).
MAX_COUNTER = 1 << 62


def finite(name: str, value, low: float, high: float, *, low_open: bool = False) -> float:
    """``value`` as a float when it is a finite number in [low, high] (or (low, high]); else ConfigError."""
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v > high or v < low or (low_open and v == low):
        side = "above" if low_open else "at least"
        raise ConfigError(f"{name} must be a finite number {side} {low:g} and at most {high:g}, got {value!r}")
    return v


def check_grid(grid, what: str = "input grid") -> None:
    """ConfigError unless every side of ``grid`` (width, height[, polarities]) is at most MAX_GRID_SIDE and
    the grid has at most MAX_INPUT_UNITS units."""
    sides = tuple(int(v) for v in grid)
    if any(v > MAX_GRID_SIDE for v in sides[:2]) or math.prod(sides) > MAX_INPUT_UNITS:
        raise ConfigError(f"{what} {'x'.join(map(str, sides))} is larger than {MAX_GRID_SIDE}x{MAX_GRID_SIDE} "
                          f"or {MAX_INPUT_UNITS:,} units")


def check_classes(n: int) -> None:
    if n > MAX_CLASSES:
        raise ConfigError(f"{n} classes are more than the {MAX_CLASSES} a network may have")
