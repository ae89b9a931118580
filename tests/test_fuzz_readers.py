"""Seeded, bounded fuzz of every reader: each mutant of a real file ends in a plausible EventBatch or in one
InputError line naming it, within the decode deadline, and no decoder prints on our stderr.

Mutants of real files (N-MNIST .bs2, AEDAT4, DVS128 AEDAT 2.0, Prophesee EVT2 and EVT3): truncations,
bit flips in the header, byte changes in the body, absurd sizes, wrong magic, a file appended to
itself, random bytes with the right extension, a valid header before random bytes. The default run
tries two mutants of each kind per format; the slow run 40 per format, drawn at random with more
weight on truncations and damaged bytes (about one in five AEDAT4 body changes hangs dv-processing,
so the slow run also exercises the deadline).
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import need

from streamsnn.errors import InputError
from streamsnn.events import MAX_SENSOR_SIDE
from streamsnn.io import DecodeLimits, read_events

BASES = {
    "nmnist": "nmnist_small/1.bs2",
    "aedat4": "recordings/tonic_sample.aedat4",
    "aedat2": "recordings/dvs128_aedat2/alex_walking_again.aedat",
    "evt2": "recordings/prophesee_evt2_sample.raw",
    "evt3": "recordings/prophesee_evt3_sample.raw",
}
#: Short deadlines keep the stuck mutants cheap (a genuine 2 MB file decodes in ~50 ms here; a decode
#: that overran on a loaded machine would still end in one line, which the fuzz accepts).
LIMITS = DecodeLimits(timeout_s=1.0, s_per_mb=0.5, memory_mb=512, memory_per_mb=100)
SLACK_S = 30.0  # a mutant must end by its deadline plus this (the worker is killed, never waited for)


def header_end(fmt: str, data: bytes) -> int:
    """Where the header ends in an unmutated file (for flips aimed at the header or the body)."""
    if fmt == "aedat4":
        return 18 + struct.unpack_from("<i", data, 14)[0]
    if fmt in ("evt2", "evt3", "aedat2"):
        mark, pos = (b"#", 0) if fmt == "aedat2" else (b"%", 0)
        while data[pos:pos + 1] == mark:
            pos = data.index(b"\n", pos) + 1
        return pos
    return 0


def _truncate(fmt, data, h, rng):
    return data[:int(rng.integers(1, h + 64)) if rng.random() < 0.5 and h else int(rng.integers(1, len(data)))]


def _flip_header(fmt, data, h, rng):
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        i = int(rng.integers(0, max(h, 50)))
        out[i] ^= 1 << int(rng.integers(0, 8))
    return bytes(out)


def _change_body(fmt, data, h, rng):
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        out[int(rng.integers(h, len(data)))] = int(rng.integers(0, 256))
    return bytes(out)


def _absurd_size(fmt, data, h, rng):
    huge = int(rng.choice([0, 2**31 - 1, 99_999_999, MAX_SENSOR_SIDE + 1]))
    if fmt == "aedat4":
        if rng.random() < 0.5:
            return data[:14] + struct.pack("<i", int(rng.choice([-1, 0, 2**31 - 1, 2 * len(data)]))) + data[18:]
        return data.replace(b'"sizeX" type="int">320<', f'"sizeX" type="int">{huge}<'.encode())
    if fmt in ("evt2", "evt3"):
        line = rng.choice([f"% geometry {huge}x{huge}\n", f"% format EVT3;height={huge};width=640\n"])
        return line.encode() + data
    if fmt == "aedat2":  # a header line longer than any jAER writes
        return data[:h] + b"# " + b"x" * ((1 << 20) + 10) + b"\r\n" + data[h:]
    out = np.frombuffer(data, np.uint8).copy().reshape(-1, 5)  # N-MNIST: pixels far off the 34x34 sensor
    out[rng.integers(0, len(out), 3), int(rng.integers(0, 2))] = 255
    return out.tobytes()


def _wrong_magic(fmt, data, h, rng):
    return rng.integers(0, 256, 4, dtype=np.uint8).tobytes() + data[4:]


def _duplicated(fmt, data, h, rng):
    return data + data


def _random_bytes(fmt, data, h, rng):
    return rng.integers(0, 256, int(rng.integers(1, 1 << 16)), dtype=np.uint8).tobytes()


def _header_then_random(fmt, data, h, rng):
    return data[:h] + rng.integers(0, 256, int(rng.integers(1, 1 << 16)), dtype=np.uint8).tobytes()


MUTATIONS = [_truncate, _flip_header, _change_body, _absurd_size, _wrong_magic, _duplicated, _random_bytes,
             _header_then_random]
#: How often the slow run draws each kind.
WEIGHTS = np.array([3, 3, 6, 1, 1, 1, 1, 1], float) / 17


def check_mutant(path: Path, what: str) -> str:
    """Read one mutant; return 'events' or 'error', or fail saying what went wrong."""
    t0 = time.monotonic()
    try:
        batch = read_events(path, limits=LIMITS)
    except InputError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg, f"{what}: not one line: {msg!r}"
        assert str(path) in msg, f"{what}: the error does not name the file: {msg}"
        outcome = "error"
    except Exception as exc:  # anything else escaping a reader is a bug
        pytest.fail(f"{what}: {type(exc).__name__}: {exc}")
    else:
        ev = batch.events
        assert len(ev) and 0 < batch.width <= MAX_SENSOR_SIDE and 0 < batch.height <= MAX_SENSOR_SIDE, what
        assert ev["x"].max() < batch.width and ev["y"].max() < batch.height, f"{what}: event outside the sensor"
        assert np.all(np.diff(ev["t"]) >= 0), f"{what}: time goes back"
        outcome = "events"
    assert time.monotonic() - t0 < LIMITS.deadline_s(path.stat().st_size) + SLACK_S, f"{what}: past its deadline"
    return outcome


def fuzz(fmt: str, tmp_path: Path, capfd, seed: int, n: int, *, weighted: bool) -> dict[str, int]:
    base = need(BASES[fmt])
    data = base.read_bytes()
    h = header_end(fmt, data)
    rng = np.random.default_rng([seed, list(BASES).index(fmt)])
    outcomes = {"events": 0, "error": 0}
    for k in range(n):
        mutate = MUTATIONS[rng.choice(len(MUTATIONS), p=WEIGHTS) if weighted else k % len(MUTATIONS)]
        path = tmp_path / f"{fmt}_{k}_{mutate.__name__.strip('_')}{base.suffix}"
        path.write_bytes(mutate(fmt, data, h, rng))
        outcomes[check_mutant(path, f"{path.name} (seed {seed})")] += 1
        path.unlink()
    err = capfd.readouterr().err
    for said in ("ERROR:", "WARNING: The timestamps", "Stacktrace"):  # decoder prints stay in the worker
        assert said not in err, err[-2000:]
    return outcomes


@pytest.mark.timeout(600)
@pytest.mark.parametrize("fmt", list(BASES))
def test_fuzz_two_mutants_of_each_kind(fmt, tmp_path, capfd):
    outcomes = fuzz(fmt, tmp_path, capfd, seed=2024, n=2 * len(MUTATIONS), weighted=False)
    assert outcomes["error"] >= 8  # wrong magic, duplicates, random bytes and absurd sizes are refused


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("fmt", list(BASES))
def test_fuzz_many_mutants(fmt, tmp_path, capfd):
    fuzz(fmt, tmp_path, capfd, seed=7, n=40, weighted=True)
