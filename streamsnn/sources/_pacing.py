"""Pacer: releases data at wall-clock deadlines derived from sensor time (real time, k-times faster, or unpaced)."""

from __future__ import annotations

import asyncio
import threading
import time


class Pacer:
    """Maps sensor time (microseconds from the start of a replay) to absolute wall-clock deadlines.

    `speed=1.0` is real time, `speed=k` k times faster (0.5: half speed), `speed=0` no waiting.
    Each deadline is `start + offset_us / 1e6 / speed` on the monotonic clock, fixed when the first
    item is paced, so sleeping late once does not push every later item back (no drift). When the
    consumer falls behind, items go out at once until the schedule is met again; `late` counts them.
    """

    def __init__(self, speed: float = 1.0) -> None:
        if not speed >= 0:
            raise ValueError(f"speed must be >= 0, got {speed}")
        self.speed = float(speed)
        self.start: float | None = None
        self.late = 0

    def delay(self, offset_us: float) -> float:
        """Seconds to wait until the item at `offset_us` is due (0 if unpaced or already due)."""
        if self.speed == 0:
            return 0.0
        now = time.monotonic()
        if self.start is None:
            self.start = now
        wait = self.start + offset_us / 1e6 / self.speed - now
        if wait < -0.01:
            self.late += 1
        return max(0.0, wait)

    async def wait(self, offset_us: float) -> None:
        """Sleep (asynchronously) until the item at `offset_us` is due; always lets other tasks run."""
        await asyncio.sleep(self.delay(offset_us))

    def wait_blocking(self, offset_us: float, stop: threading.Event | None = None) -> bool:
        """Sleep in this thread until due; returns False if `stop` was set meanwhile."""
        d = self.delay(offset_us)
        if stop is not None:
            return not stop.wait(d) if d > 0 else not stop.is_set()
        if d > 0:
            time.sleep(d)
        return True
