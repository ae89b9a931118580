"""MQTT sink: publishes classifications, status and metrics, and receives label feedback (aiomqtt).

Topics under `prefix` (default `streamsnn/<node_id>`):

- `<prefix>/classification`: one JSON object per decision, built by `classification_payload`
  (schema `SCHEMA_VERSION`), published with the configured QoS (default 1), not retained.
- `<prefix>/status`: retained `online` on every connect; `offline` (retained) as the last will and
  on a clean `close()`.
- `<prefix>/metrics`: JSON, QoS 0, not retained. While the broker is unreachable only the latest
  metrics message is kept (older ones are dropped and counted in `counters["metrics_dropped"]`).
- `<prefix>/feedback` (subscribed when `feedback=True`): `{"sample": "60001", "label": 3}` or
  `{"t_end_us": 123456, "label": 3}`. Valid messages arrive on `sink.feedback` (an asyncio.Queue of
  `Feedback`); invalid ones are logged (one line), counted in `counters["feedback_rejected"]` by
  reason and dropped. A message the broker delivers with the retain flag set, which it does only
  for a retained message sent on (re)subscribing, is refused (reason `retained`): it would come
  again on every reconnect and restart. A message published with the retain flag while we are
  subscribed arrives without it (MQTT 3.1.1 3.3.1.3; MQTT 5 unless the subscriber asks for
  "retain as published"), so it is ordinary feedback then. The daemon decides whether a sample id
  is one it knows (and whether it may still teach that decision) and reports the ones it refuses
  with `sink.reject_feedback("unknown_sample", ...)`.

Usage (all methods must be called from the event loop's thread)::

    settings = MqttSettings(host="127.0.0.1", port=1883, node_id="cam1")
    async with MqttSink(settings, n_classes=10) as sink:   # or: await sink.start() ... await sink.close()
        sink.publish_decision(classification_payload(decision, node_id="cam1", source="...",
                                                     sample="60001", latency_ms=1.2, model_version="v3"))
        sink.publish_metrics({"decisions": 1})
        fb = await sink.feedback.get()                      # Feedback(sample=..., t_end_us=..., label=...)

Delivery: `publish_decision` never blocks; the JSON goes into a bounded outbox (`outbox_size`; when
full the oldest is dropped and counted in `counters["outbox_overflow"]`). A background task keeps one
`aiomqtt.Client` connection (reconnecting with exponential backoff and jitter) and removes a message
from the outbox only once its publish completed (PUBACK at QoS 1), so a broker outage loses nothing
that fits the outbox; after a reconnect unacknowledged messages are sent again (QoS 1 duplicates).
`close(timeout)` drains the outbox, publishes `offline` and disconnects.

API: `MqttSettings(host, port, node_id, prefix=None, qos=1, username=None, password=None, tls=None,
keepalive=30, timeout=10.0, outbox_size=10_000, inflight=20, reconnect_min=0.5, reconnect_max=30.0,
client_id=None, feedback=True, max_feedback_bytes=4096)`; `MqttSink(settings, *, n_classes=None)` with
`start()`, `close(timeout=10)`, `flush(timeout=None) -> bool`, `publish_decision(dict)`,
`publish_metrics(dict)`, `publish(topic, bytes, retain=False)`, `reject_feedback(reason, detail)`,
`stats() -> dict`, `check()`, `.feedback` (asyncio.Queue[Feedback]), `.connected` (asyncio.Event),
`.counters`; `classification_payload(...)`, `parse_feedback(payload, *, n_classes, max_bytes)`,
`make_client(settings, ...)` (one aiomqtt.Client per connection attempt, also used by
`streamsnn.sources.mqtt`).

A broker that refuses the login (or fails TLS verification) before the first successful connection
is not retried: `start()` raises `ConfigError` (also kept in `sink.error`, raised by `sink.check()`).
If a broker that accepted us once refuses later, the sink logs that error line and keeps retrying
at the backoff pace, holding the outbox. The password never appears in logs or in `repr(settings)`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import random
import re
import socket
import ssl
import time
import uuid
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from ..errors import ConfigError, StreamsnnError
from ..mqtt_probe import PROBE_TIMEOUT, tls_mismatch

log = logging.getLogger("streamsnn.mqtt")
#: paho/aiomqtt protocol chatter goes here (DEBUG); it never contains the password.
PAHO_LOG = logging.getLogger("streamsnn.mqtt.protocol")

SCHEMA_VERSION = 1
STATUS_ONLINE = "online"
STATUS_OFFLINE = "offline"
FEEDBACK_KEYS = frozenset({"sample", "t_end_us", "label"})


# -- settings -----------------------------------------------------------------------------------

@dataclass
class TlsSettings:
    """TLS for the broker connection: CA file to verify the broker, optional client certificate."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False  # skip the broker host name check (the certificate chain is still verified)


def _default_node_id() -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()) or "node"


@dataclass
class MqttSettings:
    """Where and how to talk to the broker. Invalid values raise ConfigError naming `mqtt.<field>`."""

    host: str = "127.0.0.1"
    port: int = 1883
    node_id: str = field(default_factory=_default_node_id)
    prefix: str | None = None          # default streamsnn/<node_id>
    qos: int = 1
    username: str | None = None
    password: str | None = None        # never logged, hidden in repr
    tls: TlsSettings | None = None
    keepalive: int = 30
    timeout: float = 10.0              # connect / subscribe / publish acknowledgement timeout, seconds
    outbox_size: int = 10_000
    inflight: int = 20                 # publishes awaiting PUBACK at once
    reconnect_min: float = 0.5         # backoff, seconds
    reconnect_max: float = 30.0
    client_id: str | None = None       # default streamsnn-<node_id>-<random>
    feedback: bool = True
    max_feedback_bytes: int = 4096

    def __post_init__(self) -> None:
        if isinstance(self.tls, dict):
            try:
                self.tls = TlsSettings(**self.tls)
            except TypeError as exc:
                raise ConfigError(f"mqtt.tls: {exc}; allowed keys are ca_file, cert_file, key_file, insecure") from None
        if not self.host:
            raise ConfigError("mqtt.host is empty; give the broker's host name or address")
        if not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise ConfigError(f"mqtt.port must be 1..65535, got {self.port!r}")
        if not self.node_id or re.search(r"[/+#\s]", self.node_id):
            raise ConfigError(f"mqtt.node_id {self.node_id!r} must be non-empty without '/', '+', '#' or spaces")
        if self.prefix is None:
            self.prefix = f"streamsnn/{self.node_id}"
        self.prefix = self.prefix.rstrip("/")
        if not self.prefix or "+" in self.prefix or "#" in self.prefix:
            raise ConfigError(f"mqtt.prefix {self.prefix!r} must be a non-empty topic without wildcards (+, #)")
        if self.qos not in (0, 1, 2):
            raise ConfigError(f"mqtt.qos must be 0, 1 or 2, got {self.qos!r}")
        for name in ("keepalive", "outbox_size", "inflight", "max_feedback_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"mqtt.{name} must be a positive integer, got {value!r}")
        if not 0 < self.reconnect_min <= self.reconnect_max:
            raise ConfigError(f"mqtt.reconnect_min ({self.reconnect_min}) must be > 0 and <= mqtt.reconnect_max "
                              f"({self.reconnect_max})")
        if self.timeout <= 0:
            raise ConfigError(f"mqtt.timeout must be positive, got {self.timeout!r}")
        if self.password is not None and self.username is None:
            raise ConfigError("mqtt.password is set without mqtt.username; set both or neither")
        if self.tls is not None:
            for name in ("ca_file", "cert_file", "key_file"):
                path = getattr(self.tls, name)
                if path is not None and not Path(path).is_file():
                    raise ConfigError(f"mqtt.tls.{name}: file not found: {path}")
            if (self.tls.cert_file is None) != (self.tls.key_file is None):
                raise ConfigError("mqtt.tls.cert_file and mqtt.tls.key_file go together; set both or neither")
            _check_tls_files(self.tls)
        if self.client_id is None:
            self.client_id = f"streamsnn-{self.node_id}-{uuid.uuid4().hex[:6]}"

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "password" and value is not None:
                value = "***"
            parts.append(f"{f.name}={value!r}")
        return f"MqttSettings({', '.join(parts)})"

    @property
    def address(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def topic(self, name: str) -> str:
        return f"{self.prefix}/{name}"


def _check_tls_files(tls: TlsSettings) -> None:
    """ConfigError naming the file when the CA file or the client certificate and key are not usable PEM."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if tls.ca_file is not None:
        try:
            ctx.load_verify_locations(cafile=tls.ca_file)
        except (ssl.SSLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise ConfigError(f"mqtt.tls.ca_file: {tls.ca_file} holds no usable certificate ({reason}); "
                              "give the broker's CA certificate in PEM") from None
    if tls.cert_file is not None:
        try:
            ctx.load_cert_chain(tls.cert_file, tls.key_file)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigError(f"mqtt.tls.cert_file/key_file: {tls.cert_file} and {tls.key_file} are not a "
                              f"matching PEM certificate and key ({getattr(exc, 'reason', None) or exc})") from None


class ProtocolLog(logging.LoggerAdapter):
    """The protocol logger of one client: forwards to PAHO_LOG and remembers the last error line
    (a TLS alert such as "certificate required" only shows up there). paho's error lines (a lost
    socket during an outage) go out at DEBUG: the sink reports the outage itself, with this text."""

    def __init__(self) -> None:
        super().__init__(PAHO_LOG, {})
        self.last_error: str | None = None

    def log(self, level, msg, *args, **kwargs):  # noqa: ANN001, ANN201
        if level >= logging.ERROR and not kwargs.get("exc_info"):
            with contextlib.suppress(Exception):
                self.last_error = str(msg) % args if args else str(msg)
            level = logging.DEBUG
        super().log(level, msg, *args, **kwargs)


def protocol_error(client: aiomqtt.Client | None) -> str | None:
    """The last error paho reported for this client (e.g. the socket error behind a disconnect)."""
    return getattr(getattr(client, "_logger", None), "last_error", None)


def make_client(settings: MqttSettings, *, will: aiomqtt.Will | None = None,
                protocol: aiomqtt.ProtocolVersion | None = None, client_id: str | None = None,
                clean_session: bool | None = None) -> aiomqtt.Client:
    """One aiomqtt.Client for one connection attempt, with credentials and TLS from the settings."""
    tls_params = None
    tls_insecure = None
    if settings.tls is not None:
        tls_params = aiomqtt.TLSParameters(ca_certs=settings.tls.ca_file, certfile=settings.tls.cert_file,
                                           keyfile=settings.tls.key_file, cert_reqs=ssl.CERT_REQUIRED,
                                           tls_version=ssl.PROTOCOL_TLS_CLIENT)
        tls_insecure = bool(settings.tls.insecure)
    client = aiomqtt.Client(
        settings.host, settings.port, username=settings.username, password=settings.password,
        identifier=client_id or settings.client_id, will=will, protocol=protocol, clean_session=clean_session,
        keepalive=settings.keepalive, timeout=settings.timeout, tls_params=tls_params, tls_insecure=tls_insecure,
        logger=ProtocolLog(), socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )
    client.pending_calls_threshold = settings.inflight + 50
    return client


def fatal_connect_error(exc: BaseException, settings: MqttSettings,
                        client: aiomqtt.Client | None = None) -> StreamsnnError | None:
    """ConfigError for a refused login or a failed TLS verification, None for transient errors."""
    detail = protocol_error(client)
    if detail and "SSL" in detail and not getattr(client, "_connected_once", False):
        what = ("present a client certificate (mqtt.tls.cert_file, mqtt.tls.key_file)"
                if "CERTIFICATE_REQUIRED" in detail.upper() else "check mqtt.tls")
        return ConfigError(f"TLS connection to MQTT broker {settings.address} failed ({detail}); the "
                           f"broker closed the connection: {what}")
    if isinstance(exc, MqttConnectError):
        code = getattr(exc.rc, "value", exc.rc)
        if code in (4, 5, 134, 135):  # MQTT 3.1.1 / 5 "bad user name or password", "not authorized"
            who = "the configured username" if settings.username else "an anonymous login"
            return ConfigError(f"MQTT broker {settings.address} refused {who} ({exc}); check mqtt.username and "
                               "mqtt.password, or the broker's password file and ACL")
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text or "hostname" in text.lower():
        return ConfigError(f"TLS connection to MQTT broker {settings.address} failed ({text}); check "
                           "mqtt.tls.ca_file and that the broker's certificate names this host "
                           "(mqtt.tls.insecure skips the host name check)")
    if isinstance(exc, aiomqtt.MqttError) and "SSL" in text:
        return ConfigError(f"TLS connection to MQTT broker {settings.address} failed ({text}); check mqtt.tls "
                           "and that the broker listens with TLS on that port")
    return None


class Backoff:
    """Exponential backoff with full jitter between `low` and `high` seconds."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high, self.attempt = low, high, 0

    def reset(self) -> None:
        self.attempt = 0

    def next(self) -> float:
        cap = min(self.high, self.low * 2 ** self.attempt)
        self.attempt = min(self.attempt + 1, 30)
        return random.uniform(self.low, max(self.low, cap))


# -- payloads -----------------------------------------------------------------------------------

def classification_payload(decision: Any, *, node_id: str, source: str | None, sample: str | None = None,
                           window: tuple[int, int] | None = None, latency_ms: float,
                           model_version: str | None, true_label: int | None = None) -> dict:
    """The JSON object published on `<prefix>/classification` for one decision (schema SCHEMA_VERSION).

    `decision` has `label`, `scores`, `confidence`, `events` (and optionally `spikes`), like
    `streamsnn.snn.network.Decision`. `sample` is the sample id (dataset replay), `window` the
    (start, end) timestamps in µs of the events the decision used (live streams; may be given too).

    Fields: schema, node, source, sample, t_start_us, t_end_us, label, scores, confidence, events,
    spikes, latency_ms, model_version, true_label, time (Unix seconds with µs resolution, when the
    payload was built).
    Absent values are null.
    """
    t_start, t_end = (None, None) if window is None else (int(window[0]), int(window[1]))
    spikes = getattr(decision, "spikes", None)
    return {
        "schema": SCHEMA_VERSION,
        "node": node_id,
        "source": source,
        "sample": None if sample is None else str(sample),
        "t_start_us": t_start,
        "t_end_us": t_end,
        "label": int(decision.label),
        "scores": [round(float(s), 6) for s in decision.scores],
        "confidence": round(float(decision.confidence), 6),
        "events": int(decision.events),
        "spikes": None if spikes is None else [int(s) for s in spikes],
        "latency_ms": round(float(latency_ms), 3),
        "model_version": model_version,
        "true_label": None if true_label is None else int(true_label),
        "time": round(time.time(), 6),
    }


@dataclass(frozen=True)
class Feedback:
    """A true label for a recent decision, named by sample id or by the window's end timestamp."""

    label: int
    sample: str | None = None
    t_end_us: int | None = None


class FeedbackRejected(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def parse_feedback(payload: bytes | str, *, n_classes: int | None = None, max_bytes: int = 4096) -> Feedback:
    """Validate one feedback message; FeedbackRejected(reason, detail) if it is not acceptable.

    Reasons: oversized, bad_json, not_object, unknown_keys, missing_label, missing_target (neither or
    both of sample / t_end_us), wrong_type, label_out_of_range.
    """
    raw = payload.encode() if isinstance(payload, str) else bytes(payload)
    if len(raw) > max_bytes:
        raise FeedbackRejected("oversized", f"{len(raw)} bytes, more than {max_bytes}")
    try:
        msg = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FeedbackRejected("bad_json", f"not JSON: {str(exc)[:80]}") from None
    except RecursionError:
        raise FeedbackRejected("bad_json", "JSON nested too deeply") from None
    if not isinstance(msg, dict):
        raise FeedbackRejected("not_object", f"expected a JSON object, got {type(msg).__name__}")
    unknown = sorted(set(msg) - FEEDBACK_KEYS)
    if unknown:
        raise FeedbackRejected("unknown_keys", f"unknown key(s) {', '.join(k[:40] for k in unknown[:5])}; "
                                               "allowed: sample or t_end_us, and label")
    if "label" not in msg:
        raise FeedbackRejected("missing_label", "no 'label'")
    if ("sample" in msg) == ("t_end_us" in msg):
        raise FeedbackRejected("missing_target", "give exactly one of 'sample' and 't_end_us'")
    label = msg["label"]
    if not _is_int(label):
        raise FeedbackRejected("wrong_type", f"'label' must be an integer, got {type(label).__name__}")
    if label < 0 or (n_classes is not None and label >= n_classes):
        limit = f"0..{n_classes - 1}" if n_classes is not None else ">= 0"
        raise FeedbackRejected("label_out_of_range", f"label {label} is outside {limit}")
    if "sample" in msg:
        sample = msg["sample"]
        if not (isinstance(sample, str) or _is_int(sample)) or sample == "":
            raise FeedbackRejected("wrong_type", f"'sample' must be a non-empty string or integer, "
                                                 f"got {type(sample).__name__}")
        return Feedback(label=label, sample=str(sample))
    t_end = msg["t_end_us"]
    if not _is_int(t_end):
        raise FeedbackRejected("wrong_type", f"'t_end_us' must be an integer, got {type(t_end).__name__}")
    return Feedback(label=label, t_end_us=t_end)


# -- the sink -----------------------------------------------------------------------------------

@dataclass
class _Out:
    seq: int
    topic: str
    payload: bytes
    retain: bool = False


class MqttSink:
    """Publishes decisions through a bounded outbox and receives feedback (see the module docstring)."""

    LOG_REJECTIONS = 20  # rejections logged per reason at WARNING; further ones at DEBUG

    def __init__(self, settings: MqttSettings, *, n_classes: int | None = None, feedback_queue: int = 1000) -> None:
        self.settings = settings
        self.n_classes = n_classes
        self.outbox: collections.deque[_Out] = collections.deque()
        self.feedback: asyncio.Queue[Feedback] = asyncio.Queue(maxsize=feedback_queue)
        self.counters: dict[str, Any] = {
            "published": 0, "outbox_overflow": 0, "connects": 0, "reconnects": 0, "disconnects": 0,
            "metrics_published": 0, "metrics_dropped": 0, "feedback_ok": 0,
            "feedback_rejected": collections.Counter(),
        }
        self.error: StreamsnnError | None = None
        self.connected = asyncio.Event()
        self._seq = 0
        self._metrics: bytes | None = None
        self._wake = asyncio.Event()
        self._first_attempt = asyncio.Event()
        self._closing = False
        self._abandon = False
        self._emptied = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._sender: _Sender | None = None  # the live connection's sender, while one drains

    # topics
    @property
    def topic_classification(self) -> str:
        return self.settings.topic("classification")

    @property
    def topic_status(self) -> str:
        return self.settings.topic("status")

    @property
    def topic_metrics(self) -> str:
        return self.settings.topic("metrics")

    @property
    def topic_feedback(self) -> str:
        return self.settings.topic("feedback")

    # lifecycle
    async def start(self, wait: float | None = None) -> None:
        """Start the connection task and wait for the first connection attempt to finish.

        Raises ConfigError if the broker refuses the login. If the broker cannot be reached, logs a
        warning and returns: decisions wait in the outbox until the broker comes up.
        """
        if self._task is not None:
            return
        self._task = asyncio.create_task(self._run(), name="mqtt-sink")
        first = asyncio.create_task(self._first_attempt.wait())
        if wait is None:  # one connection attempt, and the probe that tells a TLS mix-up from an outage
            wait = self.settings.timeout + PROBE_TIMEOUT + 1
        await asyncio.wait({first, self._task}, timeout=wait,
                           return_when=asyncio.FIRST_COMPLETED)
        first.cancel()
        if self.error is not None:
            raise self.error

    async def close(self, timeout: float = 10.0) -> None:
        """Drain the outbox (up to `timeout` seconds), publish retained `offline`, disconnect.

        Decisions still in the outbox after `timeout` are given up (logged with their number), but
        `offline` is still published if the broker is connected.
        """
        if self._task is None:
            return
        self._closing = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except asyncio.TimeoutError:
            if self.connected.is_set():
                self._abandon = True  # stop draining: publish offline and leave
                self._wake.set()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._task), min(2.0, self.settings.timeout))
        if not self._task.done():
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self.outbox:
            log.warning("MQTT broker %s: %d decision(s) left undelivered at shutdown", self.settings.address,
                        len(self.outbox))
        self.connected.clear()

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued decision has been delivered; False if `timeout` passed first."""
        try:
            await asyncio.wait_for(self._until_empty(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def _until_empty(self) -> None:
        while self.outbox:
            self._emptied.clear()
            await self._emptied.wait()

    stop = close

    async def __aenter__(self) -> "MqttSink":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def check(self) -> None:
        """Raise the fatal error (refused login, TLS failure) that stopped the sink, if any."""
        if self.error is not None:
            raise self.error

    # publishing
    def publish_decision(self, payload: dict) -> None:
        """Queue one classification JSON for `<prefix>/classification`; never blocks."""
        self.publish(self.topic_classification, json.dumps(payload, separators=(",", ":")).encode())

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Queue any message for reliable delivery through the outbox (drops the oldest when full)."""
        self._seq += 1
        self.outbox.append(_Out(self._seq, topic, payload, retain))
        while len(self.outbox) > self.settings.outbox_size:
            self.outbox.popleft()
            self.counters["outbox_overflow"] += 1
        if self._sender is not None and not self._closing:
            try:
                self._sender.send(self.outbox)  # on the wire now if the window has room
            except Exception:  # noqa: BLE001 - the drain loop meets the same failure and reconnects
                pass
        self._wake.set()

    def publish_metrics(self, metrics: dict) -> None:
        """Publish metrics JSON on `<prefix>/metrics` (QoS 0); while offline only the latest is kept."""
        if self._metrics is not None:
            self.counters["metrics_dropped"] += 1
        self._metrics = json.dumps(metrics, separators=(",", ":"), default=_json_default).encode()
        self._wake.set()

    def reject_feedback(self, reason: str, detail: str = "") -> None:
        """Count and log one rejected feedback message (e.g. reason "unknown_sample")."""
        rejected = self.counters["feedback_rejected"]
        rejected[reason] += 1
        level = logging.WARNING if rejected[reason] <= self.LOG_REJECTIONS else logging.DEBUG
        log.log(level, "feedback on %s ignored (%s): %s", self.topic_feedback, reason, detail)

    def stats(self) -> dict:
        """Counters as plain JSON-ready values, plus the outbox depth and connection state."""
        out = {k: (dict(v) if isinstance(v, collections.Counter) else v) for k, v in self.counters.items()}
        out["outbox"] = len(self.outbox)
        out["connected"] = self.connected.is_set()
        return out

    # background work
    async def _run(self) -> None:
        s = self.settings
        backoff = Backoff(s.reconnect_min, s.reconnect_max)
        will = aiomqtt.Will(self.topic_status, STATUS_OFFLINE, qos=1, retain=True)
        while True:
            client = make_client(s, will=will)
            try:
                async with client:
                    client._connected_once = True  # later protocol errors are not login problems
                    self.counters["connects"] += 1
                    if self.counters["connects"] > 1:
                        self.counters["reconnects"] += 1
                    backoff.reset()
                    await client.publish(self.topic_status, STATUS_ONLINE, qos=1, retain=True)
                    if s.feedback:
                        await client.subscribe(self.topic_feedback, qos=min(s.qos, 1))
                    self.connected.set()
                    self._first_attempt.set()
                    log.info("connected to MQTT broker %s as %s (prefix %s)", s.address, s.client_id, s.prefix)
                    if await _first_of(self._drain(client), self._receive(client)):
                        log.info("disconnected from MQTT broker %s (closing)", s.address)
                        return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of one connection means: reconnect
                self.connected.clear()
                if getattr(client, "_connected_once", False):
                    self.counters["disconnects"] += 1
                fatal = fatal_connect_error(exc, s, client)
                if fatal is None and not self.counters["connects"]:
                    fatal = await asyncio.to_thread(tls_mismatch, s)
                if fatal is not None and not self.counters["connects"]:
                    self.error = fatal  # never connected: a configuration problem, stop and say so
                    self._first_attempt.set()
                    log.error("%s", fatal)
                    return
                delay = backoff.next()
                if fatal is not None:  # worked before (e.g. the broker's password file changed): keep trying
                    log.error("%s; %d decision(s) buffered, retrying in %.1f s", fatal, len(self.outbox), delay)
                else:
                    log.warning("MQTT broker %s unavailable (%s); %d decision(s) buffered, retrying in %.1f s",
                                s.address, failure_reason(exc, client), len(self.outbox), delay)
                self._first_attempt.set()
                await asyncio.sleep(delay)
            finally:
                self.connected.clear()

    async def _drain(self, client: aiomqtt.Client) -> bool:
        """Publish the outbox in order with a sliding window of `inflight` unacknowledged messages.

        A message leaves the outbox only when it and every older one were acknowledged; on any
        failure the exception ends this connection and the next one starts again from the oldest.
        While this runs, `publish()` hands a new message to paho at once (see `_Sender`), so it is on
        the wire one event-loop turn after `publish_decision`; this loop handles acknowledgements, timeouts,
        metrics and closing.
        """
        s = self.settings
        sender = _Sender(client, s, self._wake)
        acked: set[int] = set()
        self._sender = sender
        try:
            while True:
                self._wake.clear()
                for seq in sender.completed():  # raises when a PUBACK is overdue (connection stalled)
                    acked.add(seq)
                while self.outbox and self.outbox[0].seq in acked:
                    acked.discard(self.outbox.popleft().seq)
                    self.counters["published"] += 1
                if not self.outbox:
                    acked.clear()
                    self._emptied.set()
                elif len(acked) > 4 * s.inflight:  # acknowledged, then dropped by an outbox overflow
                    acked = {q for q in acked if q >= self.outbox[0].seq}
                if self._closing and ((not self.outbox and not sender.inflight) or self._abandon):
                    self._sender = None
                    await client.publish(self.topic_status, STATUS_OFFLINE, qos=1, retain=True)
                    return True
                if self._metrics is not None:
                    metrics, self._metrics = self._metrics, None
                    await client.publish(self.topic_metrics, metrics, qos=0)
                    self.counters["metrics_published"] += 1
                sender.send(self.outbox)
                await self._wake.wait()
        finally:
            self._sender = None
            sender.forget()

    async def _receive(self, client: aiomqtt.Client) -> bool:
        async for msg in client.messages:
            try:
                if msg.retain:  # would be applied again on every reconnect and restart
                    self.reject_feedback("retained", "publish feedback without the retain flag")
                    continue
                self._on_feedback(msg.payload)
            except Exception as exc:  # noqa: BLE001 - never let one message stop the receive loop
                self.reject_feedback("error", f"unexpected {type(exc).__name__} while handling it: {str(exc)[:200]}")
        return False

    def _on_feedback(self, payload: Any) -> None:
        if payload is None:
            payload = b""
        elif not isinstance(payload, (bytes, bytearray, str)):
            payload = str(payload)
        try:
            fb = parse_feedback(payload, n_classes=self.n_classes, max_bytes=self.settings.max_feedback_bytes)
        except FeedbackRejected as exc:
            self.reject_feedback(exc.reason, str(exc))
            return
        try:
            self.feedback.put_nowait(fb)
        except asyncio.QueueFull:
            self.reject_feedback("queue_full", "the daemon is not consuming feedback fast enough")
            return
        self.counters["feedback_ok"] += 1


class _Sender:
    """Sends outbox messages on one connection, in order, at most `inflight` unacknowledged at once.

    aiomqtt's `publish()` coroutine costs two tasks, an event and a timer per message and puts the
    message on the wire only a few event-loop turns later; this hands it to paho at once and writes
    it out in the next turn (`loop_write`, the call aiomqtt's writer callback makes). The PUBACK (or, at QoS 0, the
    write) marks paho's message info as published and sets `wake` through aiomqtt's pending-publish
    table, exactly as aiomqtt's own `publish()` is woken.
    """

    def __init__(self, client: aiomqtt.Client, settings: MqttSettings, wake: asyncio.Event) -> None:
        self.client, self.settings, self.wake = client, settings, wake
        self.paho = client._client  # noqa: SLF001 - aiomqtt's paho client
        self.pending = client._pending_publishes  # noqa: SLF001 - mid -> object with set()
        self.inflight: dict[int, tuple[Any, float]] = {}  # seq -> (paho MQTTMessageInfo, sent at)
        self.sent_upto = 0  # highest sequence number handed to this connection
        self._timer: asyncio.TimerHandle | None = None

    def send(self, outbox: collections.deque) -> None:
        s = self.settings
        if len(self.inflight) >= s.inflight or not outbox or outbox[-1].seq <= self.sent_upto:
            return
        sent = False
        for out in outbox:
            if out.seq <= self.sent_upto:
                continue
            info = self.paho.publish(out.topic, out.payload, s.qos, out.retain)
            if info.rc != 0:
                raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
            if not info.is_published():
                self.pending[info.mid] = self.wake
            self.inflight[out.seq] = (info, time.monotonic())
            self.sent_upto = out.seq
            sent = True
            if len(self.inflight) >= s.inflight:
                break
        if sent:
            # paho asked aiomqtt to watch the socket for writing (queued with call_soon_threadsafe);
            # writing right after that callback runs (not before: aiomqtt's unregister is immediate,
            # so the watch would then stay on and spin) saves the turn spent waiting for "writable".
            asyncio.get_running_loop().call_soon(self._flush)
            self._arm()

    def _flush(self) -> None:
        if self.paho._sock is None:  # noqa: SLF001 - disconnected meanwhile: the drain reconnects
            return
        try:  # what the socket does not take now goes out from aiomqtt's writer callback
            self.paho.loop_write()
        except Exception:  # noqa: BLE001 - a broken connection: the receive side ends it and reconnects
            self.wake.set()

    def completed(self) -> list[int]:
        """Sequence numbers acknowledged since the last call; MqttError when the oldest is overdue."""
        done = [seq for seq, (info, _) in self.inflight.items() if info.is_published()]
        for seq in done:
            info, _ = self.inflight.pop(seq)
            self.pending.pop(info.mid, None)
        if self.inflight:
            oldest = min(t for _, t in self.inflight.values())
            if time.monotonic() - oldest > self.settings.timeout:
                raise aiomqtt.MqttError(f"publish not acknowledged within {self.settings.timeout:g} s")
        return done

    def _arm(self) -> None:
        """Wake the drain when the oldest publish would be overdue (checked in `completed`)."""
        if self._timer is None or self._timer.cancelled() or self._timer.when() < asyncio.get_running_loop().time():
            self._timer = asyncio.get_running_loop().call_later(self.settings.timeout + 0.05, self._expire)

    def _expire(self) -> None:
        self._timer = None
        if self.inflight:
            self.wake.set()
            self._arm()

    def forget(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for info, _ in self.inflight.values():
            if self.pending.get(info.mid) is self.wake:
                del self.pending[info.mid]
        self.inflight.clear()


async def _first_of(*coros) -> bool:
    """Run coroutines together; when the first one finishes, cancel the rest and return its result."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()
    return next(iter(done)).result()


def failure_reason(exc: BaseException, client: aiomqtt.Client | None) -> str:
    """Short reason for a failed connection: the exception, plus paho's socket error if any."""
    text = str(exc) or type(exc).__name__
    detail = protocol_error(client)
    return f"{text}: {detail}" if detail and detail not in text else text


def _json_default(value: Any) -> Any:
    """numpy scalars and arrays in metrics."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
