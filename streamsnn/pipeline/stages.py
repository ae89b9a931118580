"""Stage contracts: the `Source`, `Sink` and `Classifier` protocols, and the `DecisionInfo` sinks get with decisions."""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from typing import TYPE_CHECKING, AsyncIterator, Protocol, runtime_checkable

from .decide import true_class

if TYPE_CHECKING:  # pragma: no cover
    from ..events import EventBatch
    from ..snn.network import Decision
    from .segment import Window


@dataclass(frozen=True)
class DecisionInfo:
    """How one decision was made: time waiting in the queue, time in the network, model and class names.

    `queue_ms`: from the moment the window was complete (its last event handed to the pipeline) until
    the network took it (waiting behind earlier windows, and behind the stream's batches being fed to the
    windows in flight); `feed_ms`: once it took it, feeding the window's last events that had not been fed
    yet (windows in flight, `segment.overlap`; 0 otherwise); `compute_ms`: the network's own work on it
    (prediction or the readout of its state, and learning when the window carried its label).
    `classes`: the model's class names in output order.
    """

    queue_ms: float
    compute_ms: float
    model_version: str | None = None
    classes: tuple[str, ...] = ()
    feed_ms: float = 0.0

    @property
    def latency_ms(self) -> float:
        """Window complete -> decision made (queue wait, feeding its last events, compute)."""
        return self.queue_ms + self.feed_ms + self.compute_ms

    def name(self, label: int | None) -> str | None:
        """The class name of output `label` (its number as text when the model has no names)."""
        if label is None:
            return None
        return self.classes[label] if 0 <= label < len(self.classes) else str(label)


@runtime_checkable
class Classifier(Protocol):
    """What the pipeline, the decider, the stream evaluator and the sinks need of a network
    (`snn.SpikingNetwork` is one).

    `classes`: the class names in output order (a network made from a class count has "0", "1", ...);
    `sizes`: units per layer, the last one `n_classes`. `predict_one` decides a batch; `learn_one`
    learns its label test-then-train (returning the prediction made before the update), scoring
    `prediction` instead when given and scaling the learning rates by `lr_scale`; `add_class` adds an
    output unit and returns its index; `save` writes a checkpoint. The counters and `model_version`
    are lifetime figures (restored from a checkpoint); `model_version` changes whenever it learns.
    """

    classes: list[str]
    samples_seen: int
    events_seen: int
    updates: int

    @property
    def sizes(self) -> tuple[int, ...]: ...

    @property
    def n_classes(self) -> int: ...

    @property
    def model_version(self) -> str: ...

    @property
    def progressive_accuracy(self) -> float | None: ...

    def predict_one(self, batch: EventBatch) -> Decision: ...

    def learn_one(self, batch: EventBatch, label: int, *, prediction: int | None = None,
                  lr_scale: float = 1.0) -> Decision: ...

    def add_class(self, name: str, *, bias: float | None = None, lr_boost: float = 1.0) -> int: ...

    def save(self, path: str | PathLike) -> None: ...


def class_names(net: Classifier) -> tuple[str, ...]:
    """The network's class names in output order, as a tuple of strings (what `DecisionInfo` carries)."""
    return tuple(str(c) for c in net.classes)


def true_label_name(window: Window, info: DecisionInfo) -> str | None:
    """The class name of the window's true label: the dataset's name when the batch carries one."""
    if window.label is None:
        return None
    if info.classes:
        return true_class(info.classes, window)
    name = window.batch.meta.get("label_name") if window.batch is not None else None
    return str(name) if name is not None else info.name(window.label)


def true_label_index(window: Window, info: DecisionInfo) -> int | None:
    """The model's output index of the window's true class (compare it with the decision's label), or None
    when the label is unknown or the model lacks that class. Never the dataset's index: the two orders differ."""
    if window.label is None:
        return None
    if not info.classes:
        return int(window.label)
    name = true_label_name(window, info)
    return info.classes.index(name) if name in info.classes else None


@runtime_checkable
class Source(Protocol):
    """What the pipeline reads: an async iterator of EventBatch. `open()` starts a live stream (an absent
    camera fails there, before the run begins; a no-op for files); `aclose()` stops and releases it."""

    def __aiter__(self) -> AsyncIterator[EventBatch]: ...

    async def open(self) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Sink(Protocol):
    """What the pipeline hands each decision to. None of the calls may block the event loop.

    Not blocking means never waiting on a peer: a sink that sends over a network or to a reader queues the
    message and returns (MQTT, the live view). It may write an already-encoded line to a local file in the
    call, as logging does: to a FIFO or terminal opened O_NONBLOCK (a reader that falls behind makes the
    write return short, never wait; `sinks.jsonl` keeps the rest, bounded), or appended to a regular file,
    which lands in the page cache (O_NONBLOCK means nothing there; like a log line, it waits only when the
    kernel throttles a disk that cannot keep up).

    `publish_classes(names)` gets the model's class names in output order when they change between
    decisions (feedback added a class); every decision's `DecisionInfo.classes` carries them too.

    A `publish_*` call that raises is counted, logged and tried again later while the other sinks go on
    (`outputs.Outputs`); `check()` raises the sink's fatal error, if it has one (e.g. a broker that
    refused the login), which ends the run;
    `flush(timeout)` waits (at most `timeout` seconds) until what was handed over is delivered, True
    when it is; `close()` delivers what is pending and releases the sink.
    """

    def publish_decision(self, window: Window, decision: Decision, info: DecisionInfo) -> None: ...

    def publish_metrics(self, metrics: dict) -> None: ...

    def publish_classes(self, classes: tuple[str, ...]) -> None: ...

    def check(self) -> None: ...

    async def flush(self, timeout: float | None = None) -> bool: ...

    async def close(self) -> None: ...


class QuietSink:
    """A base for a sink that only wants decisions (a collector in a script, test or benchmark): metrics and
    class lists are ignored, it is always healthy and has nothing to flush or close. Subclasses define
    ``publish_decision``."""

    def publish_metrics(self, metrics: dict) -> None:
        pass

    def publish_classes(self, classes: tuple[str, ...]) -> None:
        pass

    def check(self) -> None:
        pass

    async def flush(self, timeout: float | None = None) -> bool:
        return True

    async def close(self) -> None:
        pass
