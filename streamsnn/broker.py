"""Embedded MQTT broker (amqtt, in-process, loopback only) for the zero-config default.

    async with EmbeddedBroker() as broker:          # port=0 picks a free port; default 1883
        settings = MqttSettings(host=broker.host, port=broker.port)

The broker speaks MQTT 3.1.1 (no shared subscriptions: use Mosquitto or another MQTT 5 broker to
spread work across daemons), allows anonymous clients, keeps retained messages and last wills in
memory only, and is quiet: amqtt's own logging is turned down to ERROR unless `verbose=True`.
A port that is already taken gives one clear ConfigError line.
"""

from __future__ import annotations

import errno
import logging

from .errors import ConfigError

log = logging.getLogger("streamsnn.broker")


class EmbeddedBroker:
    """An amqtt broker on `host:port` for the lifetime of an `async with` block (or start()/stop())."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883, *, verbose: bool = False) -> None:
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self.verbose = verbose
        self._broker = None

    def _config(self) -> dict:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.requested_port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }

    async def start(self) -> "EmbeddedBroker":
        from amqtt.broker import Broker  # imported here: amqtt is only needed when the broker is used

        if not self.verbose:
            for name in ("amqtt", "transitions"):
                logging.getLogger(name).setLevel(logging.ERROR)
        self._broker = Broker(self._config())
        try:
            await self._broker.start()
        except Exception as exc:  # amqtt wraps the OSError in BrokerError
            cause = exc.__cause__ or exc
            if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
                raise ConfigError(f"cannot start the embedded MQTT broker: {self.host}:{self.requested_port} is "
                                  "already in use; stop what listens there or set mqtt.port (0 = any free "
                                  "port)") from None
            raise ConfigError(f"cannot start the embedded MQTT broker on {self.host}:{self.requested_port}: "
                              f"{cause}") from None
        self.port = self._bound_port()
        log.info("embedded MQTT broker listening on %s:%d", self.host, self.port)
        return self

    def _bound_port(self) -> int:
        servers = getattr(self._broker, "_servers", {})
        server = servers.get("default")
        sockets = getattr(getattr(server, "instance", None), "sockets", None) or ()
        for sock in sockets:
            return int(sock.getsockname()[1])
        return self.requested_port

    async def stop(self) -> None:
        if self._broker is not None:
            broker, self._broker = self._broker, None
            await broker.shutdown()
            log.info("embedded MQTT broker on %s:%s stopped", self.host, self.port)

    async def __aenter__(self) -> "EmbeddedBroker":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()
