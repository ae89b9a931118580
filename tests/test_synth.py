"""Synthetic saccade camera: the numba kernel against a plain reference, the sensor model's physics,
the image inputs (MNIST idx, PNG, font), the N-MNIST encoder, SyntheticSource and `streamsnn synth`."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamsnn.errors import ConfigError
from streamsnn.synth import SaccadeCamera, SaccadeParams
from streamsnn.synth.kernels import saccade_events

QUIET = dict(noise_hz=0.0, threshold_sigma=0.0)


# -- kernel vs an obvious reference ------------------------------------------------------------
def reference_events(img, ox, oy, scale, t_us, c_on, c_off, phase, refractory_us, background):
    """Slow, plain version of the sensor model: a list of (t, x, y, p)."""
    def log_i(x, y):
        padded = np.pad(img, 1)  # black outside; index shifted by one
        x0, y0 = math.floor(x), math.floor(y)
        v = 0.0
        for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
            for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
                if 0 <= xx < img.shape[1] and 0 <= yy < img.shape[0]:
                    v += wx * wy * padded[yy + 1, xx + 1]
        return math.log(background + (1 - background) * v)

    out = []
    for v in range(c_on.shape[0]):
        for u in range(c_on.shape[1]):
            levels = [log_i((u - ox[k]) / scale, (v - oy[k]) / scale) for k in range(len(t_us))]
            ref = levels[0] + phase[v, u] * (c_on[v, u] if phase[v, u] < 0 else c_off[v, u])
            last = -1e18
            for k in range(1, len(t_us)):
                a, b = levels[k - 1], levels[k]
                while b >= ref + c_on[v, u] or b <= ref - c_off[v, u]:
                    up = b >= ref + c_on[v, u]
                    level = ref + c_on[v, u] if up else ref - c_off[v, u]
                    te = t_us[k - 1] + (t_us[k] - t_us[k - 1]) * (level - a) / (b - a)
                    ref = level
                    if te - last >= refractory_us:
                        out.append((int(te), u, v, int(up)))
                        last = te
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kernel_matches_reference(seed):
    rng = np.random.default_rng(seed)
    img = rng.random((7, 7))
    steps = 40
    ox = np.cumsum(rng.normal(0, 0.3, steps)) - 1.0
    oy = np.cumsum(rng.normal(0, 0.3, steps)) - 1.0
    ox[10:14] = ox[9]  # a pause: no events may come from it
    oy[10:14] = oy[9]
    t_us = np.arange(steps) * 1000.0
    shape = (6, 9)
    c_on, c_off = rng.uniform(0.05, 0.3, shape), rng.uniform(0.05, 0.3, shape)
    phase = rng.uniform(-0.5, 0.5, shape)
    scale = rng.uniform(0.8, 1.3)
    refr = float(rng.choice([0.0, 300.0, 2000.0]))
    bufs = [np.empty(100_000, d) for d in (np.int64, np.uint16, np.uint16, np.uint8)]
    n = saccade_events(img, ox, oy, scale, t_us, c_on, c_off, phase, refr, 0.1, *bufs)
    got = sorted(zip(*(b[:n].tolist() for b in bufs)), key=lambda e: (e[1], e[2], e[0]))
    want = sorted(reference_events(img, ox, oy, scale, t_us, c_on, c_off, phase, refr, 0.1),
                  key=lambda e: (e[1], e[2], e[0]))
    assert n > 50 and len(got) == len(want)
    for g, w in zip(got, want):
        assert g[1:] == w[1:] and abs(g[0] - w[0]) <= 1


def test_kernel_reports_full_buffer():
    img = np.random.default_rng(0).random((5, 5))
    ox = np.linspace(0, 3, 20)
    bufs = [np.empty(3, d) for d in (np.int64, np.uint16, np.uint16, np.uint8)]
    c = np.full((5, 5), 0.05)
    assert saccade_events(img, ox, ox, 1.0, np.arange(20) * 1e3, c, c, np.zeros((5, 5)), 0.0, 0.1, *bufs) == -1


# -- the sensor model ----------------------------------------------------------------------------
def edge_camera(**kw):
    """A sharp vertical edge (dark left, bright right) moved 3 px right by saccade 1, back by saccade 3."""
    kw = {"refractory_us": 0, **QUIET, **kw}
    p = SaccadeParams(corners=((0, 0), (3, 0), (3, 0)), negative=False, blur=0, gamma=1.0,
                      threshold_on=0.25, threshold_off=0.25, **kw)
    img = np.zeros((28, 28))
    img[:, 14:] = 255
    return SaccadeCamera(p, seed=3), img


def test_each_threshold_crossing_is_one_event():
    cam, img = edge_camera()
    ev = cam.events(img)
    ev = ev[ev["x"] < 22]  # the image's right border (bright to black) is a second, opposite edge
    p = cam.params
    # Pixels the edge fully sweeps (sensor x 15..16: origin 0.4 + image x 14..15 + shift 0..3) go from
    # white to black in saccade 1 and back in saccade 3: log(0.1) / 0.25 = 9.2 thresholds each way,
    # so 8..10 events depending on where the pixel's reference started (within one threshold).
    k = abs(math.log(p.background)) / 0.25
    per_crossing = {math.floor(k) - 1, math.floor(k), math.ceil(k)}
    s1 = ev[ev["t"] < 100_000]
    s3 = ev[ev["t"] >= 200_000]
    assert len(ev) > 0 and np.all(s1["p"] == 0) and np.all(s3["p"] == 1)
    for x in (15, 16):
        for y in range(5, 26):
            pix1 = s1[(s1["x"] == x) & (s1["y"] == y)]
            pix3 = s3[(s3["x"] == x) & (s3["y"] == y)]
            assert len(pix1) in per_crossing and len(pix3) in per_crossing
            assert abs(len(pix1) - len(pix3)) <= 1
            assert np.all(np.diff(pix1["t"]) >= 0)
    # Times are interpolated within the 1 ms steps, not snapped to them.
    assert np.mean(ev["t"] % p.step_us != 0) > 0.5
    # Outside the pan of saccade 1 (45..95 ms) and saccade 3 (210..305 ms) nothing moves.
    assert np.all(((ev["t"] >= 45_000) & (ev["t"] <= 95_000)) | ((ev["t"] >= 210_000) & (ev["t"] <= 305_000)))


def test_refractory_period_separates_events_of_a_pixel():
    cam, img = edge_camera(refractory_us=4000)
    ev = cam.events(img)
    free, _ = edge_camera()
    assert 0 < len(ev) < len(free.events(img))
    pix = ev["y"].astype(int) * 34 + ev["x"]
    order = np.lexsort((ev["t"], pix))
    same = np.diff(pix[order]) == 0
    assert np.min(np.diff(ev["t"][order])[same]) >= 4000


@pytest.mark.parametrize("negative", [False, True])
def test_polarity_leads_or_trails_the_motion(negative):
    """A bright bar moving right: ON events lead (right side); shown as a negative, OFF events lead."""
    p = SaccadeParams(corners=((0, 0), (4, 0), (4, 0)), negative=negative, **QUIET)
    img = np.zeros((28, 28))
    img[4:24, 12:16] = 255
    ev = SaccadeCamera(p, seed=0).events(img)
    s1 = ev[ev["t"] < 100_000]
    on, off = s1[s1["p"] == 1], s1[s1["p"] == 0]
    lead = on["x"].mean() - off["x"].mean()
    assert (lead < -1) if negative else (lead > 1)


def test_no_motion_or_blank_image_gives_no_events():
    still = SaccadeParams(corners=((0, 0), (0, 0), (0, 0)), **QUIET)
    digit = np.zeros((28, 28))
    digit[8:20, 10:18] = 200
    assert len(SaccadeCamera(still).events(digit)) == 0
    for negative in (False, True):
        assert len(SaccadeCamera(SaccadeParams(negative=negative, **QUIET)).events(np.zeros((28, 28)))) == 0
    assert len(SaccadeCamera(SaccadeParams(**QUIET)).events(digit)) > 100


def test_background_noise_rate_and_polarity():
    p = SaccadeParams(noise_hz=20.0, noise_on_fraction=0.9)
    ev = SaccadeCamera(p, seed=5).events(np.zeros((28, 28)))
    expect = 20.0 * 34 * 34 * p.length / 1000
    assert abs(len(ev) - expect) < 5 * math.sqrt(expect)
    assert abs(ev["p"].mean() - 0.9) < 0.03
    assert ev["t"].min() >= 0 and ev["t"].max() < p.length * 1000
    assert len(np.unique(ev["x"])) == 34 and len(np.unique(ev["y"])) == 34


def test_threshold_mismatch_and_seeds():
    img = np.zeros((28, 28))
    img[6:22, 9:19] = 255
    cam = SaccadeCamera(SaccadeParams(threshold_sigma=0.05), seed=1)
    assert abs(cam.c_on.std() - 0.05) < 0.01 and abs(cam.c_on.mean() - cam.params.threshold_on) < 0.01
    assert np.array_equal(SaccadeCamera(seed=7).events(img), SaccadeCamera(seed=7).events(img))
    assert not np.array_equal(SaccadeCamera(seed=7).events(img), SaccadeCamera(seed=8).events(img))
    # A finer threshold makes more events.
    fine = SaccadeCamera(SaccadeParams(threshold_on=0.15, threshold_off=0.15, **QUIET)).events(img)
    coarse = SaccadeCamera(SaccadeParams(threshold_on=0.4, threshold_off=0.4, **QUIET)).events(img)
    assert len(fine) > 1.8 * len(coarse)


def test_record_returns_a_valid_34x34_batch():
    img = np.zeros((28, 28))
    img[5:23, 12:16] = 255
    b = SaccadeCamera().record(img, sample="synth-1", label=1)
    assert b.sensor_size == (34, 34) and b.sample == "synth-1" and b.label == 1 and len(b) > 0
    assert np.all(np.diff(b.events["t"]) >= 0)


@pytest.mark.parametrize("kw", [dict(background=0.0), dict(threshold_on=0.0), dict(scale=-1.0),
                                dict(corners=((0, 0), (1, 1))), dict(noise_hz=-1.0)])
def test_bad_parameters_raise_config_error(kw):
    with pytest.raises(ConfigError):
        SaccadeCamera(SaccadeParams(**kw))
