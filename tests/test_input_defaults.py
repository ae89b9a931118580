"""The input map `train` picks from the data (region, grid, polarities), its overrides, and sensors of another size."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import need
from dataset_util import nmnist_events, nmnist_picks, write_aedat4

from streamsnn.errors import ConfigError, InputError
from streamsnn.events import EventBatch
from streamsnn.io.dataset import open_dataset
from streamsnn.learn import datadefaults as dd
from streamsnn.snn import InputMap, SpikingNetwork


def test_poker_pips_keep_their_native_resolution():
    ds = open_dataset(need("poker_dvs_inverted"))
    c = dd.choose_input(ds)
    m = c.input_map
    assert m.sensor == (128, 128)
    x0, y0, w, h = m.roi
    # the active region (x 99..124, y 96..122, see `streamsnn info --count`) is inside, with a margin
    assert x0 < 99 and y0 < 96 and x0 + w > 125 and y0 + h > 123
    assert w <= 48 and h <= 48  # a margin, not the whole sensor
    assert m.grid == (w, h, 2)  # native: one input unit per pixel, the pips are not shrunk
    assert "active region" in c.roi_from and "native" in c.grid_from
    # nearly every event of every recording reaches the network
    kept = total = 0
    for s in ds.samples:
        b = s.load()
        kept += len(m.event_indices(b))
        total += len(b)
    assert kept / total > 0.99


def test_nmnist_keeps_the_whole_34x34_sensor_and_the_n_mnist_defaults():
    ds = open_dataset(need("nmnist_small"))
    c = dd.choose_input(ds)
    assert c.input_map == InputMap()  # sensor 34x34, all of it, grid 34x34x2: as before
    assert not dd.is_small(len(ds.split("train")), len(ds.classes))  # 1,000 samples: not few


@pytest.mark.parametrize("w,h,grid", [(346, 260, (44, 33)), (640, 480, (46, 35)), (304, 240, (44, 35)),
                                      (128, 128, (43, 43)), (48, 20, (48, 20)), (26, 27, (26, 27))])
def test_grid_rule(w, h, grid):
    gw, gh, _ = dd.default_grid(w, h)
    assert (gw, gh) == grid
    assert max(gw, gh) <= dd.MAX_NATIVE


def test_a_large_sensor_gets_a_bounded_grid(tmp_path):
    """Real N-MNIST samples spread over a 640x480 sensor: the grid stays at most 48 a side, not 640x480."""
    rng = np.random.default_rng(0)
    for sample_id, digit in nmnist_picks("train", 8):
        ev = nmnist_events(sample_id)  # each pixel becomes a 12 x 10 block, events spread over it
        ev["x"] = ev["x"].astype(np.uint16) * 12 + rng.integers(0, 12, len(ev)) + 100  # 100..507
        ev["y"] = ev["y"].astype(np.uint16) * 10 + rng.integers(0, 10, len(ev)) + 60   # 60..399
        d = tmp_path / "Train" / str(digit)
        d.mkdir(parents=True, exist_ok=True)
        write_aedat4(d / f"{sample_id}.aedat4", ev, (640, 480))
    ds = open_dataset(tmp_path)
    m = dd.choose_input(ds).input_map
    assert m.sensor == (640, 480)
    assert m.roi[2] > 300 and m.roi[3] > 250  # the data fill most of it
    assert 24 <= max(m.grid[:2]) <= 48 and m.n_inputs <= 48 * 48 * 2
    b = ds.samples[0].load()
    idx = m.event_indices(b)
    assert len(idx) > 0.99 * len(b) and idx.max() < m.n_inputs


def test_overrides_and_bad_values():
    ds = open_dataset(need("poker_dvs_inverted"))
    c = dd.choose_input(ds, roi=(96, 94, 32, 34), grid=(16, 17), polarities=1)
    assert c.input_map == InputMap((128, 128), (96, 94, 32, 34), (16, 17, 1))
    assert c.roi_from == "--roi" and c.grid_from.startswith("--grid")
    assert dd.parse_box("32x34", 2, "--grid", "x") == (32, 34)
    assert dd.parse_box("96,94,32,34", 4, "--roi", ",") == (96, 94, 32, 34)
    for text, n, what in (("32", 2, "--grid"), ("a,b,c,d", 4, "--roi"), ("1,2,3", 4, "--roi")):
        with pytest.raises(ConfigError, match=what):
            dd.parse_box(text, n, what, "x" if n == 2 else ",")
    with pytest.raises(ConfigError, match="roi"):  # outside the sensor
        dd.choose_input(ds, roi=(120, 0, 32, 32))


def test_few_samples_rule():
    assert dd.is_small(16, 3) and dd.is_small(300, 10) and not dd.is_small(1000, 10)


def test_another_sensor_is_scaled_when_the_region_is_the_whole_sensor_else_refused():
    ev = np.zeros(3, dtype=[("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])
    ev["t"], ev["x"], ev["y"], ev["p"] = [1, 2, 3], [0, 319, 160], [0, 239, 120], [1, 0, 1]
    cam = EventBatch(ev, 320, 240, source="camera X")
    whole = InputMap((34, 34), None, (34, 34, 2))
    np.testing.assert_array_equal(whole.event_indices(cam), [34 * 34, 33 * 34 + 33, 17 * 34 + 17 + 34 * 34])
    part = InputMap((128, 128), (95, 92, 33, 35), (33, 35, 2))
    with pytest.raises(InputError, match=r"camera X: 320x240 sensor.*\(95, 92\) 33x35 of a 128x128") as e:
        part.event_indices(cam)
    assert "\n" not in str(e.value)
    net = SpikingNetwork(arch="dense:8", input_map=part, classes=["club", "diamond", "spade"])
    with pytest.raises(InputError):
        net.predict_one(cam)


def test_stream_transforms_follow_the_length_of_the_samples():
    """On for samples at least a live window long (N-MNIST: about 300 ms), off for shorter ones (pips of
    5-15 ms: a crop would be the whole pip and a crossing two whole pips under one label); flags win."""
    from streamsnn.cli import build_parser
    from streamsnn.commands.train import plan
    from streamsnn.learn.augment import StreamCrops

    window = StreamCrops().window_us
    nmnist, poker = open_dataset(need("nmnist_small")), open_dataset(need("poker_dvs_inverted"))
    on, why = dd.choose_stream([nmnist], None, window)
    assert on and "at least" in why
    off, why = dd.choose_stream([poker], None, window)
    assert not off and "less than" in why
    # the rule compares with the window: a window shorter than the pips turns them on
    assert dd.choose_stream([poker], None, 1_000)[0]
    assert dd.choose_stream([poker], True, window) == (True, "--stream-crops")
    assert dd.choose_stream([nmnist], False, window) == (False, "--no-stream-crops")
    # what train builds: the stream setting halves a convolutional network's rates only when on
    rates = {}
    for name, data in (("nmnist", nmnist.root), ("poker", poker.root)):
        args = build_parser().parse_args(["train", "--data", str(data), "--out", "/tmp/x.npz"])
        lines = []
        net, s, _, picked = plan(args, lines.append)
        assert picked["stream_crops"] is (name == "nmnist") and args.stream_crops is picked["stream_crops"]
        assert f"stream crops {'on' if name == 'nmnist' else 'off'}" in lines[-1]
        rates[name] = net.lr
    assert rates["nmnist"] < rates["poker"]
