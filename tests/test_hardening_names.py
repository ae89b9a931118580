"""Issue 17, items 7 and 8: untrusted text never reaches a log line or the terminal raw, and class names follow
one rule (streamsnn/classnames.py): refused with a counted reason through feedback, matched regardless of case
and Unicode form, checked in checkpoints and datasets; a class can be removed (and renamed) offline."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from streamsnn.classnames import normalise
from streamsnn.cli import OneLineFormatter, main
from streamsnn.errors import CheckpointError, ConfigError, InputError
from streamsnn.events import EventBatch, make_events
from streamsnn.io import open_dataset
from streamsnn.pipeline import Pipeline
from streamsnn.pipeline.segment import Window
from streamsnn.snn import SpikingNetwork
from streamsnn.textsafe import shown

RAW = ("\n", "\r", "\x1b", "\x00", "\u202e", "\u200b")  # what must never reach a log line or a terminal raw


def batch(seed: int, n: int = 300, sample: str | None = None) -> EventBatch:
    rng = np.random.default_rng(seed)
    ev = make_events(np.sort(rng.integers(0, 100_000, n)), rng.integers(0, 34, n), rng.integers(0, 34, n),
                     rng.integers(0, 2, n))
    return EventBatch(ev, 34, 34, sample=sample)


def net(classes=("cup", "plate", "3")) -> SpikingNetwork:
    return SpikingNetwork((2312, 16, len(classes)), classes=list(classes), seed=3)


def pipeline(n_windows: int = 12, **kw) -> Pipeline:
    pipe = Pipeline(None, net(), [], **kw)
    for k in range(n_windows):
        b = batch(k, sample=f"s{k}")
        pipe.recent.add(Window(b, b.t_start, b.t_end, b.sample))
    return pipe


def records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("streamsnn")]


def assert_safe(text: str, lines: int | None = None) -> None:
    """Text printed as `lines` lines (when given), none of which holds a raw control, bidi or invisible character."""
    parts = text.rstrip("\n").split("\n")
    assert lines is None or len(parts) == lines, repr(text)
    assert not any(ch in part for part in parts for ch in RAW), repr(text)


# -- item 7: log injection -------------------------------------------------------------------------------
def test_shown_escapes_controls_invisibles_and_bidi_and_cuts_long_values():
    assert shown("a\nb\x1b[31m\x00\u202e\u200b\\c") == "a\\x0ab\\x1b[31m\\x00\\u202e\\u200b\\\\c"
    assert shown("x" * 100) == "x" * 80 + "…" and shown("x" * 100, 10) == "x" * 10 + "…"
    assert shown("café 3") == "café 3" and shown(42) == "42"


async def test_a_feedback_sample_with_newline_and_escape_gives_one_safe_log_line(caplog):
    pipe = pipeline()
    caplog.set_level(logging.INFO, logger="streamsnn")
    forged = "x\n2026-12-01 00:00:00 INFO streamsnn.pipeline: feedback learned\x1b[31m"
    assert await pipe.apply_feedback({"sample": forged, "label": 0}) is False
    recs = records(caplog)
    assert len(recs) == 1, [r.getMessage() for r in recs]
    msg = recs[0].getMessage()
    assert_safe(msg)
    assert "unknown_sample" in msg and "\\x0a" in msg and "\\x1b[31m" in msg
    assert pipe.counters.feedback["unknown_sample"] == 1
    pipe._worker.shutdown()


async def test_unknown_key_names_and_label_names_are_logged_escaped(caplog):
    pipe = pipeline()
    caplog.set_level(logging.INFO, logger="streamsnn")
    await pipe.apply_feedback({"sample": "s0", "label": 0, "k\nWARNING forged\x1b[2J": 1})
    await pipe.apply_feedback({"sample": "s1", "label": "mug\u202e"})  # refused: not a class name
    await pipe.apply_feedback({"sample": "s2", "label": "mug\nforged"})
    await pipe.apply_feedback({"sample": "s3", "label": "bowl"})  # unknown_class, new_classes off
    recs = records(caplog)
    assert len(recs) == 4
    for r in recs:
        assert_safe(r.getMessage())
    assert pipe.counters.feedback["unknown_keys"] == 1 and pipe.counters.feedback["bad_class_name"] == 2
    assert pipe.counters.feedback["unknown_class"] == 1
    pipe._worker.shutdown()


def test_the_cli_log_format_escapes_whatever_a_message_holds():
    rec = logging.LogRecord("streamsnn.x", logging.WARNING, __file__, 1, "bad %s", ("a\nb\x1b[31m\u202e",), None)
    line = OneLineFormatter("%(levelname)s %(message)s").format(rec)
    assert line == "WARNING bad a\\x0ab\\x1b[31m\\u202e"


def test_console_lines_and_skipped_sample_lines_escape_sample_ids_and_reasons():
    from streamsnn.commands.eval import skipped_line
    from streamsnn.pipeline.stages import DecisionInfo
    from streamsnn.sinks.console import ConsoleSink
    from streamsnn.snn.network import Decision

    b = batch(1, sample="id\x1b]0;title\x07\nforged")
    b = b.with_meta(meta={"label_name": "cup\u202e"}, label=0)
    w = Window(b, b.t_start, b.t_end, b.sample, 0)
    d = Decision(label=1, scores=np.zeros(2, np.float32), confidence=0.5, events=len(b))
    line = ConsoleSink.decision_line(w, d, DecisionInfo(1.0, 2.0, classes=("cup", "plate")))
    assert_safe(line, lines=1)
    assert "id\\x1b]0;title\\x07\\x0aforged" in line and "true cup\\u202e MISS" in line
    assert_safe(skipped_line(["Train/a\nb.bin: bad\x1b[2J", "c"]), lines=1)


def bad_model(tmp_path, names) -> str:
    """A checkpoint whose classes hold names no longer accepted (as an older version let feedback add them)."""
    m = SpikingNetwork((2312, 8, len(names)), seed=1)
    m.classes = list(names)
    path = tmp_path / "bad.npz"
    m.save(path)
    return str(path)


def test_info_on_a_model_with_escape_and_nul_in_class_names_prints_one_escaped_line(tmp_path, capsys):
    path = bad_model(tmp_path, ["ok", "red\x1b[31m", "nul\x00"])
    assert main(["info", path]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert_safe(err, lines=1)
    assert "\\x1b[31m" in err and "streamsnn classes" in err


def test_classes_lists_bad_names_escaped_and_repairs_them_by_output_number(tmp_path, capsys):
    path = bad_model(tmp_path, ["ok", "red\x1b[31m", "nul\x00", "bidi\u202ex"])
    assert main(["classes", path]) == 0
    out, err = capsys.readouterr()
    assert_safe(out + err)
    assert "red\\x1b[31m" in out and "nul\\x00" in out and "bidi\\u202ex" in out and "invalid" in out
    assert main(["classes", path, "--rename", "#1", "red", "--remove", "#2", "--remove", "#3"]) == 0
    capsys.readouterr()
    assert SpikingNetwork.load(path).classes == ["ok", "red"]


def test_info_table_escapes_file_names_and_dataset_class_folders(tmp_path, capsys):
    event = bytes([1, 2, 0x80, 0, 10])  # one N-MNIST event
    f = tmp_path / "x\x1b[2Jy\u202e.bin"
    f.write_bytes(event * 3)
    assert main(["info", str(f)]) == 0
    out = capsys.readouterr().out
    assert_safe(out)
    assert "x\\x1b[2Jy\\u202e.bin" in out
    root = tmp_path / "ds"
    for cls in ("ok", "evil\x1b[31m"):
        (root / "Train" / cls).mkdir(parents=True)
        (root / "Train" / cls / "1.bin").write_bytes(event * 2)
    assert main(["info", str(root)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert_safe(err, lines=1)
    assert "evil\\x1b[31m" in err and "control character" in err


# -- item 8: what a class name is -----------------------------------------------------------------------
BAD = [" ", "\t", "\u200b", "\x00", "\x1b", "\u202e", "cup\u202e", "a\u00a0b", "\u0301", "x" * 65]


@pytest.mark.parametrize("name", BAD)
def test_normalise_refuses_invisible_control_and_overlong_names(name):
    with pytest.raises(ValueError, match="class name"):
        normalise(name)


def test_normalise_makes_one_form():
    assert normalise("  3 ") == "3" and normalise("big   cup") == "big cup"
    assert normalise("e\u0301") == normalise("\u00e9") == "\u00e9"
    assert normalise("CUP") == "CUP"  # a class keeps the case it was given


async def test_feedback_refuses_each_bad_name_with_a_counted_reason_and_adds_nothing():
    pipe = pipeline(new_classes=True, max_classes=32)
    before = list(pipe.net.classes)
    for k, name in enumerate(BAD):
        assert await pipe.apply_feedback({"sample": f"s{k}", "label": name}) is False
    fb = pipe.counters.feedback
    assert fb["bad_class_name"] == len(BAD) == fb["ignored"] and fb["learned"] == 0
    assert pipe.net.classes == before and pipe.counters.classes_added == 0
    pipe._worker.shutdown()


async def test_case_trailing_space_and_unicode_form_name_the_class_that_exists():
    pipe = pipeline(new_classes=True, max_classes=32)
    assert await pipe.apply_feedback({"sample": "s0", "label": "CUP"}) is True
    assert await pipe.apply_feedback({"sample": "s1", "label": "3 "}) is True
    assert await pipe.apply_feedback({"sample": "s2", "label": "\u00e9clair"}) is True  # added, NFC
    assert await pipe.apply_feedback({"sample": "s3", "label": "e\u0301CLAIR"}) is True  # NFD, other case
    assert await pipe.apply_feedback({"sample": "s4", "label": "Bowl"}) is True  # added, keeps its case
    assert await pipe.apply_feedback({"sample": "s5", "label": "bowl"}) is True
    assert pipe.net.classes == ["cup", "plate", "3", "\u00e9clair", "Bowl"]
    assert pipe.counters.classes_added == 2 and pipe.counters.feedback["learned"] == 6
    taught = [pipe.recent.find(sample=f"s{k}") for k in range(6)]
    assert all(w.learned for w in taught)
    pipe._worker.shutdown()


def test_the_network_checks_names_when_built_and_when_a_class_is_added():
    with pytest.raises(ConfigError, match="regardless of case"):
        net(("cup", "CUP"))
    with pytest.raises(ConfigError, match="control character"):
        net(("cup", "a\x00"))
    m = net()
    with pytest.raises(ConfigError, match="taken"):
        m.add_class("Plate")
    with pytest.raises(ConfigError, match="invisible"):
        m.add_class("\u200b")
    assert m.add_class(" saucer ") == 3 and m.classes[-1] == "saucer"


def test_a_checkpoint_normalises_valid_old_names_and_refuses_bad_ones(tmp_path):
    m = SpikingNetwork((2312, 8, 3), seed=1)
    m.classes = ["3 ", "e\u0301", "cup"]  # valid names in forms an older version kept
    m.save(tmp_path / "old.npz")
    assert SpikingNetwork.load(tmp_path / "old.npz").classes == ["3", "\u00e9", "cup"]
    m.classes = ["cup", "CUP", "plate"]
    m.save(tmp_path / "dup.npz")
    with pytest.raises(CheckpointError, match="regardless of case"):
        SpikingNetwork.load(tmp_path / "dup.npz")
    assert SpikingNetwork.load(tmp_path / "dup.npz", any_names=True).classes == ["cup", "CUP", "plate"]


def test_dataset_class_folders_keep_digits_and_names_and_refuse_invisible_or_case_twins(tmp_path):
    event = bytes([1, 2, 0x80, 0, 10])
    def dataset(name, classes):
        root = tmp_path / name
        for cls in classes:
            (root / "Train" / cls).mkdir(parents=True)
            (root / "Train" / cls / "1.bin").write_bytes(event)
        return root
    assert open_dataset(dataset("digits", ["0", "07", "2"])).classes[:3] == ["0", "1", "2"]
    assert open_dataset(dataset("names", ["cup", "e\u0301clair "])).classes == ["cup", "\u00e9clair"]
    with pytest.raises(InputError, match="invisible"):
        open_dataset(dataset("zw", ["cup", "\u200b"]))
    with pytest.raises(InputError, match="differ only in case"):
        open_dataset(dataset("twins", ["cup", "CUP"]))


# -- removing a class -----------------------------------------------------------------------------------
def test_remove_class_keeps_the_other_scores_and_round_trips(tmp_path):
    m = net(("cup", "plate", "bowl", "3"))
    m.add_class("saucer", lr_boost=50.0)
    for k in range(6):
        m.learn_one(batch(k), k % 5)
    probes = [batch(100 + k) for k in range(4)]
    before = [m.predict_one(b).scores for b in probes]
    version = m.model_version
    assert m.remove_class("PLATE") == 1
    assert m.classes == ["cup", "bowl", "3", "saucer"] and m.model_version != version
    assert list(m.class_lr) == [1, 1, 1, 50]
    for b, s in zip(probes, before):
        assert np.array_equal(m.predict_one(b).scores, np.delete(s, 1))
    m.learn_one(probes[0], 3)  # still learns, with the right shapes
    m.save(tmp_path / "m.npz")
    back = SpikingNetwork.load(tmp_path / "m.npz")
    assert back.classes == m.classes and np.array_equal(back.class_lr, m.class_lr)
    assert all(np.array_equal(a, b) for a, b in zip(back.weights, m.weights))
    assert np.array_equal(back.predict_one(probes[1]).scores, m.predict_one(probes[1]).scores)


def test_the_classes_command_removes_renames_and_refuses_with_one_line(tmp_path, capsys):
    path = tmp_path / "m.npz"
    net(("cup", "plate", "bowl")).save(path)
    assert main(["classes", str(path), "--remove", "Bowl", "--rename", "cup", "Mug"]) == 0
    out = capsys.readouterr().out
    assert "removed output 2 'bowl'" in out and "renamed output 0 'cup' to 'Mug'" in out
    assert SpikingNetwork.load(path).classes == ["Mug", "plate"]
    for argv, words in ((["--remove", "Mug"], "at least 2"), (["--remove", "nope"], "no class 'nope'"),
                        (["--rename", "plate", "mug"], "taken"), (["--rename", "plate", "\t"], "control")):
        assert main(["classes", str(path), *argv]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and words in err, err
    assert SpikingNetwork.load(path).classes == ["Mug", "plate"]
    assert main(["classes", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["classes"] == ["Mug", "plate"]


def test_the_classes_command_swaps_names_and_reuses_a_removed_one(tmp_path, capsys):
    """Every NAME refers to the list before the edits (as --help says), so two names can be swapped."""
    path = tmp_path / "m.npz"
    m = net(("cup", "plate", "bowl"))
    for k in range(3):
        m.learn_one(batch(k), k)
    m.save(path)
    probe = batch(7)
    scores = m.predict_one(probe).scores
    assert main(["classes", str(path), "--rename", "cup", "plate", "--rename", "plate", "cup"]) == 0
    assert "renamed output 0 'cup' to 'plate'" in capsys.readouterr().out
    back = SpikingNetwork.load(path)
    assert back.classes == ["plate", "cup", "bowl"]
    assert np.array_equal(back.predict_one(probe).scores, scores)  # the weights stayed with their outputs
    assert main(["classes", str(path), "--remove", "bowl", "--rename", "cup", "Bowl"]) == 0
    assert SpikingNetwork.load(path).classes == ["plate", "Bowl"]
    # two classes left with one name: refused, nothing changed
    assert main(["classes", str(path), "--rename", "plate", "x", "--rename", "bowl", "X"]) == 2
    err = capsys.readouterr().err
    assert "class name 'X' is taken by output 0" in err and err.count("\n") == 1, err
    assert SpikingNetwork.load(path).classes == ["plate", "Bowl"]
    # an old model's own pair of names differing in case does not block renaming another class
    path = bad_model(tmp_path, ["a", "A", "5"])
    assert main(["classes", path, "--rename", "5", "five"]) == 0
    assert main(["classes", path, "--rename", "#1", "b"]) == 0
    capsys.readouterr()
    assert SpikingNetwork.load(path).classes == ["a", "b", "five"]


def test_eval_matches_the_datasets_class_names_to_the_models_regardless_of_case(tmp_path, capsys):
    """A model renamed 'club' -> 'CLUB' scored every club sample as a class it lacked (11 of 15 left out)."""
    from conftest import need

    from streamsnn.learn.streameval import targets
    from streamsnn.learn.training import load_split
    from streamsnn.snn import InputMap

    data = need("poker_dvs_inverted")
    ds = open_dataset(data)
    m = SpikingNetwork(arch="dense:8", input_map=InputMap(sensor=(128, 128), roi=(90, 90, 34, 34), grid=(34, 34, 2)),
                       classes=["CLUB", "Diamond", "spade"], seed=1)
    split = load_split(data, "test", m, quiet=True)
    assert split.unknown == {} and len(split.labels) == len(ds.split("test").samples)
    assert sorted(set(split.labels.tolist())) == [0, 1, 2]
    names = [c.lower() for c in m.classes]
    assert list(targets(m, ds.classes, len(ds.classes))) == [names.index(c) for c in ds.classes]
    m.save(tmp_path / "m.npz")
    assert main(["eval", "--data", str(data), "--model", str(tmp_path / "m.npz"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["samples"] == len(ds.split("test").samples), out


def test_learn_takes_an_output_index_or_a_class_name_and_nothing_else():
    """learn_one(b, "5") took int("5") as output 5 (class '6' once class '3' was removed); 2.7 learned output 2;
    "five" gave a bare ValueError; prediction=99 was scored as a wrong prediction."""
    m = net(("cup", "plate", "5", "6"))
    m.remove_class("plate")  # outputs: cup, 5, 6
    before = m.predict_one(batch(1)).scores
    m.learn_one(batch(1), "5")  # the class named 5: output 1, not output 5
    assert np.argmax(m.predict_one(batch(1)).scores - before) == 1
    m.learn_one(batch(2), "CUP")  # a name regardless of case, as feedback takes it
    m.learn_one(batch(2), np.int64(2))
    for label, says in (("five", "label: the model has no class 'five'"), (2.7, "must be an output index"),
                        (True, "must be an output index"), (3, "label 3 outside the network's classes 0..2")):
        with pytest.raises(InputError, match=says):
            m.learn_one(batch(3), label)
    with pytest.raises(InputError, match="prediction 99 outside"):
        m.learn_one(batch(3), 0, prediction=99)


@pytest.mark.parametrize("bias", [float("nan"), float("inf"), 1e30, "abc"])
def test_add_class_refuses_a_bias_that_would_break_the_network_and_changes_nothing(bias):
    m = net()
    scores = m.predict_one(batch(1)).scores
    with pytest.raises(ConfigError, match="bias must be a"):
        m.add_class("mug", bias=bias)
    assert m.classes == ["cup", "plate", "3"] and m.out_weight.shape[1] == 3
    assert np.array_equal(m.predict_one(batch(1)).scores, scores)  # it still predicts (nan made every call fail)


def test_the_api_refuses_events_it_would_misread_in_one_line():
    """x=-1 became 65535 and x=65538 became 2; a polarity of 7 passed and failed deep in the network as an input
    index out of range; predict_one(array) raised AttributeError."""
    with pytest.raises(InputError, match="x coordinates run -1..4"):
        make_events([1, 2], [-1, 4], [0, 0], [1, 0])
    with pytest.raises(InputError, match="y coordinates run 0..65538"):
        make_events([1, 2], [0, 0], [0, 65538], [1, 0])
    ev = make_events([1, 2, 3], [0, 1, 2], [0, 1, 2], [1, -1, 5])  # +1/-1 and any value above 0: ON
    assert ev["p"].tolist() == [1, 0, 1]
    ev["p"][0] = 7  # written into the array afterwards
    with pytest.raises(InputError, match="polarity holds 7"):
        EventBatch(ev, 34, 34)
    with pytest.raises(InputError, match="the network reads an EventBatch"):
        net().predict_one(make_events([1], [0], [0], [1]))


def test_constructor_arguments_that_disagree_or_are_not_numbers_are_refused():
    with pytest.raises(ConfigError, match="sizes end in 3 classes but classes gives 4"):
        SpikingNetwork((2312, 8, 3), classes=["a", "b", "c", "d"])  # built 4 outputs without a word
    assert SpikingNetwork((2312, 8, 3), classes=["a", "b", "c"]).classes == ["a", "b", "c"]
    for kw in (dict(lr="fast"), dict(lr_out="x")):  # a TypeError from deep inside
        with pytest.raises(ConfigError, match="must be a number"):
            SpikingNetwork((2312, 8, 3), **kw)
