"""Loopback ports for the servers tests start (Mosquitto, DV network streams, the live view, the embedded broker).

A port the OS hands out for bind(0) comes from its ephemeral range, where an outgoing connection made in between
(any client of any test, of either xdist worker) may take it before the server binds it. So ports are handed out
below that range when there is room (``/proc/sys/net/ipv4/ip_local_port_range``; 32768-60999 by default), one band
per xdist worker so the two workers never pick the same one, each port once per process, and only after a bind
succeeded on it. Without room below the range it falls back to the OS's choice.
"""

from __future__ import annotations

import os
import socket

#: Ports per xdist worker; the bands end where the ephemeral range starts.
BAND = 1500
_given: set[int] = set()


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _worker() -> int:
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(name[2:]) if name[2:].isdigit() else 0


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now and that this process has not handed out before."""
    top = _ephemeral_low()
    lo = top - BAND * (_worker() + 1)
    if lo >= 10000:
        start = lo + os.getpid() % BAND  # another run beside this one most likely starts elsewhere in the band
        for k in range(BAND):
            port = lo + (start - lo + k) % BAND
            if port not in _given and _bindable(port):
                _given.add(port)
                return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
