"""A worker process's pipe with several requests in flight: posted from any thread, answered in order on its own.

The worker (`workers._child`) answers every message once, in the order it got them, so the answers are matched
to the requests by order. `post` sends at once and returns a Future of the answer: a second message can be on
its way while the worker computes the first, so it starts on it as soon as it answered (no round trip through
the sender's threads in between). When the pipe breaks (the worker died), every request waiting, and every
later one, fails with the exception `gone()` makes.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from typing import Callable


class WorkerGone(Exception):
    """The worker process went away while it held a request."""


class Channel:
    def __init__(self, conn, name: str, gone: Callable[[], BaseException]):
        self.conn, self.gone = conn, gone
        self.pending: deque[Future] = deque()
        self.lock = threading.Lock()  # the waiting list and `closed` change together
        self.closed = False
        self.thread = threading.Thread(target=self._receive, name=f"{name}-answers", daemon=True)
        self.thread.start()

    def post(self, msg) -> Future:
        """Send `msg` now (blocking while the pipe is full); the Future of its answer. From one thread at a time
        (the worker's own), so the waiting list is in the order of the messages sent."""
        fut: Future = Future()
        with self.lock:
            if not self.closed:
                self.pending.append(fut)
        if not fut.done() and fut in self.pending:
            try:
                self.conn.send(msg)  # not under the lock: the answers must be taken while the pipe is full
                return fut
            except (OSError, EOFError, ValueError):  # a broken pipe: the worker is gone
                with self.lock:
                    if fut in self.pending:
                        self.pending.remove(fut)
        if not fut.done():
            fut.set_exception(self.gone())
        return fut

    def _receive(self) -> None:
        while True:
            try:
                answer = self.conn.recv()
            except (OSError, EOFError, ValueError):
                break
            with self.lock:
                fut = self.pending.popleft() if self.pending else None
            if fut is not None:
                fut.set_result(answer)
        with self.lock:
            self.closed = True
            waiting, self.pending = list(self.pending), deque()
        for fut in waiting:
            fut.set_exception(self.gone())

    def close(self, timeout: float = 5.0) -> None:
        """After the worker ended: wait for the answering thread (it sees the pipe close), then close the pipe."""
        self.thread.join(timeout)
        try:
            self.conn.close()
        except OSError:
            pass
