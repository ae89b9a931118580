"""MQTT settings: broker address, topics, QoS, credentials and TLS, validated with one-line errors."""

from __future__ import annotations

import os
import re
import socket
import ssl
import uuid
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..errors import ConfigError
from ..pipeline.feedback import MAX_FEEDBACK_BYTES

#: Environment variable holding the MQTT password (read by `streamsnn run` and `streamsnn publish`).
PASSWORD_ENV = "STREAMSNN_MQTT_PASSWORD"


@dataclass
class TlsSettings:
    """TLS for the broker connection: CA file to verify the broker, optional client certificate."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False  # skip the broker host name check (the certificate chain is still verified)


def default_node_id() -> str:
    """The host name with characters that do not belong in a topic level replaced."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()) or "node"


@dataclass
class MqttSettings:
    """Where and how to talk to the broker. Invalid values raise ConfigError naming `mqtt.<field>`."""

    host: str = "127.0.0.1"
    port: int = 1883
    node_id: str = field(default_factory=default_node_id)
    prefix: str | None = None          # default streamsnn/<node_id>
    qos: int = 1
    username: str | None = None
    password: str | None = None        # never logged, hidden in repr
    tls: TlsSettings | None = None
    keepalive: int = 30
    timeout: float = 10.0              # connect / subscribe / publish acknowledgement timeout, seconds
    outbox_size: int = 10_000
    inflight: int = 20                 # publishes awaiting PUBACK at once
    reconnect_min: float = 0.5         # backoff, seconds
    reconnect_max: float = 30.0
    client_id: str | None = None       # default streamsnn-<node_id>-<random>
    feedback: bool = True
    max_feedback_bytes: int = MAX_FEEDBACK_BYTES
    incoming: int = 1000               # received messages aiomqtt may queue before it drops (and logs) more

    def __post_init__(self) -> None:
        if isinstance(self.tls, dict):
            try:
                self.tls = TlsSettings(**self.tls)
            except TypeError as exc:
                raise ConfigError(f"mqtt.tls: {exc}; allowed keys are ca_file, cert_file, key_file, insecure") from None
        if not self.host:
            raise ConfigError("mqtt.broker is empty; give the broker's host name or address, or \"embedded\"")
        if not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise ConfigError(f"mqtt.port must be 1..65535, got {self.port!r}")
        if not self.node_id or re.search(r"[/+#\s]", self.node_id):
            raise ConfigError(f"mqtt.node_id {self.node_id!r} must be non-empty without '/', '+', '#' or spaces")
        if self.prefix is None:
            self.prefix = f"streamsnn/{self.node_id}"
        self.prefix = self.prefix.rstrip("/")
        if not self.prefix or "+" in self.prefix or "#" in self.prefix:
            raise ConfigError(f"mqtt.prefix {self.prefix!r} must be a non-empty topic without wildcards (+, #)")
        if self.prefix.startswith("$"):  # the broker's own topics ($SYS): it drops what clients publish there
            raise ConfigError(f"mqtt.prefix {self.prefix!r} must not start with '$' (topics of the broker itself)")
        if self.qos not in (0, 1, 2):
            raise ConfigError(f"mqtt.qos must be 0, 1 or 2, got {self.qos!r}")
        for name in ("keepalive", "outbox_size", "inflight", "max_feedback_bytes", "incoming"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"mqtt.{name} must be a positive integer, got {value!r}")
        if not 0 < self.reconnect_min <= self.reconnect_max:
            raise ConfigError(f"mqtt.reconnect_min ({self.reconnect_min}) must be > 0 and <= mqtt.reconnect_max "
                              f"({self.reconnect_max})")
        if self.timeout <= 0:
            raise ConfigError(f"mqtt.timeout must be positive, got {self.timeout!r}")
        if self.password is not None and self.username is None:
            raise ConfigError("mqtt.password is set without mqtt.username; set both or neither")
        if self.tls is not None:
            for name in ("ca_file", "cert_file", "key_file"):
                path = getattr(self.tls, name)
                if path is not None and not Path(path).is_file():
                    raise ConfigError(f"mqtt.tls.{name}: file not found: {path}")
            if (self.tls.cert_file is None) != (self.tls.key_file is None):
                raise ConfigError("mqtt.tls.cert_file and mqtt.tls.key_file go together; set both or neither")
            check_tls_files(self.tls)
        if self.client_id is None:
            self.client_id = f"streamsnn-{self.node_id}-{uuid.uuid4().hex[:6]}"

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "password" and value is not None:
                value = "***"
            parts.append(f"{f.name}={value!r}")
        return f"MqttSettings({', '.join(parts)})"

    @property
    def address(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def topic(self, name: str) -> str:
        return f"{self.prefix}/{name}"


def check_tls_files(tls: TlsSettings) -> None:
    """ConfigError naming the file when the CA file or the client certificate and key are not usable PEM."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if tls.ca_file is not None:
        try:
            ctx.load_verify_locations(cafile=tls.ca_file)
        except (ssl.SSLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise ConfigError(f"mqtt.tls.ca_file: {tls.ca_file} holds no usable certificate ({reason}); "
                              "give the broker's CA certificate in PEM") from None
    if tls.cert_file is not None:
        try:
            ctx.load_cert_chain(tls.cert_file, tls.key_file)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigError(f"mqtt.tls.cert_file/key_file: {tls.cert_file} and {tls.key_file} are not a "
                              f"matching PEM certificate and key ({getattr(exc, 'reason', None) or exc})") from None


def password_from_env(username: str | None) -> str | None:
    """The password for `username` from $STREAMSNN_MQTT_PASSWORD (None without a user name or value)."""
    return (os.environ.get(PASSWORD_ENV) or None) if username else None


def settings_from_config(cfg, node: str) -> MqttSettings:
    """MqttSettings from a pipeline Config's [mqtt] section (the password may come from the environment)."""
    m = cfg.mqtt
    tls = TlsSettings(ca_file=m.tls_ca, cert_file=m.tls_cert or None, key_file=m.tls_key or None,
                      insecure=m.tls_insecure) if m.tls_ca else None
    username = m.username or None
    host = "127.0.0.1" if m.broker == "embedded" else m.broker
    return MqttSettings(host=host, port=m.port or 1883, node_id=node, prefix=m.prefix or None, qos=m.qos,
                        username=username, password=m.password or password_from_env(username), tls=tls,
                        keepalive=m.keepalive, outbox_size=m.outbox, inflight=m.inflight,
                        client_id=m.client_id or None, feedback=cfg.model.learn_from_feedback)
