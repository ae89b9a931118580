"""Which results file stands behind each figure of the README and the docs, and whether it carries a stamp of a
committed tree (benchmarks/stamp.py).

    python -m benchmarks.check_sources [--strict]

Lists, per page, every paragraph or table row that states a measured figure (a percentage, events/s, ms, MiB,
a speed-up) with the results files it cites (or, when it cites none and does not say "none yet", those its section
cites), then every cited
results file: stamped from a clean tree of a commit in this repository's history, stamped from a dirty tree (or a
commit this history does not hold), or without a stamp. Exits 0 (a report) unless --strict, which exits 1 when a
figure of the README (GATED) has no results file behind it or one of the files it cites is not clean; the docs'
pages are reported, not gated (their tables keep older measurements, each dated). CI runs --strict.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
#: Pages whose every figure must stand on a clean, committed results file (--strict).
GATED = ("README.md",)
#: A measured figure: a number with a unit that a benchmark measures.
FIGURE = re.compile(r"\d[\d,.]*(?:\s?(?:%|[kM] events/s|ms\b|MiB\b|decisions per second)|x\b)")
#: What a figure's results column says when it has no results file (it does not borrow its section's files).
NONE = "none yet"
#: A results file, cited by a link or by its name.
CITED = re.compile(r"(?:benchmarks/results/)?([\w.-]+\.md)\b")


def pages(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def units(text: str):
    """(heading, unit) for each paragraph or table row outside code blocks."""
    heading, para, fence = "", [], False
    for line in text.splitlines() + [""]:
        if line.startswith("```"):
            fence = not fence
            continue
        if fence:
            continue
        if line.startswith("#"):
            if para:
                yield heading, " ".join(para)
            heading, para = line.lstrip("#").strip(), []
        elif line.startswith("|"):
            if para:
                yield heading, " ".join(para)
            para = []
            yield heading, line
        elif not line.strip():
            if para:
                yield heading, " ".join(para)
            para = []
        else:
            para.append(line.strip())


def cited(text: str, results: Path = RESULTS) -> set[str]:
    return {name for name in CITED.findall(text) if (results / name).is_file()}


def in_history(commit: str, root: Path = ROOT) -> bool | None:
    """Whether ``commit`` is HEAD or one of its ancestors here (an unknown commit is not); None when git cannot
    tell (not a checkout, or a shallow clone that lacks the older commits)."""
    try:
        here = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=root, capture_output=True,
                              text=True, timeout=10)
        if here.returncode or here.stdout.strip() != "false":
            return None
        r = subprocess.run(["git", "merge-base", "--is-ancestor", commit, "HEAD"], cwd=root, capture_output=True,
                           timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.returncode == 0


def stamp_of(name: str, results: Path = RESULTS) -> tuple[str, dict | None]:
    """('clean' | 'dirty' | 'unstamped', the stamp) of a results file, from its JSON twin or its markdown."""
    js = results / (name[:-3] + ".json")
    found = None
    if js.is_file():
        try:
            record = json.loads(js.read_text())
        except (OSError, ValueError):
            record = None
        if isinstance(record, dict):
            found = record.get("stamp")
            commit = (record.get("machine") or {}).get("commit") if isinstance(record.get("machine"), dict) else None
            if found is None and commit:  # written before the stamp: what its machine facts say
                return "unstamped", {"commit": None, "before": commit}
    if found is None:
        md = (results / name).read_text()
        if "\n- stamp: " not in "\n" + md:
            return "unstamped", None
        return ("dirty" if "uncommitted changes" in md else "clean"), None
    if found.get("commit") is None or found.get("dirty") is None:
        return "unstamped", found
    return ("dirty" if found["dirty"] else "clean"), found


def report(out=None, root: Path = ROOT) -> tuple[int, int]:
    """Print the report; return the problems (figures without a source, cited results files not clean) of the
    gated pages and of all pages."""
    out = out or sys.stdout
    results = root / "benchmarks" / "results"
    gated = problems = 0
    files: dict[str, list[str]] = {}
    gated_files: set[str] = set()
    for page in pages(root):
        if not page.is_file():
            continue
        name = str(page.relative_to(root))
        text = page.read_text()
        section_refs: dict[str, set[str]] = {}
        rows = list(units(text))
        for heading, unit in rows:
            section_refs.setdefault(heading, set()).update(cited(unit, results))
        print(f"== {name}{' (gated)' if name in GATED else ''}", file=out)
        for heading, unit in rows:
            figures = FIGURE.findall(unit)
            if not figures:
                continue
            refs = cited(unit, results) or (set() if NONE in unit else section_refs.get(heading, set()))
            for ref in refs:
                files.setdefault(ref, []).append(f"{name} § {heading or '(top)'}")
                if name in GATED:
                    gated_files.add(ref)
            problems += not refs
            gated += not refs and name in GATED
            where = ", ".join(sorted(refs)) if refs else "NO RESULTS FILE"
            print(f"  [{heading or '(top)'}] {len(figures)} figure(s) <- {where}: {unit[:90]}", file=out)
    print("== results files behind the figures", file=out)
    for ref in sorted(files):
        state, s = stamp_of(ref, results)
        if state == "clean" and s and s.get("commit") and in_history(s["commit"], root) is False:
            state = "dirty"
            s = {**s, "foreign": True}
        bad = state != "clean"
        problems += bad
        gated += bad and ref in gated_files
        detail = f" (commit {s['commit'][:10]}, {s['date_utc']})" if s and s.get("commit") else ""
        if s and s.get("foreign"):
            detail += ", a commit this repository's history does not hold"
        if s and s.get("before"):
            detail = f" (its machine facts say commit {s['before']})"
        print(f"  {ref}: {state}{detail}; cited by {len(files[ref])} figure(s)"
              f"{' (by the README)' if ref in gated_files else ''}", file=out)
    print(f"{problems} problem(s) in all pages, {gated} in the gated ones ({', '.join(GATED)}): figures without a "
          "results file, results files dirty, unstamped or from another history", file=out)
    return gated, problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.check_sources", description=__doc__.splitlines()[0])
    ap.add_argument("--strict", action="store_true",
                    help=f"exit 1 when a figure of {', '.join(GATED)} has no clean, committed results file behind it")
    a = ap.parse_args(argv)
    gated, _ = report()
    return 1 if a.strict and gated else 0


if __name__ == "__main__":
    sys.exit(main())
