"""Embedded MQTT broker (amqtt, in-process, loopback only) for the zero-config default.

    async with EmbeddedBroker() as broker:          # port=0 picks a free port; default 1883
        settings = MqttSettings(host=broker.host, port=broker.port)

The broker speaks MQTT 3.1.1 (no shared subscriptions: use Mosquitto or another MQTT 5 broker to
spread work across daemons), allows anonymous clients, keeps retained messages and last wills in
memory only, and is quiet: amqtt's own logging is turned down to ERROR unless `verbose=True`, and
its error line for a connection that closes without sending anything (a health check, a port
scan) is dropped. A port that is already taken gives one ConfigError line with the hint, checked
before amqtt starts (so no amqtt traceback); port 0 picks a free port first (`port` then holds it).
"""

from __future__ import annotations

import errno
import logging
import socket

from ..errors import ConfigError

log = logging.getLogger("streamsnn.broker")
#: amqtt log lines that are no failures of ours: a connection that closed without data, and the
#: start-up failure we report ourselves in one line.
QUIET = ("No data from", "Broker startup failed")


class _Quiet(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(QUIET)


def free_port(host: str) -> int:
    """A TCP port nothing listens on right now at `host`."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def check_port(host: str, port: int) -> None:
    """ConfigError in one line when `host:port` cannot be bound (already in use, or not an address here)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the broker's own listener does
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"cannot start the embedded MQTT broker: {host}:{port} is already in use (another "
                                  "MQTT broker, e.g. Mosquitto, may run there); stop it, set mqtt.port (0 = any "
                                  "free port), or use it: mqtt.broker = \"127.0.0.1\"") from None
            raise ConfigError(f"cannot start the embedded MQTT broker on {host}:{port}: "
                              f"{exc.strerror or exc}") from None


class EmbeddedBroker:
    """An amqtt broker on `host:port` for the lifetime of an `async with` block (or start()/stop())."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883, *, verbose: bool = False) -> None:
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self.verbose = verbose
        self._broker = None

    def _config(self, port: int) -> dict:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }

    async def start(self) -> EmbeddedBroker:
        from amqtt.broker import Broker  # imported here: amqtt is only needed when the broker is used
        from amqtt.errors import BrokerError

        if not self.verbose:
            for name in ("amqtt", "transitions"):
                logging.getLogger(name).setLevel(logging.ERROR)
            quiet = logging.getLogger("amqtt.broker")
            if not any(isinstance(f, _Quiet) for f in quiet.filters):
                quiet.addFilter(_Quiet())
        port = self.requested_port or free_port(self.host)
        check_port(self.host, port)
        self._broker = Broker(self._config(port))
        try:
            await self._broker.start()
        except BrokerError as exc:  # e.g. the port was taken between the check and the start
            self._broker = None
            cause = exc.__cause__ or exc
            if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
                check_port(self.host, port)
            raise ConfigError(f"cannot start the embedded MQTT broker on {self.host}:{port}: {cause}") from None
        self.port = port
        log.info("embedded MQTT broker listening on %s:%d", self.host, self.port)
        return self

    async def stop(self) -> None:
        if self._broker is not None:
            broker, self._broker = self._broker, None
            await broker.shutdown()
            log.info("embedded MQTT broker on %s:%s stopped", self.host, self.port)

    async def __aenter__(self) -> EmbeddedBroker:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()
