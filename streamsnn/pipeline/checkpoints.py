"""Saving the network while the pipeline runs: periodically and at exit, on the network's worker, never fatal."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Awaitable, Callable

from .metrics import Counters
from .stages import Classifier

log = logging.getLogger(__name__)


class Checkpoints:
    """Writes `net` to `path` with `in_worker(net.save, path)` (the network's worker thread, so a save never
    races a learning step), counting `checkpoints` and `checkpoint_errors` in `counters`.

    `save()` raises what the save raised; `save_logged(when)` counts a failure (a full disk, a network
    with non-finite weights, which is never written over the last good checkpoint) and logs it in one
    line, and the run goes on; `loop(every_s)` saves every `every_s` seconds until cancelled.
    """

    def __init__(self, net: Classifier, path: Path, counters: Counters,
                 in_worker: Callable[..., Awaitable]):
        self.net, self.path, self.counters, self.in_worker = net, Path(path), counters, in_worker

    async def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await self.in_worker(self.net.save, self.path)
        self.counters.checkpoints += 1

    async def save_logged(self, when: str) -> bool:
        """Save; True when saved. A failure is counted and logged (see the class), never raised."""
        try:
            await self.save()
            return True
        except Exception as exc:  # noqa: BLE001 - the classification, and the file already there, must survive
            self.counters.checkpoint_errors += 1
            log.warning("checkpoint not saved (%s): %s", when, str(exc).splitlines()[0] if str(exc) else
                        type(exc).__name__)
            return False

    async def loop(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            await self.save_logged("periodic")
