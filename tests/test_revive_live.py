"""A network that fails while it learns in the daemon is revived from its last healthy weights (issue 19 item 2).

Before: the live demo's fresh network (`streamsnn run pipelines/demo.toml`, seeds 7 and 1) learned every window,
reached 87 % after 7,000 updates, then its activity ran away: the guard refused update after update (seed 7) or the
network fell silent and decided 40,000 windows by its bias alone (seed 1); nothing brought it back
(``pipeline/revive.py``)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from streamsnn.events import EventBatch, make_events
from streamsnn.pipeline import revive
from streamsnn.pipeline.decide import Decider
from streamsnn.pipeline.segment import Window
from streamsnn.snn import SpikingNetwork


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setattr(revive, "KEEP_EVERY", 20)
    monkeypatch.setattr(revive, "COLLAPSE_WINDOWS", 20)
    monkeypatch.setattr(revive, "SILENT_WINDOWS", 10)
    monkeypatch.setattr(revive, "RATE_WINDOWS", 5)
    monkeypatch.setattr("streamsnn.pipeline.decide.SILENT_WINDOWS", 10)


def net_() -> SpikingNetwork:
    return SpikingNetwork(arch="conv:4:3:2:1,dense:16", input_shape=(16, 16, 2), classes=3, seed=0)


def window(label: int | None = 1, seed: int = 1) -> Window:
    rng = np.random.default_rng(seed)
    n = 400
    ev = make_events(np.arange(n) * 100, rng.integers(0, 16, n), rng.integers(0, 16, n), rng.integers(0, 2, n))
    return Window(EventBatch(ev, 16, 16, label=label), 0, n * 100, sample=None if label is None else "s", label=label)


def weights(net) -> list[np.ndarray]:
    return [a.copy() for layer in net.hidden for a in layer.arrays().values()] + [net.out_weight.copy(),
                                                                                   net.bias.copy()]


def test_a_collapse_goes_back_to_the_healthy_copy_with_halved_rates(caplog):
    net, watch = net_(), revive.LiveWatch()
    for _ in range(revive.KEEP_EVERY):
        watch.after(net, True, (100, 10), 400)
    kept, version = weights(net), net.model_version
    net.hidden[0].weight += 0.5  # what learning did meanwhile
    with caplog.at_level(logging.WARNING, logger="streamsnn.pipeline.revive"):
        watch.after(net, False, (100, 10), 400)  # one wrong: the running accuracy (0.95) is still within the drop
        assert net.lr_backoff == 1.0
        for _ in range(20):
            watch.after(net, False, (100, 10), 400)
            if net.lr_backoff < 1.0:
                break
    assert all(np.array_equal(a, b) for a, b in zip(kept, weights(net)))  # bit for bit, every layer
    assert net.lr_backoff == 0.5 and net.revivals == 1 and net.model_version != version
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "running accuracy fell" in said[0] and "x0.5" in said[0] and "\n" not in said[0]


def test_refused_updates_and_a_silent_network_are_revived_through_the_decider():
    net, decider = net_(), Decider()
    w = window()
    for _ in range(revive.KEEP_EVERY):
        decider(net, w, learn=True)
    kept = weights(net)
    lr_out = net.lr_out
    net.lr_out = 1e38  # every update overflows: refused and undone
    for _ in range(revive.MAX_REFUSED):
        decider(net, w, learn=True)
    assert net.revivals == 1 and net.lr_backoff == 0.5 ** 6  # the guard's 2**-5 halved: never raised
    assert all(np.array_equal(a, b) for a, b in zip(kept, weights(net)))
    net.lr_out = lr_out
    for layer in net.hidden[-1:]:  # the last hidden layer can no longer fire
        layer.weight[:] = -np.abs(layer.weight)
    for _ in range(revive.SILENT_WINDOWS):
        decider(net, w, learn=True)
    assert net.revivals == 2 and net.silent_windows == 0
    assert decider(net, w, learn=True).spikes[-1] > 0  # the copy fires


def test_a_class_added_after_the_copy_is_kept_through_a_revival_and_the_copy_stays_the_healthy_one():
    """A class added by feedback does not make the watch copy the network as it is (it may be failing already): a
    revival puts back the copy's hidden layers and the output columns of the classes it had, by name, and keeps the
    new class's column as it is now."""
    net, watch = net_(), revive.LiveWatch()
    watch.before(net)
    kept = weights(net)
    net.nonfinite = 3  # refusals before the class came: still counted after it
    net.add_class("new")
    net.out_weight[:, 3] = 0.25
    net.bias[3] = 0.5
    net.hidden[0].weight += 0.5
    net.out_weight[:, :3] += 1.0
    net.nonfinite = 5
    watch.after(net, True)
    assert net.revivals == 1 and net.out_weight.shape[1] == 4 and list(net.classes)[-1] == "new"
    assert all(np.array_equal(a, b) for a, b in zip(kept[:-2], weights(net)[:-2]))  # hidden layers: the copy
    assert np.array_equal(net.out_weight[:, :3], kept[-2]) and np.array_equal(net.bias[:3], kept[-1])
    assert np.all(net.out_weight[:, 3] == 0.25) and net.bias[3] == 0.5  # the new class as it was taught


def test_a_healthy_learner_is_never_revived_and_costs_a_copy_every_keep_every():
    net, decider = net_(), Decider()
    windows = [window(label=k % 3, seed=k) for k in range(6)]
    for k in range(5 * revive.KEEP_EVERY):
        decider(net, windows[k % 6], learn=True)
    assert getattr(net, "revivals", 0) == 0 and net.lr_backoff == 1.0
    assert decider.watch.learned < revive.KEEP_EVERY and decider.watch.good is not None


def test_windows_that_do_not_learn_are_not_watched():
    net, decider = net_(), Decider()
    for _ in range(3 * revive.KEEP_EVERY):
        decider(net, window(), learn=False)
        decider(net, window(label=None), learn=True)
    assert decider.watch.good is None and decider.watch.scored == 0


def test_a_layer_whose_activity_climbs_is_revived_before_its_weights_overflow(monkeypatch, caplog):
    """The demo's run-aways: the second convolution's spikes per input event climbed from about 1 to 3.6 a thousand
    updates before the weights overflowed. A copy is only taken while every layer fires near its lowest rate at a
    copy, and a layer at RUNAWAY_RATE times that rate makes a revival."""
    monkeypatch.setattr(revive, "RATE_WINDOWS", 5)
    net, watch = net_(), revive.LiveWatch()
    for _ in range(2 * revive.KEEP_EVERY):
        watch.after(net, True, (2000, 400), 400)  # settled: 5 and 1 spikes per input event
    assert watch.low == [5.0, 1.0]
    kept = weights(net)
    net.hidden[1].weight += 0.5
    rate = 1.0
    with caplog.at_level(logging.WARNING, logger="streamsnn.pipeline.revive"):
        while getattr(net, "revivals", 0) == 0 and rate < 10:
            rate *= 1.05
            watch.after(net, True, (2000, int(400 * rate)), 400)
    assert net.revivals == 1 and rate <= revive.RUNAWAY_RATE * 1.3
    assert all(np.array_equal(a, b) for a, b in zip(kept, weights(net)))  # no copy was taken during the climb
    said = caplog.records[0].getMessage()
    assert "hidden layer 2 fires" in said and "more than 3 times the 1 it fired" in said


async def test_the_runs_last_line_says_what_went_wrong_with_the_learning():
    import io

    from streamsnn.sinks.console import ConsoleSink

    def last_line(**m) -> str:
        out = io.StringIO()
        sink = ConsoleSink(stream=out, bar=False)
        sink.last_metrics = {"decisions": 10, "events": 1000, **m}
        return out, sink

    out, sink = last_line()
    await sink.close()
    assert out.getvalue().rstrip().endswith("ignored 0")  # nothing went wrong: nothing added
    out, sink = last_line(silent_windows=2)  # a last window or two of a few events: no news
    await sink.close()
    assert out.getvalue().rstrip().endswith("ignored 0")
    out, sink = last_line(nonfinite=27, revivals=2, silent_windows=300)
    await sink.close()
    line = out.getvalue()
    assert "27 updates refused or decisions withheld as non-finite" in line and "2 revivals" in line
    assert "silent for the last 300 windows" in line and line.count("\n") == 1


def test_without_revive_a_silent_learning_network_is_named_and_left_as_it_is(caplog):
    net, decider = net_(), Decider(revive=False)
    w = window()
    net.hidden[-1].weight[:] = -np.abs(net.hidden[-1].weight)
    with caplog.at_level(logging.WARNING, logger="streamsnn.pipeline.decide"):
        for _ in range(revive.SILENT_WINDOWS):
            decider(net, w, learn=True)
    assert decider.watch is None and getattr(net, "revivals", 0) == 0
    assert [r.getMessage().startswith("the network is silent") for r in caplog.records] == [True]
    assert net.hidden[-1].weight.max() <= 0  # not put back to weights that fire


def test_the_first_copy_is_of_the_weights_the_network_starts_with():
    net, decider = net_(), Decider()
    start = weights(net)
    decider(net, window(), learn=True)
    assert net.updates == 1 and not all(np.array_equal(a, b) for a, b in zip(start, weights(net)))
    copy = decider.watch.good[0]
    flat = [a for arrays in copy[:-2] for a in arrays.values()] + copy[-2:]
    assert len(flat) == len(start) and all(np.array_equal(a, b) for a, b in zip(start, flat))


def test_decisions_withheld_while_it_learns_count_and_revive_it(monkeypatch):
    """A network whose scores are not finite (or whose activity ran away) gives no decision: the window is skipped,
    and before, nothing counted it, so the network was never revived (a leaky demo network at lr 5: 375 withheld,
    1 decision in a run)."""
    from streamsnn.snn.network import NonFinite

    net, decider = net_(), Decider()
    w = window()
    kept = weights(net)  # the copy: before the first update
    decider(net, w, learn=True)
    net.hidden[0].weight[:] = 3e38  # potentials overflow: every decision withheld
    for _ in range(revive.MAX_REFUSED):
        with pytest.raises(NonFinite):
            decider(net, w, learn=True)
    assert net.revivals == 1 and all(np.array_equal(a, b) for a, b in zip(kept, weights(net)))
    assert decider(net, w, learn=True).events == 400  # decides again


def test_a_network_that_keeps_failing_stops_learning_from_labels_in_one_error_line(caplog):
    net, decider = net_(), Decider()
    w = window()
    with caplog.at_level(logging.WARNING, logger="streamsnn.pipeline.revive"):
        for _ in range(revive.MAX_REVIVALS + 3):
            decider(net, w, learn=True)
            net.nonfinite += revive.MAX_REFUSED  # as if every update since the copy had been refused
            decider(net, w, learn=True)
    assert net.revivals == revive.MAX_REVIVALS and decider.stopped
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "no longer learns from labels" in errors[0] and "streamsnn train" in errors[0]
    assert net.labels_stopped
    updates = net.updates
    decider(net, w, learn=True)
    assert net.updates == updates  # decided, not learned


def test_an_idle_labelled_scene_is_not_a_failure():
    """A healthy learner shown windows of 3 events (an idle scene: `segment.min_events` lets them through) fires
    nothing on them; before, it was revived again and again, its rates halved each time."""
    net, decider = net_(), Decider()
    busy = [window(label=k % 3, seed=k) for k in range(6)]
    for k in range(3 * revive.KEEP_EVERY):
        decider(net, busy[k % 6], learn=True)
    revivals, backoff = getattr(net, "revivals", 0), net.lr_backoff
    rng = np.random.default_rng(0)
    ev = make_events(np.arange(3) * 100, rng.integers(0, 16, 3), rng.integers(0, 16, 3), rng.integers(0, 2, 3))
    idle = Window(EventBatch(ev, 16, 16, label=1), 0, 300, sample="i", label=1)
    for _ in range(20 * revive.SILENT_WINDOWS):
        d = decider(net, idle, learn=True)
    assert d.spikes[-1] == 0 and getattr(net, "revivals", 0) == revivals and net.lr_backoff == backoff


def test_windows_without_kept_events_after_a_revival_do_not_break_the_watch():
    net, decider = net_(), Decider()
    for k in range(2 * revive.KEEP_EVERY):
        decider(net, window(label=k % 3, seed=k), learn=True)
    net.nonfinite += revive.MAX_REFUSED
    decider(net, window(), learn=True)
    assert net.revivals == 1 and decider.watch.rates is None and decider.watch.low is not None
    empty = Window(EventBatch(make_events([], [], [], []), 16, 16, label=1), 0, 100, sample="e", label=1)
    for _ in range(3 * revive.RATE_WINDOWS):
        assert decider(net, empty, learn=True).events == 0  # before: TypeError from the watch, the window skipped


def test_a_revival_never_raises_the_rates_and_says_so_at_the_floor(caplog):
    from streamsnn.snn.guard import MIN_BACKOFF

    net, watch = net_(), revive.LiveWatch()
    watch.before(net)
    net.lr_backoff = 1 / 32  # the guard halved it at each refusal since the copy (taken at x1)
    net.nonfinite = revive.MAX_REFUSED
    net.floor_said = True  # decide.refused's ERROR at the floor, said for the weights now replaced
    watch.after(net, True)
    assert net.lr_backoff == 1 / 64 and not net.floor_said
    net.lr_backoff = MIN_BACKOFF
    with caplog.at_level(logging.WARNING, logger="streamsnn.pipeline.revive"):
        net.nonfinite += revive.MAX_REFUSED
        watch.after(net, True)
    assert net.lr_backoff == MIN_BACKOFF and "rates at their floor" in caplog.records[-1].getMessage()


def test_a_stray_refusal_does_not_block_every_later_copy():
    """Refusals counted since the copy: one stray refusal blocked every later copy (a revival then went back
    arbitrarily far) and refusals added up over any time. Now they count within a period of KEEP_EVERY windows."""
    net, watch = net_(), revive.LiveWatch()
    watch.before(net)
    net.nonfinite = 1  # one stray refusal in the first period
    for _ in range(revive.KEEP_EVERY):
        watch.after(net, True, (100, 10), 400)
    first = watch.good[0]
    net.hidden[0].weight += 0.5
    for _ in range(revive.KEEP_EVERY):  # a clean period: copied
        watch.after(net, True, (100, 10), 400)
    assert watch.good[0] is not first
    for _ in range(3 * revive.KEEP_EVERY):  # 4 refusals spread over 3 periods: never 5 in one
        net.nonfinite += 1 if _ % 15 == 0 else 0
        watch.after(net, True, (100, 10), 400)
    assert getattr(net, "revivals", 0) == 0


def spot_window(label: int, seed: int) -> Window:
    """400 events on a 2x2 spot: a scene that fires the second layer about 4x more per input event."""
    rng = np.random.default_rng(seed)
    n = 400
    ev = make_events(np.arange(n) * 100, rng.integers(3, 5, n), rng.integers(3, 5, n), rng.integers(0, 2, n))
    return Window(EventBatch(ev, 16, 16, label=label), 0, n * 100, sample="p", label=label)


def test_a_change_of_scene_that_fires_more_is_not_a_failure(monkeypatch, caplog):
    """Events on a small spot fire the second layer about 3x more per input event than the scene the copy was taken
    on. Before, that read as a run-away: 8 revivals, the rates halved each time, then no more learning. Now the
    network and its copy decide the same recent windows: the copy fires as much, so the watch moves its baseline."""
    monkeypatch.setattr(revive, "JUDGE_MIN", 5)
    monkeypatch.setattr(revive, "COLLAPSE_DROP", 1.0)  # the spots' labels are noise: activity alone here
    net, decider = net_(), Decider()
    busy = [window(label=k % 3, seed=k) for k in range(6)]
    for k in range(3 * revive.KEEP_EVERY):
        decider(net, busy[k % 6], learn=True)
    low = list(decider.watch.low)
    spots = [spot_window(k % 3, 100 + k) for k in range(6)]
    net.lr_backoff = 0.05  # learning slowly, as over a real daemon's hundreds of windows: the new scene keeps firing
    with caplog.at_level(logging.INFO, logger="streamsnn.pipeline.revive"):
        top = 0.0
        for k in range(10 * revive.KEEP_EVERY):
            decider(net, spots[k % 6], learn=True)
            top = max(top, decider.watch.rates[1])
    assert top > revive.RUNAWAY_RATE * low[1]  # it does fire 3x more than at the copies on the first scene
    assert getattr(net, "revivals", 0) == 0 and net.lr_backoff == 0.05 and not decider.stopped
    assert net.scene_changes >= 1 and decider.watch.low[1] > 2 * low[1]
    said = [r.getMessage() for r in caplog.records]
    assert said and all("a change of scene, not a failure" in m and r.levelno == logging.INFO
                        for m, r in zip(said, caplog.records))


def test_a_layer_that_fires_more_than_its_copy_on_the_same_windows_is_revived(monkeypatch, caplog):
    monkeypatch.setattr(revive, "JUDGE_MIN", 5)
    net, decider = net_(), Decider()
    busy = [window(label=k % 3, seed=k) for k in range(6)]
    for k in range(3 * revive.KEEP_EVERY):
        decider(net, busy[k % 6], learn=True)
    for k in range(revive.KEEP_EVERY // 2):  # windows learned since the last copy: what the judge compares on
        decider(net, busy[k % 6], learn=True)
    kept = [a.copy() for a in decider.watch.good[0][1].values()]
    net.hidden[1].weight *= 6.0  # the second layer runs away on the very same windows
    with caplog.at_level(logging.WARNING, logger="streamsnn.pipeline.revive"):
        for k in range(revive.KEEP_EVERY):
            decider(net, busy[k % 6], learn=True)
            if getattr(net, "revivals", 0):
                break
    assert net.revivals == 1 and getattr(net, "scene_changes", 0) == 0
    assert all(np.array_equal(a, b) for a, b in zip(kept, net.hidden[1].arrays().values()))
    said = caplog.records[0].getMessage()
    assert "hidden layer 2 fires" in said and "layer 2 fires" in said.split(";")[1]
    assert "on the same windows, its copy" in said


def pattern_window(label: int, seed: int) -> Window:
    """400 events in the quarter of the sensor that says the class (0, 1, 2): windows a network learns quickly."""
    rng = np.random.default_rng(seed)
    n = 400
    x0, y0 = [(0, 0), (8, 0), (0, 8)][label]
    ev = make_events(np.arange(n) * 100, x0 + rng.integers(0, 8, n), y0 + rng.integers(0, 8, n), rng.integers(0, 2, n))
    return Window(EventBatch(ev, 16, 16, label=label), 0, n * 100, sample="q", label=label)


def test_a_fall_in_accuracy_is_judged_against_the_copy_on_the_same_windows(monkeypatch):
    """Windows whose labels the events do not tell (a stretch of a class the model cannot know yet) make the running
    accuracy fall for the copy as much: not a failure. A network wrong where its copy is right is revived."""
    monkeypatch.setattr(revive, "JUDGE_MIN", 5)
    monkeypatch.setattr(revive, "RUNAWAY_RATE", 1e9)  # accuracy alone here
    monkeypatch.setattr(revive, "COLLAPSE_WINDOWS", 100)
    monkeypatch.setattr(revive, "JUDGE_WINDOWS", 100)  # the windows the running accuracy spans
    net, decider = net_(), Decider()
    for k in range(6 * revive.KEEP_EVERY):
        decider(net, pattern_window(k % 3, k), learn=True)
    assert decider.watch.acc > 0.8
    rng = np.random.default_rng(5)
    for k in range(30 * revive.KEEP_EVERY):  # the events of class 0, labels at random
        w = pattern_window(0, 1000 + k)
        w.label = int(rng.integers(0, 3))
        decider(net, w, learn=True)
    assert getattr(net, "revivals", 0) == 0 and net.scene_changes >= 1
    for k in range(15 * revive.KEEP_EVERY):  # the classes again: it learns them back
        decider(net, pattern_window(k % 3, 5000 + k), learn=True)
    kept = [a.copy() for a in decider.watch.good[0][-2:]]
    net.out_weight[:] = net.out_weight[:, [1, 2, 0]]  # now wrong on every class where its copy is right
    net.bias[:] = net.bias[[1, 2, 0]]
    for k in range(15 * revive.KEEP_EVERY):
        decider(net, pattern_window(k % 3, 9000 + k), learn=True)
        if getattr(net, "revivals", 0):
            break
    assert net.revivals == 1 and np.array_equal(net.out_weight, kept[0]) and np.array_equal(net.bias, kept[1])


def test_the_windows_kept_for_judging_are_bounded_in_events(monkeypatch):
    monkeypatch.setattr(revive, "JUDGE_EVENTS", 1000)
    watch = revive.LiveWatch()
    for k in range(10):
        watch.remember(window(seed=k).batch, "1", True)
    assert len(watch.recent) == 2 and watch.recent_events == 800  # 400 events a window
    big = make_events(np.arange(2000) * 10, np.zeros(2000, int), np.zeros(2000, int), np.zeros(2000, int))
    watch.remember(EventBatch(big, 16, 16), "1", True)
    assert len(watch.recent) == 1  # one window over the bound alone is kept


def test_a_network_damaged_into_silence_during_a_hard_stretch_is_revived_and_never_made_the_copy(monkeypatch):
    """A stretch whose labels the events do not tell (the copy is as wrong as the network: a change of scene), then
    the network falls silent while its copy fires. Before, the accuracy verdict (a scene) reset the silence count,
    the silent weights became the copy at the period's end and the watch stopped scoring: never revived, at chance."""
    for name, value in (("KEEP_EVERY", 300), ("COLLAPSE_WINDOWS", 300), ("RATE_WINDOWS", 100),
                        ("SILENT_WINDOWS", 200)):
        monkeypatch.setattr(revive, name, value)
    net = SpikingNetwork(arch="dense:16", input_shape=(16, 16, 2), classes=3, seed=0)
    decider = Decider()
    for k in range(1200):
        decider(net, pattern_window(k % 3, k), learn=True)
    rng = np.random.default_rng(5)

    def noise(k: int) -> Window:
        w = pattern_window(0, k)
        w.label = int(rng.integers(0, 3))
        return w

    for k in range(150):
        decider(net, noise(2000 + k), learn=True)
    net.hidden[0].weight[:] = -1.0  # silent from here; its copy fires
    for k in range(1500):
        decider(net, noise(3000 + k), learn=True)
        assert decider.watch.good[0][0][""].max() > 0  # the silent weights are never the copy
    assert net.revivals >= 1
    right = [decider(net, pattern_window(k % 3, 9000 + k), learn=True).label == k % 3 for k in range(600)]
    assert np.mean(right[-300:]) > 0.9


def test_the_copy_is_never_judged_on_windows_it_learned_itself(monkeypatch):
    """The network is its copy (a copy was just taken): before, the judge compared the copy's second look at windows
    it had learned from with the network's test-then-train record of them, and revived it with halved rates."""
    monkeypatch.setattr(revive, "JUDGE_MIN", 5)
    net, watch = net_(), revive.LiveWatch()
    decider = Decider()
    decider.watch = watch
    for k in range(60):
        decider(net, pattern_window(k % 3, k), learn=True)
    watch.keep(net)
    for k in range(revive.KEEP_EVERY // 2):  # decided, not learned: the network stays its copy bit for bit
        w = pattern_window(k % 3, 500 + k)
        d = net.predict_one(w.batch)
        watch.after(net, d.label == w.label, d.spikes, d.events, w.batch, w.label)
    watch.judged(net, "accuracy", "a trigger")
    assert getattr(net, "revivals", 0) == 0 and net.scene_changes == 1 and net.lr_backoff == 1.0


def test_the_margin_clear_of_chance_counts_only_judged_windows():
    """Windows kept only for their events counted in the margin's n: with 20 judged among 400 kept the margin fell
    from 0.31 to 0.10 and a difference of 2-3 windows revived a healthy network."""
    net, watch = net_(), revive.LiveWatch()
    watch.before(net)
    batch = window().batch
    for k in range(380):
        watch.remember(batch, None, False, 1000 * k, 1)
    for k in range(20):
        watch.remember(batch, "1", True, 400_000 + 1000 * k, 1)
    assert watch.judged_windows == 20 and len(watch.recent) == 400
    watch.judge = lambda net: (([0.1, 0.05], 0.45), ([0.1, 0.05], 0.60))  # 3 windows of 20 apart: chance
    watch.judged(net, "accuracy", "a trigger")
    assert getattr(net, "revivals", 0) == 0 and net.scene_changes == 1
