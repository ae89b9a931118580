"""Shared benchmark plumbing: the run context, result records, machine facts, JSON and markdown output."""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import signal
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from .stamp import cpu_model, git_state, stamp, stamp_line

ROOT = Path(__file__).resolve().parent.parent
#: Real data beside the repository (never copied into it), as the tests find it.
DATA = Path(os.environ.get("STREAMSNN_TEST_DATA", ROOT.parent / "shared" / "data")).resolve()
#: Libraries whose versions every result carries.
PACKAGES = ("streamsnn", "numpy", "numba", "tonic", "torch", "snntorch", "matplotlib", "psutil",
            "aiomqtt", "dv-processing")


class NotMeasurable(Exception):
    """A benchmark that cannot run here (a part not landed, data or a peer library absent)."""


@dataclass
class Context:
    """What every benchmark receives: the options, the data folder and a cache shared within one run."""

    quick: bool = False
    out: Path = ROOT / "benchmarks" / "results"
    data: Path = DATA
    soak_seconds: float = 600.0
    stem: str = "results"  # output file names start with this
    cache: dict = field(default_factory=dict)

    @property
    def nmnist(self) -> Path:
        p = self.data / "nmnist_small"
        if not p.is_dir():
            raise NotMeasurable(f"real data not found: {p} (set STREAMSNN_TEST_DATA or --data)")
        return p

    def samples(self, split: str, limit: int | None = None) -> list:
        """EventBatches of a split of nmnist_small, loaded once per run, in the dataset's order."""
        key = ("samples", split)
        if key not in self.cache:
            try:
                from streamsnn.io.dataset import open_dataset
            except ImportError as exc:
                raise NotMeasurable(f"streamsnn.io.dataset not available yet ({exc})") from exc
            ds = open_dataset(self.nmnist).split(split)
            self.cache[key] = [s.load() for s in ds.samples]
        out = self.cache[key]
        return out if limit is None else out[:limit]


@dataclass
class Result:
    """One benchmark's figures: metrics (name, value, unit, target), extra tables, notes, files."""

    name: str
    title: str
    status: str = "ok"
    metrics: list = field(default_factory=list)
    tables: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    files: list = field(default_factory=list)
    seconds: float = 0.0

    def metric(self, name: str, value, unit: str = "", *, target: str | None = None,
               met: bool | None = None) -> None:
        self.metrics.append({"name": name, "value": value, "unit": unit, "target": target, "met": met})

    def table(self, title: str, columns: list[str], rows: list[list]) -> None:
        self.tables.append({"title": title, "columns": columns, "rows": rows})

    def note(self, text: str) -> None:
        self.notes.append(text)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


# -- machine facts ----------------------------------------------------------------------------------
def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(state: dict | None = None) -> str | None:
    """The short commit, with `+uncommitted` when the tree was dirty (see benchmarks/stamp.py)."""
    state = state or git_state(ROOT)
    if not state["commit"]:
        return None
    return state["commit"][:7] + ("+uncommitted" if state["dirty"] else "")


def machine() -> dict:
    """Cores, CPU model, memory, load, OS, date (UTC), versions, the commit and the stamp, for every result
    file; call it when a run starts, so the stamp describes the tree the run measured."""
    s = stamp(ROOT)
    info = {
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "os": f"{platform.system()} {platform.release()}",
        "load_average_1m": round(os.getloadavg()[0], 2),
        "commit": git_commit(s),
        "versions": versions(),
        "threads": {k: os.environ.get(k) for k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS")},
        "stamp": s,
    }
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    return info


# -- output ---------------------------------------------------------------------------------------
def fmt(value) -> str:
    """Numbers for people: thousands separators, three significant figures below 1000."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.3g}"
    return str(value)


def markdown(run: dict) -> str:
    m = run["machine"]
    v = m["versions"]
    lines = [
        "# streamsnn benchmarks",
        "",
        stamp_line(stamped(run)["stamp"]),
        f"- date: {m['date']}; commit: {m['commit']}",
        f"- machine: {m['cores']} cores, {m['cpu']}, {m.get('memory_gib', '?')} GiB, {m['os']}; "
        f"load average (1 min) at start {m['load_average_1m']}, at end {run.get('load_average_end', '?')}",
        "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val),
        f"- command: `{run['command']}`" + (" (quick mode: fewer samples and repeats)" if run["quick"] else ""),
        f"- {run['contention']}",
        "",
    ]
    for r in run["results"]:
        lines += [f"## {r['title']}", ""]
        if r["status"] != "ok":
            lines += [f"**{r['status']}**", ""]
        if r["metrics"]:
            lines += ["| metric | value | unit | target | met |", "| --- | ---: | --- | --- | --- |"]
            for x in r["metrics"]:
                met = "" if x["met"] is None else ("yes" if x["met"] else "**no**")
                lines.append(f"| {x['name']} | {fmt(x['value'])} | {x['unit']} | {x['target'] or ''} | {met} |")
            lines.append("")
        for t in r["tables"]:
            lines += [f"**{t['title']}**", "", "| " + " | ".join(t["columns"]) + " |",
                      "|" + " --- |" * len(t["columns"])]
            lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in t["rows"]]
            lines.append("")
        for f in r["files"]:
            lines += [f"![{r['name']}]({f})", ""]
        lines += [f"- {n}" for n in r["notes"]]
        lines += [f"- took {r['seconds']:.1f} s", ""]
    return "\n".join(lines)


def write(run: dict, out: Path, stem: str) -> tuple[Path, Path]:
    """Write `<stem>.json` and `<stem>.md` atomically into `out`, stamped (the stamp taken by `machine()` when
    the run started, else one taken now); return both paths."""
    stamped(run)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix, text in ((".json", json.dumps(run, indent=2, default=_jsonable) + "\n"),
                         (".md", markdown(run))):
        path = out / f"{stem}{suffix}"
        tmp = path.with_suffix(suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        paths.append(path)
    return paths[0], paths[1]


def stamped(run: dict) -> dict:
    """`run` with its top-level `stamp` (benchmarks/stamp.py), from its machine facts when they hold one."""
    if "stamp" not in run:
        run["stamp"] = (run.get("machine") or {}).get("stamp") or stamp(ROOT)
    return run


def _jsonable(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


class Timer:
    """`with Timer() as t: ...; t.seconds`"""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def percentile(values, q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")


def command_line() -> str:
    return "python -m benchmarks" + ("" if len(sys.argv) <= 1 else " " + " ".join(sys.argv[1:]))


#: `streamsnn`'s exit statuses when Ctrl-C or SIGTERM stopped a command (`streamsnn.cli.main`).
STOPPED = (130, 128 + signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a `streamsnn` command a benchmark ran in-process: the benchmark stops with it
    (before, the command returned its status and the benchmark went on to its next run)."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


def streamsnn(argv) -> int:
    """`streamsnn ARGV` in-process (`streamsnn.cli.main`); its exit status. Raises Interrupted when Ctrl-C or
    SIGTERM stopped it."""
    from streamsnn.cli import main

    rc = main([str(a) for a in argv])
    if rc in STOPPED:
        raise Interrupted(rc)
    return rc


def stopped(label: str, exc: KeyboardInterrupt, kept: str) -> int:
    """A benchmark stopped by Ctrl-C or SIGTERM: print its one line (``kept``: what was written before); returns
    the exit status, 130 or 143."""
    from streamsnn.cli import Terminated  # SIGTERM that came before streamsnn's command could return its status

    status = getattr(exc, "status", 128 + signal.SIGTERM if isinstance(exc, Terminated) else 130)
    how = "SIGTERM" if status == 128 + signal.SIGTERM else "Ctrl-C"
    print(f"{label}: stopped ({how}); {kept}", file=sys.stderr)
    return status


def run_alone(prog: str, ctx: Context, measure, *, contention: str, label: str, argv=None,
              unmeasurable: tuple[str, str] | None = None) -> int:
    """A benchmark run on its own (`python -m benchmarks.X`): stamp the machine, time `measure()` (a Result),
    write `ctx.stem`.json/.md into `ctx.out`, print the markdown; returns 0 (Ctrl-C or SIGTERM: nothing written, one
    line, 130 or 143). `unmeasurable` (name, title): a
    NotMeasurable becomes a result with that status instead of propagating."""
    run = {"command": prog + "".join(f" {x}" for x in (sys.argv[1:] if argv is None else argv)),
           "quick": ctx.quick, "machine": machine(), "contention": contention, "results": []}
    t0 = time.perf_counter()
    try:
        res = measure()
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM while a streamsnn command ran (Interrupted)
        return stopped(label, exc, "no results written")
    except NotMeasurable as exc:
        if unmeasurable is None:
            raise
        res = Result(*unmeasurable, status=f"not yet measurable: {exc}")
    res.seconds = time.perf_counter() - t0
    run["results"].append(res.as_dict())
    run["load_average_end"] = round(os.getloadavg()[0], 2)
    js, md = write(run, ctx.out, ctx.stem)
    print(md.read_text())
    print(f"{label}: wrote {js} and {md}", file=sys.stderr)
    return 0
