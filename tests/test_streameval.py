"""Stream evaluation (`eval --stream`): the stream is the samples joined, scoring by majority coverage and
delays on hand-made cases, the CLI's JSON on the real test split, and the very decisions the daemon makes."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import numpy as np
import pytest

import streamsnn.learn.streameval
import streamsnn.pipeline
from streamsnn.cli import main
from streamsnn.config import load_config
from streamsnn.errors import InputError
from streamsnn.io import open_dataset
from streamsnn.learn.streameval import (
    LIVE_HOP_US,
    LIVE_MIN_EVENTS,
    LIVE_OVERLAP,
    LIVE_SMOOTH_US,
    LIVE_TAU_US,
    LIVE_WINDOW_US,
    Stream,
    cover,
    first_right_delays,
    make_stream,
    score,
    stream_evaluate,
    targets,
)
from streamsnn.pipeline import Pipeline
from streamsnn.pipeline.decide import Decider
from streamsnn.pipeline.segment import Segmenter, Window
from streamsnn.snn import Decision, SpikingNetwork
from tests.conftest import ROOT, need


@pytest.fixture(scope="module")
def test_samples():
    ds = open_dataset(need("nmnist_small")).split("test")
    return [s.load() for s in ds.samples], list(ds.classes)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    out = tmp_path_factory.mktemp("stream") / "tiny.npz"
    assert main(["train", "--data", str(need("nmnist_small")), "--epochs", "2", "--hidden", "64",
                 "--limit", "300", "--out", str(out), "--quiet"]) == 0
    return out


# -- the stream ---------------------------------------------------------------------------------
@pytest.mark.parametrize("gap_us", [0, 7_000])
def test_stream_is_the_samples_back_to_back(test_samples, gap_us):
    samples = test_samples[0][:6]
    st = make_stream(samples, gap_us=gap_us)
    ev = np.concatenate([b.events for b in st.batches])
    assert len(ev) == st.events == sum(len(s) for s in samples)
    assert np.all(np.diff(ev["t"]) >= 0) and ev["t"][0] == 0
    for col in ("x", "y", "p"):  # the same events in the same order
        np.testing.assert_array_equal(ev[col], np.concatenate([s.events[col] for s in samples]))
    np.testing.assert_array_equal(st.starts[1:], st.ends[:-1] + gap_us)
    np.testing.assert_array_equal(st.labels, [s.label for s in samples])
    lo = 0
    for k, s in enumerate(samples):  # each sample keeps its own timing, inside its span
        mine = ev["t"][lo:lo + len(s)]
        np.testing.assert_array_equal(mine - mine[0], s.events["t"] - s.events["t"][0])
        assert mine[0] == st.starts[k] and mine[-1] == st.ends[k] - 1
        lo += len(s)
    for b in st.batches:  # what the segmenter gets: chunks of one sensor, no sample ids or labels
        assert b.sample is None and b.label is None and not b.meta and b.sensor_size == (34, 34)
        assert b.duration_us < streamsnn.learn.streameval.CHUNK_US
    assert len(st.batches) > st.duration_us // streamsnn.learn.streameval.CHUNK_US // 2


def test_stream_refuses_mixed_sensors_and_unlabelled_samples(test_samples):
    a = test_samples[0][0]
    b = a.with_events(a.events[a.events["x"] < 32])
    wide = type(b)(b.events, 40, 34, sample="wide", label=1, source="wide.bin")
    with pytest.raises(InputError, match="wide.bin: sensor 40x34 differs"):
        make_stream([a, wide])
    with pytest.raises(InputError, match="no label"):
        make_stream([a, a.with_meta(label=None)])


def test_no_sample_id_or_label_reaches_the_network(test_samples, model):
    net = SpikingNetwork.load(model)
    seen = []
    real = net.predict_one
    net.predict_one = lambda batch: (seen.append((batch.sample, batch.label, dict(batch.meta))), real(batch))[1]
    net.learn_one = lambda *a: pytest.fail("stream evaluation must never learn")
    res = stream_evaluate(net, test_samples[0][:10], classes=test_samples[1], overlap="repeat")  # via predict_one
    assert len(seen) == res["decisions"] > 0
    assert all(s == (None, None, {}) for s in seen)


# -- scoring on hand-made cases -------------------------------------------------------------------
def test_cover_picks_the_sample_covering_most_of_the_window_ties_to_the_later():
    starts, ends = np.array([0, 100, 300]), np.array([100, 250, 400])
    assert cover(starts, ends, 20, 140) == 0      # 80 us of sample 0 against 40 of sample 1
    assert cover(starts, ends, 50, 150) == 1      # 50 against 50: the later sample
    assert cover(starts, ends, 200, 320) == 1     # 50 against 20 (the gap 250..300 belongs to nobody)
    assert cover(starts, ends, 240, 330) == 2     # 10 against 30
    assert cover(starts, ends, 0, 1000) == 1      # the longest sample wins a window covering all
    assert cover(starts, ends, -50, 10) == 0
    assert cover(starts, ends, 255, 295) == -1    # inside the gap
    assert cover(starts, ends, -50, 0) == -1 and cover(starts, ends, 400, 450) == -1


def test_first_right_delays_count_from_the_sample_start():
    starts = np.array([0, 1000, 5000])
    sample_of = np.array([0, 0, 1, 1, 1, 2])
    correct = np.array([False, True, False, True, True, False])
    t_end = np.array([400, 900, 1300, 1800, 2300, 5600])
    np.testing.assert_array_equal(first_right_delays(starts, sample_of, correct, t_end), [900, 800, -1])


def _pairs(rows):
    return [(Window(None, a * 1000, b * 1000), Decision(label, np.zeros(3, np.float32), 1.0, 10))
            for a, b, label in rows]


def test_score_on_a_hand_made_stream():
    st = Stream([], np.array([0, 100, 300, 400]) * 1000, np.array([100, 250, 400, 500]) * 1000,
                np.array([1, 2, 1, 0]), ["a", "b", "c", "d"])
    pairs = _pairs([(0, 60, 1), (30, 90, 0), (60, 120, 2),   # sample a (class one): right at 60 ms
                    (90, 150, 2), (120, 180, 2),              # sample b (two): right at 150 - 100 = 50 ms
                    (240, 330, 0), (270, 330, 1),             # sample c (one): right at 330 - 300 = 30 ms
                    (400, 460, 1)])                           # sample d (zero): never right
    r = score(st, pairs, np.array([0, 1, 2]), ["zero", "one", "two"], ["0", "1", "2"])
    assert r["decisions"] == 8 and r["correct"] == 4 and r["stream_accuracy"] == 0.5
    assert r["samples"] == 4 and r["never_right"] == 1
    assert r["delay_median_ms"] == 50.0 and r["delay_p90_ms"] == pytest.approx(58.0)
    assert r["per_class"] == {
        "zero": {"accuracy": 0.0, "decisions": 1, "samples": 1, "never_right": 1, "delay_median_ms": None},
        "one": {"accuracy": 0.4, "decisions": 5, "samples": 2, "never_right": 0, "delay_median_ms": 45.0},
        "two": {"accuracy": 1.0, "decisions": 2, "samples": 1, "never_right": 0, "delay_median_ms": 50.0},
    }
    assert r["confusion"] == [[0, 1, 0], [2, 2, 1], [0, 0, 2]]
    np.testing.assert_array_equal(r["_sample_of"], [0, 0, 0, 1, 1, 2, 2, 3])


def test_outputs_match_classes_by_name_when_the_model_has_names():
    named = SimpleNamespace(sizes=(4, 3), classes=["two", "zero", "x"])
    np.testing.assert_array_equal(targets(named, ["zero", "one", "two"], 3), [1, -1, 0])
    plain = SimpleNamespace(sizes=(4, 2), classes=["0", "1"])  # made from a count: output k means dataset label k
    np.testing.assert_array_equal(targets(plain, ["zero", "one", "two"], 3), [0, 1, -1])


# -- the same path as the daemon ------------------------------------------------------------------
def test_both_paths_call_the_one_decision_step():
    assert streamsnn.pipeline.Decider is streamsnn.learn.streameval.Decider


@pytest.mark.parametrize("tau_us,smooth_us", [(None, 0), (30_000.0, 0), (None, 100_000)])
async def test_same_decisions_as_a_pipeline_run_over_the_same_stream(test_samples, model, tau_us, smooth_us):
    samples = test_samples[0][:12]
    net = SpikingNetwork.load(model)
    res = stream_evaluate(net, samples, classes=test_samples[1], tau_us=tau_us or 0, smooth_us=smooth_us,
                          keep_decisions=True)

    daemon_net = SpikingNetwork.load(model)
    daemon_net.tau_us = tau_us
    daemon_net.reset()
    stream = make_stream(samples)

    async def source():
        for b in stream.batches:
            yield b
            await asyncio.sleep(0)

    got = []

    async def flushed(timeout=None):
        return True

    sink = SimpleNamespace(publish_decision=lambda w, d, info: got.append({"t": (w.t_start_us, w.t_end_us),
                                                                          "label": d.label}),
                           publish_metrics=lambda m: None, publish_classes=lambda names: None,
                           check=lambda: None, flush=flushed)
    pipe = Pipeline(source(), daemon_net, [sink], segmenter=Segmenter("window", LIVE_WINDOW_US, LIVE_HOP_US,
                                                                      LIVE_MIN_EVENTS, overlap=LIVE_OVERLAP),
                    decider=Decider(smooth_us))
    counters = await pipe.run()
    assert counters.decisions == res["decisions"] == len(got) > 20
    assert [g["t"] for g in got] == [(d["t_start_us"], d["t_end_us"]) for d in res["decision_list"]]
    assert [g["label"] for g in got] == [d["label"] for d in res["decision_list"]]
    assert daemon_net.updates == net.updates  # no labels on a stream: nothing learned


def test_leak_is_honoured_and_the_model_is_restored(test_samples, model):
    net = SpikingNetwork.load(model)
    samples = test_samples[0][:12]
    off = stream_evaluate(net, samples, tau_us=0, keep_decisions=True, overlap="inflight")  # each window alone
    on = stream_evaluate(net, samples, tau_us=30_000, keep_decisions=True)
    assert off["tau_us"] is None and on["tau_us"] == 30_000
    assert net.tau_us is None  # the checkpoint's setting is back
    assert [d["label"] for d in on["decision_list"]] != [d["label"] for d in off["decision_list"]]
    # without a leak a decision is that window alone; with one, it carries what came before
    fresh = SpikingNetwork.load(model)
    seg = Segmenter("window", LIVE_WINDOW_US, LIVE_HOP_US, LIVE_MIN_EVENTS)
    windows = [w for b in make_stream(samples).batches for w in seg.feed(b)]
    published = [d["label"] for d in off["decision_list"][:len(windows)]]
    assert [fresh.predict_one(w.batch).label for w in windows] == published
    leaky_alone = []
    for w in windows:
        fresh.tau_us = 30_000.0
        fresh.reset()
        leaky_alone.append(fresh.predict_one(w.batch).label)
    assert leaky_alone != [d["label"] for d in on["decision_list"][:len(windows)]]


def test_defaults_are_the_live_pipelines_settings():
    from streamsnn.config import SCHEMA

    for name in ("live-camera.toml", "dv-stream.toml"):
        cfg = load_config(ROOT / "pipelines" / name)
        seg = cfg.segment
        assert (seg.mode, seg.window_us, seg.hop_us, seg.min_events, seg.smooth_us) == \
            ("window", LIVE_WINDOW_US, LIVE_HOP_US, LIVE_MIN_EVENTS, LIVE_SMOOTH_US), name
        assert LIVE_TAU_US == 0  # the live pipelines run the model without a leak: the trained one has none
    defaults = SCHEMA["segment"]
    assert (defaults["window_us"].default, defaults["hop_us"].default, defaults["smooth_us"].default) == \
        (LIVE_WINDOW_US, LIVE_HOP_US, LIVE_SMOOTH_US)


# -- the command line -----------------------------------------------------------------------------
def test_cli_stream_json(capsys, model):
    data = need("nmnist_small")
    capsys.readouterr()
    assert main(["eval", "--data", str(data), "--model", str(model), "--stream", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)  # exactly one JSON object on stdout
    assert {"stream_accuracy", "decisions", "correct", "per_class", "confusion", "delay_median_ms",
            "delay_p90_ms", "never_right", "events", "events_per_s", "samples", "model"} <= set(r)
    assert r["samples"] == 100
    assert r["events"] == sum((data / f"{60000 + k}.bs2").stat().st_size // 5 for k in range(1, 101))
    assert (r["window_us"], r["hop_us"], r["min_events"], r["tau_us"], r["smooth_us"], r["gap_us"]) == \
        (LIVE_WINDOW_US, LIVE_HOP_US, LIVE_MIN_EVENTS, None, LIVE_SMOOTH_US, 0)
    # about one decision per hop over the 30 s stream
    assert abs(r["decisions"] - r["stream_seconds"] * 1e6 / LIVE_HOP_US) <= 3
    conf = np.array(r["confusion"])
    assert conf.shape == (10, 10) and conf.sum() == r["decisions"]
    assert r["stream_accuracy"] == pytest.approx(np.trace(conf) / r["decisions"]) == r["correct"] / r["decisions"]
    assert r["stream_accuracy"] > 0.2  # chance is 0.1
    assert list(r["per_class"]) == [str(d) for d in range(10)]
    assert sum(c["decisions"] for c in r["per_class"].values()) == r["decisions"]
    assert r["per_class"]["8"]["samples"] == 2 and sum(c["samples"] for c in r["per_class"].values()) == 100
    assert 0 < r["delay_median_ms"] <= r["delay_p90_ms"] < 400 and 0 <= r["never_right"] < 100
    capsys.readouterr()
    assert main(["eval", "--data", str(data), "--model", str(model), "--stream", "--window-us", "200000",
                 "--hop-us", "25000", "--tau-us", "30000", "--gap-us", "50000", "--smooth-us", "70000", "--limit", "20",
                 "--json"]) == 0
    r2 = json.loads(capsys.readouterr().out)
    assert (r2["window_us"], r2["hop_us"], r2["tau_us"], r2["gap_us"], r2["smooth_us"], r2["samples"]) == \
        (200_000, 25_000, 30_000, 50_000, 70_000, 20)


def test_cli_stream_text_report(capsys, model):
    assert main(["eval", "--data", str(need("nmnist_small")), "--model", str(model), "--stream", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "stream accuracy" in out and "first right decision" in out and "confusion" in out


@pytest.mark.parametrize("argv,needle", [
    (["--window-us", "50000"], "--window-us applies to stream evaluation only"),
    (["--stream", "--hop-us", "0"], "hop_us must be an integer >= 1"),
    (["--stream", "--tau-us", "-5"], "tau_us must be 0 (no leak) up to 1e9"),
    (["--stream", "--tau-us", "inf"], "tau_us must be 0 (no leak) up to 1e9"),
    (["--stream", "--smooth-us", "-1"], "smooth_us must be >= 0"),
    (["--smooth-us", "50000"], "--smooth-us applies to stream evaluation only"),
])
def test_cli_stream_bad_settings_exit_2_with_one_line(capsys, model, argv, needle):
    rc = main(["eval", "--data", str(need("nmnist_small")), "--model", str(model), "--limit", "5"] + argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("streamsnn: error:") and needle in lines[0]


def test_the_daemon_smooths_as_configured_and_as_eval_stream_does(tmp_path, test_samples, model):
    """`streamsnn run` with [segment] smooth_us on a recording of the joined samples publishes the very
    decisions (labels and smoothed scores) that `eval --stream --smooth-us` scores."""
    import dv_processing as dv

    from streamsnn.config import build_config
    from streamsnn.daemon import run
    from streamsnn.sources._dv import array_to_store

    samples = test_samples[0][:10]
    rec = tmp_path / "stream.aedat4"
    writer = dv.io.MonoCameraWriter(str(rec), dv.io.MonoCameraWriter.EventOnlyConfig("test", (34, 34)))
    writer.writeEvents(array_to_store(np.concatenate([b.events for b in make_stream(samples).batches])))
    del writer
    ckpt = tmp_path / "model.npz"
    ckpt.write_bytes(model.read_bytes())
    got = {}
    for smooth in (0, 100_000):
        out = tmp_path / f"decisions-{smooth}.jsonl"
        cfg = build_config({
            "source": {"kind": "replay", "path": str(rec), "speed": 0.0, "chunk_us": 10_000},
            "segment": {"mode": "window", "window_us": LIVE_WINDOW_US, "hop_us": LIVE_HOP_US,
                        "min_events": LIVE_MIN_EVENTS, "smooth_us": smooth},
            "model": {"checkpoint": str(ckpt), "learn_from_labels": False, "learn_from_feedback": False,
                      "save_every_s": 0.0},
            "mqtt": {"enabled": False}, "console": {"enabled": False}, "jsonl": {"path": str(out)}}, "test")
        assert run(cfg, quiet=True) == 0
        got[smooth] = [json.loads(line) for line in out.read_text().splitlines()]
        res = stream_evaluate(SpikingNetwork.load(model), samples, smooth_us=smooth, keep_decisions=True)
        assert len(got[smooth]) == res["decisions"] > 20
        assert [g["label"] for g in got[smooth]] == [d["label"] for d in res["decision_list"]]
    assert [g["label"] for g in got[0]] != [g["label"] for g in got[100_000]]  # smoothing changed decisions
    for g in got[100_000]:  # smoothed scores are mean log-probabilities
        assert max(g["scores"]) <= 0 and g["scores"].index(max(g["scores"])) == g["label"]


def test_a_stream_with_no_decision_says_why_instead_of_scoring_zero(test_samples):
    """Samples too sparse for any window to reach min_events: `eval --stream` printed "stream accuracy 0.0000" and
    its JSON 0.0, as if every decision were wrong; now no accuracy, and a line with the busiest window's events."""
    from streamsnn.learn.streameval import report_lines

    samples, classes = test_samples
    res = stream_evaluate(SpikingNetwork((2312, 8, 10), seed=0), samples[:5], classes=classes, min_events=10**6)
    assert res["decisions"] == 0 and res["stream_accuracy"] is None
    assert 0 < res["busiest_window_events"] < 10**6
    text = "\n".join(report_lines(res))
    assert "stream accuracy - over 0 decisions" in text
    assert f"the busiest held {res['busiest_window_events']:,}); give --min-events" in text
    json.dumps(res)  # what --json prints
