"""The stamp on every benchmark results file: commit, whether the tree was dirty, date (UTC), machine and load."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Where the benchmarks write; changes there do not make a tree dirty (a run's own earlier output would).
RESULTS = "benchmarks/results"


def git_state(root: Path = ROOT) -> dict:
    """`commit` (full hash of HEAD), `dirty` (`git status --porcelain` lists anything outside the results
    folder, untracked files included) and the first 20 `changed` paths; commit and dirty are None outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10)
        status = subprocess.run(["git", "status", "--porcelain", "--", ".", f":(exclude){RESULTS}"], cwd=root,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None, "changed": []}
    if commit.returncode or status.returncode:
        return {"commit": None, "dirty": None, "changed": []}
    changed = [line[3:] for line in status.stdout.splitlines() if line.strip()]
    return {"commit": commit.stdout.strip(), "dirty": bool(changed), "changed": changed[:20]}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (OSError, ValueError, AttributeError):
        return None


def stamp(root: Path = ROOT) -> dict:
    """Everything a figure needs to be traced and weighed: take it when a run starts, write it with the results."""
    return {
        **git_state(root),
        "date_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "memory_gib": memory_gib(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def stamp_line(s: dict) -> str:
    """The stamp as one markdown list item, for the top of a results file."""
    if s.get("commit") is None:
        tree = "not a git checkout"
    elif s["dirty"]:
        tree = f"commit {s['commit']}, **uncommitted changes** ({', '.join(s['changed'][:5])})"
    else:
        tree = f"commit {s['commit']}, clean tree"
    load = " / ".join(f"{x:.2f}" for x in s["load_average"])
    return (f"- stamp: {tree}; {s['date_utc']}; {s['cores']} cores, {s['cpu']}, {s['memory_gib']} GiB; "
            f"load average (1/5/15 min) {load}")
