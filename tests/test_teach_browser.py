"""Teaching from the live view in a real headless Chromium on a phone-sized screen: a daemon (the synthetic
camera, a small fresh network, teaching on) publishing to a real Mosquitto; a new class name typed in the
page is learned, and the class appears in the page's picker and decisions and in the retained `classes`
topic on the broker; a refused name says why on the page."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from daemon_util import stop_with_sigint
from mqtt_util import mosquitto  # noqa: F401 (fixture)
from test_liveview_browser import browser, live_view_url, start_demo, teach_from_page, wait_for  # noqa: F401

from streamsnn.pipeline.feedback import MAX_CLASSES  # noqa: F401 - the bound new names grow within

ROOT = Path(__file__).resolve().parent.parent
PHONE = (390, 844)

pytestmark = pytest.mark.slow


def test_a_new_class_typed_in_the_page_is_learned_and_reaches_the_broker(browser, mosquitto, tmp_path):
    from mqtt_util import free_port
    from test_mqtt_discovery import retained

    port = free_port()
    log = tmp_path / "daemon.log"
    sets = {"source.kind": "synthetic", "source.path": "", "segment.label_windows": "false",
            "model.hidden": 16, "model.learn_from_labels": "false", "model.new_classes": "true",
            "liveview.port": port, "liveview.teach": "true",
            "mqtt.broker": "127.0.0.1", "mqtt.port": mosquitto.port}
    proc = start_demo(tmp_path, sets, log)
    try:
        url = live_view_url(log)
        assert "teaching token" not in log.read_text()  # loopback: no token
        browser.set_window_size(*PHONE)
        browser.get(url)
        js = browser.execute_script
        wait_for(lambda: js("return document.getElementById('status').textContent") == "live", 30,
                 "the page connecting to /events", log)
        assert js("return document.getElementById('teach').hidden") is False  # teaching on: the panel shows
        assert js("return document.getElementById('teach-token').hidden") is True
        digits = [str(k) for k in range(10)]
        assert js("return [...document.querySelectorAll('#teach-pick option')].map((o) => o.value)") == digits
        wait_for(lambda: js("return document.querySelectorAll('#bars .bar').length") == 10, 30,
                 "a decision on the page", log)
        # usable on a phone: nothing wider than the screen, the controls inside it
        width = js("return window.innerWidth")
        assert js("return document.documentElement.scrollWidth") <= width
        box = js("const b = document.getElementById('teach-send').getBoundingClientRect();"
                 "return [b.left, b.right, b.height]")
        assert 0 <= box[0] and box[1] <= width and box[2] >= 36

        def teach(name: str) -> str:
            return teach_from_page(browser, name, log)

        said = teach("x" * 70)  # too long for a class name: refused, and the page says why
        assert said.startswith("refused (bad_class_name)") and "more than 64" in said, said
        assert js("return document.getElementById('teach-result').className") == "refused"

        said = teach("cup")
        assert said.startswith("learned: the window") and said.endswith("is cup (a new class)"), said
        assert js("return document.getElementById('teach-result').className") == "learned"
        assert js("return document.getElementById('teach-name').value") == ""
        assert js("return [...document.querySelectorAll('#teach-pick option')].map((o) => o.value)") == [*digits,
                                                                                                         "cup"]
        # the decisions made since score the new class too, shown by its name
        wait_for(lambda: js("return [...document.querySelectorAll('#bars .bar span')].map((s) => s.textContent)")
                 == [*digits, "cup"], 30, "a decision scoring the new class", log)
        # picking it from the list teaches another window (not added again)
        browser.find_element("css selector", "#teach-pick option[value='cup']").click()
        said = teach("")
        assert said.startswith("learned: the window") and said.endswith("is cup"), said

        shot = tmp_path / "teach-phone.png"
        shot.write_bytes(browser.get_screenshot_as_png())
        keep = os.environ.get("STREAMSNN_SCREENSHOTS")  # a folder to keep the screenshot in (CI artifacts)
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(keep) / "teach-phone.png")

        kept = asyncio.run(retained(mosquitto.port, "streamsnn/demo/classes", quiet_s=0.5))
        assert json.loads(kept["streamsnn/demo/classes"]) == [*digits, "cup"]
        metrics = json.loads(wait_for(lambda: js("return fetch('metrics.json').then((r) => r.text())"), 10,
                                      "metrics.json", log))
        assert metrics["teach"]["learned"] == 2 and metrics["teach"]["refused"] == 1
        assert metrics["classes"][-1] == "cup"
    finally:
        code = stop_with_sigint(proc, log)
    assert code == 0, log.read_text(errors="replace")[-3000:]
    text = log.read_text(errors="replace")
    assert "feedback added class 'cup'" in text
