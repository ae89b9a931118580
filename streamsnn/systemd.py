"""Telling systemd how the service is doing (`sd_notify`): READY=1 once it runs, STOPPING=1 when it ends.

systemd (a unit with `Type=notify`) sets `$NOTIFY_SOCKET` to a datagram UNIX socket: a path, or
`@name` for one in the abstract namespace. `notify("READY=1")` sends one datagram there and returns
True; without the variable (not started by systemd) it does nothing and returns False. A socket
that cannot be reached is logged once at DEBUG and never stops the daemon.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(*states: str) -> bool:
    """Send `states` (e.g. "READY=1", "STATUS=classifying") to $NOTIFY_SOCKET; False when not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or not states:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(states).encode())
    except OSError as exc:
        log.debug("sd_notify to %s failed: %s", os.environ.get("NOTIFY_SOCKET"), exc)
        return False
    return True
