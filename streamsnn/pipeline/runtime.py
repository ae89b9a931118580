"""Run-time helpers of the pipeline: bounded queues with a policy for a full queue, and a low-latency runtime."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys

_END = object()  # end of stream marker on the queues
POLICIES = ("block", "drop_oldest", "drop_newest")


class BoundedQueue:
    """An asyncio queue of fixed capacity with a policy for a full queue; drops are counted (and each dropped item
    handed to `on_drop`, when given)."""

    def __init__(self, size: int, policy: str = "block", on_drop=None):
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}")
        self.q: asyncio.Queue = asyncio.Queue(size)
        self.policy = policy
        self.dropped = 0
        self.on_drop = on_drop

    async def put(self, item) -> None:
        if self.policy == "block" or item is _END:
            await self.q.put(item)
        elif self.q.full() and self.policy == "drop_newest":
            self.dropped += 1
            if self.on_drop:
                self.on_drop(item)
        else:
            while self.q.full():
                old = self.q.get_nowait()
                if old is _END:  # never lose the end marker
                    self.q.put_nowait(old)
                    return
                self.dropped += 1
                if self.on_drop:
                    self.on_drop(old)
            self.q.put_nowait(item)

    async def get(self):
        return await self.q.get()

    def qsize(self) -> int:
        return self.q.qsize()


#: GIL switch interval while the pipeline runs. CPython's default (5 ms) lets the network's worker
#: thread (or a source's loader thread) keep the event loop waiting up to 5 ms each time the loop
#: comes back from a system call (epoll, a socket send): that alone added milliseconds per decision
#: (1 ms measured best at 1.2 M events/s: 0.2 ms spends more CPU on switching).
SWITCH_INTERVAL_S = 0.001


@contextlib.contextmanager
def _low_latency_runtime():
    """A short GIL switch interval, and every object that exists at start-up (modules, kernels, the
    network) moved out of the garbage collector's sight (`gc.freeze`), so a full collection walks only
    what the run allocates instead of pausing the loop for tens of milliseconds. Restored on exit."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, SWITCH_INTERVAL_S))
    gc.freeze()
    try:
        yield
    finally:
        sys.setswitchinterval(previous)
        gc.unfreeze()
