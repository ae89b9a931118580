"""Datasets: how long listing, `info` and the first sample take on 10,000-sample datasets of every layout."""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import ROOT, Context, NotMeasurable, Result

N = 10_000


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)


def build(where: Path, data: Path, n: int) -> dict[str, str]:
    """n-sample datasets of every layout from the real shared files (symlinks; one written AEDAT4)."""
    from streamsnn.io import read_events
    from streamsnn.io.labellists import read_label_list

    nmnist = data / "nmnist_small"
    labels = [*read_label_list(nmnist / "train1K.txt").items(), *read_label_list(nmnist / "test100.txt").items()]
    poker = sorted((data / "poker_dvs_inverted").rglob("*.aedat"))
    if not labels or not poker:
        raise NotMeasurable(f"real data not found in {data}")
    out = {}
    # N-MNIST class folders and tonic's NMNIST layout: Train|Test/<digit>/<k>.bin
    for k in range(n):
        sample_id, digit = labels[k % len(labels)]
        split = "Train" if k % 10 else "Test"
        _link(nmnist / f"{sample_id}.bs2", where / "tonic" / "NMNIST" / split / str(digit) / f"{k}.bin")
    out["class folders, N-MNIST .bin"] = str(where / "tonic" / "NMNIST")
    out["tonic:NMNIST"] = f"tonic:NMNIST:{where / 'tonic'}"
    # flat: <k>.bs2 with train/test label lists
    flat = where / "flat"
    rows = {"train": [], "test": []}
    for k in range(n):
        sample_id, digit = labels[k % len(labels)]
        _link(nmnist / f"{sample_id}.bs2", flat / f"{k}.bs2")
        rows["train" if k % 10 else "test"].append(f"{k}\t{digit}")
    for split, lines in rows.items():
        (flat / f"{split}.txt").write_text("#sample #class\n" + "\n".join(lines) + "\n")
    out["flat with label lists, N-MNIST .bs2"] = str(flat)
    # POKER-DVS class folders (AEDAT 2.0), and the same files as unlabelled recordings
    for k in range(n):
        f = poker[k % len(poker)]
        _link(f, where / "poker" / ("Train" if k % 10 else "Test") / f.parent.name / f"{k}.aedat")
        _link(f, where / "unlabelled" / f"{k:05d}.aedat")
    out["class folders, AEDAT 2.0"] = str(where / "poker")
    out["unlabelled recordings, AEDAT 2.0"] = str(where / "unlabelled")
    # labelled recordings: 100 recordings of 100 samples each (one real AEDAT4 of 100 N-MNIST samples)
    import dv_processing as dv

    from streamsnn.sources._dv import array_to_store

    parts, csv, at = [], [], 0
    for sample_id, digit in labels[:100]:
        ev = read_events(nmnist / f"{sample_id}.bs2").events.copy()
        ev["t"] += at - int(ev["t"][0])
        csv.append(f"{digit},{int(ev['t'][0])},{int(ev['t'][-1]) + 1}")
        parts.append(ev)
        at = int(ev["t"][-1]) + 50_000
    rec = where / "rec.aedat4"  # outside the dataset folder; each recording there links to it
    writer = dv.io.MonoCameraWriter(str(rec), dv.io.MonoCameraWriter.EventOnlyConfig("bench", (34, 34)))
    writer.writeEvents(array_to_store(np.concatenate(parts)))
    del writer  # closes the file
    for k in range(n // 100):
        folder = where / "labelled" / ("Train" if k % 10 else "Test")
        _link(rec, folder / f"user{k:03d}.aedat4")
        (folder / f"user{k:03d}_labels.csv").write_text("class,start_us,end_us\n" + "\n".join(csv) + "\n")
    out["labelled recordings, AEDAT4 + CSV"] = str(where / "labelled")
    return out


def _timed(fn, repeats: int) -> tuple[float, object]:
    times, value = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), value


async def _first_batch(path: str) -> None:
    from streamsnn.sources.files import ReplaySource

    src = ReplaySource(path, speed=0, limit=1)
    async with src:
        async for _ in src:
            break
    await src.aclose()


def run(ctx: Context) -> Result:
    from streamsnn.commands.info import describe
    from streamsnn.io import open_dataset

    n = 2_000 if ctx.quick else N
    repeats = 1 if ctx.quick else 3
    r = Result("datasets", f"Datasets: listing {n:,} samples per layout (nothing decoded)")
    where = Path(tempfile.mkdtemp(prefix="streamsnn-bench-datasets-"))
    try:
        t = time.perf_counter()
        layouts = build(where, ctx.data, n)
        r.note(f"Built the {len(layouts)} datasets (symlinks to the shared files) in {time.perf_counter() - t:.1f} s.")
        open_dataset(next(iter(layouts.values())))  # imports, once
        rows = []
        for name, path in layouts.items():
            t_open, ds = _timed(lambda p=path: open_dataset(p), repeats)
            t_info, info = _timed(lambda p=path: describe(p), repeats)
            t_first, _ = _timed(lambda p=path: asyncio.run(_first_batch(p)), repeats)
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "streamsnn", "info", path, "--json"], cwd=ROOT,
                                  capture_output=True, text=True, timeout=600,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
            t_cli = time.perf_counter() - t
            if proc.returncode != 0:
                raise RuntimeError(f"streamsnn info {path} failed: {proc.stderr.strip()}")
            rows.append([name, len(ds), ds.layout, round(t_open, 3), round(t_info, 3), round(t_first, 3),
                         round(t_cli, 2), "yes" if info["events"] is not None else "no"])
            r.metric(f"{name}: open_dataset", t_open, "s")
            r.metric(f"{name}: `streamsnn info --json` as a command (interpreter start included)", t_cli, "s",
                     target="seconds", met=t_cli < 10)
        r.table(f"{n:,} samples per layout (median of {repeats}; the CLI once)",
                ["layout", "samples", "layout name", "open_dataset s", "info (in process) s",
                 "replay: open + first sample s", "`streamsnn info` command s", "event count without decoding"],
                rows)
        r.note("Files are symlinks to the real shared recordings in a temporary folder, so the page cache is "
               "warm; the first listing of a cold disk adds its directory reads. The command's time includes "
               "starting Python and its imports.")
    finally:
        shutil.rmtree(where, ignore_errors=True)
    return r
