"""Telling a TLS mix-up from a broker that is down: does a broker port speak TLS, or plain MQTT?

A client that speaks plain MQTT to a TLS listener (or TLS to a plain one) only sees the connection
being reset, exactly as during an outage. Before the first successful connection the MQTT sink and
source ask `tls_mismatch(settings)`, which probes the port the other way round (a TLS handshake
without verification, or an MQTT 3.1.1 CONNECT in the clear) and turns a mix-up into a ConfigError,
so the daemon stops with one line instead of retrying forever. A port that answers neither way (a
broker that is down, a firewall) gives None: keep retrying.

A broker that requires a client certificate, met without one, is the same story under TLS 1.3: the handshake
completes on the client's side and the broker's alert ("certificate required") comes after it, often lost in the
reset that follows the client's CONNECT. The probe completes a handshake, sends nothing, and reads the alert.
"""

from __future__ import annotations

import os
import socket
import ssl

from ..errors import ConfigError

#: Seconds one probe may take (connect plus answer).
PROBE_TIMEOUT = 2.0


def _unverified() -> ssl.SSLContext:
    """A TLS client context that verifies nothing: the probes ask what a port speaks, not whom to trust."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def speaks_tls(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    """True when the port completes a TLS handshake, or answers it with a TLS alert."""
    ctx = _unverified()
    try:
        with socket.create_connection((host, port), timeout) as raw:
            with ctx.wrap_socket(raw, server_hostname=host):
                return True
    except ssl.SSLError as exc:  # an alert (e.g. "certificate required") comes from a TLS server
        return "ALERT" in str(exc.reason or "").upper()
    except (OSError, ValueError):
        return False


def demands_certificate(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    """True when a TLS port answers a handshake without a client certificate with the TLS 1.3 alert saying one is
    required (at the first read after the handshake; under TLS 1.2 the handshake itself fails, and the client's
    own connection attempt already tells why)."""
    ctx = _unverified()
    try:
        with socket.create_connection((host, port), timeout) as raw, ctx.wrap_socket(raw, server_hostname=host) as tls:
            tls.settimeout(timeout)
            tls.recv(1)  # nothing was sent: the only answer a broker has is an alert (or closing)
    except ssl.SSLError as exc:
        return "CERTIFICATE_REQUIRED" in str(exc.reason or "").upper()
    except (OSError, ValueError):
        pass
    return False


def speaks_plain_mqtt(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    """True when the port answers an MQTT 3.1.1 CONNECT in the clear with a CONNACK (any return code)."""
    client_id = f"streamsnn-probe-{os.urandom(4).hex()}".encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x05" + len(client_id).to_bytes(2, "big") + client_id
    connect = b"\x10" + bytes([len(body)]) + body
    try:
        with socket.create_connection((host, port), timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(connect)
            head = sock.recv(1)
            if head == b"\x20":
                try:
                    sock.sendall(b"\xe0\x00")  # DISCONNECT
                except OSError:
                    pass
                return True
            return False
    except OSError:
        return False


def tls_mismatch(settings) -> ConfigError | None:
    """ConfigError when `settings` (an MqttSettings) use TLS on a plain port or plain MQTT on a TLS port, or no
    client certificate where the broker requires one."""
    host, port = settings.host, settings.port
    if settings.tls is None and speaks_tls(host, port):
        return ConfigError(f"MQTT broker {host}:{port} answers with TLS, but TLS is off; set mqtt.tls_ca (the CA "
                           "file that turns TLS on) or use the broker's plain MQTT port")
    if settings.tls is not None and speaks_plain_mqtt(host, port):
        return ConfigError(f"MQTT broker {host}:{port} speaks plain MQTT, not TLS; use the broker's TLS port "
                           "(often 8883) or clear mqtt.tls_ca")
    if settings.tls is not None and settings.tls.cert_file is None and demands_certificate(host, port):
        return ConfigError(f"TLS connection to MQTT broker {settings.address} failed: the broker requires a client "
                           "certificate; present one (mqtt.tls.cert_file, mqtt.tls.key_file)")
    return None
