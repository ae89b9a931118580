"""The tests' own Mosquitto helper (mqtt_util.Mosquitto): a port taken between picking it and binding it does not
make a test talk to someone else's listener or fail; a broker told its port says it is taken."""

from __future__ import annotations

import socket

import mqtt_util
import pytest
from mqtt_util import Mosquitto


@pytest.fixture
def taken():
    """A port some other listener holds for the test's length."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s.getsockname()[1]
    s.close()


def test_a_broker_whose_picked_port_was_taken_picks_another(tmp_path, taken, monkeypatch):
    picks = iter([taken])
    real = mqtt_util.free_port
    monkeypatch.setattr(mqtt_util, "free_port", lambda: next(picks, None) or real())
    broker = Mosquitto(tmp_path)
    assert broker.port == taken
    broker.start()
    try:
        assert broker.running and broker.port != taken
        assert f"listener {broker.port} " in broker.config.read_text()
    finally:
        broker.stop()


def test_a_broker_told_a_taken_port_says_so(tmp_path, taken):
    broker = Mosquitto(tmp_path, port=taken)
    with pytest.raises(RuntimeError, match=f"(?s)port {taken}.*in use"):
        broker.start()
    assert not broker.running
