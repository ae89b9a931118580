"""The one step from a window to a decision, shared by the daemon's pipeline and stream evaluation.

A temporal network (`temporal`: its state carries across calls) is fed each stream event once, as it
arrives (`continuous`); any other decides each window alone (`decide`)."""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from .. import classnames
from ..errors import ConfigError
from ..snn.guard import MIN_BACKOFF, NonFinite
from ..textsafe import few
from .inflight import InFlight, temporal  # noqa: F401 - temporal: imported from here by callers
from .revive import SILENT_WINDOWS, LiveWatch
from .segment import Window

log = logging.getLogger(__name__)
LOG_FIRST = 20  # refused updates logged at WARNING; further ones at DEBUG

if TYPE_CHECKING:  # pragma: no cover
    from ..snn.network import Decision
    from .stages import Classifier


def decide(net: Classifier, window: Window, *, learn: bool = False) -> Decision:
    """The network's Decision on one window, without smoothing (see `Decider`).

    With `learn` and a window that carries its true label (dataset replay), the network learns
    test-then-train and the returned Decision is the prediction made before the update; otherwise
    it only predicts.
    """
    label = true_output(net, window)
    if learn and label is not None:
        try:
            return net.learn_one(window.batch, label)
        except NonFinite as exc:
            return refused(net, exc)
    return net.predict_one(window.batch)


def refused(net, exc: NonFinite) -> Decision:
    """The prediction made before an update the guard undid (`exc.decision`), the refusal logged (the first
    LOG_FIRST at WARNING); a refusal without one (the scores themselves not finite) is raised again. A daemon whose
    weights ran away kept deciding each window and withheld every decision once every update was refused."""
    d = getattr(exc, "decision", None)
    if d is None:
        raise exc
    n = getattr(net, "nonfinite", 1)
    log.log(logging.WARNING if n <= LOG_FIRST else logging.DEBUG, "decision published, its update refused: %s", exc)
    if getattr(net, "lr_backoff", 1.0) <= MIN_BACKOFF and not getattr(net, "floor_said", False):
        net.floor_said = True  # once: from here on the model decides, but it no longer learns in all but name
        log.error("%d updates refused in all, the learning rates now x%g: the weights have run away and the model no "
                  "longer learns; restart from an earlier checkpoint, or with lower model.lr / model.lr_out", n,
                  net.lr_backoff)
    return d


def silence(net, d: Decision) -> None:
    """Count the windows in a row on which the network's last hidden layer fired nothing (``net.silent_windows``, in
    the metrics); at SILENT_WINDOWS one WARNING line (the first three times, then DEBUG; an idle scene can do it
    too), and one INFO line when it fires again (a learning network is also judged by ``revive.LiveWatch``). Seen in
    the live demo learning from a fresh network (seed 1): its weights ran away, 27 updates were refused, and from
    then on it fired nothing and decided every window by its bias (10 % right) for 40,000 windows without a word."""
    if not d.events or not d.spikes:
        return
    silences = getattr(net, "silences", 0)
    if d.spikes[-1]:
        if getattr(net, "silent_windows", 0) >= SILENT_WINDOWS:
            log.log(logging.INFO if silences <= 3 else logging.DEBUG, "the network fires again after %d silent "
                    "windows", net.silent_windows)
        net.silent_windows = 0
        return
    net.silent_windows = getattr(net, "silent_windows", 0) + 1
    if net.silent_windows == SILENT_WINDOWS:
        net.silences = silences + 1
        log.log(logging.WARNING if net.silences <= 3 else logging.DEBUG, "the network is silent: its last hidden "
                "layer fired no spike on %d windows in a row, so each of those decisions is its bias alone (a scene "
                "with nothing the model knows, or a damaged model: try an earlier checkpoint)", SILENT_WINDOWS)


def continuous(net: Classifier, window: Window, *, learn: bool = False) -> Decision:
    """A temporal network's Decision at the end of a stream window, fed only `window.fresh` (the stream
    events it has not received yet; see `segment.Segmenter`'s `continuous`): its state already holds the
    rest. The scores are its evidence decayed to the window's end (`evidence_at`).

    With `learn` and a labelled window (a simulated camera, a replay played as a stream: the label comes with the
    window), the network learns test-then-train as it decides: from the fresh events on its running state (the
    gradient takes the state carried in as a constant), each event still fed once. Learning each window alone on a
    fresh state taught a way of deciding the stream never uses: the gesture demo's model decided 57 % of held-out
    stream windows right alone, 71 % carrying its state.
    """
    label = true_output(net, window)
    if not (learn and label is not None):
        return evidence_at(net, net.predict_one(window.fresh), window.t_end_us)
    bias = net.bias.copy()
    try:
        d = net.learn_one(window.fresh, label)
    except NonFinite as exc:
        d = refused(net, exc)
    learned, net.bias = net.bias, bias  # read out as before the update: the label must not reach its own decision
    try:
        published = evidence_at(net, d, window.t_end_us)
    finally:
        net.bias = learned
    if published.label != d.label and hasattr(net, "progressive_correct"):  # scored as published, not at its last event
        net.progressive_correct += int(published.label == label) - int(d.label == label)
    return published


def alone(net: Classifier, run):
    """``run()`` (a decision of ``net``) on a fresh state, the network's running state kept as it was (a temporal
    network deciding a whole sample, which has a clock of its own, between stream windows)."""
    saved = net._save_state() if hasattr(net, "_save_state") else None
    net.reset()
    try:
        return run()
    finally:
        if saved is not None:
            net._restore_state(saved)


def evidence_at(net, d: Decision, t_us: int) -> Decision:
    """Decision `d` of a leaky network read out at `t_us` instead of at its last event: the evidence
    above the bias decays by exp(-dt / tau_us) (the network's `evidence_at(t_us)` when it has one; a "rise" readout's
    two sums each at its own rate, `timed.evidence_at`)."""
    own = getattr(net, "evidence_at", None)
    if callable(own):
        scores = np.asarray(own(t_us), np.float32)
    else:
        tau, t_last, bias = getattr(net, "tau_us", None), getattr(net, "t_last", None), getattr(net, "bias", None)
        if not tau or t_last is None or bias is None or t_us <= t_last:
            return d
        if getattr(net, "readout", None) == "rise":  # learning "timing"'s two sums, each decaying at its own rate
            from ..snn.timed import evidence_at as timed_evidence_at

            scores = timed_evidence_at(net, t_us)
        else:
            keep = math.exp(-(int(t_us) - int(t_last)) / float(tau))
            scores = ((d.scores - bias) * np.float32(keep) + bias).astype(np.float32)
    p = np.exp(log_softmax(scores))
    label = int(np.argmax(scores))
    return replace(d, label=label, scores=scores, confidence=float(p[label]))


def true_output(net: Classifier, window: Window) -> int | None:
    """The network output meant by the window's true label, or None (no label, or a class the model lacks).

    A dataset batch carries its class name (`meta["label_name"]`): it is matched to the network's class
    names, so a model whose classes are ordered differently from the dataset's still learns and is scored
    right. Without a name (or for a network without names, see `by_name`), the label is the output index.
    """
    if window.label is None:
        return None
    name = window.batch.meta.get("label_name") if window.batch is not None else None
    classes = list(net.classes)
    if name is not None and by_name(classes, [str(name)]):
        return classnames.find(str(name), classes)
    return int(window.label)


def true_class(classes, window: Window) -> str | None:
    """The class name of the window's true label in the space of the network's `classes`, or None.

    This is the label's identity for comparisons with anything in the network's output space (feedback
    labels): the dataset's class name when it is matched by name, else the name of the output whose index
    the label is. A dataset class the model lacks keeps its name, so it never equals another class.
    """
    if window.label is None:
        return None
    classes = [str(c) for c in classes]
    name = window.batch.meta.get("label_name") if window.batch is not None else None
    if name is not None and by_name(classes, [str(name)]):
        index = classnames.find(str(name), classes)  # the model's spelling (names match regardless of case)
        return classes[index] if index is not None else str(name)
    index = int(window.label)
    return classes[index] if 0 <= index < len(classes) else str(index)


def by_index_note(classes, names) -> str | None:
    """When a numbered network (classes "0".."n-1") is given class names it lacks, the line saying that their
    labels are taken as output indices (label k = output k), else None; `eval` logs it once."""
    if by_name(classes, names) or not names:
        return None
    return (f"the model's classes are numbered 0..{len(classes) - 1} and the data's names ({few(names)}) are not among "
            "them: each label is taken as an output index (the k-th class as output k); a model trained on these "
            "classes matches them by name")


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


def log_softmax(scores: np.ndarray) -> np.ndarray:
    z = np.asarray(scores, np.float64)
    z = z - z.max()
    return z - math.log(np.exp(z).sum())


class Decider:
    """Window -> Decision with the evidence of consecutive stream windows smoothed over time.

    `smooth_us` = 0: each window is decided alone (`decide`). Otherwise the decision of a stream window (window
    mode: its `stream` is set, a sample id or not) is the argmax of an exponentially weighted mean of the
    log-probabilities (log-softmax of the scores) of the windows so far, a window ending dt earlier weighing
    exp(-dt / smooth_us) as much; `scores` of the returned Decision are that mean, `confidence` its
    softmax probability of the label. Windows of whole samples are decided alone and leave the state
    as it was; a stream whose clock goes back (a new stream, a looped recording) starts afresh.
    A stream window that carries `fresh` events, given a `temporal` network, is decided by `continuous`
    (each event fed once, state carried; the state cleared when a window of another stream comes, the
    segmenter's next after a restart), a whole sample by a temporal network on a fresh state (`alone`); a
    window keyed by an overlapping segmenter (`segment.overlap` "inflight"/"chunks") from the state `inflight`
    fed while its events arrived (`feed(net, piece)`); any other window by `decide`.
    Learning (labelled windows) uses the window alone, but a temporal network's stream window teaches it on its running
    state from the fresh events (`continuous`); the returned Decision is the prediction; a network that fails while it
    learns is revived from its last healthy weights (`revive.LiveWatch`; not with `revive=False`).
    One Decider per stream: `streamsnn run` (Pipeline) and `eval --stream` use the same class.
    """

    def __init__(self, smooth_us: float = 0.0, revive: bool = True):
        if not (isinstance(smooth_us, (int, float)) and smooth_us >= 0 and math.isfinite(smooth_us)):
            raise ConfigError(f"smooth_us must be a number >= 0 (0: no smoothing), got {smooth_us!r}")
        self.smooth_us = float(smooth_us)
        self.inflight = InFlight()  # the states of the windows in flight (segment.overlap "inflight"/"chunks")
        self._stream = None  # the segmenter's stream a temporal network's running state belongs to
        # the network's health while it learns from labelled windows (its copy read out as the network is)
        self.watch = LiveWatch(evidence_at) if revive else None
        self.reset()

    def reset(self) -> None:
        """Forget the evidence of earlier windows."""
        self._mean: np.ndarray | None = None
        self._smooth_stream: int | None = None
        self._weight = 0.0
        self._t_end: int | None = None

    def feed(self, net: Classifier, piece) -> None:
        """Feed one accepted stream batch (`segment.Piece`) to the windows in flight (on the network's thread)."""
        self.inflight.feed(net, piece)

    def smooth(self, t_end_us: int, scores: np.ndarray, stream: int | None = None) -> np.ndarray:
        """Fold one window's scores (ending at `t_end_us`, of the segmenter's `stream`) into the evidence; returns the
        smoothed mean. Another stream starts afresh (its clock need not go back: another sensor, a reset segmenter)."""
        logp = log_softmax(scores)
        if self._mean is None or self._t_end is None or t_end_us < self._t_end or len(logp) != len(self._mean) or (
                stream != self._smooth_stream):
            self._mean, self._weight = logp, 1.0
            self._smooth_stream = stream
        else:
            keep = self._weight * math.exp(-(t_end_us - self._t_end) / self.smooth_us)
            self._weight = keep + 1.0
            self._mean = (keep * self._mean + logp) / self._weight
        self._t_end = int(t_end_us)
        return self._mean

    def __call__(self, net: Classifier, window: Window, *, learn: bool = False) -> Decision:
        return self.smoothed(window, self.alone(net, window, learn, inflight=True))

    def alone(self, net: Classifier, window: Window, learn: bool, *, inflight: bool = False) -> Decision:
        """`window`'s Decision, unsmoothed, learning from its label with `learn` (unless the watch gave up: `stopped`);
        a silent network counted (`silence`), a learning one watched and revived when it fails (`revive.LiveWatch`:
        its first copy before the first update, a window that gives no decision counted). `inflight`: read out from
        the state fed while its events arrived when there is one (the pipeline's main path; `workers` decide learning
        windows whole)."""
        learn = learn and not self.stopped
        truth = true_output(net, window) if learn else None
        watched = truth is not None and self.watch is not None
        if watched:
            self.watch.before(net)
        try:
            if window.fresh is not None and temporal(net):  # a stream window (labelled by its sample or not)
                if window.stream != self._stream:  # another stream (the clock went back, another sensor): afresh
                    if self._stream is not None:
                        net.reset()
                    self._stream = window.stream
                d = continuous(net, window, learn=learn)
            elif window.stream is None and temporal(net):  # a whole sample: on its own clock, from a fresh state
                d = alone(net, lambda: decide(net, window, learn=learn))
            elif inflight and window.key is not None and truth is None and (
                    (d := self.inflight.decide(net, window)) is not None):
                pass  # read out from the state fed while its events arrived (`inflight`)
            else:
                d = decide(net, window, learn=learn)
        except NonFinite:
            if watched:
                self.watch.failed(net)
            raise
        silence(net, d)
        if watched:
            carried = window.fresh is not None and temporal(net)  # the copy is judged deciding as the network did
            self.watch.after(net, d.label == truth, d.spikes, d.events, window.fresh if carried else window.batch,
                             truth, window.t_end_us if carried else None, window.stream)
        return d

    @property
    def stopped(self) -> bool:
        """Whether the network no longer learns from labels in this run (it kept failing: `revive.LiveWatch`)."""
        return self.watch is not None and self.watch.stopped

    def smoothed(self, window: Window, d: Decision) -> Decision:
        """The decision published for `d` (of `window`, stream windows in order): smoothed, or `d` itself."""
        if self.smooth_us <= 0 or window.stream is None:  # whole samples are decided alone
            return d
        mean = self.smooth(window.t_end_us, d.scores, window.stream)
        label = int(np.argmax(mean))
        p = np.exp(mean - mean.max())
        return replace(d, label=label, scores=mean.astype(np.float32), confidence=float(p[label] / p.sum()))
