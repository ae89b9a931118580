"""bench_time's held-out mode: settings are tried on training samples held out, never on the test split; its
options refuse what they cannot do in one line, and a real run trains with the added arguments and scores the
held-out quarter. The order variants come from their own recordings; each run names its leaks, the search's pick and
what it tried."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import DATA, ROOT, need

sys.path.insert(0, str(ROOT))  # the benchmarks package lives beside streamsnn, not in it
from benchmarks import bench_time, ordertask  # noqa: E402


@pytest.mark.parametrize("argv, says", [
    (["--held-out"], "--held-out needs --only"),
    (["--held-out", "--only", "order"], "--held-out needs --only"),
    (["--held-out", "--only", "nmnist", "--only", "gestures"], "--held-out needs --only"),
    (["--only", "nmnist", "--tag", "a/b"], "--tag 'a/b'"),
    (["--only", "nmnist", "--train-args", "--tau-ms '25"], "--train-args"),
])
def test_options_it_cannot_honour_are_refused_in_one_line(argv, says, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        bench_time.main(argv + ["--out", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert says in err
    assert not list(tmp_path.iterdir())  # nothing written


def test_only_nmnist_has_a_held_out_split(tmp_path):
    with pytest.raises(ValueError, match="not order"):
        bench_time.build("order", ROOT, tmp_path, quick=True, held_out=True)


@pytest.mark.slow
def test_a_held_out_run_trains_with_the_added_arguments_and_scores_the_held_out_quarter(tmp_path):
    need("nmnist_small")
    out = tmp_path / "results"
    code = bench_time.main(["--held-out", "--only", "nmnist", "--arms", "dense", "--seeds", "0", "--train-args",
                            "--epochs 3 --arch dense:64", "--tag", "probe", "--out", str(out)])
    assert code == 0
    run = json.loads((out / "time-held-nmnist-probe.json").read_text())
    res = run["results"][0]
    assert "held-out" in res["title"] and "--epochs 3 --arch dense:64" in res["title"]
    table = res["tables"][0]
    assert table["title"].startswith("Per dataset and learning rule: held-out accuracy")
    row = dict(zip(table["columns"], table["rows"][0]))
    assert row["network"] == "dense:64"  # the added --arch won over the arm's dense:800
    assert row["scored samples"] == 250  # the last quarter of each class of the 1,000 training samples, not the 100
    per_run = dict(zip(res["tables"][1]["columns"], res["tables"][1]["rows"][0]))
    assert per_run["epochs"] == 3
    assert float(per_run["whole %"]) > 30  # it learned: chance is 10 %
    assert any("held-out training samples" in n for n in res["notes"])
    assert float(row["M events/s (eval, 1 core)"]) > 0  # the median of the evaluation rounds
    assert any(f"median of {bench_time.SPEED_REPEATS} rounds" in n for n in res["notes"])


@pytest.mark.parametrize("name", ["order_other", "order_slow"])
def test_the_other_order_tasks_come_from_their_own_recordings_and_segment_lengths(name, tmp_path):
    need("biolab_objects")
    folder = bench_time.build(name, DATA, tmp_path, quick=True)
    manifest = json.loads((folder / "ordertask.json").read_text())
    want = bench_time.ORDER_VARIANTS[name]
    assert tuple(manifest["sources"]) == want["sources"]
    assert manifest["segment_us"] == want["segment_ms"] * 1000
    assert set(want["sources"]) != set(ordertask.SOURCES)  # not the task the defaults were measured on
    draw = manifest["draws"]["train"][0]
    assert [d["source"] for d in draw] == list(want["sources"])
    assert all(d["end_us"] - d["start_us"] == want["segment_ms"] * 1000 for d in draw)
    assert len(list((folder / "Train").glob("*/*.aedat4"))) == 6 * 20  # quick: 20 draws a split, one sample a class


def test_each_run_reports_its_layers_leaks_and_what_the_search_chose(tmp_path):
    """score() reads them from the saved model: each hidden layer's leak then the output's, and the search's winner."""
    from streamsnn.cli import main

    data = tmp_path / "g"
    assert main(["synth", "--gestures", "--count", "2", "--test-count", "1", "--out", str(data), "-q"]) == 0
    model = tmp_path / "m.npz"
    assert main(["train", "--data", str(data), "--arch", "dense:16,dense:8", "--learning", "membrane", "--tau-ms",
                 "40,12,10", "--epochs", "1", "--choose", "off", "--out", str(model), "--quiet"]) == 0
    got = bench_time.score(model, data)
    assert got["leaks"] == "40/12/10" and got["chosen"] == "–" and got["tried"] is None
    assert main(["train", "--data", str(data), "--arch", "dense:16", "--learning", "counts", "--epochs", "1",
                 "--choose", "on", "--no-augment", "--lr", "0.001", "--out", str(model), "--quiet"]) == 0
    got = bench_time.score(model, data)
    assert got["leaks"] == "–" and got["chosen"] in ("default", "crops on", "crops off")  # the search ran
    # and what it tried, each candidate with its held-out accuracy, the winner among them
    tried = got["tried"].split("; ")
    assert tried[0].startswith("default ") and len(tried) >= 2
    assert any(t.startswith(got["chosen"] + " ") for t in tried)


def test_speeds_are_the_median_of_rounds_of_real_evaluations(tmp_path):
    """Each model of a seed is evaluated in turn, round after round; its figure is a real evaluation's events/s."""
    from streamsnn.cli import main

    data = tmp_path / "g"
    assert main(["synth", "--gestures", "--count", "2", "--test-count", "1", "--out", str(data), "-q"]) == 0
    models = [tmp_path / "a.npz", tmp_path / "b.npz"]
    for model, arch in zip(models, ("dense:16", "dense:64,dense:32")):
        assert main(["train", "--data", str(data), "--arch", arch, "--epochs", "1", "--choose", "off", "--out",
                     str(model), "--quiet"]) == 0
    got = bench_time.speeds(models, data, repeats=3)
    assert len(got) == 2 and all(v > 0 and v == v for v in got)
