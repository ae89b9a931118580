"""Event packets in: an async source of EventBatch decoded from the event packets on an MQTT topic.

`MqttEventSource(settings, topic, shared_group=None, *, idle_timeout=None, max_events=262144)` (see
`packets` for the payload format). With `shared_group="g"` it subscribes `$share/g/<topic>` over
MQTT 5, so several daemons in the same group each get a share of the stream and every packet goes
to exactly one of them (Mosquitto 2, EMQX, HiveMQ ...; not the embedded amqtt broker, which speaks
MQTT 3.1.1 only). It reconnects with backoff when the broker goes away (`connection.Connection`).
Packets that do not decode, or announce more than `max_events` events, are logged (one line),
counted in `counters["bad_packets"]` and skipped; nothing one packet holds can end the source.
Iteration ends after `idle_timeout` seconds without a packet (None: never) or after `aclose()`.
A refused login, a TLS failure or a TLS mix-up before the first successful connection raises
ConfigError from `open()` or iteration; after one, every failure is retried. Sessions are clean:
packets published while this consumer is disconnected are not kept for it (in a shared group the
connected members receive them). Decoded batches wait in a bounded queue (`queue_size`); when the
consumer lags further, aiomqtt's incoming queue (bounded by `settings.incoming`) fills and then
drops packets, counted in `counters["dropped"]`: read promptly, and let the pipeline's drop
policy decide what to skip. `subscribed` (asyncio.Event) is set once the broker acknowledged the
subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiomqtt

from ..errors import ConfigError, InputError, StreamsnnError
from ..events import EventBatch
from ..textsafe import printable, shown
from .connection import Connection
from .packets import decode
from .settings import MqttSettings

log = logging.getLogger("streamsnn.mqtt.events")

#: Largest number of events sent in one packet; bigger batches are split (about 530 KB per packet).
MAX_EVENTS_PER_PACKET = 65_536
#: Largest number of events accepted in one received packet (about 2 MB on the wire, 3.4 MB decoded).
MAX_EVENTS_ACCEPTED = 4 * MAX_EVENTS_PER_PACKET


def check_topic(topic: str) -> str:
    """The topic, or ConfigError when it holds wildcards or starts with '$'."""
    if not topic or "+" in topic or "#" in topic or topic.startswith("$"):
        raise ConfigError(f"MQTT event topic {topic!r} must be a plain topic without wildcards or '$'")
    return topic


class MqttEventSource:
    """Async iterator of EventBatch decoded from event packets on an MQTT topic."""

    def __init__(self, settings: MqttSettings, topic: str, shared_group: str | None = None, *,
                 idle_timeout: float | None = None, queue_size: int = 256,
                 max_events: int = MAX_EVENTS_ACCEPTED) -> None:
        self.settings = settings
        self.topic = check_topic(topic)
        if shared_group is not None and (not shared_group or any(c in shared_group for c in "/+#")):
            raise ConfigError(f"shared subscription group {shared_group!r} must be non-empty without '/', '+', '#'")
        self.shared_group = shared_group
        self.subscription = f"$share/{shared_group}/{topic}" if shared_group else topic
        self.idle_timeout = idle_timeout
        self.max_events = max_events
        self._counts = {"packets": 0, "events": 0, "bad_packets": 0}
        self.conn = Connection(settings, what=f"for {self.subscription}", client_id=f"{settings.client_id}-in",
                               protocol=aiomqtt.ProtocolVersion.V5 if shared_group else None)
        self._queue: asyncio.Queue[EventBatch] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task | None = None
        self._closed = False

    @property
    def subscribed(self) -> asyncio.Event:
        return self.conn.connected

    @property
    def error(self) -> StreamsnnError | None:
        return self.conn.error

    @property
    def counters(self) -> dict:
        return {**self._counts, "connects": self.conn.connects, "disconnects": self.conn.disconnects,
                "dropped": self.conn.incoming_dropped}

    def __aiter__(self) -> MqttEventSource:
        return self

    async def start(self) -> None:
        """Connect and subscribe in the background (iteration does this on its own)."""
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self.conn.run(self._session), name=f"mqtt-source {self.subscription}")

    async def open(self) -> None:
        """Start, and wait for the first connection attempt: a refused login or TLS mix-up raises here."""
        await self.start()
        first = asyncio.ensure_future(self.conn.attempted.wait())
        await asyncio.wait({first, self._task}, return_when=asyncio.FIRST_COMPLETED)
        first.cancel()
        if self.error is not None:
            raise self.error

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
        if self._task.done():  # ends only on a fatal error (or a defect)
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

    async def __aenter__(self) -> MqttEventSource:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def _session(self, client: aiomqtt.Client) -> bool:
        await client.subscribe(self.subscription, qos=self.settings.qos)
        self.conn.ready()
        log.info("subscribed to %s on %s", self.subscription, self.settings.address)
        async for msg in client.messages:
            batch = self._decode(msg)
            if batch is not None:
                await self._queue.put(batch)
        return False

    def _decode(self, msg: aiomqtt.Message) -> EventBatch | None:
        payload = msg.payload
        if not isinstance(payload, (bytes, bytearray)):
            payload = b"" if payload is None else str(payload).encode()
        try:
            batch = decode(payload, where=f"MQTT topic {shown(str(msg.topic))}", max_events=self.max_events)
        except Exception as exc:  # noqa: BLE001 - InputError, or anything else a hostile packet provokes
            self._counts["bad_packets"] += 1
            text = str(exc) if isinstance(exc, InputError) else \
                f"MQTT topic {shown(str(msg.topic))}: {type(exc).__name__}: {exc}"
            level = logging.WARNING if self._counts["bad_packets"] <= 20 else logging.DEBUG
            log.log(level, "skipped a bad event packet: %s", printable(text))
            return None
        self._counts["packets"] += 1
        self._counts["events"] += len(batch)
        return batch
