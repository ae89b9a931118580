"""The "Teach it live" walk-through of docs/demo.md is what benchmarks/bench_teach_flow.py runs: its bash block
parses into the flow's commands (digit folders, three classes recorded, train, the demo teaching and recording)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_teach_flow import DOCS, NEW_CLASS, as_run, flow_commands  # noqa: E402


def test_the_docs_block_is_the_flow_the_benchmark_times():
    commands = flow_commands(DOCS.read_text())
    assert len(commands) == 6
    make, *records, train, demo = commands
    assert make.startswith("python - <<'EOF'\n") and make.endswith("\nEOF") and "load_mnist" in make
    assert f'"{NEW_CLASS}"' in make
    classes = []
    for command in records:
        argv = shlex.split(command)
        assert argv[:2] == ["streamsnn", "record"] and argv[argv.index("--out") + 1] == "my-data"
        classes.append(argv[argv.index("--class") + 1])
        assert argv[argv.index("--source") + 1] == f"synthetic:digits/{classes[-1]}"
    assert len(set(classes)) == 3 and NEW_CLASS not in classes
    assert shlex.split(train)[:4] == ["streamsnn", "train", "--data", "my-data"]
    argv = shlex.split(demo)
    assert argv[:2] == ["streamsnn", "demo"] and "--teach" in argv and argv[argv.index("--record") + 1] == "my-data"
    assert argv[argv.index("--images") + 1] == f"digits/{NEW_CLASS}"
    assert as_run(train).startswith(f"{shlex.quote(sys.executable)} -m streamsnn train ")


def test_a_heredoc_stays_one_command_and_comments_are_dropped():
    text = ("## Teach it live\n\n```bash\n# one\npython - <<'EOF'\nprint(1)\n\n# not a comment here\nEOF\n"
            "streamsnn info x\n```\n")
    assert flow_commands(text) == ["python - <<'EOF'\nprint(1)\n\n# not a comment here\nEOF", "streamsnn info x"]
