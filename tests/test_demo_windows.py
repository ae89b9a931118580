"""benchmarks/demo_windows.py: a demo's window decisions counted by their place inside the sample they are
labelled with (a jsonl sink's lines)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the benchmarks package lives beside streamsnn, not in it

from benchmarks import demo_windows as dw  # noqa: E402


def line(sample: str, true: str, decided: str) -> dict:
    names = ["a", "b", "c"]
    return {"sample": sample, "label": names.index(decided), "label_name": decided, "true_label": names.index(true),
            "true_label_name": true}


def test_places_count_each_samples_windows_from_its_first():
    rows = ([line("s1", "a", "b"), line("s1", "a", "a"), *[line("s1", "a", "a") for _ in range(8)]]
            + [line("s2", "b", "c"), line("s2", "b", "c"), line("s2", "b", "b")]
            + [line("s3", "b", "b")])  # the same class again, another sample: a new run
    p = dw.places(rows)
    assert p["samples"] == 3 and p["windows"] == 14
    assert p["from_start"][0] == [1, 3]  # s1 wrong, s2 wrong, s3 right
    assert p["from_start"][1] == [1, 2]
    assert p["from_start"][2] == [2, 2]
    assert p["from_start"][dw.PLACES] == [2, 2]  # s1's windows 8 and 9 pooled
    assert p["right"] == 11
    assert p["mistakes"] == {("a", "b"): 1, ("b", "c"): 2}
    # the middle: s1's windows 4..7 (two before its end); s2 and s3 are too short to have one
    assert p["middle"] == {"a": [4, 4]}


def test_report_says_what_the_other_windows_would_need(tmp_path):
    rows = [line(f"s{k}", "a", "b" if i < 2 else "a") for k in range(4) for i in range(10)]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows)
                    + json.dumps({"sample": "x", "label": 0, "true_label": None}) + "\n")  # unlabelled: skipped
    assert len(dw.read(path)) == 40 and len(dw.read(path, 7)) == 7
    assert dw.main(["--jsonl", str(path), "--out", str(tmp_path / "out")]) == 0
    run = json.loads((tmp_path / "out" / "demo-windows-gestures.json").read_text())
    metrics = {m["name"]: m["value"] for m in run["results"][0]["metrics"]}
    assert metrics["windows right"] == 0.8
    assert metrics["a sample's first two windows right"] == 0.0
    assert metrics["its other windows right"] == 1.0
    # 85 % of 40 = 34 right, none of the 8 first windows: 34 of the other 32 cannot be had
    assert metrics["what its other windows would need for 85% of all windows, the first two as they are"] == round(
        34 / 32, 3)
