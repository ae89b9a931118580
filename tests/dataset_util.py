"""Test datasets built in tmp from the real shared data: AEDAT4 class folders on a bigger sensor, labelled
recordings, tonic layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import need

from streamsnn.io import read_events
from streamsnn.io.labellists import read_label_list

#: A simulated sensor bigger than N-MNIST's, and where the 34x34 samples are put on it.
BIG_SENSOR = (96, 72)
OFFSET = (40, 20)
#: Absolute start of the labelled recording (microseconds, like a DV recording's UNIX-time clock).
T0 = 1_605_507_430_000_000


def nmnist_picks(split: str, n: int) -> list[tuple[str, int]]:
    """The first n (sample id, digit) pairs of a split of nmnist_small."""
    src = need("nmnist_small")
    labels = read_label_list(src / ("train1K.txt" if split == "train" else "test100.txt"))
    return list(labels.items())[:n]


def nmnist_events(sample_id: str) -> np.ndarray:
    return read_events(need("nmnist_small") / f"{sample_id}.bs2").events


def write_aedat4(path: Path, events: np.ndarray, size: tuple[int, int]) -> None:
    """Write events (EVENT_DTYPE) as an AEDAT4 file with dv-processing's MonoCameraWriter."""
    import dv_processing as dv

    writer = dv.io.MonoCameraWriter(str(path), dv.io.MonoCameraWriter.EventOnlyConfig("DVXplorer_test", size))
    store = dv.EventStore()
    for t, x, y, p in zip(events["t"].tolist(), events["x"].tolist(), events["y"].tolist(), events["p"].tolist()):
        store.push_back(t, x, y, bool(p))
    writer.writeEvents(store)
    del writer  # closes the file


def shifted(events: np.ndarray, dx: int = OFFSET[0], dy: int = OFFSET[1], dt: int = 0) -> np.ndarray:
    out = events.copy()
    out["x"] += dx
    out["y"] += dy
    out["t"] += dt
    return out


def aedat4_class_folders(root: Path, n_train: int = 6, n_test: int = 4) -> dict[str, tuple[str, int]]:
    """Train/<digit>/<id>.aedat4 and Test/<digit>/<id>.aedat4 from real N-MNIST samples put on a
    96x72 sensor at offset (40, 20). Returns {sample id: (split, digit)}."""
    written = {}
    for split, n in (("train", n_train), ("test", n_test)):
        for sample_id, digit in nmnist_picks(split, n):
            d = root / split.capitalize() / str(digit)
            d.mkdir(parents=True, exist_ok=True)
            write_aedat4(d / f"{sample_id}.aedat4", shifted(nmnist_events(sample_id)), BIG_SENSOR)
            written[sample_id] = (split, digit)
    return written


def labelled_recording(folder: Path, name: str, picks: list[tuple[str, int]], gap_us: int = 50_000,
                       header: bool = True) -> list[tuple[str, int, int, np.ndarray]]:
    """One AEDAT4 recording of real N-MNIST samples back to back (gap_us apart, absolute times from T0)
    and its `<name>_labels.csv`. Returns (class, start_us, end_us, events) per sample, in order."""
    folder.mkdir(parents=True, exist_ok=True)
    parts, rows, at = [], [], T0
    for sample_id, digit in picks:
        ev = nmnist_events(sample_id)
        ev = shifted(ev, 0, 0, at - int(ev["t"][0]))
        start, end = int(ev["t"][0]), int(ev["t"][-1]) + 1
        rows.append((str(digit), start, end, ev))
        parts.append(ev)
        at = end + gap_us
    write_aedat4(folder / f"{name}.aedat4", np.concatenate(parts), (34, 34))
    lines = (["class,startTime_usec,endTime_usec"] if header else []) + [f"{c},{s},{e}" for c, s, e, _ in rows]
    (folder / f"{name}_labels.csv").write_text("\n".join(lines) + "\n")
    return rows


def poker_files() -> list[Path]:
    return sorted(need("poker_dvs_inverted").rglob("*.aedat"))


def tonic_nmnist_links(root: Path, per_split: int) -> None:
    """tonic's N-MNIST layout under root (`NMNIST/{Train,Test}/<digit>/<id>.bin`), `per_split` real samples
    of each split linked from nmnist_small."""
    src = need("nmnist_small")
    for split, folder in (("train", "Train"), ("test", "Test")):
        for sample_id, digit in nmnist_picks(split, per_split):
            d = root / "NMNIST" / folder / str(digit)
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{sample_id}.bin").symlink_to(src / f"{sample_id}.bs2")
