"""The live view in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium):
a replay daemon serves the page, a frame and a decision appear (the decision beside the frame of its own
events), the strip of recent decisions fills with times and class names, and a screenshot is taken."""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import need
from daemon_util import stop_with_sigint
from mqtt_util import free_port
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("STREAMSNN_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("STREAMSNN_CHROMEDRIVER", "/usr/bin/chromedriver"))
WINDOW = (1100, 700)

pytestmark = pytest.mark.slow


@pytest.fixture
def browser(tmp_path):
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip(f"no headless browser: {CHROMIUM} or {CHROMEDRIVER} missing "
                    "(apt-get install chromium chromium-driver; .ci/run does it when it can)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
                f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)  # no driver download
    yield driver
    driver.quit()


def wait_for(cond, timeout: float, what: str, log: Path):
    """Poll cond() until it returns something truthy; fail (with the daemon's log) after timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = cond()
        if got:
            return got
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen within {timeout} s; daemon log:\n{log.read_text(errors='replace')[-3000:]}")


def start_demo(tmp_path: Path, sets: dict, log: Path) -> subprocess.Popen:
    """`streamsnn run pipelines/demo.toml --set K=V ...` in a subprocess, its output in ``log``."""
    cmd = [sys.executable, "-m", "streamsnn", "run", str(ROOT / "pipelines" / "demo.toml")]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    with log.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})


def live_view_url(log: Path) -> str:
    """The live view's address, once the daemon has printed it."""
    return wait_for(lambda: (m := re.search(r"live view: open (http://\S+)", log.read_text())) and m.group(1),
                    60, "the live view URL", log)


def teach_from_page(browser, name: str, log: Path) -> str:
    """Type ``name`` into the page's teaching field and send it; the answer the page shows."""
    js = browser.execute_script
    field = browser.find_element("id", "teach-name")
    field.clear()
    field.send_keys(name)
    js("document.getElementById('teach-result').textContent = ''")
    browser.find_element("id", "teach-send").click()
    return wait_for(lambda: js("return document.getElementById('teach-result').textContent"), 30,
                    f"the answer to teaching {name!r}", log)


def test_page_shows_frames_decisions_and_metrics_of_a_replay(browser, tmp_path):
    nmnist = need("nmnist_small")
    port = free_port()
    log = tmp_path / "daemon.log"
    sets = {"source.kind": "replay", "source.path": nmnist, "source.split": "test", "source.speed": 1,
            "source.loop": "true", "source.chunk_us": 0, "segment.mode": "auto", "segment.label_windows": "false",
            "model.hidden": 64, "liveview.port": port,
            "liveview.decay_ms": 1000,  # whole samples arrive every 0.3 s: keep each visible until the next
            "mqtt.port": 0}
    proc = start_demo(tmp_path, sets, log)
    try:
        url = live_view_url(log)
        assert url == f"http://127.0.0.1:{port}/"
        browser.get(url)
        js = browser.execute_script
        wait_for(lambda: js("return document.getElementById('status').textContent") == "live", 30,
                 "the page connecting to /events", log)
        label = wait_for(lambda: js("return document.getElementById('decision').textContent").strip()
                         if js("return document.querySelectorAll('#bars .bar').length") == 10 else None,
                         30, "a decision on the page", log)
        assert label in [str(k) for k in range(10)]
        assert js("return document.querySelectorAll('#bars .bar.top').length") == 1
        assert "sample" in js("return document.getElementById('decision-info').textContent")
        # the decision is shown with the frame of its own window: same sample, drawn together
        shown = wait_for(lambda: js("const c = document.getElementById('decided-frame'), i = "
                                    "document.getElementById('decision-info').textContent;"
                                    "return Number(c.dataset.frames) >= 2 && c.dataset.sample && "
                                    "i.includes('sample ' + c.dataset.sample) && "
                                    "document.getElementById('decision').textContent.trim() === "
                                    "(document.getElementById('bars').querySelector('.bar.top span').textContent) "
                                    "&& [c.dataset.sample, c.width, c.height, "
                                    "document.getElementById('decided-caption').textContent]"),
                         30, "a decision drawn with its own events", log)
        # one script call reads frame, decision and caption together: a newer decision may arrive between two
        assert re.fullmatch(r"600\d\d", shown[0]) and shown[1:3] == [34, 34]
        assert f"sample {shown[0]}" in shown[3] and "events of the window" in shown[3], shown
        # the strip of recent decisions: class name (right or wrong), window end, wall time
        items = wait_for(lambda: (t := js("return [...document.querySelectorAll('#history .item')]"
                                          ".map((e) => [e.className, e.textContent])")) and len(t) >= 3 and t,
                         30, "the strip of recent decisions", log)
        for cls, text in items:
            assert re.search(r"^\d [✓✗]\s*\d+\.\d\d s\d\d:\d\d:\d\d$", text.strip()), text
            assert ("ok" in cls) == ("✓" in text) and ("miss" in cls) == ("✗" in text)
        wait_for(lambda: js("const f = document.getElementById('frame');"
                            "return Number(f.dataset.frames) >= 2 && f.width === 34 && f.height === 34"),
                 30, "event frames drawn on the page", log)
        wait_for(lambda: "progressive accuracy" in js("return document.getElementById('metrics').textContent"),
                 30, "the metrics on the page", log)
        metrics = js("return document.getElementById('metrics').textContent")
        assert "events/s" in metrics and "drops" in metrics

        png = browser.get_screenshot_as_png()
        shot = tmp_path / "liveview.png"
        shot.write_bytes(png)
        img = Image.open(io.BytesIO(png))
        assert img.format == "PNG"
        ratio = js("return window.devicePixelRatio")
        viewport = js("return [window.innerWidth, window.innerHeight]")
        assert img.size == (round(viewport[0] * ratio), round(viewport[1] * ratio))
        assert img.size[0] >= WINDOW[0] * 0.9 * ratio
        rgb = np.asarray(img.convert("RGB")).astype(float)
        assert rgb.std() > 10, "the screenshot is blank"
        r = js("const b = document.getElementById('frame').getBoundingClientRect();"
               "return [b.left, b.top, b.right, b.bottom]")
        frame = rgb[int(r[1] * ratio):int(r[3] * ratio), int(r[0] * ratio):int(r[2] * ratio)]
        assert frame.size and frame.std() > 10, "the event frame in the screenshot is blank"
        r = js("const b = document.getElementById('decided-frame').getBoundingClientRect();"
               "return [b.left, b.top, b.right, b.bottom]")
        mine = rgb[int(r[1] * ratio):int(r[3] * ratio), int(r[0] * ratio):int(r[2] * ratio)]
        assert mine.size and mine.std() > 10, "the decision's own frame in the screenshot is blank"
        print(f"screenshot: {shot}")
    finally:
        code = stop_with_sigint(proc, log)
    assert code == 0, log.read_text(errors="replace")[-3000:]
    keep = os.environ.get("STREAMSNN_SCREENSHOTS")  # a folder to keep the screenshot in (CI artifacts)
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "liveview.png")
