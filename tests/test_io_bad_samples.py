"""Unreadable and empty samples in a dataset: one rule and one message for info, eval, train, replay and serve.

Before: a zero-length sample was refused by `info`, scored by `eval` and silently dropped by replay,
and `eval` stopped at the first bad sample where replay skipped and counted it.
"""

from __future__ import annotations

import json

import pytest
from conftest import need

from streamsnn.cli import main
from streamsnn.learn.training import load_split
from streamsnn.snn import SpikingNetwork
from streamsnn.sources.files import ReplaySource

GOOD = [60001, 60002, 60003, 60004, 60005, 60006]


@pytest.fixture
def folder(tmp_path):
    """A flat N-MNIST folder: six real test samples, one empty file and one truncated file."""
    src = need("nmnist_small")
    d = tmp_path / "data"
    d.mkdir()
    labels = {int(a): int(b) for a, b in (line.split() for line in (src / "test100.txt").read_text().splitlines()
                                         if line.strip() and not line.startswith("#"))}
    lines = ["#sample #class"]
    for k in GOOD:
        (d / f"{k}.bs2").symlink_to(src / f"{k}.bs2")
        lines.append(f"{k} {labels[k]}")
    (d / "9001.bs2").touch()  # zero length
    (d / "9002.bs2").write_bytes((src / "60007.bs2").read_bytes()[:-3])  # truncated
    lines += ["9001 3", "9002 4"]
    (d / "test8.txt").write_text("\n".join(lines) + "\n")
    return d


@pytest.fixture
def model(tmp_path):
    return SpikingNetwork((2312, 16, 10), seed=1).save(tmp_path / "m.npz")


def test_info_refuses_an_empty_sample_with_the_rule(folder, capsys):
    assert main(["info", str(folder / "9001.bs2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "9001.bs2: empty sample: the file holds no events" in err[0]


def test_eval_skips_counts_and_reports_bad_samples(folder, model, capsys, caplog):
    assert main(["eval", "--data", str(folder), "--model", str(model), "--json"]) == 0
    captured = capsys.readouterr()
    res = json.loads(captured.out)
    assert res["samples"] == len(GOOD) and sum(map(sum, res["confusion"])) == len(GOOD)
    assert res["skipped"] == 2
    empty, cut = sorted(res["skipped_samples"])
    assert "9001.bs2: empty sample" in empty and "9002.bs2: truncated N-MNIST file" in cut
    skipped_logs = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped a sample: ")]
    assert len(skipped_logs) == 2  # each one logged, one line each

    assert main(["eval", "--data", str(folder), "--model", str(model), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "skipped 2 unreadable sample(s), not scored" in out and "9001.bs2: empty sample" in out


def test_eval_stream_leaves_out_and_counts_bad_samples(folder, model, capsys):
    assert main(["eval", "--data", str(folder), "--model", str(model), "--stream", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["samples"] == len(GOOD) and res["skipped"] == 2
    assert sorted(s.split(": ")[0].rsplit("/", 1)[-1] for s in res["skipped_samples"]) == ["9001.bs2", "9002.bs2"]

    assert main(["eval", "--data", str(folder), "--model", str(model), "--stream", "--quiet"]) == 0
    assert "skipped 2 unreadable sample(s), left out of the stream" in capsys.readouterr().out


def test_serve_dataset_skips_the_same_samples(folder):
    from streamsnn.io import read_events
    from streamsnn.sources.serve import dataset_as_stream

    stream = dataset_as_stream(folder)
    assert stream.meta["skipped"] == 2
    assert len(stream) == sum(len(read_events(folder / f"{k}.bs2")) for k in GOOD)


def test_eval_with_no_readable_sample_exits_2(folder, model, capsys):
    for k in GOOD:
        (folder / f"{k}.bs2").unlink()
        (folder / f"{k}.bs2").touch()
    assert main(["eval", "--data", str(folder), "--model", str(model), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines()[-1].startswith(f"streamsnn: error: {folder}: none of the 8 test samples")


def test_training_loader_skips_the_same_samples(folder):
    net = SpikingNetwork((2312, 16, 10))
    data = load_split(folder, "test", net, quiet=True)
    assert data.ids == [str(k) for k in GOOD]
    assert len(data.skipped) == 2 and any("empty sample" in s for s in data.skipped)


async def test_replay_skips_and_counts_the_same_samples(folder):
    replay = ReplaySource(folder, speed=0)
    batches = [b async for b in replay]
    assert [b.sample for b in batches] == [str(k) for k in GOOD]
    assert replay.counters["bad_samples"] == 2  # the empty one is no longer passed on as a sample
