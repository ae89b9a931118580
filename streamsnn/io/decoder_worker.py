"""The child process of streamsnn.io.isolated: runs native decodes one request at a time, events back as raw bytes.

Protocol (stdin/stdout pipes): the parent writes one JSON line per request, `{"job", "path",
"memory"}`; the worker answers with a 4-byte big-endian length and a JSON reply (`ok`, `n`, `info`,
`error`, `said`), followed by `n` events of EVENT_DTYPE as raw bytes when `ok`. Its file descriptor 2
is a file owned by the parent; what native code prints there during a job comes back as `said`,
and file descriptor 1 is pointed there too, so nothing a library prints can corrupt the replies.
"""

from __future__ import annotations

import json
import os
import sys

from .aedat4 import decode_native as aedat4
from .prophesee import decode_native as prophesee


def _die_with_parent(parent: int | None) -> None:
    """Linux: get SIGKILL when the parent dies, even while stuck in native code."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent kills its workers at exit instead
        pass
    if parent is not None and os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(0)


def _vm_size() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _limit_memory(extra: int) -> None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not Unix
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    want = _vm_size() + max(int(extra), 0)
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    resource.setrlimit(resource.RLIMIT_AS, (want, hard))


def _unlimit_memory() -> None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not Unix
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))


def _first_line(exc: BaseException) -> str:
    # dv-processing errors carry a C++ source location and a stack trace: keep the informative line.
    for line in str(exc).strip().splitlines():
        line = line.strip()
        if line and not line.startswith(("/", "Stacktrace", "#")):
            return line[:300]
    return type(exc).__name__


def _jobs():
    return {"aedat4": aedat4, "evt2": lambda p: prophesee(p, "evt2"), "evt3": lambda p: prophesee(p, "evt3")}


def main(argv: list[str]) -> int:
    _die_with_parent(int(argv[1]) if len(argv) > 1 else None)
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints (C or Python) go to the log file, never into the replies
    sys.stdout = sys.stderr

    def send(reply: dict, payload=None) -> None:
        body = json.dumps(reply).encode()
        replies.write(len(body).to_bytes(4, "big") + body)
        if payload is not None:
            replies.write(memoryview(payload))
        replies.flush()

    import numpy as np

    jobs = _jobs()
    for name in ("dv_processing", "expelliarmus"):  # warm up: pay the imports before the first deadline
        try:
            __import__(name)
        except ImportError:
            pass
    send({"ready": True, "pid": os.getpid()})
    for line in sys.stdin.buffer:
        try:
            request = json.loads(line)
            job = jobs[request["job"]]
        except (ValueError, KeyError, TypeError):
            send({"ok": False, "error": "malformed request"})
            continue
        os.ftruncate(2, 0)
        os.lseek(2, 0, os.SEEK_SET)
        events = None
        try:
            _limit_memory(request.get("memory", 0))
            try:
                events, info = job(request["path"])
            finally:
                _unlimit_memory()
            reply = {"ok": True, "n": len(events), "info": info}
        except MemoryError:
            reply = {"ok": False, "error": f"ran out of memory (the limit was {int(request.get('memory', 0)) >> 20} MB "
                                            "more than the decoder's own size)"}
        except Exception as exc:  # the decoder's reason, as one line; the worker goes on
            reply = {"ok": False, "error": _first_line(exc)}
        sys.stderr.flush()
        reply["said"] = os.pread(2, 4000, 0).decode("utf-8", "replace")
        if events is not None:
            events = np.ascontiguousarray(events).view(np.uint8)
        send(reply, events)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
