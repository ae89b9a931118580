"""The protocol every hidden layer kind follows: its spec (text, dict, shapes), parameters, state, kernels, learning.

A kind is a subclass of ``Layer`` registered in ``layers/__init__.py``. The class side (classmethods)
reads and writes the kind's spec (a ``LayerSpec``, below: ``kind`` plus up to four integers) and
places it on an input shape; an instance is one layer of a network on its ``arch.Geometry``, and
owns everything that changes: its parameters (``weight``, and whatever ``arrays`` lists for the
checkpoint), its dynamic state (potentials ``phi``, spike ``counts``, the leak clock ``ref``, the
output buffers), its error herders, its forward and backward kernels and its ReLU twin. The
network and the propagation and learning code use only the public methods below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...errors import ConfigError
from .. import limits
from ..limits import MAX_WEIGHT

NO_CNT = np.zeros(0, np.float32)
NO_T = np.zeros(0, np.int64)


def bounded_lr(max_step: float, W: np.ndarray, lr: float, x: np.ndarray, d: np.ndarray) -> np.float32:
    """``lr``, scaled down so that the dense step lr * |x (x) d| is at most ``max_step * |W|`` (0: no bound)."""
    if max_step > 0 and len(x) and len(d):
        norm = lr * float(np.linalg.norm(x)) * float(np.linalg.norm(d))
        limit = max_step * float(np.linalg.norm(W))
        if norm > limit:
            lr *= limit / norm
    with np.errstate(over="ignore"):  # a rate beyond float32 becomes inf: its update is refused (guard), no warning
        return np.float32(lr)


def sound(a: np.ndarray) -> bool:
    """True when every entry of ``a`` is finite and within ``limits.MAX_WEIGHT`` (NaN fails the comparison)."""
    return bool(np.abs(a).max(initial=0) <= MAX_WEIGHT)


@dataclass(frozen=True)
class LayerSpec:
    """One hidden layer as data: its ``kind`` (a registry key) and up to four sizes, which the kind names
    (dense: ``units``; conv: ``units`` channels, ``kernel``, ``stride``, ``padding``)."""

    kind: str
    units: int = 0
    kernel: int = 0
    stride: int = 1
    padding: int = 0

    @property
    def cls(self) -> type[Layer]:
        """The layer class of this kind (from the registry)."""
        return kind_of(self.kind)

    def spec(self) -> str:
        return self.cls.text(self)

    def to_dict(self) -> dict:
        return self.cls.as_dict(self)

    @property
    def conv_like(self) -> bool:
        return self.cls.conv_like


class ArrayView(list):
    """A list of one array attribute per object (e.g. every layer's ``phi``), taken when it is made;
    assigning an item also assigns the attribute (``net.counts[k] = a`` sets layer k's counts)."""

    def __init__(self, pairs: list[tuple[object, str]]):
        super().__init__(getattr(o, a) for o, a in pairs)
        self._pairs = pairs

    def __setitem__(self, k, value) -> None:
        if isinstance(k, slice):
            raise TypeError("assign the arrays of an ArrayView one at a time")
        o, a = self._pairs[k]
        setattr(o, a, value)
        super().__setitem__(k, value)


class Layer:
    """One hidden layer of integrate-and-fire units (see the module doc); subclasses fill in the kind."""

    #: The name in specs, dicts and checkpoints ("dense", "conv", ...): the registry key.
    kind: ClassVar[str] = ""
    #: Takes the convolution settings: ``lr_conv`` multiplies its rate, and a network holding one gets
    #: ``arch.CONV_SETTINGS`` (and the stream learning-rate scale in training).
    conv_like: ClassVar[bool] = False
    #: Learns with the paper's error spikes (learning mode "spikes").
    error_spikes_ok: ClassVar[bool] = False
    #: Runs and learns as current-based LIF units with exact spike-time gradients (learning mode "timing").
    timing_ok: ClassVar[bool] = False
    #: The spec text form, for messages ("dense:N").
    usage: ClassVar[str] = ""
    #: Set by the network while it runs a window it will learn from (a kind that needs the trace records it).
    recording: bool = False

    # -- the spec (class side) ----------------------------------------------------------------
    @classmethod
    def from_numbers(cls, nums: list[int]):
        """The ``arch.LayerSpec`` of the text form ``kind:n1:n2...``, or None when the numbers do not fit."""
        raise NotImplementedError

    @classmethod
    def from_dict(cls, d: dict):
        """The ``arch.LayerSpec`` of a checkpoint/TOML dict (KeyError, TypeError, ValueError when malformed)."""
        raise NotImplementedError

    @classmethod
    def text(cls, spec) -> str:
        raise NotImplementedError

    @classmethod
    def as_dict(cls, spec) -> dict:
        raise NotImplementedError

    @classmethod
    def valid(cls, spec) -> bool:
        """Sizes in range (checked when a spec is parsed)."""
        return spec.units >= 1

    @classmethod
    def out_shape(cls, spec, in_shape: tuple[int, int, int]) -> tuple[int, int, int] | None:
        """(C, H, W) of the layer's units on an input of ``in_shape``; None when it does not fit."""
        raise NotImplementedError

    @classmethod
    def array_shapes(cls, geo) -> dict[str, tuple[int, ...]]:
        """The checkpoint arrays of a layer on ``geo``: suffix ("" is the weight array) -> shape."""
        return {"": cls.weight_shape(geo)}

    @classmethod
    def weight_shape(cls, geo) -> tuple[int, ...]:
        raise NotImplementedError

    @classmethod
    def fan_in(cls, geo) -> int:
        """Inputs per unit (for the initial weight scale)."""
        raise NotImplementedError

    @classmethod
    def fan_out(cls, geo) -> int:
        """The most units one input event can reach (and make spike)."""
        raise NotImplementedError

    @classmethod
    def line(cls, d: dict) -> str:
        """One line for ``streamsnn info`` from ``describe()``'s dict (without the shapes)."""
        raise NotImplementedError

    # -- one layer of a network ---------------------------------------------------------------
    def __init__(self, geo):
        self.geo = geo
        n = geo.n_out
        self.weight = np.zeros(0, np.float32)
        self.herd = np.zeros(n, np.float32)  # error herders of the "spikes" mode; kept across samples, not saved
        # the layer's spikes of one call, as events for the next layer (grown when needed)
        self.out_i, self.out_c, self.out_t = (np.empty(4096, dt) for dt in (np.int32, np.float32, np.int64))
        self.reset()

    def init_weights(self, rng: np.random.Generator, gain: float) -> None:
        """Normal weights with std ``gain * sqrt(2 / fan_in)`` (He), drawn from ``rng`` in a fixed order."""
        self.weight = (rng.standard_normal(self.weight_shape(self.geo)) * gain * math.sqrt(2.0 / self.fan_in(self.geo))
                       ).astype(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays a checkpoint holds for this layer (suffix -> array; see ``array_shapes``)."""
        return {"": self.weight}

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Take the arrays of ``arrays()`` (shapes already checked against ``array_shapes``)."""
        self.weight = np.ascontiguousarray(arrays[""], dtype=np.float32)

    @property
    def parameters(self) -> int:
        return int(sum(a.size for a in self.arrays().values()))

    def describe(self) -> dict:
        d = {**self.as_dict(self.geo.layer), "in": list(self.geo.in_shape), "out": list(self.geo.out_shape),
             "weights": list(self.weight_shape(self.geo)), "parameters": self.parameters}
        d["units"] = self.geo.n_out
        return d

    # -- state --------------------------------------------------------------------------------
    def reset(self) -> None:
        """Clear the potentials, counts and leak clock (not the weights, not the error herders)."""
        self.phi = np.zeros(self.geo.n_out, np.float32)
        self.counts = np.zeros(self.geo.n_out, np.float32)
        self.ref = np.full(1, np.nan)  # the leak's scaled frame: its reference time (µs), NaN before the first event
        self.cuba = None  # learning "timing": the (A, B) state of its current-based units at ``ref`` (timed.py)
        self.ran_away = None  # (spike events emitted, input events) when a call hit limits.MAX_SPIKE_EVENTS

    def save_state(self) -> tuple:
        cuba = None if self.cuba is None else (self.cuba[0].copy(), self.cuba[1].copy())
        return self.phi.copy(), self.counts.copy(), self.ref.copy(), cuba

    def restore_state(self, saved: tuple) -> None:
        self.phi, self.counts, self.ref, self.cuba = saved

    # -- forward ------------------------------------------------------------------------------
    def kernel(self, ev_i, ev_c, ev_t, start: int, theta, inv_tau: float, ref, emit: bool, bi, bc, bt, m: int):
        """The kind's forward kernel on events ``ev_*[start:]`` (contract of ``dense.dense_forward``)."""
        raise NotImplementedError

    def forward(self, ev_i, ev_c, ev_t, emit: bool, theta, inv_tau: float):
        """Feed events (idx, cnt, t) through the layer; returns its spikes as events (idx, cnt, t).

        Calls the kernel until every event is consumed, growing the output buffers whenever it stops
        because the next event's spikes might not fit.
        """
        bi, bc, bt = self.out_i, self.out_c, self.out_t
        most = self.fan_out(self.geo)
        done = m = 0
        while True:
            if emit and bi.shape[0] < m + most + 1:
                if m + most + 1 > limits.MAX_SPIKE_EVENTS:
                    return self._ran_away(m, len(ev_i))
                size = min(max(2 * bi.shape[0], m + most + 1), limits.MAX_SPIKE_EVENTS)
                bi, bc, bt = (np.concatenate([b[:m], np.empty(size - m, b.dtype)]) for b in (bi, bc, bt))
                self.out_i, self.out_c, self.out_t = bi, bc, bt
            done, m = self.kernel(ev_i, ev_c, ev_t, done, theta, inv_tau, self.ref, emit, bi, bc, bt, m)
            if done == len(ev_i):
                return bi[:m], bc[:m], (bt[:m] if inv_tau > 0 else NO_T)

    def _ran_away(self, m: int, n_in: int):
        """The layer would emit more than ``limits.MAX_SPIKE_EVENTS`` spike events on this call: its potentials and
        counts become NaN (so the scores are not finite: the decision is withheld, a training run undoes or revives,
        as for any non-finite state), its buffers go back to their first size, and ``ran_away`` says what happened.
        Returns no spikes (the layers above see nothing of it)."""
        self.ran_away = (int(m), int(n_in))
        self.phi[:] = np.nan
        self.counts[:] = np.nan
        self.out_i, self.out_c, self.out_t = (np.empty(4096, dt) for dt in (np.int32, np.float32, np.int64))
        return self.out_i[:0], self.out_c[:0], self.out_t[:0]

    def warm_up(self, theta, inv_tau: float) -> None:
        """Load (or compile) the forward kernels without touching state or weights (no events)."""
        none = np.zeros(0, np.int32)
        for emit in (True, False):
            self.kernel(none, NO_CNT, NO_T, 0, theta, inv_tau, np.zeros(1), emit, self.out_i, self.out_c,
                        self.out_t, 0)

    # -- learning -----------------------------------------------------------------------------
    def note_activity(self, act, h) -> None:
        """Called just before ``backward`` with the layer's own active units (int32) and their activity (float32:
        counts, or traces under learning "membrane"). Nothing here; a kind whose step needs them keeps them."""

    def note_readout(self, t_end: int) -> None:
        """Called before ``backward`` under learning "membrane" with the window's readout time (µs, its last input
        event). Nothing here; a kind that weighs its own trace by time keeps it."""

    def backward(self, a_in, x_in, act_out, d_out, delta, lr: float, max_step: float, want: bool) -> np.ndarray:
        """One SGD step on spike counts, in place: ``a_in``/``x_in`` the active inputs (int32) and their counts
        (float32), ``act_out`` (int32) the units that spiked, ``d_out`` (float32, one per ``act_out``) their error
        from above and ``delta`` (float32, n_out) the error gated by spiking plus the spikes' own cost; ``max_step``
        (0: none) bounds the step to that fraction of the weights' norm. Returns the error at the active inputs
        (float32, one per ``a_in``; zeros unless ``want``)."""
        raise NotImplementedError

    def touched(self, a_in) -> dict:
        """A copy of what ``backward``/``error_spikes`` may change when the inputs ``a_in`` were active (to undo a
        step: ``untouch``). Here every array of the layer; a kind whose step touches less copies less."""
        return {sfx: a.copy() for sfx, a in self.arrays().items()}

    def untouch(self, a_in, saved: dict) -> None:
        """Put back what ``touched(a_in)`` copied, in place."""
        for sfx, a in self.arrays().items():
            a[...] = saved[sfx]

    def finite(self, a_in) -> bool:
        """True when everything ``touched(a_in)`` names is finite."""
        return all(sound(a) for a in self.arrays().values())

    def error_spikes(self, units, signs, a_in, x_in, step, herd_in, propagate: bool):
        """The event-driven update (learning "spikes"); returns the input error spikes (units, signs)."""
        raise NotImplementedError(f"{self.kind} layers do not learn with error spikes")

    def relu(self, a: np.ndarray) -> np.ndarray:
        """Pre-activations (float32, n_out, in this layer's unit order) of the ReLU twin on input values ``a``."""
        raise NotImplementedError


#: The registry: kind name in specs and checkpoints -> the class that implements it (filled by `register`
#: in ``layers/__init__.py``).
KINDS: dict[str, type[Layer]] = {}


def register(cls: type[Layer]) -> type[Layer]:
    """Add (or replace) a layer kind under ``cls.kind``; returns ``cls`` (usable as a class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Layer) and cls.kind):
        raise TypeError(f"{cls!r} is not a Layer subclass with a kind")
    KINDS[cls.kind] = cls
    return cls


def kind_of(kind: str) -> type[Layer]:
    """The class of a layer kind; ConfigError naming the known kinds when there is none."""
    try:
        return KINDS[kind]
    except (KeyError, TypeError):
        known = " or ".join(cls.usage for cls in KINDS.values())
        raise ConfigError(f"unknown layer kind {str(kind)[:40]!r}; known: {known}") from None
