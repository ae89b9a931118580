"""MQTT sink: publishes classifications, class names, status and metrics through an outbox; receives feedback.

Topics under `prefix` (default `streamsnn/<node_id>`), see `schema.TOPICS`:

- `<prefix>/classification`: one JSON object per decision (`schema.classification_payload`),
  published with the configured QoS (default 1), not retained.
- `<prefix>/classes`: retained JSON list of the model's class names, sent again when they change.
- `<prefix>/status`: retained `online` on every connect; `offline` (retained) as the last will and
  on a clean `close()`.
- `<prefix>/metrics`: JSON, QoS 0, not retained. While the broker is unreachable only the latest
  metrics message is kept (older ones are dropped and counted in `counters["metrics_dropped"]`).
- `<prefix>/feedback` (subscribed when `settings.feedback`): each message goes, as it arrived
  (`feedback.Message`: payload and retain flag), onto `sink.feedback`, a bounded asyncio.Queue;
  the pipeline checks and counts it (`streamsnn.pipeline.feedback`). A full queue drops the message
  (`counters["feedback_dropped"]`).
- Home Assistant discovery configs (`discovery.Discovery`), retained, when given.

Usage (all methods must be called from the event loop's thread)::

    settings = MqttSettings(host="127.0.0.1", port=1883, node_id="cam1")
    async with MqttSink(settings) as sink:          # or: await sink.start() ... await sink.close()
        sink.publish_decision(window, decision, info)
        sink.publish_metrics({"decisions": 1})
        msg = await sink.feedback.get()             # feedback.Message(payload=b'{...}', retained=False)

Delivery: `publish_decision` never blocks; the JSON goes into a bounded outbox (`outbox_size`; when
full the oldest is dropped and counted in `counters["outbox_overflow"]`). One background task keeps
the connection (`connection.Connection`: reconnects with backoff) and sends the outbox in order,
at most `inflight` publishes awaiting their PUBACK at once (each an `aiomqtt.Client.publish` task);
a message leaves the outbox only when it and every older one were acknowledged, so a broker outage
loses nothing that fits the outbox; after a reconnect unacknowledged messages are sent again (QoS 1
duplicates). `close(timeout)` drains the outbox, publishes `offline` and disconnects.

A broker that refuses the login (or fails TLS verification) before the first successful connection
is not retried: `start()` raises ConfigError (kept in `sink.error`, raised by `sink.check()`, which
also raises any unexpected error that ended the connection task). The password never appears in
logs or in `repr(settings)`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import aiomqtt

from ..errors import StageFailed, StreamsnnError
from ..pipeline.feedback import Message
from .connection import Connection
from .inflight import Inflight
from .probe import PROBE_TIMEOUT
from .schema import STATUS_OFFLINE, STATUS_ONLINE, classification_payload, to_json
from .settings import MqttSettings

log = logging.getLogger("streamsnn.mqtt")


@dataclass
class _Out:
    seq: int
    topic: str
    payload: bytes
    retain: bool = False


class MqttSink:
    """Publishes decisions through a bounded outbox and receives feedback (see the module docstring)."""

    def __init__(self, settings: MqttSettings, *, feedback_queue: int = 1000, discovery=None) -> None:
        self.settings = settings
        self.discovery = discovery
        self.outbox: collections.deque[_Out] = collections.deque()
        self.feedback: asyncio.Queue[Message] = asyncio.Queue(maxsize=feedback_queue)
        self._counts: dict[str, Any] = {
            "published": 0, "outbox_overflow": 0, "metrics_published": 0, "metrics_dropped": 0,
            "feedback_received": 0, "feedback_dropped": 0,
        }
        self.conn = Connection(settings, will=aiomqtt.Will(self.topic_status, STATUS_OFFLINE, qos=1, retain=True),
                               waiting=lambda: f"; {len(self.outbox)} decision(s) buffered")
        self._classes: tuple[str, ...] | None = None
        self._seq = 0
        self._metrics: bytes | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._abandon = False
        self._emptied = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._inflight: Inflight | None = None  # the live connection's publishes, while one drains

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

    @property
    def topic_classes(self) -> str:
        return self.settings.topic("classes")

    @property
    def connected(self) -> asyncio.Event:
        return self.conn.connected

    @property
    def error(self) -> StreamsnnError | None:
        return self.conn.error

    # lifecycle
    async def start(self, wait: float | None = None) -> None:
        """Start the connection task and wait for the first connection attempt to finish.

        Raises ConfigError if the broker refuses the login. If the broker cannot be reached, logs a
        warning and returns: decisions wait in the outbox until the broker comes up.
        """
        if self._task is not None:
            return
        if self.discovery is not None:
            for topic, payload in self.discovery.configs():
                self.publish(topic, payload, retain=True)
        self._task = asyncio.create_task(self.conn.run(self._session), name="mqtt-sink")
        first = asyncio.create_task(self.conn.attempted.wait())
        if wait is None:  # one connection attempt, and the probe that tells a TLS mix-up from an outage
            wait = self.settings.timeout + PROBE_TIMEOUT + 1
        await asyncio.wait({first, self._task}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        first.cancel()
        self.check()

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
        except TimeoutError:
            if self.connected.is_set():
                self._abandon = True  # stop draining: publish offline and leave
                self._wake.set()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._task), min(2.0, self.settings.timeout))
        except Exception:  # noqa: BLE001 - a defect in the task: reported by check(), still close
            pass
        if not self._task.done():
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        if self.outbox:
            decisions = sum(1 for o in self.outbox if o.topic == self.topic_classification)
            others = len(self.outbox) - decisions  # the class names, discovery configs
            log.warning("MQTT broker %s: %d decision(s)%s left undelivered at shutdown", self.settings.address,
                        decisions, f" and {others} other message(s)" if others else "")
        self.connected.clear()

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued message has been delivered; False if `timeout` passed first, or at once
        while the broker is away (the outbox then waits for it, up to `close()`)."""
        if self.outbox and not self.connected.is_set():
            return False
        try:
            await asyncio.wait_for(self._until_empty(), timeout)
        except TimeoutError:
            return False
        return True

    async def _until_empty(self) -> None:
        while self.outbox:
            self._emptied.clear()
            await self._emptied.wait()

    async def __aenter__(self) -> MqttSink:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def check(self) -> None:
        """Raise the fatal error (refused login, TLS failure) or the defect that stopped the sink, if any."""
        if self.error is not None:
            raise self.error
        task = self._task
        if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            raise StageFailed(f"the MQTT connection failed: {type(exc).__name__}: {exc}; this is a defect, "
                              "please report it (run with -v for the traceback)") from exc

    # publishing
    def publish_decision(self, window, decision, info) -> None:
        """Queue the classification JSON of one decision (and the class names when they changed); never blocks."""
        self.publish_classes(info.classes)
        payload = classification_payload(window, decision, info, node_id=self.settings.node_id)
        self.publish(self.topic_classification, to_json(payload))

    def publish_classes(self, classes) -> None:
        """Queue the retained class list now (a class was added); unchanged names are not sent again."""
        classes = tuple(str(c) for c in classes)
        if classes != self._classes:
            self._classes = classes
            self.publish(self.topic_classes, to_json(list(classes)), retain=True)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Queue any message for reliable delivery through the outbox (drops the oldest when full)."""
        self._seq += 1
        self.outbox.append(_Out(self._seq, topic, payload, retain))
        while len(self.outbox) > self.settings.outbox_size:
            self.outbox.popleft()
            self._counts["outbox_overflow"] += 1
            n = self._counts["outbox_overflow"]
            if n & (n - 1) == 0:  # the 1st, 2nd, 4th, 8th, ...: said, not once per message (the metrics count them all)
                log.warning("the outbox is full (mqtt.outbox = %d): %d message(s) dropped so far, the oldest first",
                            self.settings.outbox_size, n)
        if self._inflight is not None and not self._closing:
            self._inflight.fill(self.outbox)  # on its way now if the window has room
        self._wake.set()

    def publish_metrics(self, metrics: dict) -> None:
        """Publish metrics JSON on `<prefix>/metrics` (QoS 0); while offline only the latest is kept."""
        if self._metrics is not None:
            self._counts["metrics_dropped"] += 1
        self._metrics = to_json(metrics)
        self._wake.set()

    @property
    def counters(self) -> dict:
        """published, outbox_overflow, metrics_published/_dropped, feedback_received/_dropped, connects,
        reconnects, disconnects, incoming_dropped (received messages aiomqtt's bounded queue dropped)."""
        return {**self._counts, "connects": self.conn.connects, "reconnects": max(0, self.conn.connects - 1),
                "disconnects": self.conn.disconnects, "incoming_dropped": self.conn.incoming_dropped}

    def stats(self) -> dict:
        """Counters as plain JSON-ready values, plus the outbox depth and connection state."""
        return {**self.counters, "outbox": len(self.outbox), "connected": self.connected.is_set()}

    # background work
    async def _session(self, client: aiomqtt.Client) -> bool:
        s = self.settings
        await client.publish(self.topic_status, STATUS_ONLINE, qos=1, retain=True)
        if self._classes is not None:  # again on every connect: an outbox overflow may have dropped them
            await client.publish(self.topic_classes, to_json(list(self._classes)), qos=1, retain=True)
        if s.feedback:
            await client.subscribe(self.topic_feedback, qos=min(s.qos, 1))
        if self.discovery is not None:
            await self.discovery.subscribe(client)
        self.conn.ready()
        log.info("connected to MQTT broker %s as %s (prefix %s)", s.address, s.client_id, s.prefix)
        if await _first_of(self._drain(client), self._receive(client)):
            log.info("disconnected from MQTT broker %s (closing)", s.address)
            return True
        return False

    async def _drain(self, client: aiomqtt.Client) -> bool:
        """Publish the outbox in order, at most `inflight` unacknowledged; True once closed cleanly."""
        inflight = self._inflight = Inflight(client, self.settings, self._wake)
        acked: set[int] = set()
        try:
            while True:
                self._wake.clear()
                acked.update(inflight.completed())
                while self.outbox and self.outbox[0].seq in acked:
                    acked.discard(self.outbox.popleft().seq)
                    self._counts["published"] += 1
                if not self.outbox:
                    acked.clear()
                    self._emptied.set()
                elif len(acked) > 4 * self.settings.inflight:  # acknowledged, then dropped by an outbox overflow
                    acked = {q for q in acked if q >= self.outbox[0].seq}
                if self._metrics is not None:  # before closing: the last metrics are the run's summary
                    metrics, self._metrics = self._metrics, None
                    await client.publish(self.topic_metrics, metrics, qos=0)
                    self._counts["metrics_published"] += 1
                if self._closing and ((not self.outbox and not inflight.tasks) or self._abandon):
                    self._inflight = None
                    await client.publish(self.topic_status, STATUS_OFFLINE, qos=1, retain=True)
                    return True
                if not self._abandon:
                    inflight.fill(self.outbox)
                await self._wake.wait()
        finally:
            self._inflight = None
            await inflight.cancel()

    async def _receive(self, client: aiomqtt.Client) -> bool:
        async for msg in client.messages:
            if self.discovery is not None and msg.topic.matches(self.discovery.pattern):
                stale = self.discovery.stale(msg)
                if stale is not None:
                    self.publish(stale, b"", retain=True)  # removes the entity in Home Assistant
                continue
            if not msg.topic.matches(self.topic_feedback):  # a broker may deliver others (amqtt: retained ones)
                log.debug("message on %s ignored: not %s", msg.topic, self.topic_feedback)
                continue
            payload = msg.payload
            if not isinstance(payload, (bytes, bytearray)):
                payload = b"" if payload is None else str(payload).encode()
            self._counts["feedback_received"] += 1
            try:
                self.feedback.put_nowait(Message(bytes(payload), bool(msg.retain)))
            except asyncio.QueueFull:
                self._counts["feedback_dropped"] += 1
                if self._counts["feedback_dropped"] <= 20:
                    log.warning("feedback on %s dropped: the daemon is not consuming feedback fast enough",
                                self.topic_feedback)
        return False


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
