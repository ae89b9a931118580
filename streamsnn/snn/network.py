"""SpikingNetwork: the event-driven spiking MLP of O'Connor & Welling (2016), learning online.

Input events map to input units as ``index = p * H * W + y * W + x`` on the network's
``input_shape = (W, H, P)`` (34 x 34 x 2 for N-MNIST: 2312 inputs); events from a larger sensor
are scaled onto it (``x * W // width``), and with ``P == 1`` polarity is ignored. Each event adds
its row of ``W1`` to the hidden potentials; hidden integrate-and-fire units (threshold ``theta``,
subtract 1 per spike, positive spikes only) add their row of ``W2`` to the output evidence.

Without ``tau_us`` every ``predict_one``/``learn_one`` call is one whole sample and starts from a
reset state. With ``tau_us`` the state carries over between calls and decays lazily with that
time constant (for unsegmented live streams); scores are then the decayed evidence.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, ConfigError, InputError
from . import kernels
from .checkpoint import load_checkpoint, save_checkpoint

LEARNING_MODES = ("counts", "spikes")


@dataclass
class Decision:
    """One classification: the winning class, per-class scores, and what it cost.

    ``scores`` is the output evidence (sum of W2 rows over hidden spikes, plus bias, decayed when
    the network leaks); ``confidence`` its softmax probability of ``label``; ``events`` the input
    events used; ``spikes`` the spikes fired per hidden layer (outputs accumulate, they do not spike).
    """

    label: int
    scores: np.ndarray
    confidence: float
    events: int
    spikes: tuple[int, ...] = field(default=())


def softmax(s: np.ndarray) -> np.ndarray:
    z = np.asarray(s, dtype=np.float64)
    z = np.exp(z - z.max())
    return z / z.sum()


class SpikingNetwork:
    """Spiking MLP ``sizes = (n_in, n_hidden, n_out)`` with River-style online learning.

    ``lr``: learning rate of the input->hidden weights (``lr_out`` of hidden->output, default
    ``lr``); ``learning``: ``"counts"`` (backprop on the spike counts that occurred) or
    ``"spikes"`` (error sent back as spikes through herders, ``error_spikes`` steps of resolution);
    ``init_scale``: std of W1 (W2 uses ``init_scale_out``).
    """

    def __init__(self, sizes=(2312, 800, 10), *, input_shape=(34, 34, 2), seed: int = 0,
                 lr: float = 0.0005, lr_out: float | None = None, tau_us: float | None = None,
                 learning: str = "counts", theta: float = 0.5, error_spikes: int = 32,
                 init_scale: float = 0.03, init_scale_out: float = 0.05):
        sizes = tuple(int(s) for s in sizes)
        input_shape = tuple(int(s) for s in input_shape)
        if len(sizes) != 3 or min(sizes) <= 0:
            raise ConfigError(f"sizes must be three positive layer sizes (inputs, hidden, classes), got {sizes}")
        if len(input_shape) != 3 or min(input_shape) <= 0 or input_shape[2] > 2:
            raise ConfigError(f"input_shape must be (width, height, polarities<=2), got {input_shape}")
        if math.prod(input_shape) != sizes[0]:
            raise ConfigError(f"input_shape {input_shape} has {math.prod(input_shape)} inputs but sizes[0] is {sizes[0]}")
        if learning not in LEARNING_MODES:
            raise ConfigError(f"learning must be one of {', '.join(LEARNING_MODES)}, got {learning!r}")
        if tau_us is not None and not tau_us > 0:
            raise ConfigError(f"tau_us must be positive or None, got {tau_us}")
        if not lr >= 0 or (lr_out is not None and not lr_out >= 0):
            raise ConfigError(f"learning rates must be >= 0, got lr={lr}, lr_out={lr_out}")
        self.sizes = sizes
        self.input_shape = input_shape
        self.seed = int(seed)
        self.lr = float(lr)
        self.lr_out = float(lr if lr_out is None else lr_out)
        self.tau_us = None if tau_us is None else float(tau_us)
        self.learning = learning
        self.theta = float(theta)
        self.error_spikes = int(error_spikes)
        self.init_scale = float(init_scale)
        self.init_scale_out = float(init_scale_out)
        rng = np.random.default_rng(self.seed)
        n_in, n_h, n_out = sizes
        self.W1 = (rng.standard_normal((n_in, n_h)) * self.init_scale).astype(np.float32)
        self.W2 = (rng.standard_normal((n_h, n_out)) * self.init_scale_out).astype(np.float32)
        self.b2 = np.zeros(n_out, np.float32)
        self.samples_seen = 0
        self.events_seen = 0
        self.updates = 0
        self.epochs = 0
        self.progressive_correct = 0
        self.progressive_total = 0
        self._token = secrets.token_hex(4)
        self._buf_active = np.empty(n_in, np.int32)
        self._buf_x = np.empty(n_in, np.float32)
        # error herders of the "spikes" learning mode; kept across samples (not saved in checkpoints)
        self._herd_out = np.zeros(n_out, np.float32)
        self._herd_hidden = np.zeros(n_h, np.float32)
        self.reset()

    # -- configuration and state --------------------------------------------------------------
    def config(self) -> dict:
        """Constructor arguments, enough to rebuild an identical (untrained) network."""
        return {"sizes": list(self.sizes), "input_shape": list(self.input_shape), "seed": self.seed,
                "lr": self.lr, "lr_out": self.lr_out, "tau_us": self.tau_us, "learning": self.learning,
                "theta": self.theta, "error_spikes": self.error_spikes, "init_scale": self.init_scale,
                "init_scale_out": self.init_scale_out}

    def reset(self) -> None:
        """Clear the dynamic state (potentials, evidence, leak clock); weights and counters stay."""
        n_h, n_out = self.sizes[1], self.sizes[2]
        self.phi = np.zeros(n_h, np.float32)
        self.scores = np.zeros(n_out, np.float32)
        self.counts = np.zeros(n_h, np.float32)
        self._ref = np.full(1, np.nan)
        self._t_last = None

    @property
    def progressive_accuracy(self) -> float | None:
        """Test-then-train accuracy over every ``learn_one`` call so far (None before the first)."""
        if not self.progressive_total:
            return None
        return self.progressive_correct / self.progressive_total

    @property
    def model_version(self) -> str:
        """Changes whenever the weights change (per-network token plus update count)."""
        return f"{self._token}.{self.updates}"

    # -- events -> input indices --------------------------------------------------------------
    def event_indices(self, batch) -> np.ndarray:
        """int32 input index of every event of an EventBatch (scaled onto ``input_shape``)."""
        ev = batch.events
        w, h, p = self.input_shape
        x = ev["x"].astype(np.int32)
        y = ev["y"].astype(np.int32)
        if batch.width != w:
            x = x * w // batch.width
        if batch.height != h:
            y = y * h // batch.height
        idx = y * w + x
        if p == 2:
            idx += ev["p"].astype(np.int32) * (w * h)
        return idx

    def warm_up(self) -> None:
        """Load (or compile) the kernels now, without touching state or counters."""
        n_h, n_out = self.sizes[1], self.sizes[2]
        none = np.zeros(0, np.int32)
        phi, counts, scores = np.zeros(n_h, np.float32), np.zeros(n_h, np.float32), np.zeros(n_out, np.float32)
        if self.tau_us is None:
            kernels.forward(none, self.W1, self.W2, phi, counts, scores, np.float32(self.theta))
        else:
            kernels.forward_leaky(none, np.zeros(0, np.int64), self.W1, self.W2, phi, counts, scores,
                                  np.float32(self.theta), 1.0 / self.tau_us, np.zeros(1))

    # -- inference ----------------------------------------------------------------------------
    def _run(self, idx: np.ndarray, t: np.ndarray | None) -> tuple[np.ndarray, int]:
        """Feed indices through the network; returns (scores incl. bias, hidden spikes)."""
        idx = np.ascontiguousarray(idx, dtype=np.int32)
        if idx.size and (idx.min() < 0 or idx.max() >= self.sizes[0]):
            raise InputError(f"input index out of range 0..{self.sizes[0] - 1}")
        self.counts[:] = 0
        if self.tau_us is None:
            self.phi[:] = 0
            self.scores[:] = 0
            spikes = kernels.forward(idx, self.W1, self.W2, self.phi, self.counts, self.scores,
                                     np.float32(self.theta))
            scores = self.scores + self.b2
        else:
            if t is None or len(t) != len(idx):
                raise InputError("a leaky network (tau_us set) needs event times")
            if idx.size:
                if np.isnan(self._ref[0]):
                    self._ref[0] = float(t[0])
                elif t[0] < self._ref[0]:
                    # time went backwards (a new stream or a looped replay): carry the state as it
                    # was at the last event over to the new clock instead of extrapolating
                    d = np.float32(kernels.decay_factor(self._t_last, 1.0 / self.tau_us, self._ref))
                    self.phi *= d
                    self.scores *= d
                    self._ref[0] = float(t[0])
                spikes = kernels.forward_leaky(idx, np.ascontiguousarray(t, dtype=np.int64), self.W1,
                                               self.W2, self.phi, self.counts, self.scores,
                                               np.float32(self.theta), 1.0 / self.tau_us, self._ref)
                self._t_last = int(t[-1])
            else:
                spikes = 0
            if self._t_last is None:
                scores = self.b2.copy()
            else:
                d = kernels.decay_factor(self._t_last, 1.0 / self.tau_us, self._ref)
                scores = self.scores * np.float32(d) + self.b2
        self.samples_seen += 1
        self.events_seen += int(idx.size)
        return scores.astype(np.float32), int(spikes)

    def predict_indices(self, idx: np.ndarray, t: np.ndarray | None = None) -> Decision:
        """``predict_one`` on precomputed input indices (and times, for a leaky network)."""
        scores, spikes = self._run(idx, t)
        prob = softmax(scores)
        label = int(np.argmax(scores))
        return Decision(label=label, scores=scores, confidence=float(prob[label]), events=int(len(idx)),
                        spikes=(spikes,))

    def predict_one(self, batch) -> Decision:
        """Classify one window of events (an EventBatch)."""
        return self.predict_indices(self.event_indices(batch), batch.events["t"])

    # -- learning -----------------------------------------------------------------------------
    def learn_indices(self, idx: np.ndarray, label: int, t: np.ndarray | None = None,
                      lr_scale: float = 1.0) -> Decision:
        """``learn_one`` on precomputed input indices; ``lr_scale`` multiplies both learning rates."""
        label = int(label)
        if not 0 <= label < self.sizes[2]:
            raise InputError(f"label {label} outside the network's classes 0..{self.sizes[2] - 1}")
        d = self.predict_indices(idx, t)
        self.progressive_total += 1
        self.progressive_correct += int(d.label == label)
        act_h = np.flatnonzero(self.counts).astype(np.int32)
        if len(idx) == 0:
            return d
        e = softmax(d.scores).astype(np.float32)
        e[label] -= 1.0
        n = kernels.input_counts(np.ascontiguousarray(idx, dtype=np.int32), self.sizes[0],
                                 self._buf_active, self._buf_x)
        active, x = self._buf_active[:n], self._buf_x[:n]
        h = self.counts[act_h]
        lr1 = np.float32(self.lr * lr_scale)
        lr2 = np.float32(self.lr_out * lr_scale)
        if self.learning == "counts":
            kernels.update_counts(active, x, act_h, h, e, self.W1, self.W2, self.b2, lr1, lr2)
        else:
            kernels.update_spikes(active, x, act_h, h, e, self.W1, self.W2, self.b2, lr1, lr2,
                                  self.error_spikes, self._herd_out, self._herd_hidden)
        self.updates += 1
        return d

    def learn_one(self, batch, label: int) -> Decision:
        """Test then train on one window: returns the prediction made before the update."""
        return self.learn_indices(self.event_indices(batch), label, batch.events["t"])

    # -- checkpoints --------------------------------------------------------------------------
    def counters(self) -> dict:
        return {"samples_seen": self.samples_seen, "events_seen": self.events_seen, "updates": self.updates,
                "progressive_correct": self.progressive_correct, "progressive_total": self.progressive_total,
                "epochs": self.epochs, "token": self._token}

    def save(self, path) -> Path:
        """Write weights, config and counters to ``path`` (.npz) atomically."""
        return save_checkpoint(path, {"W1": self.W1, "W2": self.W2, "b2": self.b2}, self.config(),
                               self.counters())

    @classmethod
    def load(cls, path) -> "SpikingNetwork":
        """Read a checkpoint written by ``save``; raises CheckpointError for a bad file."""
        arrays, config, counters = load_checkpoint(path, ("W1", "W2", "b2"))
        try:
            net = cls(**{**config, "seed": config.get("seed", 0)})
        except (TypeError, ConfigError) as exc:
            raise CheckpointError(f"{path} holds an unusable network config ({str(exc).splitlines()[0]})") from None
        want = {"W1": net.W1.shape, "W2": net.W2.shape, "b2": net.b2.shape}
        for k, shape in want.items():
            a = arrays[k]
            if a.shape != shape or a.dtype.kind != "f":
                raise CheckpointError(f"{path}: array {k} has shape {a.shape} ({a.dtype}), expected {shape} "
                                      "floats; the file is damaged or foreign")
            if not np.all(np.isfinite(a)):
                raise CheckpointError(f"{path}: array {k} holds non-finite weights; the file is damaged")
        try:
            vals = {k: int(counters.get(k, 0)) for k in ("samples_seen", "events_seen", "updates",
                                                            "progressive_correct", "progressive_total", "epochs")}
        except (TypeError, ValueError):
            raise CheckpointError(f"{path} has malformed training counters; the file is damaged") from None
        net.W1 = np.ascontiguousarray(arrays["W1"], dtype=np.float32)
        net.W2 = np.ascontiguousarray(arrays["W2"], dtype=np.float32)
        net.b2 = np.ascontiguousarray(arrays["b2"], dtype=np.float32)
        for k, v in vals.items():
            setattr(net, k, v)
        net._token = str(counters.get("token", net._token))
        return net
