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
    check_sources.main([])
    out = capsys.readouterr().out
    assert "== README.md (gated)" in out and "== results files behind the figures" in out
    assert "stream.md:" in out  # the README's stream figures cite benchmarks/results/stream.md
    assert "in the gated ones (README.md)" in out


def page_tree(repo: Path, readme: str, results: dict[str, dict | None]) -> None:
    """A README and results files (name -> stamp, None: no stamp) in `repo`, committed."""
    (repo / "README.md").write_text(readme)
    for name, st in results.items():
        record = {"command": "x", "results": [], **({"stamp": st} if st is not None else {})}
        (repo / "benchmarks" / "results" / f"{name}.json").write_text(json.dumps(record))
        (repo / "benchmarks" / "results" / f"{name}.md").write_text("# figures\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "pages")


def gate(repo: Path, capsys) -> tuple[int, str]:
    gated, _ = check_sources.report(root=repo)
    return gated, capsys.readouterr().out


def test_the_gate_passes_when_every_readme_figure_has_a_clean_committed_file(repo, capsys):
    head = git(repo, "rev-parse", "HEAD")
    page_tree(repo, "# x\n\n| figure | results |\n|---|---|\n| **97.3 %** whole | [s.md](benchmarks/results/s.md) |\n",
              {"s": {"commit": head, "dirty": False, "date_utc": "2026-12-03 09:00 UTC"}})
    gated, out = gate(repo, capsys)
    assert gated == 0, out
    assert "s.md: clean" in out


@pytest.mark.parametrize("case,why", [
    ("no file", "NO RESULTS FILE"),
    ("none yet", "NO RESULTS FILE"),
    ("dirty", "s.md: dirty"),
    ("unstamped", "s.md: unstamped"),
    ("foreign commit", "history does not hold"),
])
def test_the_gate_fails_on_a_readme_figure_without_a_clean_committed_file(repo, capsys, case, why):
    head = git(repo, "rev-parse", "HEAD")
    stamps = {"dirty": {"commit": head, "dirty": True, "date_utc": "d"}, "unstamped": None,
              "foreign commit": {"commit": "1" * 40, "dirty": False, "date_utc": "d"}}
    row = {"no file": "| 1.1 ms p99 | |", "none yet": "| 72 % | none yet |"}.get(case, "| 1.1 ms | [s.md](s.md) |")
    readme = "# Headline\n\n| figure | results |\n|---|---|\n" + row + "\n"
    if case == "none yet":  # a file cited elsewhere in the section is not borrowed by a row that says none yet
        head_row = "| 2 ms | [s.md](s.md) |\n"
        readme += head_row
        stamps["none yet"] = {"commit": head, "dirty": False, "date_utc": "d"}
    page_tree(repo, readme, {"s": stamps[case]} if case in stamps else {})
    gated, out = gate(repo, capsys)
    assert gated >= 1 and why in out, out


def test_the_docs_pages_are_reported_not_gated(repo, capsys):
    (repo / "docs").mkdir()
    (repo / "docs" / "performance.md").write_text("# Old\n\nAn older figure: 4.64 M events/s (2026-11-30).\n")
    page_tree(repo, "# x\n\nno figures here\n", {})
    gated, out = gate(repo, capsys)
    assert gated == 0 and "docs/performance.md" in out and "NO RESULTS FILE" in out
    _, problems = check_sources.report(root=repo)
    assert problems == 1
