"""Events over MQTT: a source that decodes event packets from a topic, and a publisher that sends them.

`MqttEventSource(settings, topic, shared_group=None, *, idle_timeout=None, max_events=262144)` is an
async iterator of EventBatch (see `streamsnn.packets` for the payload format). With `shared_group="g"` it subscribes
`$share/g/<topic>` over MQTT 5, so several daemons in the same group each get a share of the stream
and every packet goes to exactly one of them (Mosquitto 2, EMQX, HiveMQ ...; not the embedded amqtt
broker, which speaks MQTT 3.1.1 only). It reconnects with backoff when the broker goes away. Packets
that do not decode, or announce more than `max_events` events, are logged (one line), counted in
`source.counters["bad_packets"]` and skipped; nothing one packet holds can end the source.
Iteration ends after `idle_timeout` seconds without a packet (None: never) or after `aclose()`.
A refused login, a TLS failure or a TLS mix-up (TLS to a plain port, plain MQTT to a TLS port)
before the first successful connection raises ConfigError from iteration; after one, every failure
is retried. Sessions are clean: packets
published while this consumer is disconnected are not kept for it (in a shared group the connected
members receive them). Decoded batches wait in a bounded queue (`queue_size`); a consumer that
lags further leaves messages in aiomqtt's own (unbounded) queue, so read promptly and let the
pipeline's drop policy decide what to skip.
`start()` subscribes in the background; `subscribed` (asyncio.Event) is set once the broker
acknowledged the subscription.

`MqttEventPublisher(settings, topic, *, max_events_per_packet=65536)` publishes batches as packets
(QoS from the settings); batches larger than max_events_per_packet go out as several packets, the
last one carrying the end-of-sample flag. It does not reconnect: losing the broker raises InputError.

Example:

    async with MqttEventPublisher(settings, "streamsnn/events/cam1") as pub:
        await pub.publish(batch)                       # waits for the broker's PUBACK at QoS 1
        n = await pub.publish_source(replay_source)    # forwards a whole async source
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiomqtt

from ..errors import ConfigError, InputError, StreamsnnError
from ..events import EventBatch
from ..mqtt_probe import tls_mismatch
from ..packets import decode, encode
from ..sinks.mqtt import Backoff, MqttSettings, failure_reason, fatal_connect_error, make_client

log = logging.getLogger("streamsnn.mqtt.events")

#: Largest number of events sent in one packet; bigger batches are split (about 530 KB per packet).
MAX_EVENTS_PER_PACKET = 65_536
#: Largest number of events accepted in one received packet (about 2 MB on the wire, 3.4 MB decoded).
MAX_EVENTS_ACCEPTED = 4 * MAX_EVENTS_PER_PACKET


def _check_topic(topic: str) -> str:
    if not topic or "+" in topic or "#" in topic or topic.startswith("$"):
        raise ConfigError(f"MQTT event topic {topic!r} must be a plain topic without wildcards or '$'")
    return topic


class MqttEventSource:
    """Async iterator of EventBatch decoded from event packets on an MQTT topic."""

    def __init__(self, settings: MqttSettings, topic: str, shared_group: str | None = None, *,
                 idle_timeout: float | None = None, queue_size: int = 256,
                 max_events: int = MAX_EVENTS_ACCEPTED) -> None:
        self.settings = settings
        self.topic = _check_topic(topic)
        if shared_group is not None and (not shared_group or any(c in shared_group for c in "/+#")):
            raise ConfigError(f"shared subscription group {shared_group!r} must be non-empty without '/', '+', '#'")
        self.shared_group = shared_group
        self.subscription = f"$share/{shared_group}/{topic}" if shared_group else topic
        self.idle_timeout = idle_timeout
        self.max_events = max_events
        self.counters = {"packets": 0, "events": 0, "bad_packets": 0, "connects": 0, "disconnects": 0}
        self.subscribed = asyncio.Event()
        self._queue: asyncio.Queue[EventBatch] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task | None = None
        self._closed = False
        self.error: StreamsnnError | None = None

    def __aiter__(self) -> "MqttEventSource":
        return self

    async def start(self) -> None:
        """Connect and subscribe in the background (iteration does this on its own)."""
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name=f"mqtt-source {self.subscription}")

    async def __anext__(self) -> EventBatch:
        if self._closed:
            raise StopAsyncIteration
        await self.start()
        get = asyncio.ensure_future(self._queue.get())
        try:
            done, _ = await asyncio.wait({get, self._task}, timeout=self.idle_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            get.cancel()
            raise
        if get in done:
            return get.result()
        get.cancel()
        if self._task.done():  # only ends on a fatal error
            await self.aclose()
            if self.error is not None:
                raise self.error
            if not self._task.cancelled() and self._task.exception() is not None:
                raise self._task.exception()
        else:
            log.info("no event packet on %s for %.1f s; ending the stream", self.subscription, self.idle_timeout)
            await self.aclose()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self._closed = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def __aenter__(self) -> "MqttEventSource":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def _run(self) -> None:
        s = self.settings
        backoff = Backoff(s.reconnect_min, s.reconnect_max)
        protocol = aiomqtt.ProtocolVersion.V5 if self.shared_group else None
        while True:
            client = make_client(s, protocol=protocol, client_id=f"{s.client_id}-in")
            try:
                async with client:
                    client._connected_once = True
                    self.counters["connects"] += 1
                    backoff.reset()
                    await client.subscribe(self.subscription, qos=s.qos)
                    self.subscribed.set()
                    log.info("subscribed to %s on %s", self.subscription, s.address)
                    async for msg in client.messages:
                        batch = self._decode(msg)
                        if batch is not None:
                            await self._queue.put(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect on any connection failure
                self.subscribed.clear()
                fatal = None
                if not self.counters["connects"]:  # never connected: maybe a configuration error
                    fatal = fatal_connect_error(exc, s, client) or await asyncio.to_thread(tls_mismatch, s)
                if fatal is not None:
                    self.error = fatal
                    log.error("%s", fatal)
                    return
                self.counters["disconnects"] += 1
                delay = backoff.next()
                log.warning("MQTT broker %s unavailable for %s (%s); retrying in %.1f s", s.address,
                            self.subscription, failure_reason(exc, client), delay)
                await asyncio.sleep(delay)

    def _decode(self, msg: aiomqtt.Message) -> EventBatch | None:
        payload = msg.payload
        if not isinstance(payload, (bytes, bytearray)):
            payload = b"" if payload is None else str(payload).encode()
        try:
            batch = decode(payload, where=f"MQTT topic {msg.topic}", max_events=self.max_events)
        except Exception as exc:  # noqa: BLE001 - InputError, or anything else a hostile packet provokes
            self.counters["bad_packets"] += 1
            text = str(exc) if isinstance(exc, InputError) else f"MQTT topic {msg.topic}: {type(exc).__name__}: {exc}"
            level = logging.WARNING if self.counters["bad_packets"] <= 20 else logging.DEBUG
            log.log(level, "skipped a bad event packet: %s", text)
            return None
        self.counters["packets"] += 1
        self.counters["events"] += len(batch)
        return batch


class MqttEventPublisher:
    """Publishes EventBatches as event packets on one topic (async context manager)."""

    def __init__(self, settings: MqttSettings, topic: str, *,
                 max_events_per_packet: int = MAX_EVENTS_PER_PACKET) -> None:
        self.settings = settings
        self.topic = _check_topic(topic)
        self.max_events = max_events_per_packet
        self.counters = {"packets": 0, "events": 0, "bytes": 0}
        self._client: aiomqtt.Client | None = None

    async def __aenter__(self) -> "MqttEventPublisher":
        client = make_client(self.settings, client_id=f"{self.settings.client_id}-out")
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            fatal = fatal_connect_error(exc, self.settings, client)
            if fatal is not None:
                raise fatal from None
            raise InputError(f"cannot reach MQTT broker {self.settings.address} ({exc}); check the broker "
                             "address (mqtt.host/mqtt.port, or --broker) and that the broker runs") from None
        self._client = client
        return self

    async def __aexit__(self, *exc) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(aiomqtt.MqttError):
                await client.__aexit__(None, None, None)

    async def publish(self, batch: EventBatch) -> int:
        """Send one batch (split into packets of at most max_events_per_packet); returns packets sent."""
        if self._client is None:
            raise RuntimeError("use MqttEventPublisher inside 'async with'")
        parts = batch.split_count(self.max_events) if len(batch) > self.max_events else [batch]
        end = bool(batch.meta.get("end_of_sample"))
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part is not batch:
                part = EventBatch(part.events, part.width, part.height, sample=part.sample, label=part.label,
                                  source=part.source, meta={"end_of_sample": end and last})
            payload = encode(part)
            try:
                await self._client.publish(self.topic, payload, qos=self.settings.qos)
            except aiomqtt.MqttError as exc:
                raise InputError(f"lost MQTT broker {self.settings.address} while publishing events on "
                                 f"{self.topic} ({exc})") from None
            self.counters["packets"] += 1
            self.counters["events"] += len(part)
            self.counters["bytes"] += len(payload)
        return len(parts)

    async def publish_source(self, source, *, limit: int | None = None) -> int:
        """Publish every batch an async source yields (at most `limit`); returns the batches sent."""
        sent = 0
        async for batch in source:
            await self.publish(batch)
            sent += 1
            if limit is not None and sent >= limit:
                break
        return sent
