"""The MQTT wire schema: topics, and the JSON of a classification (built here only, from Window and Decision)."""

from __future__ import annotations

import json
import time
from typing import Any

from ..pipeline.stages import DecisionInfo, true_label_index, true_label_name

#: Version of the classification JSON. 2 added label_name, true_label_name, queue_ms and compute_ms. 3 added
#: feed_ms, the network feeding the window's last events once it took the window, which queue_ms counted until then.
#: `latency_ms` means what it meant in 1: window complete -> payload built.
SCHEMA_VERSION = 3
STATUS_ONLINE = "online"
STATUS_OFFLINE = "offline"

#: Topics under the prefix: what each carries.
TOPICS = {
    "classification": "one JSON object per decision (classification_payload), QoS from mqtt.qos",
    "status": "retained 'online' / 'offline' (also the last will)",
    "classes": "retained JSON list of the model's class names, in output order",
    "metrics": "JSON counters every pipeline.metrics_every_s, QoS 0",
    "feedback": "subscribed: true labels for recent decisions",
}

FIELDS = ("schema", "node", "source", "sample", "t_start_us", "t_end_us", "label", "label_name", "scores",
          "confidence", "events", "spikes", "queue_ms", "feed_ms", "compute_ms", "latency_ms", "model_version",
          "true_label", "true_label_name", "time")


def classification_payload(window, decision, info: DecisionInfo, *, node_id: str) -> dict:
    """The JSON object published on `<prefix>/classification` for one decision (schema SCHEMA_VERSION).

    `window`: a segment.Window (sample id, time span, true label); `decision`: the network's
    Decision (label, scores, confidence, events, spikes). `queue_ms`, `feed_ms` and `compute_ms` as in
    DecisionInfo; `latency_ms`: from the window being complete until this payload is built (the
    queue wait, the network, and the hand-back to the event loop); `time` is Unix seconds with µs
    resolution, when the payload was built. Absent values are null.
    """
    spikes = getattr(decision, "spikes", None)
    label = int(decision.label)
    return {
        "schema": SCHEMA_VERSION,
        "node": node_id,
        "source": window.source,
        "sample": None if window.sample is None else str(window.sample),
        "t_start_us": int(window.t_start_us),
        "t_end_us": int(window.t_end_us),
        "label": label,
        "label_name": info.name(label),
        "scores": [round(float(s), 6) for s in decision.scores],
        "confidence": round(float(decision.confidence), 6),
        "events": int(decision.events),
        "spikes": None if spikes is None else [int(s) for s in spikes],
        "queue_ms": round(float(info.queue_ms), 3),
        "feed_ms": round(float(info.feed_ms), 3),
        "compute_ms": round(float(info.compute_ms), 3),
        "latency_ms": round((time.monotonic() - window.ready) * 1000.0, 3),
        "model_version": info.model_version,
        "true_label": true_label_index(window, info),
        "true_label_name": true_label_name(window, info),
        "time": round(time.time(), 6),
    }


def to_json(obj: Any) -> bytes:
    """Compact JSON bytes; numpy scalars and arrays become plain numbers and lists."""
    return json.dumps(obj, separators=(",", ":"), default=_json_default).encode()


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
