"""The "Teach it live" flow of docs/demo.md, timed: from recording three classes to a fourth taught from the page.

    python -m benchmarks.bench_teach_flow        # or: python -m benchmarks --only teachflow

Reads the commands from the first ```bash block of docs/demo.md's "Teach it live" section and runs exactly
those, one after another, in a temporary folder laid out as the repository's checkout is (`../shared/data` is
the data folder), `streamsnn` run as `python -m streamsnn` of this tree and `python` as this interpreter, with
$XDG_CACHE_HOME in the temporary folder (so the demo's working copy of the model does not replace a kept one).
Each command is timed; the last, the demo, runs until it prints its URL, then five windows are taught as the
page teaches them (the latest decision's `t_end_us` from /events, `POST /teach` naming the new class), and it
is stopped with Ctrl-C (SIGINT). Reported: the wall time of each step, and from the first command to the page's
URL and to the new class learned; the taught windows must be in the dataset folder afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from .common import DATA, ROOT, Context, NotMeasurable, Result, run_alone

DOCS = ROOT / "docs" / "demo.md"
SECTION = "## Teach it live"
NEW_CLASS = "four"  # the class the docs teach from the page
TAUGHT = 5


def flow_commands(text: str) -> list[str]:
    """The commands of the section's first ```bash block: one per line, a heredoc (`<<'EOF'` .. `EOF`) kept whole
    with its command; comment lines dropped."""
    if SECTION not in text:
        raise NotMeasurable(f"{DOCS} has no '{SECTION}' section")
    block = re.search(r"```bash\n(.*?)\n```", text[text.index(SECTION):], re.S)
    if block is None:
        raise NotMeasurable(f"the '{SECTION}' section of {DOCS} has no ```bash block")
    commands, lines = [], iter(block.group(1).splitlines())
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        here = re.search(r"<<'?(\w+)'?", line)
        if here:
            body = [line]
            for more in lines:
                body.append(more)
                if more.strip() == here.group(1):
                    break
            line = "\n".join(body)
        commands.append(line)
    return commands


def as_run(command: str) -> str:
    """The command with `streamsnn` and `python` at its start as this tree's module and this interpreter."""
    exe = shlex.quote(sys.executable)
    if command.startswith("streamsnn "):
        return f"{exe} -m streamsnn {command[len('streamsnn '):]}"
    if command.startswith("python "):
        return f"{exe} {command[len('python '):]}"
    return command


def _latest_decision(url: str, after: int = -1, timeout: float = 30.0) -> int:
    """`t_end_us` of the latest decision the live view sends on /events that ends after `after`."""
    with urllib.request.urlopen(url + "events", timeout=timeout) as stream:
        event = None
        for raw in stream:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: ") and event == "decisions":
                got = json.loads(line[len("data: "):])
                if got and int(got[-1]["t_end_us"]) > after:
                    return int(got[-1]["t_end_us"])
    raise RuntimeError("the live view's /events ended without a decision")


def _teach(url: str, label: str, after: int) -> tuple[int, dict]:
    """Teach the latest window ending after `after` as `label`: (its t_end_us, the answer)."""
    t_end = _latest_decision(url, after)
    body = json.dumps({"t_end_us": t_end, "label": label}).encode()
    req = urllib.request.Request(url + "teach", body, {"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return t_end, json.loads(r.read())
    except urllib.error.HTTPError as exc:  # refused: the answer says why
        return t_end, json.loads(exc.read())


def _demo(command: str, cwd: Path, env: dict, log: Path, t0: float) -> dict:
    """Run the demo: seconds to its URL, to the new class learned and to the last of TAUGHT windows, and its exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(["bash", "-c", as_run(command)], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    out = {}
    try:
        deadline = time.monotonic() + 600
        while not (m := re.search(r"live view: open (http://\S+)", log.read_text(errors="replace"))):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the demo printed no URL: {log.read_text(errors='replace')[-1500:]}")
            time.sleep(0.1)
        url = m.group(1)
        out["url_s"] = time.perf_counter() - t0
        answers, t_end = [], -1
        for _ in range(TAUGHT):
            t_end, answer = _teach(url, NEW_CLASS, t_end)
            answers.append(answer)
            if not answers[-1].get("learned"):
                raise RuntimeError(f"teaching '{NEW_CLASS}' was refused: {answers[-1]}")
            if len(answers) == 1:
                out["first_taught_s"] = time.perf_counter() - t0
        out["taught_s"] = time.perf_counter() - t0
        out["added"] = bool(answers[0].get("added"))
        out["classes"] = answers[-1].get("classes")
        out["recorded"] = [a.get("recorded") for a in answers]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        try:
            out["exit"] = proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out["exit"] = proc.wait()
    return out


def run(ctx: Context) -> Result:
    from streamsnn.io.dataset import open_dataset

    if not (ctx.data / "mnist").is_dir():
        raise NotMeasurable(f"MNIST not found: {ctx.data / 'mnist'} (the synthetic camera films its test images)")
    commands = flow_commands(DOCS.read_text())
    r = Result("teachflow", "Teach it live: docs/demo.md's commands from recording three classes to a fourth "
                            "taught from the page")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "shared").mkdir()
        (base / "shared" / "data").symlink_to(ctx.data)
        cwd = base / "work"
        cwd.mkdir()
        env = {**os.environ, "XDG_CACHE_HOME": str(base / "cache"), "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        t0 = time.perf_counter()
        for n, command in enumerate(commands[:-1], 1):
            start = time.perf_counter()
            done = subprocess.run(["bash", "-c", as_run(command)], cwd=cwd, env=env, capture_output=True,
                                  text=True, timeout=3600)
            secs = time.perf_counter() - start
            if done.returncode != 0:
                raise RuntimeError(f"step {n} exited {done.returncode}: {command.splitlines()[0]}\n"
                                   f"{(done.stdout + done.stderr)[-1500:]}")
            rows.append([n, command.splitlines()[0], round(secs, 1)])
            print(f"  step {n}: {secs:.1f} s  {command.splitlines()[0]}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        demo = _demo(commands[-1], cwd, env, base / "demo.log", t0)
        rows.append([len(commands), commands[-1] + f" (to the URL; then {TAUGHT} windows taught)",
                     round(demo["url_s"] - (start - t0), 1)])
        data = open_dataset(cwd / "my-data")
        counts = {c: sum(1 for s in data if data.classes[s.label] == c) for c in data.classes}
    r.metric("wall time, first command to the page's URL", round(demo["url_s"], 1), "s")
    r.metric(f"wall time, first command to '{NEW_CLASS}' learned as a new class", round(demo["first_taught_s"], 1),
             "s")
    r.metric(f"wall time, first command to {TAUGHT} windows of '{NEW_CLASS}' taught", round(demo["taught_s"], 1),
             "s")
    r.metric("classes after teaching", ", ".join(demo["classes"] or []), "")
    r.metric("samples per class in the dataset folder afterwards", ", ".join(f"{c} {k}" for c, k in counts.items()),
             "")
    r.metric("demo exit code after Ctrl-C", demo["exit"], "", target="0", met=demo["exit"] == 0)
    r.table("Each step (wall seconds)", ["step", "command (first line)", "s"], rows)
    r.note(f"The commands of {DOCS.relative_to(ROOT)} ('{SECTION}'), run verbatim in a temporary folder beside a "
           "`shared/data` link to the data folder, `streamsnn` as `python -m streamsnn`; teaching as the page does "
           "it (POST /teach with the latest decision's t_end_us). Recording is real time (the synthetic camera "
           "paced as a camera), so each record step takes at least --count x --seconds.")
    if not demo["added"] or counts.get(NEW_CLASS, 0) != TAUGHT:
        r.status = f"error: '{NEW_CLASS}' was not added or its {TAUGHT} taught windows were not recorded ({counts})"
    return r


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_teach_flow", description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    ctx = Context(out=args.out.resolve(), data=args.data.resolve(), stem="teachflow")
    return run_alone("python -m benchmarks.bench_teach_flow", ctx, lambda: run(ctx),
                     contention="Timings were taken on a shared machine; see the load average.",
                     label="bench_teach_flow", argv=argv)


if __name__ == "__main__":
    for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(_var, "1")
    sys.exit(main())
