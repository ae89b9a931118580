"""Event packets out: `MqttEventPublisher` sends EventBatches as event packets on one topic (`streamsnn publish`).

`MqttEventPublisher(settings, topic, *, max_events_per_packet=65536)` publishes batches as packets
(QoS from the settings); batches larger than max_events_per_packet go out as several packets, the
last one carrying the end-of-sample flag. It does not reconnect: losing the broker raises InputError.

    async with MqttEventPublisher(settings, "streamsnn/events/cam1") as pub:
        await pub.publish(batch)                       # waits for the broker's PUBACK at QoS 1
        n = await pub.publish_source(replay_source)    # forwards a whole async source
"""

from __future__ import annotations

import contextlib

import aiomqtt

from ..errors import InputError
from ..events import EventBatch
from .connection import ProtocolLog, first_failure, make_client
from .packets import encode
from .settings import MqttSettings
from .source import MAX_EVENTS_PER_PACKET, check_topic


class MqttEventPublisher:
    """Publishes EventBatches as event packets on one topic (async context manager)."""

    def __init__(self, settings: MqttSettings, topic: str, *,
                 max_events_per_packet: int = MAX_EVENTS_PER_PACKET) -> None:
        self.settings = settings
        self.topic = check_topic(topic)
        self.max_events = max_events_per_packet
        self.counters = {"packets": 0, "events": 0, "bytes": 0}
        self._client: aiomqtt.Client | None = None

    async def __aenter__(self) -> MqttEventPublisher:
        plog = ProtocolLog()
        client = make_client(self.settings, plog, client_id=f"{self.settings.client_id}-out")
        try:
            await client.__aenter__()
        except (aiomqtt.MqttError, OSError) as exc:
            fatal = await first_failure(exc, self.settings, plog.last_error)
            if fatal is not None:
                raise fatal from None
            raise InputError(f"cannot reach MQTT broker {self.settings.address} ({exc}); check the broker "
                             "address (mqtt.broker/mqtt.port, or --broker) and that the broker runs") from None
        self._client = client
        return self

    async def __aexit__(self, *exc) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(aiomqtt.MqttError, OSError):
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
