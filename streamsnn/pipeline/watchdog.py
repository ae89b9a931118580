"""systemd's watchdog: WATCHDOG=1 sent only while the pipeline makes progress, never from a free-running timer.

When systemd asks for keep-alives (`WatchdogSec=` in the unit sets `$WATCHDOG_USEC`, and
`$WATCHDOG_PID`, when set, is this process), the pipeline checks itself every half of that time and
sends WATCHDOG=1 only when all three hold for the half-period just ended:

1. the event loop is responsive: the check itself ran (a blocked loop sends nothing);
2. the network's worker thread is responsive: a no-op probe handed to it at the previous check has
   run (a window, a feedback update or a save that hangs on the worker holds it back);
3. the decide stage is not stuck: it finished a window (decided or skipped it) since the previous
   check, or no window is waiting for it. A live source without events for a while is idle, not
   stalled: nothing waits, so the daemon stays alive while it waits for events.

When a check fails the beat is withheld and one WARNING line says why; systemd restarts the service
once `WatchdogSec` passes without a beat. Recovery is logged at INFO.
"""

from __future__ import annotations

import asyncio
import logging
import os

from ..systemd import notify

log = logging.getLogger(__name__)


def watchdog_period(environ=None) -> float | None:
    """Seconds between checks (half of $WATCHDOG_USEC) when systemd wants keep-alives from us, else None."""
    env = os.environ if environ is None else environ
    usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if pid and pid.strip() != str(os.getpid()):
        return None  # meant for another process (e.g. inherited from a parent)
    try:
        us = int(usec)
    except ValueError:
        return None
    return us / 2e6 if us > 0 else None


def _noop() -> None:
    pass


async def watchdog(pipe, period: float) -> None:
    """Send WATCHDOG=1 every `period` s while `pipe` (a `pipeline.Pipeline`) makes progress (see the module)."""
    loop = asyncio.get_running_loop()
    probe = loop.run_in_executor(pipe._worker, _noop)
    c = pipe.counters
    handled = c.decisions + c.bad_windows
    stalled: str | None = None
    while True:
        await asyncio.sleep(period)
        now_handled = c.decisions + c.bad_windows
        waiting = pipe.windows.qsize()
        if not probe.done():
            why = "the network's worker thread has not answered"
        elif now_handled == handled and waiting:
            why = f"the decide stage finished no window while {waiting} waited"
        else:
            why = None
        handled = now_handled
        if why is None:
            notify("WATCHDOG=1")
            if stalled is not None:
                log.info("watchdog: the pipeline makes progress again; WATCHDOG=1 resumed")
            stalled = None
        elif stalled is None:
            log.warning("watchdog: no WATCHDOG=1 sent: %s for %.1f s; systemd restarts the service if this "
                        "lasts its WatchdogSec", why, period)
            stalled = why
        if probe.done():
            probe = loop.run_in_executor(pipe._worker, _noop)
