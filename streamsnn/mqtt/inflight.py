"""The publishes of one MQTT connection awaiting their acknowledgement: aiomqtt publish tasks, in outbox order."""

from __future__ import annotations

import asyncio
import collections
import itertools
import math
import time

import aiomqtt

from .settings import MqttSettings


class Inflight:
    """The publishes of one connection awaiting their acknowledgement, in outbox order (at most `limit`).

    Each is an `aiomqtt.Client.publish` task, which ends when the broker acknowledged it (QoS 1/2) or
    the message was written (QoS 0). The tasks wait without a timeout of their own (a timeout per
    publish costs aiomqtt a task and a timer more each); one timer checks the oldest instead, and an
    overdue acknowledgement ends the connection like any other MQTT error.
    """

    def __init__(self, client: aiomqtt.Client, settings: MqttSettings, wake: asyncio.Event) -> None:
        self.client, self.settings, self.wake = client, settings, wake
        self.tasks: dict[int, tuple[asyncio.Task, float]] = {}  # seq -> (publish task, sent at)
        self.sent_upto = 0  # highest sequence number handed to this connection
        self._timer: asyncio.TimerHandle | None = None

    def fill(self, outbox: collections.deque) -> None:
        """Start publishing outbox messages not yet sent, while fewer than `inflight` await their PUBACK."""
        s = self.settings
        if not outbox or len(self.tasks) >= s.inflight or outbox[-1].seq <= self.sent_upto:
            return
        start = max(0, self.sent_upto + 1 - outbox[0].seq)
        now = time.monotonic()
        for out in itertools.islice(outbox, start, None):
            task = asyncio.ensure_future(self.client.publish(out.topic, out.payload, qos=s.qos, retain=out.retain,
                                                             timeout=math.inf))
            task.add_done_callback(self._done)
            self.tasks[out.seq] = (task, now)
            self.sent_upto = out.seq
            if len(self.tasks) >= s.inflight:
                break
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(s.timeout, self._check)

    def _done(self, _task: asyncio.Task) -> None:
        self.wake.set()

    def _check(self) -> None:
        self._timer = None
        if self.tasks:
            self.wake.set()  # completed() raises if the oldest is overdue
            oldest = min(sent for _, sent in self.tasks.values())
            delay = max(0.05, oldest + self.settings.timeout - time.monotonic() + 0.01)
            self._timer = asyncio.get_running_loop().call_later(delay, self._check)

    def completed(self) -> list[int]:
        """Sequence numbers acknowledged since the last call. A failed publish (a lost connection) raises its
        MqttError, an acknowledgement overdue by `settings.timeout` one of ours: the connection then ends
        and the next one sends the rest again."""
        done = [seq for seq, (task, _) in self.tasks.items() if task.done()]
        for seq in done:
            self.tasks.pop(seq)[0].result()
        if self.tasks:
            oldest = min(sent for _, sent in self.tasks.values())
            if time.monotonic() - oldest > self.settings.timeout:
                raise aiomqtt.MqttError(f"publish not acknowledged within {self.settings.timeout:g} s")
        return done

    async def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        tasks = [task for task, _ in self.tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.tasks.clear()
