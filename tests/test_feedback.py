"""Feedback cannot poison the model: each decision is taught once, never against its known true label,
and at a bounded rate; checked on the real network with real N-MNIST samples."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import need

from streamsnn.io import open_dataset
from streamsnn.pipeline import Pipeline
from streamsnn.pipeline.feedback import FEEDBACK_LR_SCALE, Feedback, Message, Refused, TokenBucket, parse, resolve_label
from streamsnn.pipeline.segment import Window
from streamsnn.snn import SpikingNetwork


class Clock:
    """Simulated time for the rate limit (seconds)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def samples():
    return [s.load() for s in open_dataset(need("nmnist_small")).split("test").samples[:12]]


def pipeline(samples, *, labelled: bool, learned: bool = False, **kw) -> Pipeline:
    """A pipeline whose recent decisions are the given samples (with or without their true labels)."""
    pipe = Pipeline(None, deep_net(), [], **kw)
    for s in samples:
        pipe.recent.add(Window(s, s.t_start, s.t_end, s.sample, s.label if labelled else None, learned=learned))
    return pipe


def deep_net() -> SpikingNetwork:
    """A small network of the default's shape (a convolution, a dense layer, the output), so that "the model
    did not change" is checked on every layer, not only on a one-hidden-layer network."""
    return SpikingNetwork(arch="conv:4:5:2:2,dense:32", classes=10, seed=5)


def weights(net) -> list[np.ndarray]:
    """Every parameter of the network: each hidden layer's weights, the output weights and biases."""
    return [w.copy() for w in net.weights] + [net.bias.copy()]


def unchanged(before, net) -> bool:
    return all(np.array_equal(a, b) for a, b in zip(before, weights(net)))


async def test_a_decision_is_taught_once_later_labels_are_counted(samples):
    pipe = pipeline(samples[:2], labelled=False)
    s = samples[0]
    assert await pipe.apply_feedback({"sample": s.sample, "label": 3}) is True
    before = weights(pipe.net)
    for label in (3, 4, 5, 3):  # a retrying publisher, or an attacker flipping the label
        assert await pipe.apply_feedback({"sample": s.sample, "label": label}) is False
    assert await pipe.apply_feedback({"t_end_us": s.t_end, "label": 6}) is False  # the same decision by its end
    assert unchanged(before, pipe.net)
    assert pipe.counters.feedback["learned"] == 1 and pipe.counters.feedback["duplicate"] == 5
    assert await pipe.apply_feedback({"sample": samples[1].sample, "label": 1}) is True  # another decision
    pipe._worker.shutdown()


async def test_feedback_contradicting_a_known_true_label_is_refused(samples):
    pipe = pipeline(samples[:1], labelled=True)
    s = samples[0]
    before = weights(pipe.net)
    wrong = (s.label + 1) % 10
    assert await pipe.apply_feedback({"sample": s.sample, "label": wrong}) is False
    assert unchanged(before, pipe.net) and pipe.counters.feedback["contradicts_label"] == 1
    assert await pipe.apply_feedback({"sample": s.sample, "label": s.label}) is True  # agreeing: learned once
    assert pipe.net.updates == 1
    pipe._worker.shutdown()


async def test_a_window_learned_from_its_label_takes_no_feedback(samples):
    pipe = pipeline(samples[:1], labelled=True, learned=True)  # learn_from_labels did it already
    before = weights(pipe.net)
    assert await pipe.apply_feedback({"sample": samples[0].sample, "label": samples[0].label}) is False
    assert unchanged(before, pipe.net) and pipe.counters.feedback["duplicate"] == 1
    pipe._worker.shutdown()


async def test_learning_from_feedback_is_rate_limited(samples):
    clock = Clock()
    pipe = pipeline(samples, labelled=False, feedback_per_s=2.0, feedback_burst=3, clock=clock)
    results = [await pipe.apply_feedback({"sample": s.sample, "label": 0}) for s in samples[:6]]
    assert results == [True] * 3 + [False] * 3  # a burst of 3, then nothing at the same instant
    assert pipe.counters.feedback["rate_limited"] == 3 and pipe.net.updates == 3
    clock.now = 1.0  # one second later: two more tokens
    results = [await pipe.apply_feedback({"sample": s.sample, "label": 0}) for s in samples[3:9]]
    assert results == [True, True, False, False, False, False]
    # a rate-limited message did not use up its decision: it can still be taught later
    clock.now = 100.0
    assert await pipe.apply_feedback({"sample": samples[5].sample, "label": 0}) is True
    assert pipe.net.updates == 6
    pipe._worker.shutdown()


def test_token_bucket():
    clock = Clock()
    b = TokenBucket(rate=10.0, burst=5, clock=clock)
    assert [b.take() for _ in range(7)] == [True] * 5 + [False] * 2
    clock.now = 0.25  # 2.5 tokens
    assert [b.take() for _ in range(3)] == [True, True, False]
    clock.now = 100.0  # never more than the burst
    assert sum(b.take() for _ in range(10)) == 5
    assert all(TokenBucket(0, 1, clock=clock).take() for _ in range(1000))  # rate 0: no limit


def test_the_recent_decisions_hold_a_bounded_number_of_events(samples):
    from streamsnn.pipeline.feedback import Recent

    r = Recent(128, max_events=3 * max(len(s) for s in samples))
    for s in samples:  # twelve real samples: only the last few fit the event budget
        r.add(Window(s, s.t_start, s.t_end, s.sample))
        assert r.events <= r.max_events and r.events == sum(w.events for w in r._items.values())
    assert 2 <= len(r) <= 3 and r.find(sample=samples[-1].sample) is not None
    assert r.find(sample=samples[0].sample) is None
    huge = Recent(128, max_events=10)  # a window above the budget alone is still kept (the newest)
    huge.add(Window(samples[0], samples[0].t_start, samples[0].t_end, samples[0].sample))
    assert len(huge) == 1


BAD_FEEDBACK = [
    (b"{not json", "bad_json"),
    (b"\xff\xfe", "bad_json"),
    (b"[1, 2]", "not_object"),
    (b'{"sample": "1", "label": true}', "wrong_type"),
    (b'{"sample": "1", "label": 2.5}', "wrong_type"),
    (b'{"sample": "1", "label": ""}', "bad_class_name"),  # a name, but not one a class may have
    (b'{"sample": "1", "label": "' + b"x" * 201 + b'"}', "bad_class_name"),
    (b'{"sample": "1", "label": "' + b"x" * 300 + b'"}', "bad_class_name"),
    (b'{"sample": [1], "label": 3}', "wrong_type"),
    (b'{"t_end_us": 1.5, "label": 3}', "wrong_type"),
    (b'{"sample": "1"}', "missing_label"),
    (b'{"label": 3}', "missing_target"),
    (b'{"sample": "1", "t_end_us": 5, "label": 3}', "missing_target"),
    (b'{"sample": "1", "label": 3, "weights": [1]}', "unknown_keys"),
    (b'{"sample": "' + b"9" * 5000 + b'", "label": 3}', "oversized"),
    (b"[" * 1500, "bad_json"),  # nested deeper than the JSON parser recurses: not a RecursionError
    (b'{"sample": ' + b"[" * 2000 + b"]" * 2000 + b', "label": 3}', "bad_json"),
]


@pytest.mark.parametrize("raw,reason", BAD_FEEDBACK)
def test_parse_refuses_bad_messages_by_reason(raw, reason):
    with pytest.raises(Refused) as err:
        parse(raw)
    assert err.value.reason == reason and "\n" not in str(err.value)


def test_parse_accepts_an_index_or_a_name_and_refuses_retained():
    assert parse(b'{"sample": 60001, "label": 9}') == Feedback(label=9, sample="60001")
    assert parse('{"t_end_us": 123456, "label": "club"}') == Feedback(label="club", t_end_us=123456)
    assert parse({"sample": "a", "label": 1}) == Feedback(label=1, sample="a")
    assert parse(Message(b'{"sample": "a", "label": 1}')) == Feedback(label=1, sample="a")
    with pytest.raises(Refused, match="retain") as err:
        parse(Message(b'{"sample": "a", "label": 1}', retained=True))
    assert err.value.reason == "retained"


def test_labels_resolve_by_index_or_class_name():
    classes = ("club", "diamond", "heart", "spade")
    assert resolve_label(2, classes) == 2 and resolve_label("spade", classes) == 3
    for label, reason in ((4, "label_out_of_range"), (-1, "label_out_of_range"), ("joker", "unknown_class"),
                          ("2", "unknown_class")):
        with pytest.raises(Refused) as err:
            resolve_label(label, classes)
        assert err.value.reason == reason
    assert resolve_label("7", tuple(str(k) for k in range(10))) == 7  # N-MNIST's classes are named by digit


async def test_feedback_by_class_name_teaches_that_class_and_every_message_is_counted_once(samples):
    pipe = pipeline(samples[:3], labelled=False)
    names = [str(k) for k in range(10)]
    pipe.net.classes = names  # as a network with class names has them
    try:
        messages = [Message(b"{not json"), Message(b'{"sample": "x", "label": "3"}', retained=True),
                    {"sample": samples[0].sample, "label": "ten"}, {"sample": samples[0].sample, "label": 12},
                    {"sample": "no-such", "label": "3"}]
        for m in messages:
            assert await pipe.apply_feedback(m) is False
        before = weights(pipe.net)
        assert await pipe.apply_feedback({"sample": samples[0].sample, "label": "3"}) is True
        ref = deep_net()
        ref.learn_one(samples[0], 3, lr_scale=FEEDBACK_LR_SCALE)  # the name "3" taught class 3, as the index would
        for a, b in zip(weights(ref), weights(pipe.net)):
            np.testing.assert_array_equal(a, b)
        assert not unchanged(before, pipe.net)
    finally:
        pipe._worker.shutdown()
    c = pipe.counters.feedback
    reasons = {k: v for k, v in c.items() if k not in ("received", "learned", "ignored", "disabled") and v}
    assert reasons == {"bad_json": 1, "retained": 1, "unknown_class": 1, "label_out_of_range": 1,
                       "unknown_sample": 1}
    assert c["received"] == 6 == c["learned"] + c["ignored"] and sum(reasons.values()) == c["ignored"]


async def test_feedback_whose_update_the_guard_undoes_is_refused_counted_and_the_daemon_goes_on(samples):
    """Before: the guard's NonFinite went out of `apply_feedback` to the caller (bench_incremental ended on it;
    the daemon's loop counted it as an unexpected `error`). Now it is a refusal saying why, the model as it was."""
    pipe = pipeline(samples[:3], labelled=False)
    pipe.net.lr, pipe.net.lr_out = 1e38, 1e38  # as if a rate had slipped through: the step overflows float32
    before = weights(pipe.net)
    out = await pipe.teacher.teach({"sample": samples[0].sample, "label": 3})
    assert not out.learned and out.reason == "undone" and "undone" in out.detail and "halved" in out.detail
    assert unchanged(before, pipe.net) and pipe.net.lr_backoff == 0.5 and pipe.net.nonfinite == 1
    c = pipe.counters.feedback
    assert c["undone"] == 1 and c["ignored"] == 1 and c["learned"] == 0 and c.get("error", 0) == 0
    assert await pipe.apply_feedback({"sample": samples[1].sample, "label": 4}) is False  # still refused, counted
    assert c["undone"] == 2 and pipe.net.lr_backoff == 0.25
    pipe.net.lr, pipe.net.lr_out = 0.01, 0.01
    assert await pipe.apply_feedback({"sample": samples[2].sample, "label": 5}) is True  # and it goes on learning
    assert c["learned"] == 1 and not unchanged(before, pipe.net)
    pipe._worker.shutdown()
