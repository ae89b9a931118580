"""Which results file stands behind each figure of the README and the docs, and whether it carries a stamp of a
committed tree (benchmarks/stamp.py).

    python -m benchmarks.check_sources [--strict]

Lists, per page, every paragraph or table row that states a measured figure (a percentage, events/s, ms, MiB,
a speed-up) with the results files it cites (or, when it cites none and does not say "none yet", those its
section cites), then every cited
results file: stamped from a clean tree, stamped from a dirty tree, or without a stamp. Exits 0 (a report) unless
--strict, which exits 1 when a figure has no results file behind it or a results file is dirty or unstamped.
CI does not run --strict yet: the results files written before the stamp existed would fail it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
#: A measured figure: a number with a unit that a benchmark measures.
FIGURE = re.compile(r"\d[\d,.]*(?:\s?(?:%|[kM] events/s|ms\b|MiB\b|decisions per second)|x\b)")
#: What a figure's results column says when it has no results file (the README's headline table).
NONE = "none yet"
#: A results file, cited by a link or by its name.
CITED = re.compile(r"(?:benchmarks/results/)?([\w.-]+\.md)\b")


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


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


def cited(text: str) -> set[str]:
    return {name for name in CITED.findall(text) if (RESULTS / name).is_file()}


def stamp_of(name: str) -> tuple[str, dict | None]:
    """('clean' | 'dirty' | 'unstamped', the stamp) of a results file, from its JSON twin or its markdown."""
    js = RESULTS / (name[:-3] + ".json")
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
        md = (RESULTS / name).read_text()
        if "\n- stamp: " not in "\n" + md:
            return "unstamped", None
        return ("dirty" if "uncommitted changes" in md else "clean"), None
    if found.get("commit") is None or found.get("dirty") is None:
        return "unstamped", found
    return ("dirty" if found["dirty"] else "clean"), found


def report(out=None) -> int:
    """Print the report; return the number of problems (figures without a source, dirty or unstamped files)."""
    out = out or sys.stdout
    problems, files = 0, {}
    for page in pages():
        text = page.read_text()
        section_refs: dict[str, set[str]] = {}
        rows = list(units(text))
        for heading, unit in rows:
            section_refs.setdefault(heading, set()).update(cited(unit))
        print(f"== {page.relative_to(ROOT)}", file=out)
        for heading, unit in rows:
            figures = FIGURE.findall(unit)
            if not figures:
                continue
            refs = cited(unit) or (set() if NONE in unit else section_refs.get(heading, set()))
            for name in refs:
                files.setdefault(name, []).append(f"{page.relative_to(ROOT)} § {heading or '(top)'}")
            where = ", ".join(sorted(refs)) if refs else "NO RESULTS FILE"
            problems += not refs
            print(f"  [{heading or '(top)'}] {len(figures)} figure(s) <- {where}: {unit[:90]}", file=out)
    print("== results files behind the figures", file=out)
    for name in sorted(files):
        state, s = stamp_of(name)
        problems += state != "clean"
        detail = f" (commit {s['commit'][:10]}, {s['date_utc']})" if s and s.get("commit") else ""
        if s and s.get("before"):
            detail = f" (its machine facts say commit {s['before']})"
        print(f"  {name}: {state}{detail}; cited by {len(files[name])} figure(s)", file=out)
    print(f"{problems} problem(s): figures without a results file, results files dirty or without a stamp",
          file=out)
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.check_sources", description=__doc__.splitlines()[0])
    ap.add_argument("--strict", action="store_true", help="exit 1 when there is any problem")
    a = ap.parse_args(argv)
    problems = report()
    return 1 if a.strict and problems else 0


if __name__ == "__main__":
    sys.exit(main())
