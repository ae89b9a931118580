"""Feedback is judged by class identity: a model whose classes are ordered differently from the replayed
dataset's (trained on another layout, or classes added live) accepts right labels and refuses wrong ones."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import need

from streamsnn.events import EventBatch, make_events
from streamsnn.io import open_dataset
from streamsnn.mqtt.schema import classification_payload
from streamsnn.pipeline import Pipeline
from streamsnn.pipeline.decide import true_class, true_output
from streamsnn.pipeline.feedback import Feedback, Recent, Refused, TokenBucket, judge
from streamsnn.pipeline.segment import Window
from streamsnn.pipeline.stages import DecisionInfo
from streamsnn.sinks.console import ConsoleSink
from streamsnn.sinks.jsonl import record
from streamsnn.snn import SpikingNetwork
from streamsnn.snn.network import Decision
from streamsnn.web.view import LiveView


@pytest.fixture(scope="module")
def cards():
    data = open_dataset(need("poker_dvs_inverted"))
    return data, [s.load() for s in data.split("test").samples[:6]]


def pipeline(net, samples, **kw) -> Pipeline:
    pipe = Pipeline(None, net, [], feedback_per_s=0, **kw)
    for s in samples:
        pipe.recent.add(Window(s, s.t_start, s.t_end, s.sample, s.label))
    return pipe


def reordered_net(data, samples) -> SpikingNetwork:
    classes = list(reversed(data.classes))  # e.g. trained on another layout: spade, diamond, club
    assert classes != list(data.classes)
    return SpikingNetwork((samples[0].width * samples[0].height * 2, 16, len(classes)), classes=classes, seed=1,
                          input_shape=(samples[0].width, samples[0].height, 2))


async def test_right_labels_by_name_are_learned_when_the_orders_differ(cards):
    data, samples = cards
    pipe = pipeline(reordered_net(data, samples), samples)
    for s in samples:
        assert await pipe.apply_feedback({"sample": s.sample, "label": s.meta["label_name"]}) is True
    assert pipe.counters.feedback["learned"] == len(samples)
    assert pipe.counters.feedback["contradicts_label"] == 0
    pipe._worker.shutdown()


async def test_right_labels_by_model_index_are_learned_and_dataset_indices_are_not(cards):
    data, samples = cards
    net = reordered_net(data, samples)
    pipe = pipeline(net, samples)
    # the dataset's label index means another class in the model's order: that is a wrong label
    mixed = [s for s in samples if net.classes[s.label] != s.meta["label_name"]]
    assert mixed, "the test needs samples whose dataset index names another class in the model"
    for s in mixed:
        assert await pipe.apply_feedback({"sample": s.sample, "label": int(s.label)}) is False
    assert pipe.counters.feedback["contradicts_label"] == len(mixed)
    assert pipe.counters.feedback["learned"] == 0
    for s in mixed:  # the model's own index of the right class
        right = list(net.classes).index(s.meta["label_name"])
        assert await pipe.apply_feedback({"sample": s.sample, "label": right}) is True
    assert pipe.counters.feedback["learned"] == len(mixed)
    pipe._worker.shutdown()


async def test_a_class_the_model_lacks_is_added_only_under_its_own_name(cards):
    data, samples = cards
    lacking = [c for c in data.classes if c != samples[0].meta["label_name"]]
    net = SpikingNetwork((samples[0].width * samples[0].height * 2, 16, len(lacking)), classes=lacking, seed=1,
                         input_shape=(samples[0].width, samples[0].height, 2))
    pipe = pipeline(net, samples[:1], new_classes=True, max_classes=8)
    s = samples[0]
    other = lacking[0]
    assert await pipe.apply_feedback({"sample": s.sample, "label": other}) is False
    assert await pipe.apply_feedback({"sample": s.sample, "label": "not-" + s.meta["label_name"]}) is False
    assert pipe.counters.feedback["contradicts_label"] == 2 and net.n_classes == len(lacking)
    assert await pipe.apply_feedback({"sample": s.sample, "label": s.meta["label_name"]}) is True
    assert list(net.classes)[-1] == s.meta["label_name"]
    pipe._worker.shutdown()


def test_true_class_is_the_name_in_the_models_space(cards):
    data, samples = cards
    s = samples[0]
    w = Window(s, s.t_start, s.t_end, s.sample, s.label)
    assert true_class(list(reversed(data.classes)), w) == s.meta["label_name"]
    assert true_class(["0", "1", "2"], w) == str(s.label)  # a numbered model: the label is its index
    assert true_class(["a", "b"], Window(s, s.t_start, s.t_end, s.sample, None)) is None


async def test_outputs_give_the_true_class_in_the_models_order():
    """MQTT, JSONL, the console and the live view score a decision against the true class by identity:
    `true_label` is the model's output index of the dataset's class, never the dataset's own index."""
    ev = make_events(np.array([0, 9]), np.array([1, 2]), np.array([3, 4]), np.array([1, 0]))
    batch = EventBatch(ev, 34, 34, sample="s", label=0, meta={"label_name": "club"})  # dataset: club is 0
    w = Window(batch, 0, 10, sample="s", label=0)
    info = DecisionInfo(1.0, 1.0, "v", ("spade", "diamond", "club"))  # the model: club is 2
    right = Decision(label=2, scores=np.array([0.0, 0.0, 1.0]), confidence=0.9, events=2, spikes=(1,))
    wrong = Decision(label=0, scores=np.array([1.0, 0.0, 0.0]), confidence=0.9, events=2, spikes=(1,))
    for payload in (classification_payload(w, right, info, node_id="n"), record(w, right, info)):
        assert (payload["label"], payload["true_label"], payload["true_label_name"]) == (2, 2, "club")
    assert "(true club ok)" in ConsoleSink.decision_line(w, right, info)
    assert "(true club MISS)" in ConsoleSink.decision_line(w, wrong, info)
    live = LiveView()
    live.publish_decision(w, right, info)
    assert (live.last_decision["true_label"], live.last_decision["true_label_name"]) == (2, "club")
    lacking = DecisionInfo(1.0, 1.0, "v", ("spade", "diamond"))  # a model without the true class
    p = classification_payload(w, wrong, lacking, node_id="n")
    assert p["true_label"] is None and p["true_label_name"] == "club"


def test_the_true_class_is_matched_regardless_of_case(cards):
    """A dataset folder `CLUB` and a model class `club` are one class (class names match regardless of case)."""
    _, samples = cards
    s = samples[0]
    batch = s.with_meta(meta={**s.meta, "label_name": s.meta["label_name"].upper()})
    w = Window(batch, s.t_start, s.t_end, s.sample, s.label)
    classes = ("spade", "diamond", "club", "heart")
    right = classes.index(s.meta["label_name"])
    assert true_class(classes, w) == s.meta["label_name"]
    assert true_output(type("Net", (), {"classes": classes})(), w) == right
    recent = Recent(8)
    recent.add(w)
    assert judge(Feedback(s.meta["label_name"], sample=s.sample), recent, classes, TokenBucket(0, 1))[1] == right
    with pytest.raises(Refused, match="whose true label is .club.") as exc:
        judge(Feedback((right + 1) % 4, sample=s.sample), recent, classes, TokenBucket(0, 1))
    assert exc.value.reason == "contradicts_label"


async def test_the_done_line_gives_the_progressive_accuracy_over_the_decisions_it_scored():
    """It said "over 300 samples" (every window seen) for an accuracy over the 1 decision learned from feedback."""
    import io

    out = io.StringIO()
    sink = ConsoleSink(decisions=False, stream=out, bar=False)
    sink.publish_metrics({"decisions": 300, "events": 1000, "accuracy": None, "progressive_accuracy": 1.0,
                          "progressive_scored": 1, "samples_seen": 300, "drops": 0,
                          "feedback": {"learned": 1, "ignored": 0}})
    await sink.close()
    assert "progressive accuracy 100.0% over 1 samples" in out.getvalue()
