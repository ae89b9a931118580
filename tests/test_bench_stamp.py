"""The benchmarks' stamp (benchmarks/stamp.py) tells a committed tree from a dirty one, and every results file
written through benchmarks/common.py carries it; benchmarks/check_sources.py reports figures and their files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the benchmarks package lives beside streamsnn, not in it

from benchmarks import check_sources, common  # noqa: E402
from benchmarks.stamp import stamp, stamp_line  # noqa: E402


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path) -> Path:
    git(tmp_path, "init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "old.md").write_text("figures\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "first")
    return tmp_path


def test_a_committed_tree_is_clean(repo):
    s = stamp(repo)
    assert s["commit"] == git(repo, "rev-parse", "HEAD") and len(s["commit"]) == 40
    assert s["dirty"] is False and s["changed"] == []
    assert s["cores"] >= 1 and s["cpu"] and s["memory_gib"] > 0 and len(s["load_average"]) == 3
    assert s["date_utc"].endswith(" UTC")
    assert "clean tree" in stamp_line(s) and s["commit"] in stamp_line(s)


def test_a_changed_file_makes_it_dirty(repo):
    (repo / "code.py").write_text("x = 2\n")
    s = stamp(repo)
    assert s["dirty"] is True and s["changed"] == ["code.py"]
    assert "**uncommitted changes** (code.py)" in stamp_line(s)


def test_an_untracked_file_makes_it_dirty(repo):
    (repo / "scratch.py").write_text("")
    assert stamp(repo)["dirty"] is True


def test_results_written_by_a_run_do_not_make_it_dirty(repo):
    # one benchmark's fresh output must not mark the next benchmark of the same run as dirty
    (repo / "benchmarks" / "results" / "old.md").write_text("new figures\n")
    (repo / "benchmarks" / "results" / "new.json").write_text("{}\n")
    assert stamp(repo)["dirty"] is False


def test_outside_git_there_is_no_commit(tmp_path):
    s = stamp(tmp_path)
    assert s["commit"] is None and s["dirty"] is None and "not a git checkout" in stamp_line(s)


def test_results_files_carry_the_stamp_taken_when_the_run_started(tmp_path):
    run = {"command": "python -m benchmarks --only x", "quick": True, "machine": common.machine(),
           "contention": "none", "results": []}
    js, md = common.write(run, tmp_path, "results-x")
    record = json.loads(js.read_text())
    assert record["stamp"] == record["machine"]["stamp"]
    assert set(record["stamp"]) >= {"commit", "dirty", "date_utc", "cores", "cpu", "memory_gib", "load_average"}
    assert "\n- stamp: " in md.read_text()


def test_check_sources_reports_figures_and_their_files(capsys):
    assert check_sources.main([]) == 0  # a report, not a gate (yet)
    out = capsys.readouterr().out
    assert "== README.md" in out and "== results files behind the figures" in out
    assert "stream.md:" in out  # the README's stream figures cite benchmarks/results/stream.md
    assert "NO RESULTS FILE" in out  # the demo's figures have none yet
