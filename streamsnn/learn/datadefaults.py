"""Choices `train` makes from the data: class names, the input map (sensor, region, grid), and whether the data are few.

Input map rule (`choose_input`):
- sensor: the dataset's (from the file headers, else from decoding samples);
- region: a sensor no bigger than MAX_NATIVE on each side is used whole (N-MNIST's 34x34 stays as it
  was); on a bigger sensor, the active region of the data (``io.region.active_region``) grown by a
  margin of an eighth of its longest side (at least 2 px) on every side, so shifted samples and
  augmentation stay inside;
- grid: the region at native resolution when its longest side is at most MAX_NATIVE pixels, else
  pooled by the integer factor ``ceil(longest / MAX_NATIVE)`` (346x260 -> 44x33, 640x480 -> 46x35);
- polarities: 2 (ON and OFF apart).
``--roi``, ``--grid`` and ``--polarities`` override each part.

Small data: no settings of their own. A smaller network with stronger augmentation and more
steps (CV_CHOICE) won a cross-validation on the POKER-DVS train split by one to three validation
samples of 48, then lost to the N-MNIST defaults on the held-out checks (POKER-DVS test, N-MNIST with 30 samples
per digit on a 346x260 sensor; benchmarks/README.md, "Own data"), so every dataset gets the
N-MNIST architecture and AUGMENT. `is_small` makes `train` say that the data are few and choose its
learning rates, epochs, augmentation and stream crops on held-out training samples (`choose.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import defaults
from ..errors import ConfigError, InputError
from ..snn.arch import InputMap

#: Longest side (pixels) of a region kept at native resolution, and the bound on a pooled grid's side.
MAX_NATIVE = 48
#: Below this many training samples per class (mean) `train` says the data are few.
SMALL_PER_CLASS = 50
#: Augmentation of every training run (picked on N-MNIST; it also won the small-data checks).
AUGMENT = defaults.AUGMENT
#: The small-data settings cross-validation on POKER-DVS train picked, then rejected on held-out data
#: (kept for benchmarks/bench_own_data.py, which shows both): shifts of 1/8 of the grid, about 3000 steps.
CV_CHOICE = {"arch": "conv:16:5:2:2,dense:64", "shift_frac": 0.125, "dropout": 0.2, "jitter_us": 1000.0,
             "updates": 3000, "min_epochs": 40, "max_epochs": 400}


@dataclass(frozen=True)
class InputChoice:
    """An input map and one line per part saying where it came from."""

    input_map: InputMap
    sensor_from: str
    roi_from: str
    grid_from: str

    def describe(self) -> str:
        m = self.input_map
        x0, y0, w, h = m.roi
        return (f"sensor {m.sensor[0]}x{m.sensor[1]} ({self.sensor_from}); "
                f"roi x {x0}..{x0 + w - 1} y {y0}..{y0 + h - 1} ({self.roi_from}); "
                f"grid {'x'.join(map(str, m.grid))} ({self.grid_from})")


LAYOUT_WORDS = {"class-folders": "the class folders", "flat": "the label lists",
                "labelled-recordings": "the label CSV files", "tonic": "the tonic dataset"}


def data_classes(datasets) -> tuple[list[str], str]:
    """Class names (index order) of one or more Datasets, and where they came from (for the `train` line).

    Several folders with different class lists get the union, ordered as `io.classes.class_order` does.
    """
    from ..io.classes import class_order

    lists = [list(ds.classes) for ds in datasets]
    names = lists[0] if all(c == lists[0] for c in lists) else class_order({n for c in lists for n in c})
    where = ", ".join(dict.fromkeys(LAYOUT_WORDS.get(ds.layout, ds.layout) for ds in datasets))
    return names, f"{len(names)}, from {where}"


def parse_box(text: str, n: int, what: str, sep: str) -> tuple[int, ...]:
    """`text` split at `sep` (or 'x' / ',') into n positive-or-zero integers, else ConfigError naming `what`."""
    parts = [p for p in str(text).replace("x", sep).replace(",", sep).split(sep) if p.strip()]
    try:
        vals = tuple(int(p) for p in parts)
    except ValueError:
        vals = ()
    if len(vals) != n or min(vals) < 0:
        raise ConfigError(f"{what} {text!r}: expected {n} whole numbers ({'WxH' if n == 2 else 'X,Y,W,H'}), "
                          f"e.g. {'32x32' if n == 2 else '96,94,32,34'}")
    return vals


def default_grid(w: int, h: int) -> tuple[int, int, str]:
    """(grid width, grid height, why) for a region of w x h pixels, by the rule above."""
    longest = max(w, h)
    if longest <= MAX_NATIVE:
        return w, h, "native resolution"
    f = math.ceil(longest / MAX_NATIVE)
    return math.ceil(w / f), math.ceil(h / f), f"region pooled {f}x{f} (longest side <= {MAX_NATIVE})"


def margin_for(w: int, h: int) -> int:
    return max(2, math.ceil(max(w, h) / 8))


#: Samples tried, in order, to read a dataset's sensor from when its files have no header that says it.
SENSOR_TRIES = 200


def sensor_of(ds) -> tuple[tuple[int, int], str]:
    """A Dataset's sensor (width, height), and where it was read: the file headers, else a decoded sample."""
    if ds.sensor_size is not None:
        return (int(ds.sensor_size[0]), int(ds.sensor_size[1])), "from the file headers"
    last = None
    for s in ds.samples[:SENSOR_TRIES]:  # an empty or damaged first file is skipped, as training skips it
        try:
            b = s.load()
        except InputError as exc:
            last = exc
            continue
        return (b.width, b.height), "from a decoded sample"
    raise InputError(f"{ds}: none of its first {min(len(ds.samples), SENSOR_TRIES)} samples could be read to know "
                     f"the sensor" + (f" (last error: {last})" if last else ""))


def check_sensors(datasets) -> None:
    """InputError (one line) when `train`'s --data folders hold recordings of different sensor sizes: the first
    folder decides the input map, and the pixels of another sensor mean other places in the scene."""
    first, _ = sensor_of(datasets[0])
    for ds in datasets[1:]:
        other, _ = sensor_of(ds)
        if other != first:
            raise InputError(f"--data {ds.name}: recordings of a {other[0]}x{other[1]} sensor, but {datasets[0].name} "
                             f"holds {first[0]}x{first[1]} ones; train on one sensor's recordings at a time "
                             "(a model reads the pixels of one sensor)")


def choose_input(ds, *, roi=None, grid=None, polarities: int | None = None, max_samples: int = 64) -> InputChoice:
    """The input map for a Dataset (see the module docstring); `roi` (x0, y0, w, h) and `grid` (W, H) override."""
    from ..io.region import active_region

    region = None
    sensor, sensor_from = sensor_of(ds)
    if roi is not None:
        box, roi_from = tuple(int(v) for v in roi), "--roi"
    elif max(sensor) <= MAX_NATIVE:
        box, roi_from = (0, 0, *sensor), "the whole sensor: it is small"
    else:
        region = active_region(ds, max_samples=max_samples)
        m = margin_for(region.width, region.height)
        box = region.padded(m).box
        roi_from = f"active region {region.width}x{region.height} + {m} px margin"
    p = 2 if polarities is None else int(polarities)
    if grid is not None:
        gw, gh = (int(v) for v in grid)
        grid_from = "--grid"
    else:
        gw, gh, grid_from = default_grid(box[2], box[3])
    if polarities is not None:
        grid_from += f", --polarities {p}"
    return InputChoice(InputMap(sensor, box, (gw, gh, p)), sensor_from, roi_from, grid_from)


def is_small(n_train: int, n_classes: int) -> bool:
    """True when the training split has fewer than SMALL_PER_CLASS samples per class (mean)."""
    return n_train < SMALL_PER_CLASS * max(1, n_classes)


def choose_augment(asked: bool | None, learning: str | None) -> tuple[dict | None, str]:
    """The training stream's variations (a copy of AUGMENT) or None, and what `train` adds about them: `asked`
    (--augment / --no-augment) wins; else on, except for learning "timing" (defaults.TIMING_AUGMENT)."""
    if asked is None and learning == "timing":
        return (dict(AUGMENT) if defaults.TIMING_AUGMENT else None), " (the default for learning timing)"
    return (dict(AUGMENT) if asked is not False else None), ""


def choose_stream(datasets, asked: bool | None, window_us: int, max_samples: int = 16) -> tuple[bool, str]:
    """Whether `train` uses the stream transforms (time crops and crossings), and why.

    `asked` (--stream-crops / --no-stream-crops) wins. Otherwise they are on when the training samples
    last at least one live window (`window_us`): only then does a window hold part of a sample, and a
    crossing the end of one and the start of the next. Samples shorter than a window (card pips of a
    few milliseconds) would be cropped to themselves, and a crossing window would hold two whole samples
    of different classes under one label: then they are off. The median length of up to `max_samples`
    training samples, spread over the first dataset, decides (unreadable ones are passed over).
    """
    if asked is not None:
        return bool(asked), "--stream-crops" if asked else "--no-stream-crops"
    median = median_length_us(datasets, max_samples)
    if median is None:
        return True, "no training sample could be read to measure"
    on = median >= window_us
    why = (f"samples last {median / 1000:.0f} ms (median of up to {max_samples} in the first folder), "
           f"{'at least' if on else 'less than'} "
           f"a {window_us // 1000} ms live window")
    return on, why


def median_length_us(datasets, max_samples: int = 16) -> float | None:
    """Median duration (µs) of up to `max_samples` training samples spread over the first dataset (all its
    samples when it has no train split); unreadable ones are passed over; None when none could be read."""
    samples = [s for ds in datasets[:1] for s in ds.samples if s.split == "train"] or list(datasets[0].samples)
    step = max(1, len(samples) // max_samples)
    lengths = []
    for s in samples[::step][:max_samples]:
        try:
            t = s.load().events["t"]
        except InputError:
            continue
        if len(t):
            lengths.append(int(t[-1]) - int(t[0]))
    return float(np.median(lengths)) if lengths else None


#: The leak's time constant a temporal network gets by default: this share of the median training sample's
#: length, within [MIN_TAU_US, MAX_TAU_DEFAULT_US]. Measured on the order-only task (benchmarks/ordertask.py,
#: 600 ms samples, a dense network after 3 epochs): tau 30 / 100 / 200 / 300 ms gave 47 / 57 / 37 / 17 % on
#: its test split; a longer leak let fewer units recover from inhibition and the network fell nearly silent.
TAU_SHARE = 1 / 6
MIN_TAU_US, MAX_TAU_DEFAULT_US = 10_000.0, 2_000_000.0


def choose_tau(median_us: float | None, asked_ms: float | None, learning: str,
               delay_us: int = 0, delay_share: float | None = None) -> tuple[float | None, str]:
    """The network's leak time constant (µs, or None: no leak) for `train`, and why.

    `asked_ms` (--tau-ms; 0: no leak) wins. A learning rule that learns from timing (``membrane``) needs a
    leak: it gets TAU_SHARE of the median training sample's length `median_us` (bounded, whole ms), or, when
    the input has delayed copies `delay_us` apart, `delay_share` (default DELAY_TAU_SHARE; `--choose` may try
    another, `choose.LEAKS`) of that delay. Other rules learn without a leak by default.
    """
    from ..snn.settings import TEMPORAL_MODES

    if asked_ms is not None:
        return (float(asked_ms) * 1000.0 if asked_ms > 0 else None), "--tau-ms"
    if learning not in TEMPORAL_MODES:
        return None, f"learning {learning} needs none"
    if delay_us:
        k = DELAY_TAU_SHARE if delay_share is None else delay_share
        tau = float(round(max(MIN_TAU_US, k * delay_us), -3))
        return tau, f"1/{1 / k:.0f} of the input delay, {delay_us / 1000:g} ms"
    if not median_us:
        return 100_000.0, "no training sample to measure; 100 ms"
    tau = float(round(min(MAX_TAU_DEFAULT_US, max(MIN_TAU_US, TAU_SHARE * median_us)), -3))
    return tau, f"1/{1 / TAU_SHARE:.0f} of the median training sample's length, {median_us / 1000:.0f} ms"


#: Input delays a network gets when the training split needs time (`learn.timecheck`): DELAY_COPIES copies of
#: every input unit, DELAY_SHARE of the median training sample's length apart (so the copies span a sample:
#: "now, a third of a sample ago, two thirds ago"), bounded like the leak. See `snn.delays`.
DELAY_COPIES = 3
DELAY_SHARE = 1 / 3
#: With delays the leak only keeps each copy recent (the copies keep the order): a quarter of the delay. On the
#: order-only task (3/4 of its training split, scored on the last quarter; 20 epochs) a leak of 1/4 of the delay
#: (50 ms) gave 100 % of whole samples and 95-100 % of last stream decisions over seeds 0-2; 1/2 (100 ms, the
#: TAU_SHARE leak) 100 % and 76 / 74 % (seeds 0, 1): a longer leak carries the previous sample into the next
#: one's decision. Without delays (tau 100 ms, seed 0): 62 % and 62 %.
#: Re-checked with membrane's spike price on the counts (x4): synthetic gestures (`synth --gestures --count 40`,
#: every fourth training sample held out, 40 epochs, seeds 0 / 1 / 2): 1/4 (82 ms) 91 / 93 % whole (last decision
#: 89 / 86 %), 1/3 (109 ms, seed 0) 93 % (92 %), 1/2 (164 ms) 96 / 96 / 99 % (last 86 / 81 / 86 %; fewer spikes,
#: 0.55-0.8 per input event in the first layer against 1.2-1.9); but on the order-only task (every fourth training
#: sample held out, seed 0) 1/2 (100 ms) kept 100 % of whole samples and only 64 % of last decisions, 1/3 (67 ms)
#: 100 % and 91 %, 1/4 (50 ms) 100 % and 99 %. Neither share fits both: gestures want the longer leak, order the
#: shorter. So 1/4 stays the default and `train --choose` (learn/choose.py) tries 1/2 on held-out training
#: samples, taking it only when it is better on whole samples or on their last decisions played as one stream,
#: and worse on neither (until 2026-12-07: strictly better on whole samples, no worse on last decisions).
#: Measured so (leak coordinate alone, 40 epochs at most, seed 0, the default network):
#: order task 1/4 100 % whole and 100 % last decisions, 1/2 100 % and 78 %: 1/4 kept; gestures (`--count 40`)
#: 1/4 94 % (86 %), 1/2 97 % (80 %): 1/4 kept too, the longer leak losing live what it gains on whole samples.
DELAY_TAU_SHARE = 1 / 4


def choose_delays(median_us: float | None, asked: int | None, asked_ms: float | None,
                  needed: bool, unprobed: str | None = None) -> tuple[int, int, str]:
    """(copies, delay in µs, why) of the input delays for `train`: `asked` (--delays; 1: none) and `asked_ms`
    (--delay-ms) win; otherwise DELAY_COPIES copies DELAY_SHARE of the median training sample's length
    `median_us` apart when the data `needed` time (the probe), else none; `unprobed`: why there was no probe
    (the reason given for no delays then)."""
    copies = int(asked) if asked is not None else (DELAY_COPIES if needed or asked_ms else 1)
    if copies <= 1:
        return 1, 0, "--delays" if asked is not None else (unprobed or "the data do not need time")
    if asked_ms is not None:
        return copies, int(round(float(asked_ms) * 1000.0)), "--delay-ms"
    why = "--delays; " if asked is not None else "the data need time; "
    if not median_us:
        return copies, 100_000, why + "no training sample to measure; 100 ms"
    d = float(round(min(MAX_TAU_DEFAULT_US, max(MIN_TAU_US, DELAY_SHARE * median_us)), -3))
    return copies, int(d), why + (f"1/{1 / DELAY_SHARE:.0f} of the median training sample's length, "
                                  f"{median_us / 1000:.0f} ms")
