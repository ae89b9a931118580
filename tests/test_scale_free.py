"""Scale-free learning (issue 19 item 1): the step a sample causes does not grow with its events, duration or sensor.

Real recordings of three sensors (N-MNIST 34x34, DVS128 128x128, Prophesee 1280x720) give a piece of 3,000 events;
samples of 300 to 1,000,000 events are that piece cut or repeated back to back, played over 5 ms to 10 s. Every
layer's step (how far its weights move, relative to their norm) is measured on the same fresh network.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from conftest import need

from streamsnn.defaults import REF_EVENTS
from streamsnn.io import read_events
from streamsnn.snn import SpikingNetwork
from streamsnn.snn.arch import InputMap
from streamsnn.snn.network import NonFinite

SIZES = (300, 3_000, REF_EVENTS, 30_000, 300_000, 1_000_000)
SENSORS = {  # recording, the grid `train` picks for that sensor
    "nmnist": ("nmnist_small/1.bs2", (34, 34, 2)),
    "dvs128": ("biolab_objects/Train/mug.aedat", (43, 43, 2)),
    "prophesee": ("recordings/prophesee_evt3_sample.raw", (48, 27, 2)),
}
PIECE = 3_000


def piece(sensor: str):
    path, grid = SENSORS[sensor]
    batch = read_events(need(path))
    return batch, grid


def sample(batch, net, n: int, duration_us: int) -> tuple[np.ndarray, np.ndarray]:
    """The first n events of the recording's piece, the piece repeated to reach n, over duration_us."""
    idx0, _ = net.input_events(batch)
    idx0 = idx0[:PIECE]
    assert len(idx0) == PIECE
    idx = np.resize(idx0, n).astype(np.int32)  # repeats the piece back to back
    t = (np.arange(n, dtype=np.int64) * duration_us) // n
    return idx, t


def steps(net, idx, t, label=1) -> np.ndarray:
    """Each layer's weight change relative to its norm after one learn step on a copy of `net` (inf: undone)."""
    other = copy.deepcopy(net)
    before = [w.copy() for w in net.weights]
    try:
        other.learn_indices(idx, label, t)
    except NonFinite:
        return np.full(len(before), np.inf)
    return np.array([np.linalg.norm(a - b) / np.linalg.norm(b) for a, b in zip(other.weights, before)])


def network(batch, grid, **kw) -> SpikingNetwork:
    imap = InputMap(sensor=(batch.width, batch.height), grid=grid)
    return SpikingNetwork(input_map=imap, classes=7, seed=3, **kw)


@pytest.mark.parametrize("sensor", list(SENSORS))
def test_the_step_does_not_grow_with_the_events_of_a_sample(sensor):
    batch, grid = piece(sensor)
    net = network(batch, grid)
    assert net.ref_events == REF_EVENTS
    by_n = {n: steps(net, *sample(batch, net, n, 300_000)) for n in SIZES}
    small = np.max([by_n[n] for n in SIZES if n <= REF_EVENTS], axis=0)
    for n in SIZES:
        assert np.all(np.isfinite(by_n[n])), (n, by_n[n])
        assert np.all(by_n[n] <= 1.5 * small), (sensor, n, by_n[n], small)  # every layer, up to 1 M events
    # the same network without the normalisation: the step grows with the events (or overflows and is undone)
    raw = network(batch, grid, ref_events=1e12)
    big = steps(raw, *sample(batch, raw, 1_000_000, 300_000))
    assert np.max(big / small) > 10, (big, small)


@pytest.mark.parametrize("duration_us", [5_000, 300_000, 10_000_000])
def test_a_leaky_network_steps_the_same_whatever_the_duration(duration_us):
    """A leaky network (tau 100 ms, as live windows run) on 3,000 to 1,000,000 events played over 5 ms to 10 s."""
    batch, grid = piece("dvs128")
    net = network(batch, grid, tau_us=100_000)
    ref = np.max([steps(net, *sample(batch, net, n, 300_000)) for n in (300, 3_000, REF_EVENTS)], axis=0)
    for n in (30_000, 1_000_000):
        got = steps(net, *sample(batch, net, n, duration_us))
        assert np.all(np.isfinite(got)) and np.all(got <= 1.5 * ref), (n, duration_us, got, ref)


def test_ref_events_is_kept_in_the_checkpoint_and_checked(tmp_path):
    net = SpikingNetwork(arch="dense:16", input_shape=(8, 8, 2), classes=3, ref_events=500)
    assert net.learn_scale(100) == 1.0 and net.learn_scale(2_000) == 4.0
    net.save(tmp_path / "m.npz")
    assert SpikingNetwork.load(tmp_path / "m.npz").ref_events == 500
    with pytest.raises(Exception, match="ref_events"):
        SpikingNetwork(arch="dense:16", input_shape=(8, 8, 2), classes=3, ref_events=0)
