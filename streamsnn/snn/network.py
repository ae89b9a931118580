"""SpikingNetwork: a deep, event-driven spiking network (O'Connor & Welling, 2016) that learns online.

A stack of hidden layers, each an object of its kind (``layers/``: dense, convolutional), of integrate-and-fire units
(threshold ``theta``, subtract 1 per spike, positive spikes only), then an output layer that accumulates evidence. An
input event reaches only the units whose receptive field holds it; each spike of a layer is an input event of the next,
so the cost follows spikes x fan-out and an idle network costs nothing. Events are mapped to input units by the
network's ``InputMap``.

Without ``tau_us`` every ``predict_one``/``learn_one`` call is one whole sample and starts from a reset state. With
``tau_us`` the state carries over between calls and decays lazily with that time constant (for unsegmented live
streams); scores are then the decayed evidence.
"""

from __future__ import annotations

import math
import secrets

import numpy as np

from ..errors import InputError
from . import classedit, limits, propagate, settings
from .arch import DEFAULT_ARCH, InputMap, check_sizes, format_arch, parse_arch
from .decision import Decision, softmax
from .delays import DelayLine
from .guard import NonFinite, withheld  # noqa: F401 - NonFinite is imported from here too
from .layers.base import ArrayView
from .memory import Memory

LEARNING_MODES = settings.LEARNING_MODES


class SpikingNetwork:
    """Layered spiking network with River-style online learning.

    ``arch``: the hidden layers (a spec string such as ``"conv:16:5:2:2,dense:128"``, or a list;
    default ``DEFAULT_ARCH``); ``sizes = (n_in, h1, ..., n_out)`` is the older shorthand for an
    all-dense network. ``input_map`` (or ``input_shape`` = the grid (W, H, P)) maps events to
    inputs; ``classes``: the number of classes or their names. ``lr``: learning rate of the hidden
    layers (``lr_conv`` multiplies it for convolutions; ``lr_out`` of the output layer, by default
    ``lr`` times the measured ratio); each defaults to the measured setting for the kind of network
    (``arch.learning_defaults``);
    ``learning``: ``"counts"`` or ``"spikes"`` (dense layers only, ``error_spikes`` steps of resolution),
    ``"membrane"`` or ``"timing"`` (``timed.py``; dense and conv layers, ``tau_s_ratio``, ``readout``). Weights start
    normal with std ``init_gain * sqrt(2 / fan_in)``. ``max_step`` (0 = off) bounds each layer's step per sample to that
    fraction of its weights' norm;
    ``activity`` is the cost of one hidden spike added to the loss (learning with fewer spikes), x ``layer_price[k]``.
    ``class_lr``: a multiplier of the output learning rate per class (see ``add_class``).
    ``ref_events`` (default ``defaults.REF_EVENTS``): a window of more input events than this learns as if
    it held this many (``learn_scale``), so the step does not grow with a sample's length, rate or sensor.
    """

    def __init__(self, sizes=None, *, arch=None, input_shape=None, input_map: InputMap | dict | None = None,
                 classes=None, seed: int = 0, lr: float | None = None, lr_out: float | None = None,
                 lr_conv: float | None = None, tau_us: float | None = None, learning: str = "counts",
                 theta: float = 0.5, error_spikes: int = 32, init_gain: float = 1.0, max_step: float | None = None,
                 activity: float | None = None, class_lr=None, ref_events: float | None = None,
                 layer_tau_us=None, tau_s_ratio: float | None = None, layer_price=None, readout: str | None = None,
                 readout_forget: float | None = None, label_smoothing: float | None = None):
        arch, input_map, names = settings.inputs_and_classes(sizes, arch, input_shape, input_map, classes)
        tau_us = settings.checked_mode(learning, tau_us)
        self.layers = parse_arch(DEFAULT_ARCH if arch is None else arch)
        geometry = check_sizes(self.layers, input_map.layer_grid, len(names))  # before anything is allocated
        learning_settings = settings.learning_settings(
            self.layers, lr=lr, lr_out=lr_out, lr_conv=lr_conv, max_step=max_step, activity=activity, theta=theta,
            init_gain=init_gain, error_spikes=error_spikes, seed=seed, learning=learning, ref_events=ref_events,
            tau_s_ratio=tau_s_ratio, layer_price=layer_price, readout=readout,
            readout_forget=readout_forget, label_smoothing=label_smoothing)
        self.input_map = settings.checked_delays(learning, input_map)
        self.classes = names
        self.geometry = geometry
        self.tau_us = tau_us
        #: Each hidden layer's own leak time constant (µs), or None: every layer leaks with ``tau_us``.
        self._layer_tau = settings.layer_taus(layer_tau_us, len(self.layers), tau_us)
        for key, value in learning_settings.items():  # lr, lr_out, lr_conv, max_step, activity, theta, ...
            setattr(self, key, value)
        rng = np.random.default_rng(self.seed)
        #: The hidden layers (``layers.Layer`` objects: weights, state, kernels), bottom first.
        self.hidden = [g.layer.cls(g) for g in geometry]
        for layer in self.hidden:
            layer.init_weights(rng, self.init_gain)
        n_last = self.geometry[-1].n_out
        #: The output layer: weights (n_last, classes), bias, evidence ``scores``, its leak clock ``out_ref``
        #: and error herders ``out_herd``; ``t_last`` the time of the last input event of a leaky network.
        self.out_weight = (rng.standard_normal((n_last, len(names))) * self.init_gain * math.sqrt(2.0 / n_last)
                           ).astype(np.float32)
        self.bias = np.zeros(len(names), np.float32)
        self.class_lr = settings.class_rates(class_lr, len(names))  # output rate multiplier per class
        self.samples_seen = self.events_seen = self.updates = self.hidden_updates = self.epochs = 0
        self.progressive_correct = self.progressive_total = 0
        self.nonfinite = 0  # decisions withheld and updates undone because of non-finite values (not saved)
        self.lr_backoff = 1.0  # multiplies every learning rate; halved by each update found non-finite (guard.py)
        self._token = secrets.token_hex(4)
        self.out_herd = np.zeros(len(names), np.float32)  # kept across samples (not saved in checkpoints)
        #: A leaky network's spikes of the last call per hidden layer (unit, multiplicity, time): views of the
        #: layers' output buffers, valid until the next call (``learn.traces`` reads them).
        self.spike_trains = [None] * len(self.hidden)
        #: Examples kept per class, replayed when one class is taught (``memory.Memory``; saved in checkpoints).
        self.memory = Memory(seed=self.seed)
        self.last_features = None  # the last-layer spike counts of the last window learned
        self.delay_line = DelayLine.of(input_map)  # the input's copies not yet due (``delays``; one copy: none)
        self.reset()

    # -- description ----------------------------------------------------------------------------
    @property
    def arch(self) -> str:
        return format_arch(self.layers)

    @property
    def sizes(self) -> tuple[int, ...]:
        """Units per layer: inputs, each hidden layer (flattened), classes."""
        return (self.input_map.units, *(g.n_out for g in self.geometry), len(self.classes))

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The input grid (W, H, P)."""
        return self.input_map.grid

    @property
    def parameters(self) -> int:
        return int(sum(layer.parameters for layer in self.hidden) + self.out_weight.size + self.bias.size)

    @property
    def weights(self) -> ArrayView:
        """The weight array of every hidden layer, then the output weights (a view: item assignment sets them)."""
        return ArrayView([(layer, "weight") for layer in self.hidden] + [(self, "out_weight")])

    @weights.setter
    def weights(self, arrays) -> None:
        *inner, self.out_weight = [np.ascontiguousarray(a, dtype=np.float32) for a in arrays]
        for layer, w in zip(self.hidden, inner, strict=True):
            layer.weight = w

    @property
    def phi(self) -> ArrayView:
        """The potentials of every hidden layer (stored in the leak's scaled frame when it leaks)."""
        return ArrayView([(layer, "phi") for layer in self.hidden])

    @property
    def counts(self) -> ArrayView:
        """The spikes of every hidden layer in the last window."""
        return ArrayView([(layer, "counts") for layer in self.hidden])

    @property
    def _herd(self) -> ArrayView:  # the error herders of every hidden layer, then the output's (for tests)
        return ArrayView([(layer, "herd") for layer in self.hidden] + [(self, "out_herd")])

    # the older two-layer names: the first layer's weights, the output weights and bias
    W1 = property(lambda self: self.weights[0])
    W2 = property(lambda self: self.out_weight)
    b2 = property(lambda self: self.bias)

    @property
    def layer_tau_us(self) -> tuple[float, ...] | None:
        """The leak time constant (µs) of every hidden layer (``tau_us`` is the output's), or None without a leak."""
        if self.tau_us is None:
            return None
        return self._layer_tau if self._layer_tau is not None else (self.tau_us,) * len(self.hidden)

    def layer_lr(self, layer: int) -> float:
        return self.lr * (self.lr_conv if self.layers[layer].conv_like else 1.0)

    def config(self) -> dict:
        """Constructor arguments, enough to rebuild an identical (untrained) network."""
        return {"arch": [lay.to_dict() for lay in self.layers], "input_map": self.input_map.to_dict(),
                "classes": list(self.classes), "seed": self.seed, "lr": self.lr, "lr_out": self.lr_out,
                "lr_conv": self.lr_conv, "tau_us": self.tau_us, "learning": self.learning, "theta": self.theta,
                "error_spikes": self.error_spikes, "init_gain": self.init_gain, "max_step": self.max_step,
                "activity": self.activity, "ref_events": self.ref_events, **self._extras(),
                **({"class_lr": [float(x) for x in self.class_lr]} if np.any(self.class_lr != 1) else {})}

    def _extras(self) -> dict:
        """The settings only some networks have, when they have them (``config`` and ``describe``)."""
        return {**({"layer_tau_us": list(self._layer_tau)} if self._layer_tau is not None else {}),
                **({"tau_s_ratio": self.tau_s_ratio, "readout": self.readout, "readout_forget": self.readout_forget,
                    "label_smoothing": self.label_smoothing} if self.learning == "timing" else {}),
                **({"layer_price": list(self.layer_price)} if self.layer_price is not None else {})}

    def describe(self) -> dict:
        """Layers (kind, shapes, parameters), classes, input map and the training counters."""
        layers = [layer.describe() for layer in self.hidden]
        n_last = self.geometry[-1].n_out
        layers.append({"kind": "output", "units": self.n_classes, "in": [n_last], "out": [self.n_classes],
                       "weights": [n_last, self.n_classes], "parameters": n_last * self.n_classes + self.n_classes})
        return {"arch": self.arch, "layers": layers, "classes": list(self.classes),
                "input": self.input_map.to_dict(), "parameters": self.parameters, "learning": self.learning,
                "tau_us": self.tau_us, **self._extras(), "theta": self.theta, "lr": self.lr, "lr_out": self.lr_out,
                "lr_conv": self.lr_conv, "ref_events": self.ref_events,
                **{k: v for k, v in self.counters().items() if k != "token"},
                "progressive_accuracy": self.progressive_accuracy, "model_version": self.model_version}

    def reset(self) -> None:
        """Clear the dynamic state (potentials, evidence, leak clocks); weights and counters stay."""
        for layer in self.hidden:
            layer.reset()
        self.scores = np.zeros(self.n_classes, np.float32)
        self.scores_fast = np.zeros(self.n_classes, np.float32)  # the faster of a "rise" readout's two sums (timed.py)
        self.out_ref = np.full(1, np.nan)
        self.t_last = None
        self.delay_line.reset()
        self.fed = None  # the input events (unit, time) the last call fed the first layer, for learning

    @property
    def progressive_accuracy(self) -> float | None:
        """Test-then-train accuracy over every ``learn_one`` call so far (None before the first)."""
        return self.progressive_correct / self.progressive_total if self.progressive_total else None

    @property
    def model_version(self) -> str:
        """Changes whenever the weights change (per-network token plus update count)."""
        return f"{self._token}.{self.updates}"

    # -- events -> input units ----------------------------------------------------------------
    def input_events(self, batch) -> tuple[np.ndarray, np.ndarray]:
        """(input unit, time) of the events of an EventBatch that the input map keeps."""
        return self.input_map.events(batch)

    def event_indices(self, batch) -> np.ndarray:
        """int32 input unit of every event the input map keeps (cropped to its region, scaled to its grid)."""
        return self.input_map.event_indices(batch)

    def warm_up(self) -> None:
        """Load (or compile) the kernels now, without touching state, weights or counters."""
        propagate.warm_up(self)

    # -- inference ----------------------------------------------------------------------------
    def _run(self, idx: np.ndarray, t: np.ndarray | None, count: bool = True) -> tuple[np.ndarray, tuple[int, ...]]:
        """Feed input units through every layer; returns (scores incl. bias, spikes per hidden layer).
        ``count``: add the window to ``samples_seen``/``events_seen`` (not when it was counted already)."""
        scores, spikes = propagate.forward(self, idx, t)
        if count:
            self.samples_seen += 1
            self.events_seen += int(len(idx))
        return scores, spikes

    def predict_indices(self, idx: np.ndarray, t: np.ndarray | None = None, *, count: bool = True) -> Decision:
        """``predict_one`` on precomputed input units (and times, for a leaky network)."""
        scores, spikes = self._run(idx, t, count)
        return self.decision_of(scores, spikes, int(len(idx)))

    def decision_of(self, scores: np.ndarray, spikes: tuple[int, ...], events: int) -> Decision:
        """The Decision of scores computed for a window of ``events`` input events (NonFinite when not finite)."""
        if not np.all(np.isfinite(scores)):  # never handed on: a sink would publish NaN, learning would spread it
            self.nonfinite += 1
            exc = withheld(self)  # before the reset, which clears what went wrong
            self.reset()  # a leaky network's state would carry the damage to the next window
            raise exc
        prob = softmax(scores)
        label = int(np.argmax(scores))
        return Decision(label=label, scores=scores, confidence=float(prob[label]), events=events, spikes=spikes)

    def predict_one(self, batch) -> Decision:
        """Classify one window of events (an EventBatch)."""
        return self.predict_indices(*self.input_events(batch))

    # -- learning -----------------------------------------------------------------------------
    def learn_indices(self, idx: np.ndarray, label: int, t: np.ndarray | None = None,
                      lr_scale: float = 1.0, *, prediction: int | None = None, score: bool = True, hidden=True):
        """``learn_one`` on precomputed input units; ``lr_scale`` multiplies every learning rate.

        Without ``prediction``: test then train (the window is counted in ``samples_seen`` and the
        prediction made here is scored in the progressive accuracy). With ``prediction`` (the label
        published when the window was decided, e.g. for feedback that arrives later): that prediction
        is scored, and the window is not counted again; a leaky network then learns from the window
        on a fresh state and keeps its running state (the stream goes on where it was). ``score=False``: the
        progressive accuracy does not count it (a rehearsed example, ``memory.Memory.rehearse``); ``hidden=False``: only
        the output layer learns (the hidden layers, which every class depends on, stay as they are). Returns a Decision.
        """
        from .learn import learn_step

        label = classedit.output_index(self, label)
        prediction = None if prediction is None else classedit.output_index(self, prediction, "prediction")
        if not 0 <= lr_scale <= limits.MAX_LR_FACTOR:
            raise InputError(f"lr_scale must be a finite number 0..{limits.MAX_LR_FACTOR:g}, got {lr_scale}")
        later = prediction is not None
        saved = self._save_state() if later and self.tau_us is not None else None
        for layer in self.hidden:  # a kind that learns from the window's event trace records it in this forward
            layer.recording = True
        try:
            if saved is not None:
                self.reset()
            d = self.predict_indices(idx, t, count=not later)
            self.last_features = self.counts[-1].astype(np.float32)
            self.progressive_total += int(score)
            self.progressive_correct += int(score and (int(prediction) if later else d.label) == label)
            if len(idx) == 0:
                return d
            try:
                learn_step(self, *self.fed, d.scores, label, lr_scale, hidden)
            except NonFinite as exc:  # undone: the prediction made before it still stands (`decide` publishes it)
                exc.decision = d
                raise
            self.updates, self.hidden_updates = self.updates + 1, self.hidden_updates + bool(hidden)
            return d
        finally:
            for layer in self.hidden:
                layer.recording = False
            if saved is not None:
                self._restore_state(saved)

    def learn_scale(self, n_events: int) -> float:
        """How many times more events than ``ref_events`` a window of ``n_events`` holds (at least 1).

        Every count in the network grows with the events (integrate-and-fire is linear in the long run), so
        each layer's gradient (its input counts times the error from above) does too, and the scores sharpen
        the softmax towards a hard 0/1 error. A window above ``ref_events`` learns with every rate divided by
        this factor and the error computed on the scores divided by it: its step is that of a window of
        ``ref_events`` events with the same rates, whatever its length, event rate or sensor (issue 19).
        """
        return max(1.0, float(n_events) / self.ref_events)

    def learn_one(self, batch, label: int, *, prediction: int | None = None, lr_scale: float = 1.0) -> Decision:
        """Test then train on one window: returns the prediction made before the update.

        ``prediction``: the label published for this window earlier (delayed progressive validation:
        it is scored instead, and the window is not counted twice); ``lr_scale`` multiplies the
        learning rates (e.g. ``model.feedback_lr_scale`` for feedback).
        """
        idx, t = self.input_events(batch)
        return self.learn_indices(idx, label, t, lr_scale, prediction=prediction)

    def features(self, idx: np.ndarray, t: np.ndarray | None = None) -> np.ndarray:
        """The last hidden layer's spike counts for a window on a fresh state; the running state is kept."""
        saved = self._save_state()
        try:
            self.reset()
            self._run(idx, t, count=False)
            return self.counts[-1].astype(np.float32)
        finally:
            self._restore_state(saved)

    def _save_state(self) -> tuple:
        return ([layer.save_state() for layer in self.hidden], (self.scores.copy(), self.scores_fast.copy()),
                self.out_ref.copy(), self.t_last, self.delay_line.save())

    def _restore_state(self, saved: tuple) -> None:
        states, (self.scores, self.scores_fast), self.out_ref, self.t_last, line = saved
        self.delay_line.restore(line)
        for layer, state in zip(self.hidden, states):
            layer.restore_state(state)

    # -- classes ------------------------------------------------------------------------------
    def add_class(self, name: str, *, bias: float | None = None, lr_boost: float = 1.0) -> int:
        """Append an output unit for the class ``name``; returns its index.

        Its output weights start at zero and its bias at ``bias`` (default: the mean bias of the
        known classes), so every known class's score is unchanged and the new one, scoring only that
        bias, wins only once it has learned. ``lr_boost`` multiplies the output layer's learning rate
        for this unit (its weights have everything to learn; the hidden layers and the old units keep
        their rates). Both defaults were chosen in benchmarks/bench_incremental.py.
        """
        return classedit.add_class(self, name, bias=bias, lr_boost=lr_boost)

    def class_index(self, name) -> int:
        """The output of class `name` (exact, else regardless of case; `#N`: output N); ConfigError if none."""
        return classedit.class_index(self, name)

    def remove_class(self, name) -> int:
        """Remove the output unit of class `name` (undoing what `add_class` does); returns its old index.
        The other classes' scores stay as they were. See `classedit.remove_class`."""
        return classedit.remove_class(self, name)

    def rename_class(self, old, new: str) -> int:
        """Give class `old` the name `new` (a valid, untaken class name); returns its index."""
        return classedit.rename_class(self, old, new)

    # -- checkpoints --------------------------------------------------------------------------
    def restore_counters(self, counters: dict, token: str | None) -> None:
        """Take the training counters (and the model token, when given) of a checkpoint."""
        for k, v in counters.items():
            setattr(self, k, v)
        if token is not None:
            self._token = token

    def counters(self) -> dict:
        return {"samples_seen": self.samples_seen, "events_seen": self.events_seen, "updates": self.updates,
                "progressive_correct": self.progressive_correct, "progressive_total": self.progressive_total,
                "epochs": self.epochs, "lr_backoff": self.lr_backoff, "token": self._token}

    def save(self, path):
        """Write weights, architecture, input map, classes and counters to ``path`` (.npz) atomically."""
        from .checkpoint import save_network

        return save_network(self, path)

    @classmethod
    def load(cls, path, *, any_names: bool = False) -> SpikingNetwork:
        """Read a checkpoint (format 2, or format 1 of the one-layer network); CheckpointError when bad.

        Class names are normalised (`classnames`); a checkpoint holding a name that cannot be one, or
        two that match, is refused, unless `any_names` (for `streamsnn classes`, which repairs them):
        then the names are kept exactly as stored."""
        from .checkpoint import load_network

        return load_network(cls, path, any_names=any_names)
