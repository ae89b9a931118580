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
    publish costs aiomqtt a task and a timer more each); one timer, beating every `timeout / 4` s (at
    most 1 s) while publishes wait, checks the oldest instead, and an overdue acknowledgement ends the
    connection like any other MQTT error.

    Only time the event loop could run counts towards `timeout`: a beat that comes late (the loop was
    held up by a busy machine, a long save, a blocking call) moves every waiting publish's clock on by
    that much and judges nothing, since the acknowledgements may be lying unread in the socket.
    """

    def __init__(self, client: aiomqtt.Client, settings: MqttSettings, wake: asyncio.Event) -> None:
        self.client, self.settings, self.wake = client, settings, wake
        self.tasks: dict[int, tuple[asyncio.Task, float]] = {}  # seq -> (publish task, sent at)
        self.sent_upto = 0  # highest sequence number handed to this connection
        self.period = min(1.0, settings.timeout / 4)
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0  # when the timer should fire
        self._overdue: int | None = None  # the publish the last beat found unacknowledged for too long

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
            self._arm(now)

    def _arm(self, now: float) -> None:
        self._due = now + self.period
        self._timer = asyncio.get_running_loop().call_later(self.period, self._check)

    def _done(self, _task: asyncio.Task) -> None:
        self.wake.set()

    def _check(self) -> None:
        self._timer = None
        if not self.tasks:
            return
        now = time.monotonic()
        late = now - self._due
        if late > 0:  # the loop could not run for that long: it does not count against the broker
            self.tasks = {seq: (task, sent + late) for seq, (task, sent) in self.tasks.items()}
        if late <= min(0.1, self.period / 2):
            seq, (_, sent) = min(self.tasks.items(), key=lambda item: item[1][1])
            if now - sent > self.settings.timeout:
                self._overdue = seq
                self.wake.set()  # completed() raises
        self._arm(now)

    def completed(self) -> list[int]:
        """Sequence numbers acknowledged since the last call. A failed publish (a lost connection) raises its
        MqttError, an acknowledgement overdue by `settings.timeout` one of ours: the connection then ends
        and the next one sends the rest again."""
        done = [seq for seq, (task, _) in self.tasks.items() if task.done()]
        for seq in done:
            self.tasks.pop(seq)[0].result()
        if self._overdue is not None and self._overdue in self.tasks:
            raise aiomqtt.MqttError(f"publish not acknowledged within {self.settings.timeout:g} s")
        self._overdue = None
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
