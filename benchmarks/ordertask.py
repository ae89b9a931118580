"""An order-only task from real DVS128 recordings: six classes with the same events per pixel, told apart only by order.

Three real segments A, B, C (`segment_ms` each) are cut from three different BioLab object recordings
(`biolab_objects`, DVS128 128x128), one recording per letter. Each draw of (A, B, C) gives one sample
per class, the class being the order in which the three segments are played: ABC, ACB, BAC, BCA, CAB,
CBA. Each segment keeps its own timing and starts where the previous one ends, so the six samples of a
draw hold exactly the same events (x, y, polarity) and differ only in time: a model that counts events
per pixel is at chance (1/6) by construction, while one that sees order can be right every time.
Training draws come from the recordings' `Train/` files (their first 70 %), test draws from `Test/`
(the last 30 %), so no test event was seen in training.

The folder is `Train/<class>/<class>_<draw>.aedat4` and `Test/<class>/...` (AEDAT4, 128x128), which
`streamsnn train --data DIR` reads unchanged, and `ordertask.json` (the settings and every segment's
source). Baselines (scikit-learn, the `bench` extra): logistic regression on per-pixel counts (order-
blind) and on per-pixel counts in three equal time bins.

    python -m benchmarks.ordertask --out /tmp/order [--per-class-train 60 --per-class-test 30 --seed 0]
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from streamsnn.errors import StreamsnnError

from .common import DATA

#: Class name -> the order of the three segments.
CLASSES = {"".join(p): p for p in itertools.permutations("ABC")}
#: The BioLab recordings the three segments come from, by default (A, B, C).
SOURCES = ("box", "mouse", "phone")
SENSOR = (128, 128)
MANIFEST = "ordertask.json"


def load_sources(data: Path, sources=SOURCES) -> dict[str, list[np.ndarray]]:
    """split ('train', 'test') -> the events of each source recording (Train/ and Test/ of biolab_objects)."""
    from streamsnn.io import read_events

    root = Path(data) / "biolab_objects"
    out = {}
    for split in ("train", "test"):
        out[split] = [read_events(root / split.capitalize() / f"{name}.aedat").events for name in sources]
    return out


def cut(events: np.ndarray, start: int, length: int) -> np.ndarray:
    """Events with start <= t < start + length, timed from 0 (their own timing kept)."""
    t = events["t"]
    lo, hi = np.searchsorted(t, [start, start + length])
    seg = events[lo:hi].copy()
    seg["t"] -= start
    return seg


def draw(rng: np.random.Generator, recordings: list[np.ndarray], length: int, min_events: int,
         tries: int = 100) -> list[tuple[int, np.ndarray]]:
    """One (start, segment) per recording: a random window of `length` us holding >= min_events events."""
    out = []
    for k, ev in enumerate(recordings):
        t0, t1 = int(ev["t"][0]), int(ev["t"][-1])
        if t1 - t0 < length:
            raise ValueError(f"source {k} lasts {(t1 - t0) / 1e3:.0f} ms, shorter than a {length / 1e3:.0f} ms segment")
        for _ in range(tries):
            start = int(rng.integers(t0, t1 - length + 1))
            seg = cut(ev, start, length)
            if len(seg) >= min_events:
                break
        else:
            raise ValueError(f"source {k}: no {length / 1e3:.0f} ms window with {min_events} events in {tries} tries")
        out.append((start, seg))
    return out


def compose(segments: list[np.ndarray], order: str, length: int) -> np.ndarray:
    """The segments played in `order` ('BCA': B, then C, then A), each starting `length` us after the last."""
    parts = []
    for k, letter in enumerate(order):
        seg = segments["ABC".index(letter)].copy()
        seg["t"] += k * length
        parts.append(seg)
    return np.concatenate(parts)


def pixel_counts(events: np.ndarray, width: int = SENSOR[0], height: int = SENSOR[1]) -> np.ndarray:
    """Events per (polarity, y, x): what a counting model sees."""
    flat = (events["p"].astype(np.int64) * height + events["y"]) * width + events["x"]
    return np.bincount(flat, minlength=2 * width * height)


def write_aedat4(path: Path, events: np.ndarray) -> None:
    """Write one sample as AEDAT4 (dv-processing's writer, 128x128)."""
    import dv_processing as dv

    from streamsnn.sources._dv import array_to_store

    # dv-processing aborts the process on a name not ending in .aedat4, so no temporary name: the manifest,
    # written last, marks a finished folder.
    writer = dv.io.MonoCameraWriter(str(path), dv.io.MonoCameraWriter.EventOnlyConfig("DVS128_order", SENSOR))
    writer.writeEvents(array_to_store(events))
    del writer  # closes the file


def clear(out: Path) -> None:
    """Make out an empty folder: a task written here before is removed; any other content is refused."""
    if out.exists() and any(out.iterdir()):
        if not (out / MANIFEST).is_file():
            raise ValueError(f"{out}: not empty and not an order task written before; pick a new folder")
        (out / MANIFEST).unlink()
        for split in ("Train", "Test"):
            shutil.rmtree(out / split, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def make_order_task(out_dir, *, per_class_train: int = 60, per_class_test: int = 30, seed: int = 0,
                    segment_ms: float = 200, sources=SOURCES, data: Path = DATA, min_events: int = 300,
                    log=None) -> dict:
    """Write the order-only task into out_dir (see the module doc); returns the manifest it writes.

    `per_class_*` draws per split, each giving one sample per class; deterministic for `seed`.
    """
    if len(sources) != 3 or len(set(sources)) != 3:
        raise ValueError(f"sources: three different BioLab recordings, got {sources!r}")
    root = Path(data) / "biolab_objects"
    known = sorted(f.stem for f in (root / "Train").glob("*.aedat"))
    missing = [n for n in sources if n not in known or not (root / "Test" / f"{n}.aedat").is_file()]
    if missing:
        raise ValueError(f"sources: no {', '.join(missing)} in {root} (Train/ and Test/); pick three of "
                         f"{', '.join(known) or 'its recordings'}")
    out = Path(out_dir)
    length = int(round(segment_ms * 1000))
    clear(out)
    recs = load_sources(Path(data), sources)
    rng = np.random.default_rng(seed)
    manifest = {"task": "order-only", "classes": list(CLASSES), "sources": list(sources), "seed": seed,
                "segment_us": length, "sensor": list(SENSOR), "min_events": min_events,
                "draws": {"train": [], "test": []}}
    for split, n in (("train", per_class_train), ("test", per_class_test)):
        for name in CLASSES:
            (out / split.capitalize() / name).mkdir(parents=True, exist_ok=True)
        for d in range(n):
            picked = draw(rng, recs[split], length, min_events)
            segments = [seg for _, seg in picked]
            first = None
            for name, order in CLASSES.items():
                ev = compose(segments, order, length)
                counts = pixel_counts(ev)
                if first is None:
                    first = counts
                assert np.array_equal(counts, first), "the classes of one draw must hold the same events per pixel"
                write_aedat4(out / split.capitalize() / name / f"{name}_{d:04d}.aedat4", ev)
            manifest["draws"][split].append([{"source": sources[k], "start_us": s, "end_us": s + length,
                                              "events": len(seg)} for k, (s, seg) in enumerate(picked)])
            if log and (d + 1) % max(1, n // 4) == 0:
                log(f"ordertask: {split} {d + 1}/{n} draws ({6 * (d + 1)} samples)")
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def features(events: np.ndarray, bins: int, pool: int = 4) -> np.ndarray:
    """log(1 + events) per (time bin, polarity, pooled pixel): `bins` equal slices of the sample's span."""
    t = events["t"].astype(np.int64)
    t = t - t[0]
    b = np.minimum(t * bins // (int(t[-1]) + 1), bins - 1)
    w, h = SENSOR[0] // pool, SENSOR[1] // pool
    flat = ((b * 2 + events["p"]) * h + events["y"] // pool) * w + events["x"] // pool
    return np.log1p(np.bincount(flat, minlength=bins * 2 * w * h).astype(np.float64))


def baselines(folder, *, pool: int = 4, seed: int = 0) -> dict[str, float]:
    """Test accuracy of logistic regression on per-pixel counts ('counts', order-blind) and on counts in three
    equal time bins ('time_bins'); the samples read back through streamsnn's dataset reader."""
    from sklearn.linear_model import LogisticRegression

    from streamsnn.io.dataset import open_dataset

    ds = open_dataset(folder)
    loaded = {split: [(s.load().events, s.label) for s in ds.split(split).samples] for split in ("train", "test")}
    out = {}
    for key, bins in (("counts", 1), ("time_bins", 3)):
        x = {sp: np.stack([features(ev, bins, pool) for ev, _ in v]) for sp, v in loaded.items()}
        y = {sp: np.array([lab for _, lab in v]) for sp, v in loaded.items()}
        model = LogisticRegression(max_iter=2000, random_state=seed).fit(x["train"], y["train"])
        out[key] = float((model.predict(x["test"]) == y["test"]).mean())
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ordertask", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="dataset folder to write")
    ap.add_argument("--per-class-train", type=int, default=60, help="training draws (samples per class)")
    ap.add_argument("--per-class-test", type=int, default=30, help="test draws (samples per class)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--segment-ms", type=float, default=200, help="length of each of the three segments")
    ap.add_argument("--sources", default=",".join(SOURCES), help="three BioLab recordings for A,B,C")
    ap.add_argument("--data", type=Path, default=DATA, help="the shared data folder (holds biolab_objects/)")
    ap.add_argument("--no-baselines", action="store_true", help="skip the scikit-learn baselines")
    a = ap.parse_args(argv)
    if not (a.data / "biolab_objects").is_dir():
        print(f"ordertask: {a.data / 'biolab_objects'}: not found; pass --data with the shared data folder",
              file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        m = make_order_task(a.out, per_class_train=a.per_class_train, per_class_test=a.per_class_test,
                            seed=a.seed, segment_ms=a.segment_ms, sources=tuple(a.sources.split(",")),
                            data=a.data, log=print)
    except (ValueError, OSError, StreamsnnError) as exc:
        print(f"ordertask: {exc}", file=sys.stderr)
        return 2
    n = {sp: 6 * len(v) for sp, v in m["draws"].items()}
    ev = [g["events"] for v in m["draws"].values() for draw_ in v for g in draw_]
    print(f"ordertask: wrote {n['train']} training and {n['test']} test samples (6 classes, A,B,C = "
          f"{', '.join(m['sources'])}, {m['segment_us'] / 1e3:.0f} ms segments, {np.mean(ev) * 3:.0f} events per "
          f"sample on average) to {a.out} in {time.perf_counter() - t0:.1f} s")
    if not a.no_baselines:
        b = baselines(a.out, seed=a.seed)
        print(f"ordertask: logistic regression on per-pixel counts {100 * b['counts']:.1f} % (chance 16.7 %), "
              f"on counts in 3 time bins {100 * b['time_bins']:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
