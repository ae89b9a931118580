"""Test helpers for MQTT: a real Mosquitto on a free loopback port, and a small subscriber collector.

Import from test modules with `from mqtt_util import ...` (pytest puts tests/ on sys.path because
tests/conftest.py lives there and tests/ is not a package).

- `Mosquitto(tmp_path, *, users=None, persistence=False, tls=None)`: `start()` runs
  `/usr/sbin/mosquitto -c <generated config>` on `127.0.0.1:<free port>` and waits until it accepts
  connections; `stop()` terminates it (SIGTERM, so a persistent broker saves its state); `start()`
  again reuses the same port (outage tests). `users={"name": "password"}` adds a password file
  (`mosquitto_passwd`) and turns anonymous access off; with it, `acl=PATH` adds an `acl_file`.
  `persistence=True` keeps sessions and queued
  QoS 1 messages across stop/start (so a persistent subscriber misses nothing during an outage).
  `tls=make_tls_files(dir)` adds TLS on the listener instead of plain TCP (`require_certificate=True`:
  clients must present a certificate signed by the same CA, e.g. `tls.client_cert`/`tls.client_key`).
- Fixtures `mosquitto` (started, anonymous, no persistence) and `mosquitto_bin` (skips without it).
- `Collector(port, topics, *, client_id=None, persistent=False, ...)`: async context manager that
  subscribes (QoS 1) and keeps every message in `.messages` (list of (topic, payload bytes, retain));
  it reconnects on its own after an outage. With `persistent=True` it uses a fixed client id and
  clean_session=False, so with a persistent broker nothing published while it was away is lost.
  `await c.wait_for(lambda msgs: ..., timeout=30)` waits until a condition on the messages holds
  (TimeoutError otherwise; it is a safety net, not a timed assertion). `await c.sync()` makes a round
  trip through the broker, after which the broker has processed every PUBACK the collector sent: call
  it before stopping a persistent broker so it does not redeliver messages already received.
- `spawn_sink(port, node_id)`: an MqttSink in a child process (for kill -9 / last-will tests).
- `make_tls_files(dir)`: a throwaway CA and a server certificate for 127.0.0.1/localhost (openssl CLI).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import aiomqtt
import pytest
from ports import free_port  # noqa: F401 (re-exported: tests import it from here)

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


class _PortTaken(RuntimeError):
    """The broker could not bind its port: something else listens there."""


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path
    client_cert: Path | None = None  # signed by the same CA, for brokers that require client certificates
    client_key: Path | None = None


def make_tls_files(folder: Path, san: str = "IP:127.0.0.1,DNS:localhost") -> TlsFiles:
    """Generate a CA, a server certificate for `san` and a client certificate with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl CLI not found: cannot generate TLS certificates for the test broker")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = folder / "ca.key", folder / "ca.crt"
    key, csr, crt, ext = folder / "server.key", folder / "server.csr", folder / "server.crt", folder / "san.ext"

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=streamsnn test CA",
        "-keyout", str(ca_key), "-out", str(ca_crt))
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(csr))
    ext.write_text(f"subjectAltName={san}\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
        "-days", "2", "-extfile", str(ext), "-out", str(crt))
    ckey, ccsr, ccrt = folder / "client.key", folder / "client.csr", folder / "client.crt"
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=streamsnn-client", "-keyout", str(ckey),
        "-out", str(ccsr))
    run("x509", "-req", "-in", str(ccsr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
        "-days", "2", "-out", str(ccrt))
    return TlsFiles(ca_crt, crt, key, ccrt, ckey)


class Mosquitto:
    """A real Mosquitto broker on loopback for one test (see the module docstring)."""

    def __init__(self, folder: Path, *, port: int | None = None, users: dict[str, str] | None = None,
                 persistence: bool = False, tls: TlsFiles | None = None,
                 require_certificate: bool = False, acl: Path | None = None) -> None:
        if not Path(MOSQUITTO).exists():
            pytest.skip(f"mosquitto not installed ({MOSQUITTO}); install the mosquitto package")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.own_port = port is None  # a port it picked may be taken before the broker binds it: start() picks again
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.proc: subprocess.Popen | None = None
        self.started = False
        self.log = self.folder / "mosquitto.log"
        lines: list[str] = []
        if tls is not None:
            lines += [f"cafile {tls.ca_file}", f"certfile {tls.cert_file}", f"keyfile {tls.key_file}"]
            if require_certificate:
                lines += ["require_certificate true"]
        if users:
            pw = self.folder / "passwd"
            pw.write_text("")
            for name, password in users.items():
                subprocess.run([MOSQUITTO_PASSWD, "-b", str(pw), name, password], check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pw}"]
            if acl is not None:
                lines += [f"acl_file {acl}"]
        else:
            lines += ["allow_anonymous true"]
        if persistence:
            db = self.folder / "db"
            db.mkdir(exist_ok=True)
            lines += ["persistence true", f"persistence_location {db}/", "autosave_interval 1"]
        else:
            lines += ["persistence false"]
        if os.geteuid() == 0:
            lines += ["user root"]  # mosquitto would otherwise drop to a user that cannot read tmp files
        lines += [f"log_dest file {self.log}", "log_type error", "log_type warning", "log_type notice",
                  "log_type information", "max_queued_messages 100000"]  # information: its "running" line
        self.lines = lines
        self.config = self.folder / "mosquitto.conf"
        self._write_config()

    def _write_config(self) -> None:
        self.config.write_text("\n".join([f"listener {self.port} 127.0.0.1", *self.lines]) + "\n")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> Mosquitto:
        """Start the broker and wait until it accepts connections. On its first start a broker that picked its own
        port picks another when that one was taken in the meantime (by another test's listener), up to 3 times;
        a restart keeps the port, as clients reconnect to it."""
        if self.running:
            return self
        for attempt in range(3):
            try:
                self._start_once(timeout)
                self.started = True
                return self
            except _PortTaken:
                if self.started or not self.own_port or attempt == 2:
                    raise
                self.port = free_port()
                self._write_config()
        return self

    def _start_once(self, timeout: float) -> None:
        """Ready once this broker's own log says it is running (it writes that only after binding its listener)
        and the port accepts; a port that accepts while the log does not say so may be another test's listener."""
        deadline = time.monotonic() + timeout
        seen = self.log.stat().st_size if self.log.exists() else 0  # the log is appended to across restarts
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                log = self._log_since(seen)
                self.stop()
                kind = _PortTaken if "in use" in err + log else RuntimeError
                raise kind(f"mosquitto exited on port {self.port}: {err}{log}")
            if " running" in self._log_since(seen) and _accepts(self.port):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mosquitto did not listen on port {self.port} within {timeout} s")
            time.sleep(0.02)

    def _log_since(self, offset: int) -> str:
        if not self.log.exists():
            return ""
        with self.log.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@pytest.fixture
def mosquitto_bin() -> str:
    if not Path(MOSQUITTO).exists():
        pytest.skip(f"mosquitto not installed ({MOSQUITTO})")
    return MOSQUITTO


@pytest.fixture
def mosquitto(tmp_path):
    """A started anonymous Mosquitto on a free loopback port; stopped after the test."""
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()


class Collector:
    """Subscribe to topics and keep every message; reconnects by itself (see the module docstring)."""

    def __init__(self, port: int, topics: str | list[str], *, host: str = "127.0.0.1", client_id: str | None = None,
                 persistent: bool = False, qos: int = 1, username: str | None = None,
                 password: str | None = None, tls_params: aiomqtt.TLSParameters | None = None) -> None:
        self.port, self.host = port, host
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        self.client_id = client_id or f"collector-{uuid.uuid4().hex[:8]}"
        self.persistent, self.qos = persistent, qos
        self.username, self.password, self.tls_params = username, password, tls_params
        self.messages: list[tuple[str, bytes, bool]] = []
        self.connects = 0
        self._subscribed = asyncio.Event()
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._client: aiomqtt.Client | None = None
        self._sync_topic = f"collector-sync/{self.client_id}"
        self._synced: set[bytes] = set()

    def payloads(self, topic: str | None = None) -> list[bytes]:
        return [p for t, p, _ in self.messages if topic is None or t == topic]

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(self.host, self.port, identifier=self.client_id,
                                          clean_session=not self.persistent, username=self.username,
                                          password=self.password, tls_params=self.tls_params,
                                          keepalive=5) as client:
                    self.connects += 1
                    for topic in self.topics:
                        await client.subscribe(topic, qos=self.qos)
                    await client.subscribe(self._sync_topic, qos=1)
                    self._client = client
                    self._subscribed.set()
                    async for msg in client.messages:
                        payload = msg.payload if isinstance(msg.payload, bytes) else str(msg.payload).encode()
                        if str(msg.topic) == self._sync_topic:
                            self._synced.add(payload)
                        else:
                            self.messages.append((str(msg.topic), payload, bool(msg.retain)))
                        self._changed.set()
            except aiomqtt.MqttError:
                self._client = None
                await asyncio.sleep(0.2)

    async def __aenter__(self) -> Collector:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._subscribed.wait(), 15)
        return self

    async def __aexit__(self, *exc) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._task

    async def sync(self, timeout: float = 15.0) -> None:
        """Round trip through the broker: afterwards it has processed every acknowledgement we sent
        (so, e.g., stopping a persistent broker now will not redeliver what we already received)."""
        token = uuid.uuid4().hex.encode()
        await self._client.publish(self._sync_topic, token, qos=1)
        await self.wait_for(lambda _: token in self._synced, timeout)

    async def wait_for(self, condition: Callable[[list], bool], timeout: float = 30.0) -> list:
        """Wait until condition(self.messages) is true; TimeoutError (with what arrived) otherwise."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition(self.messages):
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"condition not met within {timeout} s; got {len(self.messages)} messages")
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))
        return self.messages


_SINK_SCRIPT = """
import asyncio, sys
from streamsnn.mqtt import MqttSettings, MqttSink
async def main():
    sink = MqttSink(MqttSettings(host=sys.argv[1], port=int(sys.argv[2]), node_id=sys.argv[3], keepalive=5))
    await sink.start()
    await sink.connected.wait()
    print("connected", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def spawn_sink(port: int, node_id: str, host: str = "127.0.0.1") -> subprocess.Popen:
    """Run an MqttSink in another Python process (for kill -9 / last-will tests); returns once connected."""
    import sys

    proc = subprocess.Popen([sys.executable, "-c", _SINK_SCRIPT, host, str(port), node_id],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if line.strip() != "connected":
        proc.kill()
        raise RuntimeError(f"sink subprocess did not connect: {line!r} {proc.stderr.read()}")
    return proc


async def spawn_sink_async(port: int, node_id: str, host: str = "127.0.0.1") -> subprocess.Popen:
    """spawn_sink without blocking the event loop (needed when the broker runs in this loop)."""
    return await asyncio.to_thread(spawn_sink, port, node_id, host)


def hostile_packet(batch, **fields) -> bytes:
    """The event packet of `batch` with header fields (width, height, t0, n) overwritten, as an attacker sends it."""
    import struct

    from streamsnn.mqtt import packets

    payload = bytearray(packets.encode(batch))
    for name, value in fields.items():
        fmt, at = {"width": ("<H", 6), "height": ("<H", 8), "t0": ("<q", 20), "n": ("<I", 28)}[name]
        struct.pack_into(fmt, payload, at, value)
    return bytes(payload)
