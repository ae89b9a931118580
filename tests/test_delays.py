"""Synaptic delays on the input (snn/delays.py, InputMap.delays): the copies, checkpoints, order, the stream path."""

from __future__ import annotations

import numpy as np
import pytest

from streamsnn.errors import ConfigError, InputError
from streamsnn.events import EventBatch, make_events
from streamsnn.learn import datadefaults as dd
from streamsnn.learn.streameval import stream_evaluate
from streamsnn.snn import SpikingNetwork
from streamsnn.snn.arch import InputMap
from streamsnn.snn.delays import DelayLine, delayed

D = 1000
IMAP = InputMap((4, 4), None, (4, 4, 1), 3, D)


def random_events(rng, n: int, n_in: int = 16, span: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(0, n_in, n).astype(np.int32), np.sort(rng.integers(0, span, n)).astype(np.int64)


def reference(idx, t, n_in, copies, delay_us, now):
    """Slow and obvious: for each copy k, the events (unit + k * n_in, time + k * delay_us) due by `now`."""
    out = []
    for k in range(copies):
        out += [(int(i) + k * n_in, int(s) + k * delay_us) for i, s in zip(idx, t) if int(s) + k * delay_us <= now]
    return out


def test_each_copy_receives_exactly_the_events_shifted_by_k_delays():
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx, t = random_events(rng, int(rng.integers(1, 200)))
        line = DelayLine(16, 3, D)
        ii, tt = line.take(idx, t)
        assert np.all(np.diff(tt) >= 0)  # fed in time order
        assert sorted(zip(ii.tolist(), tt.tolist())) == sorted(reference(idx, t, 16, 3, D, int(t[-1])))
        for k in range(3):  # and each copy in the events' own order
            mine = (ii >= 16 * k) & (ii < 16 * (k + 1))
            due = t + k * D <= t[-1]
            np.testing.assert_array_equal(ii[mine] - 16 * k, idx[due])
            np.testing.assert_array_equal(tt[mine], t[due] + k * D)
        # what is not due waits: every copy of every event exactly once, fed or pending
        assert len(ii) + len(line.idx) == 3 * len(idx)


def test_a_stream_in_pieces_feeds_each_event_once_per_copy():
    rng = np.random.default_rng(1)
    idx, t = random_events(rng, 600, span=20_000)
    t = np.arange(600, dtype=np.int64) * 33  # distinct times: one order whatever the cut
    line = DelayLine(16, 3, D)
    fed_i, fed_t = [], []
    for lo, hi in [(0, 50), (50, 51), (51, 300), (300, 600)]:
        a, b = line.take(idx[lo:hi], t[lo:hi])
        fed_i.append(a)
        fed_t.append(b)
    fed_i, fed_t = np.concatenate(fed_i), np.concatenate(fed_t)
    whole_i, whole_t = delayed(idx, t, 16, 3, D)
    due = whole_t <= t[-1]
    np.testing.assert_array_equal(fed_i, whole_i[due])
    np.testing.assert_array_equal(fed_t, whole_t[due])
    # a clock that goes back (a new stream) starts without the old stream's pending copies
    a, b = line.take(idx[:1], t[:1])
    assert len(a) == 1 and len(line.idx) == 2


def test_the_input_map_keeps_delays_and_older_maps_load():
    assert IMAP.units == 3 * 16 and IMAP.layer_grid == (4, 4, 3)
    assert InputMap.from_dict(IMAP.to_dict()) == IMAP
    old = {"sensor": [34, 34], "roi": [0, 0, 34, 34], "grid": [34, 34, 2]}
    assert InputMap.from_dict(old).delays == 1 and InputMap.from_dict(old).to_dict() == old
    for bad in [(0, 0), (3, 0), (1, 500), (99, 1000), ("x", 1)]:
        with pytest.raises(ConfigError, match="delays"):
            InputMap((4, 4), None, (4, 4, 1), *bad)


def order_samples(rng, n: int):
    """Two classes with the same events per input unit: units 0-7 then 8-15 (class 0), or 8-15 then 0-7."""
    out = []
    for k in range(n):
        label = k % 2
        a = rng.integers(0, 8, 60)
        b = rng.integers(8, 16, 60)
        idx = np.concatenate([a, b] if label == 0 else [b, a]).astype(np.int32)
        t = np.sort(rng.integers(0, 3000, 120)).astype(np.int64)
        out.append((idx, t, label))
    return out


def test_delays_tell_apart_orders_that_counts_cannot_and_a_small_network_learns_them():
    rng = np.random.default_rng(2)
    imap = InputMap((4, 4), None, (4, 4, 1), 2, 1500)
    train, test = order_samples(rng, 200), order_samples(rng, 40)
    plain = SpikingNetwork(arch="dense:16", input_map=InputMap((4, 4), None, (4, 4, 1)), classes=2, seed=0)
    net = SpikingNetwork(arch="dense:16", input_map=imap, classes=2, seed=0)
    # the same events per unit, played in the other order: plain counts are equal, delayed counts are not
    idx, t, _ = train[0]
    swapped = np.concatenate([idx[60:], idx[:60]])
    for m, differ in ((plain, False), (net, True)):
        counts = []
        for i in (idx, swapped):
            m.predict_indices(i, t)
            counts.append(np.bincount(m.fed[0], minlength=m.input_map.units))  # what the first layer received
        assert (not np.array_equal(*counts)) == differ
    for _ in range(3):
        for i, tt, label in train:
            net.learn_indices(i, label, tt)
    right = sum(net.predict_indices(i, tt).label == label for i, tt, label in test)
    assert right >= 0.9 * len(test)


def test_a_network_with_delays_checkpoints_and_reloads_bit_identically(tmp_path):
    rng = np.random.default_rng(3)
    for kw in ({}, {"tau_us": 2000.0, "learning": "membrane"}):
        net = SpikingNetwork(arch="conv:4:3:1:1,dense:16", input_map=IMAP, classes=3, seed=0, **kw)
        for k in range(5):
            idx, t = random_events(rng, 150)
            net.learn_indices(idx, k % 3, t)
        net.save(tmp_path / "m.npz")
        back = SpikingNetwork.load(tmp_path / "m.npz")
        assert back.input_map == IMAP and back.config() == net.config()
        for a, b in zip(net.weights, back.weights):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(net.bias, back.bias)
        idx, t = random_events(rng, 300)
        net.reset()
        np.testing.assert_array_equal(net.predict_indices(idx, t).scores, back.predict_indices(idx, t).scores)
        assert back.describe()["input"]["delays"] == 3


def test_a_network_with_delays_needs_times_and_is_not_fed_in_pieces():
    from streamsnn.pipeline.inflight import eligible
    from streamsnn.snn import propagate

    net = SpikingNetwork(arch="dense:8", input_map=IMAP, classes=2)
    with pytest.raises(InputError, match="times"):
        net.predict_indices(np.zeros(3, np.int32))
    with pytest.raises(InputError, match="pieces"):
        propagate.feed(net, np.zeros(3, np.int32))
    assert not eligible(net)


class Counting(DelayLine):
    """A DelayLine that counts the input events it was given and the copies it fed."""

    def __init__(self, line):
        self.given = self.fed = self.dropped = 0
        super().__init__(line.n_in, line.copies, line.delay_us)

    def reset(self):
        self.dropped += len(getattr(self, "idx", ()))
        super().reset()

    def take(self, idx, t):
        self.given += len(idx)
        out = super().take(idx, t)
        self.fed += len(out[0])
        return out


def stream_samples(seed: int = 4) -> list[EventBatch]:
    rng = np.random.default_rng(seed)
    samples = []
    for k in range(6):
        n = 3000
        t = np.sort(rng.integers(0, 300_000, n))
        samples.append(EventBatch(make_events(t, rng.integers(0, 4, n), rng.integers(0, 4, n), np.zeros(n)), 4, 4,
                                  sample=f"s{k}", label=k % 2))
    return samples


def delayed_leaky() -> SpikingNetwork:
    return SpikingNetwork(arch="dense:8", input_map=IMAP, classes=2, seed=0, tau_us=50_000.0, learning="membrane")


def test_the_live_stream_feeds_each_event_once_per_copy():
    """`eval --stream` (and the daemon, the same Decider): a temporal network with delays gets each stream event
    once, every copy of it once (those due by the end; the rest wait in the line), its state carried."""
    net, samples = delayed_leaky(), stream_samples()
    net.delay_line = counting = Counting(net.delay_line)
    res = stream_evaluate(net, samples, classes=["0", "1"])
    total = sum(len(s) for s in samples)
    assert res["decisions"] > 0
    assert counting.given == total
    # each event fed once per copy, but for the copies still pending when the stream ended (the state is reset)
    assert counting.fed + counting.dropped + len(counting.idx) == 3 * total
    assert counting.fed > 2.9 * total


def test_train_gives_delays_when_the_data_need_time():
    assert dd.choose_delays(600_000.0, None, None, needed=False)[:2] == (1, 0)
    copies, d, why = dd.choose_delays(600_000.0, None, None, needed=True)
    assert (copies, d) == (dd.DELAY_COPIES, 200_000) and "need time" in why
    assert dd.choose_delays(600_000.0, 1, None, needed=True)[:2] == (1, 0)
    assert dd.choose_delays(600_000.0, 4, 50.0, needed=False)[:2] == (4, 50_000)


def test_train_picks_delays_and_a_short_leak_when_the_probe_says_time(capsys):
    """`train` without --learning on data whose classes differ only by order: membrane, 3 delayed copies a third
    of the median sample apart, a leak of a quarter of the delay, said in its first lines."""
    from argparse import Namespace

    from streamsnn.commands.train import pick_learning
    from streamsnn.learn.training import SampleArrays

    rng = np.random.default_rng(5)
    samples = order_samples(rng, 160)
    data = SampleArrays([s[0] for s in samples], [s[1] * 100 for s in samples],
                        np.array([s[2] for s in samples]), [str(k) for k in range(160)])
    net = SpikingNetwork(arch="dense:8", input_map=InputMap((4, 4), None, (4, 4, 1)), classes=2)
    args = Namespace(learning=None, tau_ms=None, delays=None, delay_ms=None, stream_crops=False, lr=None,
                     lr_out=None, data=["x"])
    picked, said = {"why": {"stream_crops": "--no-stream-crops"}}, []
    got = pick_learning(args, net, {"epochs": 4}, data, picked, said.append)
    median = float(np.median([t[-1] - t[0] for t in data.t]))
    assert got.learning == "membrane" and got.input_map.delays == dd.DELAY_COPIES
    assert abs(got.input_map.delay_us - median / 3) <= 500
    assert got.tau_us == round(got.input_map.delay_us / 4, -3)
    assert "3 delayed copies" in said[0] and picked["input"]["delays"] == 3
    args.learning, picked = "counts", {"why": {"stream_crops": "--no-stream-crops"}}
    plain = pick_learning(args, net, {"epochs": 4}, data, picked, said.append)  # a rule given: no delays unless asked
    assert plain.input_map.delays == 1 and plain.tau_us is None
    assert "--learning counts, no probe of the data; --delays 3 adds them" in said[-1]  # not "do not need time"
    # --learning membrane, the rule the probe picks: the same delays and leak as without it (it had none and said
    # "the data do not need time" without looking)
    args.learning, picked, said = "membrane", {"why": {"stream_crops": "--no-stream-crops"}}, []
    given = pick_learning(args, net, {"epochs": 4}, data, picked, said.append)
    assert (given.input_map, given.tau_us) == (got.input_map, got.tau_us) and "time_probe" in picked
    assert "learning membrane (--learning)" in said[0] and "the data need time" in said[0]
    # --tau-ms 0 (no leak) on such data: counts, which needs none, with the delays (it picked membrane, then refused it)
    args.learning, args.tau_ms, picked, said = None, 0.0, {"why": {"stream_crops": "--no-stream-crops"}}, []
    still = pick_learning(args, net, {"epochs": 4}, data, picked, said.append)
    assert still.learning == "counts" and still.tau_us is None and still.input_map.delays == dd.DELAY_COPIES
    assert "--tau-ms 0 leaves membrane no leak" in said[0]


def test_info_shows_the_delays(tmp_path, capsys):
    from streamsnn.cli import main

    SpikingNetwork(arch="dense:8", input_map=IMAP, classes=2).save(tmp_path / "m.npz")
    assert main(["info", str(tmp_path / "m.npz")]) == 0
    assert "3 delayed copies 1 ms apart" in capsys.readouterr().out


async def test_the_daemons_pipeline_decides_as_eval_stream_with_delays():
    """The daemon's Pipeline runs a temporal network with delays on the continuous stream: each event once, every
    copy fed once, and the very decisions of `eval --stream`."""
    from daemon_util import QuietSink

    from streamsnn.learn.streameval import LIVE_HOP_US, LIVE_MIN_EVENTS, LIVE_WINDOW_US, make_stream
    from streamsnn.pipeline import Pipeline
    from streamsnn.pipeline.segment import Segmenter

    samples = stream_samples()
    stream = make_stream(samples)

    class Got(QuietSink):
        def __init__(self):
            self.rows = []

        def publish_decision(self, w, d, info):
            self.rows.append((w.t_start_us, d.label))

    async def source():
        for b in stream.batches:
            yield b

    net, sink = delayed_leaky(), Got()
    net.delay_line = counting = Counting(net.delay_line)
    await Pipeline(source(), net, [sink], segmenter=Segmenter("window", LIVE_WINDOW_US, LIVE_HOP_US,
                                                              LIVE_MIN_EVENTS)).run()
    assert counting.given == stream.events and counting.fed + counting.dropped + len(counting.idx) == 3 * stream.events
    res = stream_evaluate(delayed_leaky(), samples, keep_decisions=True)
    assert len(sink.rows) > 20 and sink.rows == [(d["t_start_us"], d["label"]) for d in res["decision_list"]]
