"""The README's Python API section runs as written (its snippets are executed here, in order, in one
namespace), and the README names only configuration keys that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import need

from streamsnn.config import SCHEMA

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end >= 0 else None]


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_the_python_api_snippets_run(tmp_path, monkeypatch, capsys):
    data = need("nmnist_small").parent
    blocks = python_blocks(section("Python API"))
    assert len(blocks) == 3
    monkeypatch.chdir(tmp_path)  # the snippets write model.npz into the current folder
    namespace: dict = {"__name__": "readme"}
    for code in blocks:
        exec(compile(code.replace("../shared/data", str(data)), "README.md", "exec"), namespace)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("34 34 ")  # the N-MNIST sensor
    assert out[1].startswith("['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] 1000 100")
    right = int(re.match(r"(\d+) of 100 test samples right", out[2]).group(1))
    assert right > 20  # far above chance (10) after 300 samples; the exact figure is not the point
    assert (tmp_path / "model.npz").is_file()
    assert len([line for line in out if " is " in line and "ms queued" in line]) == 10
    assert out[-1] == "10 decisions"


#: Counters in the metrics, written like keys (section.name) in the README.
METRICS = {"segment.cut", "segment.restarts", "source.bad_packets", "source.dropped", "mqtt.feedback_dropped",
           "mqtt.incoming_dropped", "feedback.retained"}
NAMED = set(re.findall(r"`((?:source|segment|model|pipeline|mqtt|console|liveview|jsonl)\.[a-z_]+)`", README))


@pytest.mark.parametrize("key", sorted(k for k in NAMED if k not in METRICS and not k.endswith(".py")))
def test_every_key_the_readme_names_exists(key):
    section_name, name = key.split(".")
    assert name in SCHEMA[section_name], f"README names {key}, which is no configuration key"
