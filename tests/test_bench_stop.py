"""A benchmark stops when Ctrl-C or SIGTERM stops the `streamsnn` command it runs in-process: one line, exit 143,
no results written, no next run. Before, `streamsnn.cli.main` returned its status (143), the benchmark counted a
failed run and went on with the next seed (a stopped bench_time trained on for an hour).

Each test runs a real benchmark in a subprocess whose watcher thread sends the process SIGTERM once
`streamsnn.cli.main` has installed its handler, i.e. while the command runs: at once (the signal may then come
before the command's own handling, while its parser is built: `main` then returns 143 all the same), or half a
second later (inside it)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from conftest import ROOT, need

WATCH = textwrap.dedent("""
    import os, signal, sys, threading, time
    sys.path.insert(0, {root!r})
    import streamsnn.cli as cli

    def watch():
        while signal.getsignal(signal.SIGTERM) is not cli._on_sigterm:
            time.sleep(0.005)
        time.sleep({delay})
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True).start()
""")


def run_script(body: str, tmp_path, delay: float = 0.0) -> subprocess.CompletedProcess:
    """Run ``body`` with the watcher: SIGTERM ``delay`` s after streamsnn's command has installed its handler."""
    script = tmp_path / "go.py"
    script.write_text(WATCH.format(root=str(ROOT), delay=delay) + textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_sigterm_during_a_benchmarks_command_stops_the_benchmark_and_writes_nothing(tmp_path):
    out = tmp_path / "results"
    p = run_script(f"""
        from benchmarks import bench_time
        rc = bench_time.main(["--quick", "--only", "gestures", "--arms", "auto", "--out", {str(out)!r}])
        print("returned", rc)
        sys.exit(rc)
    """, tmp_path)
    assert p.returncode == 143, p.stderr[-2000:]
    assert p.stderr.strip().splitlines()[-1] == "bench_time: stopped (SIGTERM); no results written"
    assert "Traceback" not in p.stderr
    assert not out.exists() or not list(out.iterdir())  # no half result passed off as a measurement


def test_a_stopped_training_run_does_not_go_on_to_the_next_seed(tmp_path):
    data = need("nmnist_small")
    p = run_script(f"""
        from benchmarks.bench_robust import train
        for seed in (0, 1):
            r = train({str(data)!r}, seed, {str(tmp_path / "m.npz")!r}, ["--limit", "50", "--epochs", "20"])
            print("went on after seed", seed, r.get("rc"), flush=True)
    """, tmp_path, delay=0.5)
    assert p.returncode != 0
    assert "went on after seed" not in p.stdout
    # the exception that ends the benchmark, with the status train returned
    assert p.stderr.strip().splitlines()[-1] == "benchmarks.common.Interrupted: 143", p.stderr[-2000:]


def test_sigterm_while_the_parser_is_built_gives_the_one_line_and_status_143(monkeypatch, capsys):
    """The signal's handler is in place before the parser is built; a SIGTERM there (seen on a slow machine, inside
    argparse's gettext) ended `main` with a traceback instead of its line and 143, and a benchmark then stopped on
    `cli.Terminated` instead of its own Interrupted(143)."""
    import streamsnn.cli as cli

    def slow_parser():
        cli._on_sigterm(15, None)  # the handler streamsnn installed, as the signal would call it

    monkeypatch.setattr(cli, "build_parser", slow_parser)
    assert cli.main(["info", "x.npz"]) == 143
    assert capsys.readouterr().err.strip() == "streamsnn: terminated (SIGTERM)"
