"""DvStreamSource: live events from a DV network stream (TCP or UNIX socket) via dv-processing."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..errors import InputError, first_line
from ._live import LiveSource

_TCP = re.compile(r"^(?:tcp://)?(?:\[(?P<ip6>[^\]]+)\]|(?P<host>[^:/\s]+)):(?P<port>\d+)/?$")
_FORMS = "use host:port, tcp://host:port or unix:/path/to.sock"


@dataclass(frozen=True)
class StreamAddress:
    """A parsed DV stream address: TCP (`host`, `port`) or a UNIX socket (`path`)."""

    host: str | None = None
    port: int | None = None
    path: str | None = None

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"


def parse_address(address: str) -> StreamAddress:
    """`host:port`, `tcp://host:port`, `[::1]:port`, `unix:/path` or `unix:///path`; else InputError."""
    text = str(address).strip()
    if text.startswith("unix:"):
        path = text[len("unix:"):]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise InputError(f"DV stream address {address!r} names no socket path; {_FORMS}")
        return StreamAddress(path=path)
    m = _TCP.match(text)
    if not m or not 0 < int(m["port"]) < 65536:
        raise InputError(f"DV stream address {address!r} is not valid; {_FORMS}")
    return StreamAddress(host=m["ip6"] or m["host"], port=int(m["port"]))


class DvStreamSource(LiveSource):
    """Events from a DV network stream, as the DV software or `streamsnn serve` publishes a camera.

    `address` is `host:port`, `tcp://host:port` or `unix:/path/to.sock`. A refused connection or a
    stream without events raises InputError (at `async with`, or on the first batch). Batches are the
    packets as they arrive, `source` = the address; iteration ends when the server closes the stream,
    or with `reconnect=True` waits for it to come back (see LiveSource).
    """

    def __init__(self, address: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.address = parse_address(address)
        self.name = str(self.address)
        self.camera_name: str | None = None

    def _open(self):
        import dv_processing as dv

        a = self.address
        hint = ("start the DV software's network output or `streamsnn serve FILE"
                + (f" --port {a.port}`" if a.port else f" --unix {a.path}`") + ", or check the address")
        if a.path is not None and not os.path.exists(a.path):
            raise InputError(f"cannot connect to DV stream {a}: no such socket file; {hint}")
        try:
            reader = dv.io.NetworkReader(a.path) if a.path is not None else dv.io.NetworkReader(a.host, a.port)
        except Exception as exc:
            raise InputError(f"cannot connect to DV stream {a} ({first_line(exc)}); {hint}") from None
        if not reader.isEventStreamAvailable():
            raise InputError(f"DV stream {a} carries no events (stream of camera "
                             f"{reader.getCameraName()!r}); connect to an event output instead")
        self.camera_name = reader.getCameraName()
        return reader
