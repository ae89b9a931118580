"""Native decoders (dv-processing, expelliarmus) run in a reusable child process with a deadline and a memory limit.

A corrupt file can make a native decoder spin forever (dv-processing inside LZ4F_decompress on a
damaged packet) or allocate gigabytes, and native code ignores Python's signal handlers. So the
decode runs in a worker process (`streamsnn.io.decoder_worker`): the caller waits in short `poll`
steps, so Ctrl-C, SIGTERM handlers and a `cancel` event act within ~50 ms, and when the deadline
passes the worker is killed and the caller gets one InputError line. Events come back through the
pipe as raw EVENT_DTYPE bytes (13 per event, nothing pickled). An idle worker is kept for the next
file, so the interpreter start is paid once per process, not per file.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import ConfigError, InputError
from ..events import EVENT_DTYPE

_MB = 1 << 20
_POLL_S = 0.05
_START_S = 60.0  # importing numpy and the decoders: slow on a loaded machine, but never the file's fault
_MAX_MESSAGE = 1 << 20
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])

#: Environment variables that override DecodeLimits' defaults.
ENV = {"timeout_s": "STREAMSNN_DECODE_TIMEOUT_S", "s_per_mb": "STREAMSNN_DECODE_S_PER_MB",
       "memory_mb": "STREAMSNN_DECODE_MEMORY_MB"}


@dataclass(frozen=True)
class DecodeLimits:
    """What one native decode may take: `timeout_s` + `s_per_mb` per MB of file (seconds), and
    `memory_mb` + `memory_per_mb` per MB of file (address space the worker may add)."""

    timeout_s: float = 5.0
    s_per_mb: float = 0.2
    memory_mb: float = 1024
    memory_per_mb: float = 100  # EVT3 packs up to 6 events per byte; an event decodes to 16 bytes

    def deadline_s(self, size: int) -> float:
        return self.timeout_s + self.s_per_mb * size / 1e6

    def memory_bytes(self, size: int) -> int:
        return int(self.memory_mb * _MB + self.memory_per_mb * size)

    @classmethod
    def from_env(cls, env=None) -> DecodeLimits:
        """Defaults, overridden by STREAMSNN_DECODE_TIMEOUT_S / _S_PER_MB / _MEMORY_MB when set."""
        env = os.environ if env is None else env
        values = {}
        for name, var in ENV.items():
            text = env.get(var, "").strip()
            if not text:
                continue
            try:
                value = float(text)
            except ValueError:
                value = -1.0
            if not value > 0:
                raise ConfigError(f"{var}={text!r} must be a positive number")
            values[name] = value
        return cls(**values)


class Decoded(NamedTuple):
    """A finished decode: events (EVENT_DTYPE, time-sorted), facts from the decoder, what it printed."""

    events: np.ndarray
    info: dict
    said: str


class DecodeFailed(Exception):
    """The decoder ran and refused the file; the message is its reason, one line."""

    def __init__(self, reason: str, said: str = "") -> None:
        super().__init__(reason)
        self.said = said


class DecodeCancelled(InputError):
    """The caller cancelled the decode (the worker was killed)."""


class _Timeout(Exception):
    pass


class _Cancelled(Exception):
    pass


class _Died(Exception):
    pass


_SPAWNER: tuple[int, ThreadPoolExecutor] | None = None
_SPAWNER_LOCK = threading.Lock()


def _spawner() -> ThreadPoolExecutor:
    """One long-lived thread per process that starts every worker: Linux delivers a worker's
    parent-death signal when the *thread* that started it ends, and executor threads come and go."""
    global _SPAWNER
    with _SPAWNER_LOCK:
        if _SPAWNER is None or _SPAWNER[0] != os.getpid():  # a forked child needs its own thread
            _SPAWNER = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamsnn-decoder-spawner"))
        return _SPAWNER[1]


def _popen(errlog) -> subprocess.Popen:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", "streamsnn.io.decoder_worker", str(os.getpid())],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errlog, env=env,
        start_new_session=True,  # a Ctrl-C in the terminal is the parent's to handle
    )


class _Worker:
    """One child process running streamsnn.io.decoder_worker; used by one caller at a time."""

    def __init__(self) -> None:
        self.errlog = tempfile.TemporaryFile()  # the worker's fd 2: what native code prints stays here
        self.proc = _spawner().submit(_popen, self.errlog).result()
        self.fd = self.proc.stdout.fileno()
        self._poll = select.poll()  # not select(): a daemon's descriptors may number over 1024
        self._poll.register(self.fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        self.ready = False

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive:
            try:
                self.proc.kill()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not refused
            pass
        for f in (self.proc.stdin, self.proc.stdout, self.errlog):
            try:
                f.close()
            except OSError:
                pass

    def _wait_readable(self, deadline: float, cancel) -> None:
        while True:
            if cancel is not None and cancel.is_set():
                raise _Cancelled
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Timeout
            if self._poll.poll(1000 * min(_POLL_S, left)):
                return

    def _read_into(self, view: memoryview, deadline: float, cancel) -> None:
        got = 0
        while got < len(view):
            self._wait_readable(deadline, cancel)
            n = os.readv(self.fd, [view[got:]])
            if n == 0:
                raise _Died(self._death())
            got += n

    def _message(self, deadline: float, cancel) -> dict:
        head = bytearray(4)
        self._read_into(memoryview(head), deadline, cancel)
        size = int.from_bytes(head, "big")
        if size > _MAX_MESSAGE:
            raise _Died("it sent a malformed reply")
        body = bytearray(size)
        self._read_into(memoryview(body), deadline, cancel)
        return json.loads(body)

    def _death(self) -> str:
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "it closed its output"
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            return f"killed by {name}"
        return f"exit status {code}"

    def start(self, cancel) -> None:
        hello = self._message(time.monotonic() + _START_S, cancel)
        if not hello.get("ready"):
            raise _Died("it did not start")
        self.ready = True

    def call(self, request: dict, deadline: float, cancel) -> tuple[dict, np.ndarray | None]:
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:
            raise _Died(self._death()) from None
        reply = self._message(deadline, cancel)
        if not reply.get("ok"):
            return reply, None
        raw = np.empty(int(reply["n"]) * EVENT_DTYPE.itemsize, np.uint8)
        self._read_into(memoryview(raw), deadline, cancel)
        return reply, raw.view(EVENT_DTYPE)


class _Pool:
    """Idle workers kept for reuse, and every live one, so that exit kills them all."""

    def __init__(self, keep: int = 1) -> None:
        self.keep = keep
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def take(self) -> _Worker:
        with self._lock:
            if self._pid != os.getpid():  # a forked child must not share its parent's workers
                self._idle, self._all, self._pid = [], set(), os.getpid()
            while self._idle:
                w = self._idle.pop()
                if w.alive:
                    return w
                self._all.discard(w)
                w.kill()
            w = _Worker()
            self._all.add(w)
            return w

    def give(self, w: _Worker) -> None:
        with self._lock:
            if w.alive and len(self._idle) < self.keep:
                self._idle.append(w)
                return
            self._all.discard(w)
        w.kill()

    def discard(self, w: _Worker) -> None:
        with self._lock:
            self._all.discard(w)
        w.kill()

    def shutdown(self) -> None:
        with self._lock:
            workers, self._idle, self._all = list(self._all), [], set()
        for w in workers:
            w.kill()


_POOL = _Pool()
atexit.register(_POOL.shutdown)


def shutdown() -> None:
    """Kill every decoder worker of this process (idle or busy; busy callers get an InputError)."""
    _POOL.shutdown()


def decode(job: str, path: Path, *, limits: DecodeLimits | None = None, cancel=None) -> Decoded:
    """Run decoder `job` ('aedat4', 'evt2', 'evt3') on `path` in a worker process.

    Raises DecodeFailed (with the decoder's reason) when it refuses the file, InputError when it
    runs past its deadline or crashes, DecodeCancelled when `cancel` (anything with `is_set()`) is
    set. Whatever the outcome, the call returns within about 50 ms of the deadline or the cancel.
    """
    limits = limits or DecodeLimits.from_env()
    size = path.stat().st_size
    budget = limits.deadline_s(size)
    worker = _POOL.take()
    done = False
    try:
        if not worker.ready:
            try:
                worker.start(cancel)
            except _Timeout:
                raise InputError(f"{path}: the decoder process did not start within {_START_S:.0f} s; "
                                 "the machine is overloaded or the installation is broken") from None
        request = {"job": job, "path": str(path), "memory": limits.memory_bytes(size)}
        reply, events = worker.call(request, time.monotonic() + budget, cancel)
        done = True
    except _Timeout:
        raise InputError(f"{path}: decoder did not finish within {budget:.0f} s; the file is probably corrupt "
                         f"(for a genuine, very large recording raise {ENV['timeout_s']})") from None
    except _Cancelled:
        raise DecodeCancelled(f"{path}: reading was cancelled") from None
    except _Died as exc:
        raise InputError(f"{path}: the decoder crashed ({exc}); the file is probably corrupt") from None
    finally:
        if done:
            _POOL.give(worker)
        else:
            _POOL.discard(worker)
    said = str(reply.get("said", ""))
    if not reply.get("ok"):
        raise DecodeFailed(str(reply.get("error") or "unknown error"), said)
    return Decoded(events, dict(reply.get("info") or {}), said)
