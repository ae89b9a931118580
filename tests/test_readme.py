"""The README's and the docs' Python snippets run as written (each page's snippets are executed here, in order,
in one namespace), the README and the docs name only configuration keys that exist, the README keeps its two
commands (CI runs the second verbatim) and stays a front door, and every docs page is in the site's nav."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import need

from streamsnn.config import SCHEMA

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
#: The README and every page of the docs site, by file name.
PAGES = {"README.md": README} | {f"docs/{p.name}": p.read_text() for p in sorted(DOCS.glob("*.md"))}
INSTALL_AND_RUN = ("python3 -m venv .venv && .venv/bin/pip install -e . && "
                   ".venv/bin/streamsnn run pipelines/nmnist-replay.toml")
INSTALL_AND_TEST = ("python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && "
                    ".venv/bin/python -m pytest -rs -n 2")


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def run_snippets(page: str, data: Path) -> None:
    """Execute a page's Python snippets in order in one namespace, with ../shared/data pointing at `data`."""
    namespace: dict = {"__name__": "readme"}
    for code in python_blocks(PAGES[page]):
        exec(compile(code.replace("../shared/data", str(data)), page, "exec"), namespace)


def test_the_readme_tour_snippet_runs(tmp_path, monkeypatch, capsys):
    data = need("nmnist_small").parent
    assert len(python_blocks(README)) == 1
    monkeypatch.chdir(tmp_path)
    run_snippets("README.md", data)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("34 34 4681 ")  # the N-MNIST sensor, the sample's events
    assert out[1] == "['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] 1000 100"


def test_the_python_api_snippets_run(tmp_path, monkeypatch, capsys):
    data = need("nmnist_small").parent
    assert len(python_blocks(PAGES["docs/python-api.md"])) == 3
    monkeypatch.chdir(tmp_path)  # the snippets write model.npz into the current folder
    run_snippets("docs/python-api.md", data)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("34 34 ")  # the N-MNIST sensor
    assert out[1].startswith("['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] 1000 100")
    right = int(re.match(r"(\d+) of 100 test samples right", out[2]).group(1))
    assert right > 20  # far above chance (10) after 300 samples; the exact figure is not the point
    assert (tmp_path / "model.npz").is_file()
    assert len([line for line in out if " is " in line and "ms queued" in line]) == 10
    assert out[-1] == "10 decisions"


def test_only_the_pages_that_had_snippets_have_them():
    # a Python snippet on a page no test runs would go stale: add a test like the two above for a new one
    assert {page for page, text in PAGES.items() if python_blocks(text)} == {"README.md", "docs/python-api.md"}


def test_the_readme_starts_with_its_two_commands_and_ci_runs_the_second():
    block = re.match(r"# streamsnn\n\n```bash\n(.*?)```", README, re.S).group(1).splitlines()
    assert block[1] == INSTALL_AND_RUN and block[3] == INSTALL_AND_TEST
    assert INSTALL_AND_TEST in (ROOT / ".ci" / "run").read_text().splitlines()


def test_the_readme_is_a_front_door():
    assert len(README.splitlines()) <= 250  # the reference belongs in docs/


def test_every_docs_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text().split("\nnav:\n", 1)[1]
    listed = set(re.findall(r": (\S+\.md)$", nav, re.M))
    assert {p.name for p in DOCS.glob("*.md")} <= listed
    assert all((DOCS / p).is_file() or (ROOT / p).is_file() for p in listed), listed


#: Counters in the metrics, written like keys (section.name) in the README and the docs.
METRICS = {"segment.cut", "segment.restarts", "segment.unfed", "source.bad_packets", "source.dropped", "source.late",
           "mqtt.feedback_dropped", "mqtt.incoming_dropped", "feedback.retained"}
NAMED = {key for text in PAGES.values()
         for key in re.findall(r"`((?:source|segment|model|pipeline|mqtt|console|liveview|jsonl)\.[a-z_]+)`", text)}


@pytest.mark.parametrize("key", sorted(k for k in NAMED if k not in METRICS and not k.endswith(".py")))
def test_every_key_the_readme_names_exists(key):
    section_name, name = key.split(".")
    assert name in SCHEMA[section_name], f"the README or the docs name {key}, which is no configuration key"
