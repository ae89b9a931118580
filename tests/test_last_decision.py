"""`last_decision_accuracy` of stream evaluation: each sample's last decision (the last window ending inside
it, t_end in [start, end)) scored against its label, on hand-made streams where the figure is known exactly,
and in `eval --stream` (JSON and text)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import need

from streamsnn.cli import main
from streamsnn.events import EVENT_DTYPE, EventBatch
from streamsnn.learn.streameval import Stream, last_decisions, report_lines, score, stream_evaluate
from streamsnn.pipeline.segment import Window
from streamsnn.pipeline.stages import Classifier
from streamsnn.snn import Decision


def _pairs(rows):
    return [(Window(None, a * 1000, b * 1000), Decision(label, np.zeros(3, np.float32), 1.0, 10))
            for a, b, label in rows]


def test_last_decision_boundaries_on_a_hand_made_stream():
    # samples a [0, 100) one, b [100, 250) two, c [300, 400) one, d [400, 500) zero (ms)
    st = Stream([], np.array([0, 100, 300, 400]) * 1000, np.array([100, 250, 400, 500]) * 1000,
                np.array([1, 2, 1, 0]), ["a", "b", "c", "d"])
    pairs = _pairs([(0, 60, 1),      # a's last: right
                    (30, 100, 0),    # ends at b's start: b's, not a's
                    (60, 160, 2),    # b's last: right
                    (150, 250, 1),   # ends at b's end: in the gap, nobody's
                    (240, 300, 0),   # ends at c's start: c's last, wrong
                    (500, 560, 0)])  # ends after d: d has no decision ending inside it
    np.testing.assert_array_equal(last_decisions(st.starts, st.ends, np.array([w.t_end_us for w, _ in pairs])),
                                  [0, 2, 4, -1])
    r = score(st, pairs, np.array([0, 1, 2]), ["zero", "one", "two"], ["0", "1", "2"])
    assert r["last_decision_accuracy"] == 0.5 and r["samples_without_decision"] == 1
    assert r["last_decision_per_class"] == {
        "zero": {"last_decision_accuracy": 0.0, "samples": 1, "samples_without_decision": 1},
        "one": {"last_decision_accuracy": 0.5, "samples": 2, "samples_without_decision": 0},
        "two": {"last_decision_accuracy": 1.0, "samples": 1, "samples_without_decision": 0},
    }


def test_the_last_of_decisions_ending_at_the_same_time_and_none_at_all():
    starts, ends = np.array([0, 100]), np.array([100, 200])
    np.testing.assert_array_equal(last_decisions(starts, ends, np.array([50, 90, 90, 150])), [2, 3])
    np.testing.assert_array_equal(last_decisions(starts, ends, np.array([], np.int64)), [-1, -1])
    st = Stream([], starts, ends, np.array([0, 1]), ["a", "b"])
    r = score(st, [], np.array([0, 1]), ["zero", "one"], ["0", "1"])
    assert r["last_decision_accuracy"] == 0.0 and r["samples_without_decision"] == 2


class ByTime:
    """A Classifier whose decision depends only on the time of the window's last event."""

    classes = ["0", "1", "2"]
    tau_us = None
    samples_seen = events_seen = updates = 0
    model_version = "fake.0"
    progressive_accuracy = None
    sizes = (1, 3)
    n_classes = 3
    SCHEDULE = {149_000: 0, 349_000: 0, 549_000: 2, 599_000: 0}  # last event of a window -> label; else 1

    def predict_one(self, batch):
        label = self.SCHEDULE.get(int(batch.t_end), 1)
        return Decision(label, np.eye(3, dtype=np.float32)[label], 1.0, len(batch))

    def learn_one(self, batch, label, *, prediction=None, lr_scale=1.0):
        raise AssertionError("a stream has no labels: nothing is learned")

    def add_class(self, name, *, bias=None, lr_boost=1.0):
        raise AssertionError

    def save(self, path):
        raise AssertionError

    def reset(self):
        pass

    def warm_up(self):
        pass


def test_stream_evaluate_scores_the_last_window_ending_inside_each_sample():
    # three samples of classes 0, 1, 2, an event every ms for 200 ms each; with a 999 us gap they start at
    # 0, 200 and 400 ms and end 1 us after their last event (199.001, 399.001, 599.001 ms)
    samples = []
    for label in range(3):
        ev = np.zeros(200, EVENT_DTYPE)
        ev["t"] = np.arange(200) * 1000
        samples.append(EventBatch(ev, 34, 34, sample=f"s{label}", label=label))
    net = ByTime()
    assert isinstance(net, Classifier)
    r = stream_evaluate(net, samples, window_us=100_000, hop_us=50_000, min_events=1, smooth_us=0, gap_us=999,
                        keep_decisions=True)
    ends = [d["t_end_us"] for d in r["decision_list"]]
    assert ends == list(range(100_000, 600_001, 50_000))  # the last one, at 600 ms, ends after sample 2
    # last decisions: s0 the window ending at 150 ms (last event 149 ms: 0, right), s1 at 350 ms (0, wrong),
    # s2 at 550 ms (2, right); the one ending at 600 ms (0, wrong) is outside s2
    assert r["last_decision_accuracy"] == pytest.approx(2 / 3) and r["samples_without_decision"] == 0
    assert {c: v["last_decision_accuracy"] for c, v in r["last_decision_per_class"].items()} == \
        {"0": 1.0, "1": 0.0, "2": 1.0}
    text = "\n".join(report_lines(r))
    assert "last decision of each sample right: 0.6667 of 3 samples (0 without" in text
    # the confusion matrix names every class whole (it cut them to 4 characters: swip, swip, circ)
    names = ["swipe_left", "swipe_right", "circle"]
    lines = report_lines({**r, "classes": names, "predicted_classes": names})
    table = lines[lines.index("confusion (rows true, columns predicted):") + 1:]
    assert table[0].split() == names and [row.split()[0] for row in table[1:]] == names
    assert [list(map(int, row.split()[1:])) for row in table[1:]] == r["confusion"]
    assert len({len(row) for row in table}) == 1  # columns line up


def test_cli_stream_json_and_text_report_the_last_decision(capsys, tmp_path):
    data = need("nmnist_small")
    model = tmp_path / "tiny.npz"
    assert main(["train", "--data", str(data), "--epochs", "1", "--hidden", "32", "--limit", "100",
                 "--out", str(model), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["eval", "--data", str(data), "--model", str(model), "--stream", "--limit", "30", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert 0.0 <= r["last_decision_accuracy"] <= 1.0 and r["samples"] == 30
    assert 0 <= r["samples_without_decision"] <= 30 and r["continuous"] is False
    assert set(r["last_decision_per_class"]) == set(r["per_class"])
    assert main(["eval", "--data", str(data), "--model", str(model), "--stream", "--limit", "30", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"last decision of each sample right: {r['last_decision_accuracy']:.4f} of 30 samples" in out
