"""The ports tests give their servers: bindable, each once, below the ephemeral range, apart per xdist worker."""

import socket

import ports


def test_ports_are_bindable_distinct_and_clear_of_the_ephemeral_range(monkeypatch):
    low = ports._ephemeral_low()
    got = [ports.free_port() for _ in range(50)]
    assert len(set(got)) == 50
    for p in got:
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))
    if low - 2 * ports.BAND >= 10000:
        assert all(p < low for p in got)
        bands = []
        for worker in ("gw0", "gw1"):
            monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
            bands.append({ports.free_port() for _ in range(20)})
        assert not bands[0] & bands[1]
        assert max(bands[1]) < min(bands[0])  # worker 1's band lies below worker 0's


def test_a_port_something_listens_on_is_skipped(monkeypatch):
    monkeypatch.setattr(ports, "_given", set())
    first = ports.free_port()
    monkeypatch.setattr(ports, "_given", set())
    with socket.socket() as held:
        held.bind(("127.0.0.1", first))
        held.listen()
        assert ports.free_port() != first
