"""The pipeline's parts on their own (feedback teacher, class growth, metrics, checkpoints, settings) and the
smaller points of issue 18: `-v` gives debug logging, received MQTT messages that do not fit are counted in
our own bounded queue, the metrics carry no dead queue depth."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys

import pytest
from mqtt_util import mosquitto  # noqa: F401 (fixture)

from streamsnn.mqtt import MqttSettings
from streamsnn.mqtt.connection import Connection


# -- cli: -v ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("args,level", [([], logging.INFO), (["-v"], logging.DEBUG), (["-vv"], logging.DEBUG)])
def test_verbose_flag_gives_debug_logging(args, level):
    code = ("import logging, sys; from streamsnn.cli import main; rc = main(sys.argv[1:]); "
            "print(rc, logging.getLogger().level)")
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60,
                         env=os.environ.copy())
    assert out.stdout.split()[-2:] == ["2", str(level)], out.stderr  # no command: help, exit 2


# -- MQTT: received messages beyond mqtt.incoming ---------------------------------------------------
async def test_received_messages_that_do_not_fit_are_dropped_and_counted_by_us(mosquitto, caplog):  # noqa: F811
    s = MqttSettings(host="127.0.0.1", port=mosquitto.port, node_id="drops", incoming=3, reconnect_min=0.2)
    conn = Connection(s, client_id="drops-in")
    kept = []

    async def session(client) -> bool:
        await client.subscribe("drops/t", qos=1)
        for i in range(10):  # nobody reads meanwhile
            await client.publish("drops/t", str(i).encode(), qos=1)
        while conn.incoming_dropped < 7:
            await asyncio.sleep(0.02)
        async for m in client.messages:
            kept.append(m.payload)
            if len(kept) == 3:
                return True
        return True

    with caplog.at_level(logging.DEBUG):
        await asyncio.wait_for(conn.run(session), 30)
    assert conn.incoming_dropped == 7 and kept == [b"0", b"1", b"2"]  # the first that fit are kept, in order
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 5 and all("received MQTT message dropped" in r.getMessage() for r in warned)
    assert not [r for r in caplog.records if r.name == "streamsnn.mqtt.protocol" and "queue is full" in r.getMessage()]
