"""One MQTT connection kept up: aiomqtt clients from the settings, backoff, and the shared reconnect loop.

`Connection(settings, ...).run(session)` connects, runs `await session(client)` on the live client,
and when the connection fails (`aiomqtt.MqttError` or `OSError`, nothing else) waits with
exponential backoff and full jitter and connects again, until `session` returns True. A refused
login, a failed TLS verification or a TLS mix-up (probed with `probe.tls_mismatch`) before the
first successful connection ends `run()` with `connection.error` set to a ConfigError; after one,
the same errors are logged and retried (the broker's password file may be fixed meanwhile). Any
other exception escapes: it is a defect and must end the task that runs the loop, not be retried.
Only public aiomqtt and paho APIs are used.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
from typing import Awaitable, Callable

import aiomqtt

from ..errors import ConfigError, StreamsnnError
from .probe import tls_mismatch
from .settings import MqttSettings

log = logging.getLogger("streamsnn.mqtt")
#: paho/aiomqtt protocol chatter goes here (DEBUG); it never contains the password.
PROTOCOL_LOG = logging.getLogger("streamsnn.mqtt.protocol")


class ProtocolLog(logging.LoggerAdapter):
    """The logger one client hands paho and aiomqtt: forwards to PROTOCOL_LOG and remembers the last error
    line (a TLS alert such as "certificate required" only shows up there), which it forwards at DEBUG."""

    def __init__(self) -> None:
        super().__init__(PROTOCOL_LOG, {})
        self.last_error: str | None = None

    def log(self, level, msg, *args, **kwargs):  # noqa: ANN001, ANN201
        text = str(msg) % args if args else str(msg)
        if level >= logging.ERROR and not kwargs.get("exc_info"):
            self.last_error = text
            level = logging.DEBUG  # the connection loop reports the outage itself, with this text
        super().log(level, "%s", text, **kwargs)


class IncomingDrops:
    """Counts received messages that did not fit in a client's bounded incoming queue.

    `queue_type(limit)` is the queue class handed to aiomqtt (its public `queue_type` argument): it holds
    at most `limit` messages (0: no bound) and drops a message that does not fit itself, counting it
    here, so aiomqtt never sees a full queue. One counter serves every client of a connection."""

    def __init__(self) -> None:
        self.count = 0

    def dropped(self, limit: int) -> None:
        self.count += 1
        level = logging.WARNING if self.count <= 5 else logging.DEBUG
        log.log(level, "received MQTT message dropped: %d wait already (mqtt.incoming); %d dropped so far",
                limit, self.count)

    def queue_type(self, limit: int) -> type[asyncio.Queue]:
        drops = self

        class BoundedIncoming(asyncio.Queue):
            def __init__(self, maxsize: int = 0) -> None:
                super().__init__(maxsize=0)  # bounded here, not by asyncio: a full queue never raises
                self.limit = max(int(limit), 0)

            def put_nowait(self, item) -> None:  # noqa: ANN001
                if self.limit and self.qsize() >= self.limit:
                    drops.dropped(self.limit)
                    return
                super().put_nowait(item)

        return BoundedIncoming


def make_client(settings: MqttSettings, logger: ProtocolLog, *, will: aiomqtt.Will | None = None,
                protocol: aiomqtt.ProtocolVersion | None = None, client_id: str | None = None,
                drops: IncomingDrops | None = None) -> aiomqtt.Client:
    """One aiomqtt.Client for one connection attempt, with credentials, TLS and bounds from the settings;
    received messages beyond `settings.incoming` waiting are dropped and counted in `drops`."""
    drops = drops if drops is not None else IncomingDrops()
    tls_params = None
    tls_insecure = None
    if settings.tls is not None:
        tls_params = aiomqtt.TLSParameters(ca_certs=settings.tls.ca_file, certfile=settings.tls.cert_file,
                                           keyfile=settings.tls.key_file, cert_reqs=ssl.CERT_REQUIRED,
                                           tls_version=ssl.PROTOCOL_TLS_CLIENT)
        tls_insecure = bool(settings.tls.insecure)
    client = aiomqtt.Client(
        settings.host, settings.port, username=settings.username, password=settings.password,
        identifier=client_id or settings.client_id, will=will, protocol=protocol,
        keepalive=settings.keepalive, timeout=settings.timeout, tls_params=tls_params, tls_insecure=tls_insecure,
        logger=logger, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        queue_type=drops.queue_type(settings.incoming),
    )
    client.pending_calls_threshold = settings.inflight + 50
    return client


def fatal_connect_error(exc: BaseException, settings: MqttSettings, detail: str | None = None, *,
                        connected_once: bool = False) -> StreamsnnError | None:
    """ConfigError for a refused login or a failed TLS verification, None for transient errors.

    `detail`: the last error paho logged for this client (`ProtocolLog.last_error`)."""
    if detail and "SSL" in detail and not connected_once:
        what = ("present a client certificate (mqtt.tls.cert_file, mqtt.tls.key_file)"
                if "CERTIFICATE_REQUIRED" in detail.upper() else "check mqtt.tls")
        return ConfigError(f"TLS connection to MQTT broker {settings.address} failed ({detail}); the "
                           f"broker closed the connection: {what}")
    if isinstance(exc, aiomqtt.MqttCodeError) and not connected_once:  # the CONNACK's return code
        code = getattr(exc.rc, "value", exc.rc)
        if code in (4, 5, 134, 135):  # MQTT 3.1.1 / 5 "bad user name or password", "not authorized"
            who = "the configured username" if settings.username else "an anonymous login"
            return ConfigError(f"MQTT broker {settings.address} refused {who} ({exc}); check mqtt.username and "
                               "mqtt.password, or the broker's password file and ACL")
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text or "hostname" in text.lower():
        return ConfigError(f"TLS connection to MQTT broker {settings.address} failed ({text}); check "
                           "mqtt.tls.ca_file and that the broker's certificate names this host "
                           "(mqtt.tls.insecure skips the host name check)")
    if isinstance(exc, aiomqtt.MqttError) and "SSL" in text:
        return ConfigError(f"TLS connection to MQTT broker {settings.address} failed ({text}); check mqtt.tls "
                           "and that the broker listens with TLS on that port")
    return None


async def first_failure(exc: BaseException, settings: MqttSettings, detail: str | None = None) -> StreamsnnError | None:
    """What a client's failed first connection means: `fatal_connect_error`, and when that finds nothing, the port
    probed for a TLS mix-up or a required client certificate (`probe.tls_mismatch`); None: keep retrying."""
    fatal = fatal_connect_error(exc, settings, detail)
    if fatal is None:
        fatal = await asyncio.to_thread(tls_mismatch, settings)
    return fatal


def abandon(client: aiomqtt.Client) -> None:
    """Leave a connection attempt that failed for good. One that timed out waiting for the CONNACK (a frozen
    broker) still has its CONNECT in the broker's socket: when the broker wakes it would take this client id's
    session over from the attempt that then succeeded, and be dropped, publishing the last will ("offline")
    while the daemon is up. A DISCONNECT queued behind it ends it cleanly (no will), and the futures it settles
    later are read here, not reported by asyncio as exceptions never retrieved. (aiomqtt keeps its paho client
    and futures private; a library without them leaves the attempt as it was.)"""
    paho = getattr(client, "_client", None)
    try:
        if paho is not None and paho.socket() is not None:
            paho.disconnect()
    except Exception:  # noqa: BLE001 - best effort on a socket that may already be gone
        pass
    for name in ("_connected", "_disconnected"):
        future = getattr(client, name, None)
        if isinstance(future, asyncio.Future):
            future.add_done_callback(lambda f: f.cancelled() or f.exception())


def failure_reason(exc: BaseException, detail: str | None = None) -> str:
    """Short reason for a failed connection: the exception, plus paho's socket error if any."""
    text = str(exc) or type(exc).__name__
    return f"{text}: {detail}" if detail and detail not in text else text


class Backoff:
    """Exponential backoff with full jitter between `low` and `high` seconds."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high, self.attempt = low, high, 0

    def reset(self) -> None:
        self.attempt = 0

    def next(self) -> float:
        cap = min(self.high, self.low * 2 ** self.attempt)
        self.attempt = min(self.attempt + 1, 30)
        return random.uniform(self.low, max(self.low, cap))


class Connection:
    """The reconnect loop shared by the sink and the event-packet source (see the module docstring).

    `what` names the connection in log lines (e.g. "for streamsnn/events"); `waiting()` adds what
    waits meanwhile (e.g. "; 12 decision(s) buffered"). Sessions call `ready()` once they have
    subscribed (or published their status): that sets `connected` and `attempted`; `attempted` is
    also set when a first attempt failed, so a caller can wait for the first outcome.
    """

    def __init__(self, settings: MqttSettings, *, what: str = "", will: aiomqtt.Will | None = None,
                 protocol: aiomqtt.ProtocolVersion | None = None, client_id: str | None = None,
                 waiting: Callable[[], str] = lambda: "") -> None:
        self.settings, self.what, self.will, self.protocol = settings, what, will, protocol
        self.client_id, self.waiting = client_id, waiting
        self.connects = self.disconnects = 0
        self.drops = IncomingDrops()
        self.error: StreamsnnError | None = None
        self.connected = asyncio.Event()
        self.attempted = asyncio.Event()

    @property
    def incoming_dropped(self) -> int:
        """Received messages dropped because the bounded incoming queue (`settings.incoming`) was full."""
        return self.drops.count

    def ready(self) -> None:
        self.connected.set()
        self.attempted.set()

    async def run(self, session: Callable[[aiomqtt.Client], Awaitable[bool]]) -> None:
        s = self.settings
        backoff = Backoff(s.reconnect_min, s.reconnect_max)
        while True:
            plog = ProtocolLog()
            client = make_client(s, plog, will=self.will, protocol=self.protocol, client_id=self.client_id,
                                 drops=self.drops)
            up = False
            try:
                async with client:
                    up = True
                    self.connects += 1
                    backoff.reset()
                    if await session(client):
                        return
            except (aiomqtt.MqttError, OSError) as exc:
                self.connected.clear()
                if up:
                    self.disconnects += 1
                else:
                    abandon(client)
                if self.connects:  # it worked before: said, and retried (no probe)
                    fatal = fatal_connect_error(exc, s, plog.last_error, connected_once=up)
                else:
                    fatal = await first_failure(exc, s, plog.last_error)
                if fatal is not None and not self.connects:
                    self.error = fatal  # never connected: a configuration problem, stop and say so
                    self.attempted.set()
                    log.error("%s", fatal)
                    return
                delay = backoff.next()
                if fatal is not None:  # worked before (e.g. the broker's password file changed): keep trying
                    log.error("%s%s; retrying in %.1f s", fatal, self.waiting(), delay)
                else:
                    log.warning("MQTT broker %s unavailable%s (%s)%s; retrying in %.1f s", s.address,
                                f" {self.what}" if self.what else "", failure_reason(exc, plog.last_error),
                                self.waiting(), delay)
                self.attempted.set()
                await asyncio.sleep(delay)
            finally:
                self.connected.clear()
