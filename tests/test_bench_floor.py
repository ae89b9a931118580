"""bench_floor's measurements: messages really cross processes (and Mosquitto) and come back stamped."""

import numpy as np
import pytest

pytest.importorskip("paho.mqtt.client")


def test_the_floor_measures_every_message_over_tcp_and_through_mosquitto(tmp_path):
    from benchmarks import bench_floor
    from benchmarks.bench_e2e import mosquitto
    from benchmarks.bench_live import floor_payload

    payload = floor_payload()
    n = bench_floor.WARM + 20
    hop = bench_floor.tcp_hop(n, payload)
    assert len(hop) == 20 and np.all(np.isfinite(hop)) and np.all(hop > 0) and np.all(hop < 1000)
    broker = mosquitto(tmp_path / "mosquitto")
    try:
        for sender, sub in (("aiomqtt", "aiomqtt"), ("aiomqtt", "paho"), ("paho", "paho")):
            x = bench_floor.through_broker(broker.port, sender, sub, n, payload)
            assert len(x) == 20 and np.all(x > 0) and np.all(x < 1000), (sender, sub)
    finally:
        broker.stop()
