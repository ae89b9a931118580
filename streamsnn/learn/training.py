"""Training and evaluation loops for SpikingNetwork on labelled datasets: data as arrays, augmentation, metrics."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .. import classnames, defaults
from ..errors import InputError
from ..textsafe import few

log = logging.getLogger(__name__)


@dataclass
class SampleArrays:
    """A split loaded into memory: per sample the input indices (int32) and event times (int64 us)."""

    idx: list[np.ndarray] = field(default_factory=list)
    t: list[np.ndarray] = field(default_factory=list)
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ids: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)  # class names in index order, when known
    skipped: list[str] = field(default_factory=list)  # one line per sample that could not be read
    unknown: dict[str, int] = field(default_factory=dict)  # samples of classes the network lacks, by name
    outside: int = 0  # events dropped by the input map (outside the model's region of interest)

    @classmethod
    def from_batches(cls, net, batches, labels=None) -> SampleArrays:
        """One sample per EventBatch of ``batches`` (any iterable), as ``net``'s input map reads it; labelled by
        ``labels`` (class indices, in the same order) or else by each batch's own ``label``."""
        out, own = cls(), []
        for b in batches:
            idx, t = net.input_events(b)
            out.idx.append(idx)
            out.t.append(t)
            out.ids.append(b.sample)
            own.append(b.label)
        out.labels = np.asarray(own if labels is None else list(labels), np.int64)
        if len(out.labels) != len(out.idx):
            raise ValueError(f"{len(out.labels)} labels for {len(out.idx)} samples")
        return out

    def __len__(self) -> int:
        return len(self.idx)

    @property
    def n_events(self) -> int:
        return int(sum(len(i) for i in self.idx))

    def subset(self, n: int | None) -> SampleArrays:
        if n is None:
            return self
        return SampleArrays(self.idx[:n], self.t[:n], self.labels[:n], self.ids[:n], classes=self.classes,
                            skipped=self.skipped)

    def pick(self, which) -> SampleArrays:
        """The samples at the positions ``which`` (in that order)."""
        which = [int(k) for k in which]
        return SampleArrays([self.idx[k] for k in which], [self.t[k] for k in which], self.labels[which],
                            [self.ids[k] for k in which])

    def __add__(self, other: SampleArrays) -> SampleArrays:
        return SampleArrays(self.idx + other.idx, self.t + other.t,
                            np.concatenate([self.labels, other.labels]).astype(np.int64), self.ids + other.ids,
                            classes=self.classes or other.classes, skipped=self.skipped + other.skipped,
                            outside=self.outside + other.outside)

    def counts(self, n_in: int) -> np.ndarray:
        """(samples, n_in) float32 event counts per input: what a conventional MLP is trained on."""
        return np.stack([np.bincount(i, minlength=n_in).astype(np.float32) for i in self.idx]) \
            if self.idx else np.zeros((0, n_in), np.float32)


#: Training samples `train` runs through the network to measure its spikes per input event when it has no test split.
SPIKE_SAMPLES = 200


def _bar(iterable, desc: str, quiet: bool, total: int | None = None, unit: str = "sample"):
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, file=sys.stderr, leave=False,
                disable=quiet or not sys.stderr.isatty())


def load_split(data_dir, split: str, net, *, limit: int | None = None, quiet: bool = False) -> SampleArrays:
    """Load one split of a dataset (any layout `streamsnn.io.open_dataset` reads) as network input indices.

    Labels are mapped by class **name** onto the network's classes (`labels` index `net.classes`;
    `classes` of the result are the network's); a network made from a class count (classes
    "0".."n-1") takes a named dataset's label indices as they are (`decide.by_name`), and
    `classes` are then the dataset's. A sample of a class the network does not have is
    left out and counted by name in `unknown`. A sample that cannot be read (truncated, corrupt,
    empty) is logged, skipped and listed in `skipped`, as replay does; InputError only when no
    sample of the split is readable.
    """
    from ..io.dataset import open_dataset

    ds = open_dataset(data_dir)
    ds.require_labels()
    if split not in ds.splits:
        raise InputError(f"{data_dir}: dataset has no {split!r} split (found: {', '.join(ds.splits) or 'none'})")
    samples = ds.split(split).samples
    if limit is not None and limit < len(samples):  # spread out: tonic layouts are sorted by class
        samples = [samples[int(i)] for i in np.linspace(0, len(samples) - 1, max(limit, 0))]
    from ..pipeline.decide import by_index_note, by_name

    names = by_name(net.classes, ds.classes)  # else a network without names: labels are indices
    if (note := by_index_note(net.classes, ds.classes)) is not None:
        log.warning("%s: %s", data_dir, note)
    out = SampleArrays(classes=list(net.classes if names else ds.classes))
    index = {}  # dataset class name -> the network's output (names match regardless of case, as everywhere)
    labels = []
    for s in _bar(samples, f"loading {split}", quiet):
        if s.label is None:
            raise InputError(f"{s.path}: sample has no label; add it to the folder's label list")
        name = s.label_name if s.label_name is not None else ds.classes[int(s.label)]
        if not names:
            if not 0 <= int(s.label) < net.n_classes:
                raise InputError(f"{s.path}: label {s.label} is not one of the network's {net.n_classes} classes")
            name = net.classes[int(s.label)]
        if name not in index:
            index[name] = classnames.find(str(name), [str(c) for c in net.classes])
        if index[name] is None:
            out.unknown[name] = out.unknown.get(name, 0) + 1
            continue
        try:
            batch = s.load()
        except InputError as exc:
            out.skipped.append(str(exc))
            log.warning("skipped a sample: %s", exc)
            continue
        idx, t = net.input_events(batch)
        out.outside += len(batch) - len(idx)
        out.idx.append(idx)
        out.t.append(t)
        out.ids.append(s.sample_id)
        labels.append(index[name])
    out.labels = np.asarray(labels, dtype=np.int64)
    if out.unknown:
        log.warning("%s %s: %d sample(s) of classes the model does not have, not scored: %s", data_dir, split,
                    sum(out.unknown.values()), ", ".join(f"{k} ({v})" for k, v in out.unknown.items()))
    if samples and not len(out) and out.unknown:
        raise InputError(f"{data_dir}: none of the {len(samples)} {split} samples is of a class the model has "
                         f"(the model's: {few(net.classes)}; the data's: {few(out.unknown)}); evaluate "
                         "a model trained on these classes")
    if samples and not len(out) and not out.unknown:
        raise InputError(f"{data_dir}: none of the {len(samples)} {split} samples could be read "
                         f"(first: {out.skipped[0]})")
    return out


def load_folders(folders, net, *, limit: int | None = None, quiet: bool = False):
    """The train splits of several folders concatenated, and the test split of the first that has one.

    Returns (train, test or None, name of the folder the test split came from or None).
    """
    from ..io.dataset import open_dataset

    train = SampleArrays()
    test = test_from = None
    for folder in folders:
        train = train + load_split(folder, "train", net, limit=limit, quiet=quiet)
        if test is None and "test" in open_dataset(folder).splits:
            test, test_from = load_split(folder, "test", net, limit=limit, quiet=quiet), folder
    return train, test, test_from


@dataclass
class Augment:
    """Random variations of a training sample: spatial shift, event dropout, time jitter."""

    shift: int = defaults.AUGMENT["shift"]            # pixels, uniform in [-shift, shift] per axis; events
                                                      # pushed off the sensor drop
    dropout: float = defaults.AUGMENT["dropout"]      # probability of dropping each event
    jitter_us: float = defaults.AUGMENT["jitter_us"]  # std of Gaussian time jitter (events re-sorted by it)

    def __call__(self, idx: np.ndarray, t: np.ndarray, input_shape, rng: np.random.Generator):
        w, h, _ = input_shape
        keep = np.ones(len(idx), bool)
        if self.dropout > 0:
            keep &= rng.random(len(idx)) >= self.dropout
        if self.shift > 0:
            dx, dy = rng.integers(-self.shift, self.shift + 1, size=2)
            plane, rest = np.divmod(idx, w * h)
            y, x = np.divmod(rest, w)
            x = x + dx
            y = y + dy
            keep &= (x >= 0) & (x < w) & (y >= 0) & (y < h)
            idx = (plane * (w * h) + y * w + x).astype(np.int32)
        idx, t = idx[keep], t[keep]
        if self.jitter_us > 0 and len(t):
            tj = t + np.rint(rng.normal(0.0, self.jitter_us, len(t))).astype(np.int64)
            order = np.argsort(tj, kind="stable")
            idx, t = idx[order], np.maximum.accumulate(tj[order])
        return np.ascontiguousarray(idx), np.ascontiguousarray(t)


STREAM_LR_SCALE = defaults.STREAM_LR_SCALE  # see streamsnn/defaults.py
STREAM_SEVERAL_EPOCHS, STREAM_FIRST_PRICE = defaults.STREAM_SEVERAL_EPOCHS, defaults.STREAM_FIRST_PRICE


def learning_settings(layers, several: bool = False, stream: bool = False) -> dict:
    """Default lr, lr_out, lr_conv, max_step, activity and epochs for a network with these layers (a copy).

    ``several``: training on several folders (real plus synthetic samples: many more per epoch).
    ``stream``: with the stream transforms (``augment.StreamCrops``): a convolutional network's learning
    rates times ``STREAM_LR_SCALE``, and on several folders ``STREAM_SEVERAL_EPOCHS`` epochs and ``layer_price``
    (the first hidden layer's spikes at ``STREAM_FIRST_PRICE`` x the price; the key only then).
    """
    from ..snn.arch import learning_defaults, parse_arch

    s = learning_defaults(layers)
    s["epochs"] = s.pop("epochs_several") if several else s["epochs"]
    s.pop("epochs_several", None)
    hidden = parse_arch(layers)
    if stream and any(lay.conv_like for lay in hidden):
        s["lr"] *= STREAM_LR_SCALE
        s["lr_out"] *= STREAM_LR_SCALE
        if several:
            s["epochs"] = STREAM_SEVERAL_EPOCHS
            s["layer_price"] = [STREAM_FIRST_PRICE] + [1.0] * (len(hidden) - 1)
    return s


def lr_schedule(epoch: int, epochs: int, final: float = 0.1) -> float:
    """Learning-rate multiplier: cosine decay from 1 to ``final`` over the epochs."""
    if epochs <= 1:
        return 1.0
    return final + (1.0 - final) * 0.5 * (1.0 + np.cos(np.pi * epoch / (epochs - 1)))


def train_epoch(net, data: SampleArrays, *, epoch: int = 0, epochs: int = 1, seed: int = 0,
                augment: Augment | None = None, stream=None, ends=None, quiet: bool = False) -> dict:
    """One shuffled pass of test-then-train learning; returns train accuracy, events and speed.

    ``stream`` (an ``augment.StreamCrops``) turns each item into a whole sample, a time crop or a
    crossing into another sample, as live windows see them; ``ends`` (an ``augment.EndCuts``) then cuts
    the item's end as a live model's last decision in a sample sees it; ``augment`` is applied last.
    A sample whose update is not finite is skipped (the network undid it) and a network that falls
    silent is revived (``watch.py``): the result counts both (``nonfinite``, ``revivals``) and gives
    the learning-rate multiplier ``lr_backoff``; ``watch.NetworkSilent`` when it cannot be revived.
    """
    from ..snn.guard import NonFinite
    from .watch import Watch

    watch = Watch.of(net)
    watch.start_epoch()
    leaky = net.tau_us is not None
    refused, revivals = net.nonfinite, watch.revivals
    rng = np.random.default_rng([seed, epoch])
    scale = lr_schedule(epoch, epochs)
    order = rng.permutation(len(data))
    correct = events = 0
    t0, c0 = time.perf_counter(), time.thread_time()
    bar = _bar(order, f"epoch {epoch + 1}/{epochs}", quiet)
    for n, k in enumerate(bar, 1):
        if stream is not None:
            idx, t, label = stream(data, k, rng)
        else:
            idx, t, label = data.idx[k], data.t[k], int(data.labels[k])
        if ends is not None:
            idx, t = ends(idx, t, rng)
        if augment is not None:
            idx, t = augment(idx, t, net.input_shape, rng)
        if leaky:
            net.reset()  # each training item is a sample of its own: a leaky network's state does not carry over
        try:
            d = net.learn_indices(idx, label, t, lr_scale=scale)
        except NonFinite as exc:
            watch.refused(exc, epoch, data.ids[k] if k < len(data.ids) else f"#{k}")
            continue
        watch.spiked(d.spikes, d.events, epoch)
        watch.decided(d.label, label, epoch)
        correct += int(d.label == label)
        events += d.events
        if n % 100 == 0:
            bar.set_postfix(acc=f"{correct / n:.3f}")
    dt, dc = time.perf_counter() - t0, time.thread_time() - c0
    net.epochs += 1
    return {"accuracy": correct / max(1, len(data)), "events": events, "seconds": dt, "cpu_seconds": dc,
            "events_per_s": events / dt if dt > 0 else 0.0,
            "events_per_cpu_s": events / dc if dc > 0 else 0.0, "lr_scale": scale,
            "nonfinite": net.nonfinite - refused, "revivals": watch.revivals - revivals, "lr_backoff": net.lr_backoff}


def spike_record(net, spikes, events: int, samples: int, split: str) -> dict:
    """What a checkpoint keeps of a measurement of spikes (``checkpoint.check_spike_rates``): spikes per input event
    of each hidden layer, over ``samples`` samples of ``split`` holding ``events`` input events, at ``net.updates``."""
    return {"per_layer": [float(s) / max(events, 1) for s in spikes], "samples": int(samples), "events": int(events),
            "split": split, "updates": int(net.updates)}


def measure_spikes(net, data: SampleArrays, split: str, *, limit: int = SPIKE_SAMPLES) -> dict:
    """Spikes per input event per hidden layer over up to ``limit`` samples of ``data`` spread over it (inference
    only: the counters do not move; a leaky network starts each sample fresh, as ``evaluate`` does)."""
    which = np.unique(np.linspace(0, len(data) - 1, min(limit, len(data))).astype(int)) if len(data) else []
    spikes, events = np.zeros(len(net.hidden)), 0
    for k in which:
        if net.tau_us is not None:
            net.reset()
        d = net.predict_indices(data.idx[k], data.t[k], count=False)
        spikes += d.spikes
        events += d.events
    return spike_record(net, spikes, events, len(which), split)


def evaluate(net, data: SampleArrays, *, quiet: bool = True) -> dict:
    """Accuracy, per-class accuracy (by class name), confusion matrix (rows true, columns predicted), events/s, and
    ``spike_rates`` (``spike_record``: spikes per input event per hidden layer, as held-out "test" samples)."""
    n_cls = net.n_classes
    confusion = np.zeros((n_cls, n_cls), np.int64)
    events = 0
    spikes = np.zeros(len(net.hidden))
    net.warm_up()
    t0 = time.perf_counter()
    leaky = net.tau_us is not None
    for k in _bar(range(len(data)), "evaluating", quiet):
        if leaky:
            net.reset()  # whole samples: each one from a fresh state
        d = net.predict_indices(data.idx[k], data.t[k])
        confusion[int(data.labels[k]), d.label] += 1
        events += d.events
        spikes += d.spikes
    dt = time.perf_counter() - t0
    total = confusion.sum(axis=1)
    per_class = {net.classes[c]: (float(confusion[c, c] / total[c]) if total[c] else None) for c in range(n_cls)}
    n = int(confusion.sum())
    return {"accuracy": float(np.trace(confusion) / n) if n else 0.0, "per_class": per_class,
            "classes": list(net.classes),
            "confusion": confusion.tolist(), "samples": n, "events": int(events),
            "events_per_s": float(events / dt) if dt > 0 else 0.0,
            "spike_rates": spike_record(net, spikes, events, n, "test")}


def confusion_lines(rows, columns, confusion) -> list[str]:
    """A confusion matrix as text: true classes down, predicted across, every name whole (eval and eval --stream)."""
    rows, columns = [str(c) for c in rows], [str(c) for c in columns]
    width = max(4, *(len(c) for c in rows + columns))
    return [" " * (width + 1) + " ".join(f"{c:>{width}}" for c in columns)] + [
        f"{c:>{width}} " + " ".join(f"{v:>{width}}" for v in row) for c, row in zip(rows, confusion)]

