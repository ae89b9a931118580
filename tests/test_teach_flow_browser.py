"""From `streamsnn record` to a class taught from the page, in a real headless Chromium over a real Mosquitto:
three classes recorded from the synthetic camera (one folder of MNIST digit images per class), a model trained
on them with `streamsnn train`, a daemon running it with teaching on, and a fourth digit taught from the page:
the new class shows in the picker and the decisions, in the retained `classes` topic, and the taught windows
are recorded into the dataset folder. With STREAMSNN_SCREENSHOTS=DIR the page is saved before teaching, with
the answer, and with the new class among the decisions (the images of docs/demo.md's walk-through)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import need
from daemon_util import stop_with_sigint
from mqtt_util import mosquitto  # noqa: F401 (fixture)
from test_liveview_browser import browser, live_view_url, start_demo, teach_from_page, wait_for  # noqa: F401

from streamsnn.defaults import RECORD_TEST_EVERY

ROOT = Path(__file__).resolve().parent.parent
PHONE = (390, 844)
#: class name -> MNIST digit filmed for it; the first three are recorded and trained, the last taught live
DIGITS = {"zero": 0, "one": 1, "seven": 7, "four": 4}

pytestmark = pytest.mark.slow


def digit_folders(mnist: Path, out: Path, per_class: int = 12) -> dict[str, Path]:
    """One folder of PNG digits per class of DIGITS, from MNIST test images 101 on."""
    from PIL import Image

    from streamsnn.io.mnist_idx import load_mnist

    images, labels = load_mnist(mnist, "test")
    folders = {}
    for name, digit in DIGITS.items():
        folder = out / name
        folder.mkdir(parents=True)
        for k in [i for i in range(100, len(labels)) if labels[i] == digit][:per_class]:
            Image.fromarray(images[k]).save(folder / f"{k}.png")
        folders[name] = folder
    return folders


def streamsnn(*args: str, cwd: Path) -> str:
    """Run a streamsnn command to its end; its output (the test fails with it on a non-zero exit)."""
    done = subprocess.run([sys.executable, "-m", "streamsnn", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, f"streamsnn {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout + done.stderr


def test_record_train_then_teach_a_new_class_from_the_page(browser, mosquitto, tmp_path):
    from mqtt_util import free_port
    from test_mqtt_discovery import retained

    from streamsnn.io.dataset import open_dataset

    digits = digit_folders(need("mnist"), tmp_path / "digits")
    data = tmp_path / "my-data"
    for name in ("zero", "one", "seven"):  # the synthetic camera pointed at one digit: a class of its own
        said = streamsnn("record", "--source", f"synthetic:{digits[name]}", "--class", name, "--count", "5",
                         "--seconds", "0.5", "--set", "source.speed=0", "--out", str(data), "-q", cwd=tmp_path)
        assert "Traceback" not in said, said
    recorded = open_dataset(data)
    assert recorded.classes == ["one", "seven", "zero"] and len(recorded) == 15
    model = tmp_path / "my-model.npz"
    said = streamsnn("train", "--data", str(data), "--out", str(model), "--hidden", "64", "--epochs", "3",
                     "--choose", "off", "--quiet", cwd=tmp_path)
    assert model.is_file(), said

    port = free_port()
    log = tmp_path / "daemon.log"
    sets = {"source.kind": "synthetic", "source.path": digits["four"], "segment.label_windows": "false",
            "model.checkpoint": model, "model.learn_from_labels": "false", "model.new_classes": "true",
            "liveview.port": port, "liveview.teach": "true", "liveview.record_to": data,
            "mqtt.broker": "127.0.0.1", "mqtt.port": mosquitto.port}
    keep = os.environ.get("STREAMSNN_SCREENSHOTS")  # a folder to keep the screenshots in (docs/img, CI artifacts)
    shots = Path(keep) if keep else tmp_path / "shots"
    shots.mkdir(parents=True, exist_ok=True)
    proc = start_demo(tmp_path, sets, log)
    try:
        url = live_view_url(log)
        browser.set_window_size(*PHONE)
        browser.get(url)
        js = browser.execute_script
        wait_for(lambda: js("return document.getElementById('status').textContent") == "live", 30,
                 "the page connecting to /events", log)
        trained = ["one", "seven", "zero"]
        assert js("return [...document.querySelectorAll('#teach-pick option')].map((o) => o.value)") == trained

        def bars() -> list[str]:
            return js("return [...document.querySelectorAll('#bars .bar span')].map((s) => s.textContent)")

        wait_for(lambda: bars() == trained, 30, "a decision among the three recorded classes", log)
        js("document.getElementById('decided-frame').closest('section').scrollIntoView({block: 'start'})")
        (shots / "teach-flow-1-before.png").write_bytes(browser.get_screenshot_as_png())

        def teach(name: str) -> str:
            return teach_from_page(browser, name, log)

        said = teach("four")  # the camera films 4s: a name the model does not know adds a class
        assert said.startswith("learned: the window") and "is four (a new class)" in said, said
        assert re.search(r"recorded as Train/four/four-1\.aedat4$", said), said
        assert js("return [...document.querySelectorAll('#teach-pick option')].map((o) => o.value)") == [*trained,
                                                                                                         "four"]
        js("document.getElementById('teach-result').scrollIntoView({block: 'center'})")
        (shots / "teach-flow-2-taught.png").write_bytes(browser.get_screenshot_as_png())
        for n in (2, 3, 4, 5):  # a few more windows of it, picked from the list now
            browser.find_element("css selector", "#teach-pick option[value='four']").click()
            said = teach("")
            split = "Test" if n % RECORD_TEST_EVERY == 0 else "Train"  # the split rule of streamsnn record
            assert said.startswith("learned: the window") and f"recorded as {split}/four/four-{n}.aedat4" in said, said
        wait_for(lambda: bars() == [*trained, "four"], 30, "a decision scoring the new class", log)
        assert js("return document.getElementById('model').textContent").endswith("→ 4 classes")  # the header too
        try:  # for the picture: the strip showing a decision for the new class, if one comes soon
            wait_for(lambda: js("return [...document.querySelectorAll('#history .item b')]"
                                ".some((b) => b.textContent.startsWith('four'))"), 10, "", log)
        except pytest.fail.Exception:
            pass
        js("document.getElementById('bars').scrollIntoView({block: 'start'})")
        (shots / "teach-flow-3-decisions.png").write_bytes(browser.get_screenshot_as_png())

        kept = asyncio.run(retained(mosquitto.port, "streamsnn/demo/classes", quiet_s=0.5))
        assert json.loads(kept["streamsnn/demo/classes"]) == [*trained, "four"]
        metrics = json.loads(wait_for(lambda: js("return fetch('metrics.json').then((r) => r.text())"), 10,
                                      "metrics.json", log))
        assert metrics["teach"]["learned"] == 5 and metrics["classes"] == [*trained, "four"]
    finally:
        code = stop_with_sigint(proc, log)
    assert code == 0, log.read_text(errors="replace")[-3000:]
    assert "feedback added class 'four'" in log.read_text(errors="replace")
    # the taught windows are samples of the dataset now, beside the recorded ones: `train` reads them as they are
    grown = open_dataset(data)
    assert grown.classes == ["four", "one", "seven", "zero"]
    taught = [s for s in grown if grown.classes[s.label] == "four"]
    assert sorted(s.split for s in taught) == ["test", "train", "train", "train", "train"]
    assert all(len(s.load()) >= 200 for s in taught)  # a whole window each (min_events)
