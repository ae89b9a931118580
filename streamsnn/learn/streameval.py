"""Stream evaluation: a labelled split played back to back as one stream through the daemon's window path.

A live camera has no sample boundaries. `stream_evaluate` joins the samples on one clock (each one
starting where the previous ended, plus an optional gap), strips sample ids and labels, cuts the
stream into chunks as a camera delivers them, and runs it through the same `Segmenter` (window mode)
and the same window -> decision step (`streamsnn.pipeline.decide.decide`) as `streamsnn run`. Each decision
is scored against the sample that covers most of its window (ties: the later one); for each sample,
the delay is from its start to the end of the first window scored against it that names its class,
and its last decision (the last window ending inside it) is scored against its label
(`last_decision_accuracy`). A temporal network (`decide.temporal`) gets each stream event once, its
state carried across windows, as in the daemon.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .. import classnames
from ..config import SCHEMA
from ..errors import ConfigError, InputError
from ..events import EventBatch
from ..pipeline.decide import Decider, by_index_note, by_name, temporal
from ..pipeline.segment import Segmenter, resolve_overlap
from ..pipeline.stages import Classifier
from ..textsafe import few
from .augment import LIVE_HOP_US  # the live hop, one definition (training cuts item ends by it)
from .training import confusion_lines

if TYPE_CHECKING:  # pragma: no cover
    from ..snn import SpikingNetwork

log = logging.getLogger(__name__)

#: The live pipelines' decision settings (pipelines/live-camera.toml, dv-stream.toml), so that stream
#: evaluation judges what the daemon does; tests/test_streameval.py keeps the files equal to these.
LIVE_WINDOW_US = SCHEMA["segment"]["window_us"].default
LIVE_MIN_EVENTS = 200
LIVE_SMOOTH_US = SCHEMA["segment"]["smooth_us"].default
LIVE_OVERLAP = SCHEMA["segment"]["overlap"].default
#: The live pipelines run the model without a leak (0: no leak, as `stream_evaluate`'s tau_us).
LIVE_TAU_US = 0
#: Sensor time per batch handed to the segmenter: a camera delivers packets of about 10 ms.
CHUNK_US = 10_000


@dataclass
class Stream:
    """Samples joined on one clock. Sample k spans [starts[k], ends[k]) and has class `labels[k]`;
    `batches` are what the segmenter receives (time chunks without sample ids or labels)."""

    batches: list[EventBatch]
    starts: np.ndarray
    ends: np.ndarray
    labels: np.ndarray
    ids: list[str]

    @property
    def events(self) -> int:
        return sum(len(b) for b in self.batches)

    @property
    def duration_us(self) -> int:
        return int(self.ends[-1] - self.starts[0]) if len(self.starts) else 0


def make_stream(samples: Sequence[EventBatch], *, gap_us: int = 0, chunk_us: int = CHUNK_US,
                source: str = "stream") -> Stream:
    """Join labelled samples into one stream (first event at t = 0); empty samples are left out."""
    if gap_us < 0 or chunk_us < 1:
        raise ConfigError(f"gap_us must be >= 0 and chunk_us >= 1, got {gap_us} and {chunk_us}")
    samples = [s for s in samples if len(s)]
    if not samples:
        raise InputError(f"{source}: no events in any sample; nothing to play as a stream")
    w, h = samples[0].sensor_size
    parts, starts, ends, labels, ids = [], [], [], [], []
    t = 0
    for s in samples:
        if s.sensor_size != (w, h):
            raise InputError(f"{s.source or s.sample}: sensor {s.width}x{s.height} differs from the stream's "
                             f"{w}x{h}; a stream comes from one sensor, evaluate these samples apart")
        if s.label is None:
            raise InputError(f"{s.source or s.sample}: sample has no label; stream evaluation scores labels")
        ev = s.events.copy()
        ev["t"] += t - int(ev["t"][0])
        parts.append(ev)
        starts.append(t)
        t += s.duration_us + 1  # the sample spans [first event, last event + 1 us)
        ends.append(t)
        labels.append(int(s.label))
        ids.append(s.sample if s.sample is not None else str(len(ids)))
        t += gap_us
    whole = EventBatch(np.concatenate(parts), w, h, source=source)
    return Stream(whole.split_time(chunk_us), np.asarray(starts, np.int64), np.asarray(ends, np.int64),
                  np.asarray(labels, np.int64), ids)


def cover(starts: np.ndarray, ends: np.ndarray, t_start: int, t_end: int) -> int:
    """Index of the span [starts[k], ends[k]) that covers most of [t_start, t_end) (ties: the later
    span), or -1 when none overlaps it. Spans are sorted and do not overlap each other."""
    lo = int(np.searchsorted(ends, t_start, side="right"))
    hi = int(np.searchsorted(starts, t_end, side="left"))
    if hi <= lo:
        return -1
    overlap = np.minimum(ends[lo:hi], t_end) - np.maximum(starts[lo:hi], t_start)
    best = overlap.max()
    if best <= 0:
        return -1
    return lo + int(np.flatnonzero(overlap == best)[-1])


def first_right_delays(starts: np.ndarray, sample_of: np.ndarray, correct: np.ndarray,
                       t_end: np.ndarray) -> np.ndarray:
    """Per sample, µs from its start to the end of the first right decision scored against it
    (decisions in time order); -1 for a sample that never got one."""
    delays = np.full(len(starts), -1, np.int64)
    for k, ok, end in zip(sample_of, correct, t_end):
        if ok and k >= 0 and delays[k] < 0:
            delays[k] = int(end) - int(starts[k])
    return delays


def model_classes(net: Classifier) -> list[str]:
    """Names of the network's outputs, in output order."""
    return [str(c) for c in net.classes]


def targets(net: Classifier, classes: Sequence[str] | None, n_labels: int) -> np.ndarray:
    """For each dataset label index, the network output that means it (-1: the model lacks the class).

    Matched by name when the network has names for the dataset's classes (`decide.by_name`, as the
    daemon matches labels); a network made from a class count, given other names, by index (what
    training on the dataset's labels produced)."""
    if classes and by_name(net.classes, classes):
        outputs = model_classes(net)  # names match regardless of case, as the daemon's labels do
        found = (classnames.find(str(c), outputs) for c in classes)
        return np.asarray([-1 if i is None else i for i in found], np.int64)
    if classes and (note := by_index_note(net.classes, classes)) is not None:
        log.warning("stream: %s", note)
    n_out = len(net.classes)
    return np.asarray([i if i < n_out else -1 for i in range(n_labels)], np.int64)


def play(net: Classifier, stream: Stream, *, window_us: int, hop_us: int, min_events: int,
         smooth_us: float = 0.0, overlap: str = "repeat") -> tuple[list, float]:
    """Every (window, decision) of the stream through the daemon's segmenter and decision step
    (`Decider`), and the wall seconds it took (segmenting and network). A temporal network gets each
    event once (a continuous segmenter), as `Pipeline` does; any other one gets each batch as it arrives
    when `overlap` says so (`segment.overlap`)."""
    carried = temporal(net)
    seg = Segmenter("window", window_us, hop_us, min_events, continuous=carried,
                    overlap="repeat" if carried else overlap)
    decider = Decider(smooth_us)
    out = []
    t0 = time.perf_counter()
    for batch in stream.batches:
        windows = seg.feed(batch)
        for piece in seg.take_pieces():
            decider.feed(net, piece)
        for w in windows:
            out.append((w, decider(net, w, learn=False)))
    for w in seg.flush():
        out.append((w, decider(net, w, learn=False)))
    return out, time.perf_counter() - t0


def stream_evaluate(net: SpikingNetwork, samples: Sequence[EventBatch], *, window_us: int = LIVE_WINDOW_US,
                    hop_us: int = LIVE_HOP_US, min_events: int = LIVE_MIN_EVENTS, tau_us: float | None = None,
                    smooth_us: float = LIVE_SMOOTH_US, gap_us: int = 0, classes: Sequence[str] | None = None,
                    chunk_us: int = CHUNK_US, overlap: str = LIVE_OVERLAP,
                    keep_decisions: bool = False) -> dict:
    """Play labelled samples back to back as one stream and score every decision (see the module doc).

    `tau_us`: None runs the model as it is (its own leak, if any), 0 without a leak, > 0 with that
    lazy leak (the network is restored afterwards). `smooth_us`: time constant of the evidence
    smoothing across windows (`decide.Decider`; 0: each window alone). `classes`: the dataset's
    class names in label order (per-class figures are keyed by them). `keep_decisions` adds every
    decision to the result. `overlap`: how overlapping windows reach a model without a leak (`segment.overlap`;
    "repeat", each window whole, decides as "inflight" does; `eval --stream` passes the live pipelines'
    `LIVE_OVERLAP`).
    """
    for name, v, least in (("window_us", window_us, 1), ("hop_us", hop_us, 1), ("min_events", min_events, 1),
                           ("gap_us", gap_us, 0)):
        if not isinstance(v, (int, np.integer)) or v < least:
            raise ConfigError(f"{name} must be an integer >= {least}, got {v!r}")
    if not (isinstance(smooth_us, (int, float, np.integer, np.floating)) and smooth_us >= 0):
        raise ConfigError(f"smooth_us must be >= 0 (0: no smoothing), got {smooth_us!r}")
    if tau_us is not None and not 0 <= tau_us <= 1e9:  # at most 1000 s, as train's --tau-ms
        raise ConfigError(f"tau_us must be 0 (no leak) up to 1e9 (1000 s), got {tau_us!r}")
    stream = make_stream(samples, gap_us=gap_us, chunk_us=chunk_us)
    n_labels = max(len(classes or ()), int(stream.labels.max()) + 1)
    names = [str(c) for c in classes or ()] + [str(i) for i in range(len(classes or ()), n_labels)]
    target = targets(net, names, n_labels)
    present = np.unique(stream.labels)
    if len(present) and (target[present] < 0).all():
        raise InputError(f"stream: none of the {len(stream.starts)} samples is of a class the model has (the "
                         f"model's: {few(model_classes(net))}; the data's: {few(names[c] for c in present)}); "
                         "evaluate a model trained on these classes")
    layered = hasattr(net, "_layer_tau")  # a SpikingNetwork (any Classifier can be scored)
    saved_tau, saved_layers = net.tau_us, getattr(net, "_layer_tau", None)
    if tau_us is not None:  # one leak for every layer: the model's per-layer values give way too
        net.tau_us = float(tau_us) if tau_us > 0 else None
        if layered:
            net._layer_tau = None
    try:
        net.reset()
        net.warm_up()
        effective_tau, carried = net.tau_us, temporal(net)
        overlap = resolve_overlap(overlap, window_us, hop_us)
        pairs, seconds = play(net, stream, window_us=window_us, hop_us=hop_us, min_events=min_events,
                              smooth_us=float(smooth_us), overlap=overlap)
    finally:
        net.tau_us = saved_tau
        if layered:
            net._layer_tau = saved_layers
        net.reset()
    res = score(stream, pairs, target, names, model_classes(net))
    # dataset classes the model does not have: reported by name (their windows cannot be right)
    res["unknown_classes"] = {names[c]: int((stream.labels == c).sum()) for c in range(n_labels)
                              if target[c] < 0 and (stream.labels == c).any()}
    res.update({
        "events": stream.events, "events_fed": int(sum(d.events for _, d in pairs)),
        "stream_seconds": stream.duration_us / 1e6, "seconds": seconds,
        "events_per_s": stream.events / seconds if seconds > 0 else 0.0,
        "realtime_factor": stream.duration_us / 1e6 / seconds if seconds > 0 else 0.0,
        "window_us": int(window_us), "hop_us": int(hop_us), "min_events": int(min_events),
        "tau_us": effective_tau, "continuous": carried, "smooth_us": float(smooth_us), "gap_us": int(gap_us),
        "overlap": "continuous" if carried else overlap,
    })
    if not pairs:  # no window reached min_events: say how busy the busiest was, so the user knows what to change
        t = np.sort(np.concatenate([b.events["t"] for b in stream.batches])) if stream.batches else np.zeros(0)
        starts = np.arange(int(t[0]), int(t[-1]) + 1, int(hop_us)) if len(t) else np.zeros(0, np.int64)
        res["busiest_window_events"] = int((np.searchsorted(t, starts + window_us) - np.searchsorted(t, starts)).max()
                                           ) if len(starts) else 0
    if keep_decisions:
        res["decision_list"] = [
            {"t_start_us": w.t_start_us, "t_end_us": w.t_end_us, "label": d.label, "events": d.events,
             "sample": stream.ids[k] if k >= 0 else None, "correct": bool(ok)}
            for (w, d), k, ok in zip(pairs, res.pop("_sample_of"), res.pop("_correct"))]
    else:
        res.pop("_sample_of"), res.pop("_correct")
    return res


def last_decisions(starts: np.ndarray, ends: np.ndarray, t_end: np.ndarray) -> np.ndarray:
    """Per sample [starts[k], ends[k]), the index of its last decision: the last one (in the given order)
    whose window ends inside it, t_end in [start, end); -1 for a sample with none."""
    if not len(t_end):
        return np.full(len(starts), -1, np.int64)
    order = np.argsort(t_end, kind="stable")
    sorted_end = t_end[order]
    pos = np.searchsorted(sorted_end, ends, side="left") - 1
    at = np.maximum(pos, 0)
    found = (pos >= 0) & (sorted_end[at] >= starts)
    return np.where(found, order[at], -1).astype(np.int64)


def score(stream: Stream, pairs: list, target: np.ndarray, names: list[str], predicted: list[str]) -> dict:
    """Accuracy, per-class figures, confusion, delays and last decisions of (window, decision) pairs on a stream."""
    n = len(pairs)
    t_end = np.asarray([w.t_end_us for w, _ in pairs], np.int64)
    label = np.asarray([d.label for _, d in pairs], np.int64)
    sample_of = np.asarray([cover(stream.starts, stream.ends, w.t_start_us, w.t_end_us) for w, _ in pairs],
                           np.int64)
    truth = np.where(sample_of >= 0, stream.labels[np.maximum(sample_of, 0)], -1)
    want = np.where(truth >= 0, target[np.maximum(truth, 0)], -1)
    correct = (want >= 0) & (label == want)
    delays = first_right_delays(stream.starts, sample_of, correct, t_end)
    last = last_decisions(stream.starts, stream.ends, t_end)
    want_last = target[stream.labels]
    last_right = (last >= 0) & (want_last >= 0)
    if n:
        last_right &= label[np.maximum(last, 0)] == want_last
    confusion = np.zeros((len(names), len(predicted)), np.int64)
    for tr, lb in zip(truth, label):
        if tr >= 0:
            confusion[tr, lb] += 1
    per_class, last_per_class = {}, {}
    for c, name in enumerate(names):
        mine = truth == c
        in_class = stream.labels == c
        got = delays[in_class]
        per_class[name] = {
            "accuracy": float(correct[mine].mean()) if mine.any() else None,
            "decisions": int(mine.sum()), "samples": int(in_class.sum()),
            "never_right": int((got < 0).sum()), "delay_median_ms": _ms(got, 50),
        }
        last_per_class[name] = {
            "last_decision_accuracy": float(last_right[in_class].mean()) if in_class.any() else None,
            "samples": int(in_class.sum()), "samples_without_decision": int((last[in_class] < 0).sum()),
        }
    return {
        "stream_accuracy": float(correct.mean()) if n else None, "decisions": n, "correct": int(correct.sum()),
        "samples": len(stream.starts), "never_right": int((delays < 0).sum()),
        "delay_median_ms": _ms(delays, 50), "delay_p90_ms": _ms(delays, 90),
        "last_decision_accuracy": float(last_right.mean()), "samples_without_decision": int((last < 0).sum()),
        "last_decision_per_class": last_per_class,
        "per_class": per_class, "classes": list(names), "predicted_classes": list(predicted),
        "confusion": confusion.tolist(), "_sample_of": sample_of, "_correct": correct,
    }


def _num(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _ms(delays: np.ndarray, q: float) -> float | None:
    got = delays[delays >= 0]
    return float(np.percentile(got, q)) / 1000.0 if len(got) else None


def load_samples(data, split: str = "test", limit: int | None = None, quiet: bool = True):
    """(EventBatches, class names, skipped) of one labelled split of a dataset, in the dataset's order
    (`limit` keeps N samples spread evenly, as `training.load_split` does). A sample that cannot be
    read is logged, left out and listed in `skipped` (one line each), as `load_split` does."""
    import sys

    from tqdm import tqdm

    from ..io.dataset import open_dataset

    ds = open_dataset(data)
    ds.require_labels()
    if split not in ds.splits:
        raise InputError(f"{data}: dataset has no {split!r} split (found: {', '.join(ds.splits) or 'none'})")
    items = ds.split(split).samples
    if limit is not None and limit < len(items):
        items = [items[int(i)] for i in np.linspace(0, len(items) - 1, max(limit, 0))]
    for s in items:
        if s.label is None:
            raise InputError(f"{s.path}: sample has no label; add it to the folder's label list")
    batches, skipped = [], []
    for s in tqdm(items, desc=f"loading {split}", unit="sample", file=sys.stderr, leave=False,
                  disable=quiet or not sys.stderr.isatty()):
        try:
            batches.append(s.load())
        except InputError as exc:
            skipped.append(str(exc))
            log.warning("skipped a sample: %s", exc)
    if items and not batches:
        raise InputError(f"{data}: none of the {len(items)} {split} samples could be read (first: {skipped[0]})")
    return batches, list(ds.classes), skipped


def report_lines(res: dict) -> list[str]:
    """The stream result as text lines for people."""
    tau = "off" if res["tau_us"] is None else f"{res['tau_us'] / 1000:g} ms"
    smooth = f"{res['smooth_us'] / 1000:g} ms" if res.get("smooth_us") else "off"
    delay = ("-" if res["delay_median_ms"] is None
             else f"median {res['delay_median_ms']:.0f} ms, p90 {res['delay_p90_ms']:.0f} ms")
    lines = [
        f"stream of {res['samples']} samples, {res['stream_seconds']:.1f} s, {res['events']:,} events; "
        f"windows {res['window_us'] / 1000:g} ms every {res['hop_us'] / 1000:g} ms, "
        f"min {res['min_events']} events, leak {tau}, smoothing {smooth}, gap {res['gap_us'] / 1000:g} ms"
        + ("; state carried across windows (each event fed once)" if res.get("continuous")
           else f"; overlap {res['overlap']}" if res.get("overlap") else ""),
        f"stream accuracy {_num(res['stream_accuracy'], '.4f')} over {res['decisions']} decisions "
        f"({res['events_per_s'] / 1e6:.2f} M events/s, {res['realtime_factor']:.0f}x real time)",
        f"first right decision after a sample starts: {delay}; never right: {res['never_right']} "
        f"of {res['samples']} samples",
        f"last decision of each sample right: {res['last_decision_accuracy']:.4f} of {res['samples']} samples "
        f"({res['samples_without_decision']} without a decision ending inside them, counted wrong)",
        "per class (accuracy/decisions/median delay/last decision): " + "  ".join(
            f"{c}:{_num(v['accuracy'], '.2f')}/{v['decisions']}/{_num(v['delay_median_ms'], '.0f')}ms"
            f"/{_num(res['last_decision_per_class'][c]['last_decision_accuracy'], '.2f')}"
            for c, v in res["per_class"].items()),
        "confusion (rows true, columns predicted):",
    ]
    lines += confusion_lines(res["classes"], res["predicted_classes"], res["confusion"])
    if not res["decisions"]:
        lines.insert(2, f"no decision: no window of {res['window_us'] / 1000:g} ms held {res['min_events']} events "
                        f"(the busiest held {res.get('busiest_window_events', 0):,}); give --min-events "
                        f"{max(1, res.get('busiest_window_events', 0))} or a longer --window-us")
    if res.get("unknown_classes"):
        lines.append("classes the model does not have (their windows count as wrong): " + ", ".join(
            f"{c} ({n} samples)" for c, n in res["unknown_classes"].items()))
    return lines
