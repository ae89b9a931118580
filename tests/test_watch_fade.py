"""A network whose last hidden layer fades to a trickle of spikes is revived (issue 19: no dead networks).

Before: bench_time's `membrane` run on N-MNIST (real + synthetic, seed 1) ended at 6 % on the test samples, its last
hidden layer at 0.0014 spikes per input event (a sound run: 0.33): a few spikes a sample, so neither silent nor
stuck, and the watch let it finish as if it had learned.
"""

from __future__ import annotations

import numpy as np
import pytest

from streamsnn.learn import watch as watch_mod
from streamsnn.learn.watch import NetworkSilent, Watch
from streamsnn.snn import SpikingNetwork

EVENTS = 1000


def net() -> SpikingNetwork:
    return SpikingNetwork(arch="dense:32", input_shape=(8, 8, 1), classes=4, seed=0)


def feed(w: Watch, rates, n: int) -> None:
    for k in range(n):
        w.spiked((500, max(1, int(round(rates(k) * EVENTS)))), EVENTS, 0)


def test_a_network_that_fades_a_hundredfold_is_revived_with_its_earlier_weights():
    n = net()
    w = Watch.of(n)
    w.start_epoch()
    good = n.out_weight.copy()
    feed(w, lambda k: 0.3, 2 * watch_mod.FADE_SAMPLES)  # sound: 0.3 spikes per input event
    assert w.revivals == 0
    n.out_weight[:] = 7.0  # what learning did meanwhile
    feed(w, lambda k: 0.002, 6 * watch_mod.FADE_SAMPLES)  # a trickle: 1 to 2 spikes a sample, never silent
    assert w.revivals == 1 and n.lr_backoff == 0.5
    assert np.array_equal(n.out_weight, good)


@pytest.mark.parametrize("fall", [1.0, 5.0, 30.0])
def test_a_rate_that_falls_a_few_times_as_the_network_learns_is_left_alone(fall):
    w = Watch.of(net())
    w.start_epoch()
    n = 10 * watch_mod.FADE_SAMPLES
    feed(w, lambda k: 0.3 / fall ** (k / n), n)  # slides from 0.3 to 0.3 / fall
    feed(w, lambda k: 0.3 / fall, 2 * watch_mod.FADE_SAMPLES)
    assert w.revivals == 0


def test_the_first_samples_set_no_peak_and_a_network_that_keeps_fading_stops_in_one_line():
    w = Watch.of(net())
    w.start_epoch()
    feed(w, lambda k: 5.0 if k < 20 else 0.3, 2 * watch_mod.FADE_SAMPLES)  # a loud start is not the peak
    assert w.revivals == 0
    with pytest.raises(NetworkSilent) as e:
        for _ in range(watch_mod.MAX_REVIVALS + 1):
            feed(w, lambda k: 0.3, 2 * watch_mod.FADE_SAMPLES)
            feed(w, lambda k: 0.001, 6 * watch_mod.FADE_SAMPLES)
    assert "faded" in str(e.value) and "\n" not in str(e.value)


def test_a_fading_network_is_not_taken_as_the_good_state_of_the_next_epoch():
    n = net()
    w = Watch.of(n)
    w.start_epoch()
    good = n.out_weight.copy()
    feed(w, lambda k: 0.3, 2 * watch_mod.FADE_SAMPLES)
    feed(w, lambda k: 0.02, 4 * watch_mod.FADE_SAMPLES)  # about 12x down, still above 1/FADE_RATIO of the peak
    assert w.revivals == 0
    n.out_weight[:] = 7.0
    w.start_epoch()  # fading: these weights are not kept as the ones to go back to
    feed(w, lambda k: 0.001, 6 * watch_mod.FADE_SAMPLES)
    assert w.revivals == 1 and np.array_equal(n.out_weight, good)


def test_a_rate_that_settles_after_running_away_has_not_faded():
    w = Watch.of(net())
    w.start_epoch()
    feed(w, lambda k: 0.3, 2 * watch_mod.FADE_SAMPLES)
    feed(w, lambda k: 40.0, 2 * watch_mod.FADE_SAMPLES)  # a run-away stretch: 40 spikes per input event
    feed(w, lambda k: 0.4, 8 * watch_mod.FADE_SAMPLES)  # settled: a hundredfold down, but a sound rate
    assert w.revivals == 0
