"""Seeded fuzz of the checkpoint loader: each mutant of a small real checkpoint loads as a usable network or
ends in one CheckpointError line naming the file, within a memory bound; a few also go through
`streamsnn info` and `streamsnn eval --model` in a subprocess whose address space is capped (RLIMIT_AS), so
an attempted huge allocation fails the test instead of passing unnoticed.

Mutations: byte flips, truncation, a member's .npy header rewritten with another or a huge shape or
dtype, extra members (random bytes, a deflated zip bomb), a deeply nested or damaged JSON config,
absurd config values (learning rates, classes, layers, grid), NaN / infinite / huge counters.
"""

from __future__ import annotations

import io
import json
import math
import resource
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy

from streamsnn.errors import CheckpointError
from streamsnn.snn import SpikingNetwork

MEMORY_MB = 64  # most Python/numpy memory one in-process load of a mutant of a 60 KB file may use
RLIMIT_BYTES = 3 << 30  # address space of a subprocess (the interpreter with numba takes about 0.5 GiB)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> bytes:
    net = SpikingNetwork(arch="conv:2:3:2:1,dense:8", seed=3, classes=["a", "b", "c"])
    rng = np.random.default_rng(0)
    for k in range(4):
        net.learn_indices(rng.integers(0, net.sizes[0], 400).astype(np.int32), k % 3)
    path = net.save(tmp_path_factory.mktemp("base") / "base.npz")
    return path.read_bytes()


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def _zip(files: dict[str, bytes], deflate=()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data, zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED)
    return buf.getvalue()


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _json_of(files, key) -> dict:
    return json.loads(str(np.load(io.BytesIO(files[f"{key}.npy"]))[0]))


def flip_bytes(data, rng):
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        out[int(rng.integers(0, len(out)))] ^= 1 << int(rng.integers(0, 8))
    return bytes(out)


def truncate(data, rng):
    return data[:int(rng.integers(0, len(data)))]


def edit_header(data, rng):
    files = _members(data)
    name = str(rng.choice(sorted(files)))
    body = files[name]
    arr = np.load(io.BytesIO(body))
    shape = [tuple(rng.integers(0, 50, arr.ndim)), (2**40,) * max(arr.ndim, 1), (0,), (10**6, 10**6),
             arr.shape[::-1], (int(arr.size) + 1,)][int(rng.integers(0, 6))]
    descr = str(rng.choice(["<f4", "<f8", ">f4", "<i8", "<c16", "|O", "<U999999999", npy.dtype_to_descr(arr.dtype)]))
    head = io.BytesIO()
    try:
        npy.write_array_header_1_0(head, {"descr": descr, "fortran_order": bool(rng.random() < 0.2),
                                          "shape": tuple(int(s) for s in shape)})
    except ValueError:
        return data
    files[name] = head.getvalue() + arr.tobytes()
    return _zip(files)


def extra_member(data, rng):
    files = _members(data)
    kind = int(rng.integers(0, 3))
    if kind == 0:
        files["junk.npy"] = _npy(np.zeros(int(rng.integers(1, 64)) << 20, np.uint8))
        return _zip(files, deflate=("junk.npy",))
    if kind == 1:
        files[f"weight_{int(rng.integers(0, 99))}.npy"] = rng.integers(0, 256, 500, dtype=np.uint8).tobytes()
        return _zip(files)
    files.update({f"m{k}.npy": b"" for k in range(int(rng.integers(100, 400)))})
    return _zip(files)


def nested_json(data, rng):
    files = _members(data)
    depth = int(rng.integers(20, 200_000))
    key = str(rng.choice(["config", "counters"]))
    text = "[" * depth + "]" * depth if rng.random() < 0.5 else '{"a":' * depth + "0" + "}" * depth
    files[f"{key}.npy"] = _npy(np.array([text]))
    return _zip(files)


def absurd_config(data, rng):
    files = _members(data)
    cfg = _json_of(files, "config")
    choices = [("lr", 1e300), ("lr", math.inf), ("lr_out", math.nan), ("class_lr", [math.inf] * 3),
               ("classes", 10**8), ("classes", [str(k) for k in range(5000)]), ("theta", -1.0),
               ("arch", [{"kind": "dense", "units": 200_000}]), ("arch", [{"kind": "dense", "units": 10**9}]),
               ("arch", "dense:" + "9" * 5000), ("seed", math.inf), ("error_spikes", 2**70),
               ("input_map", {"sensor": [10**5, 10**5], "roi": None, "grid": [10**5, 10**5, 2]}),
               ("input_map", {"sensor": [4096, 4096], "roi": None, "grid": [4096, 4096, 2]}),
               ("tau_us", -5.0), ("learning", ["x"]), ("arch", [[[[[]]]]]), ("input_map", 7)]
    key, value = choices[int(rng.integers(0, len(choices)))]
    cfg[key] = value
    files["config.npy"] = _npy(np.array([json.dumps(cfg)]))
    return _zip(files)


def absurd_counters(data, rng):
    files = _members(data)
    c = _json_of(files, "counters")
    key = str(rng.choice(["samples_seen", "updates", "epochs", "token", "events_seen"]))
    c[key] = [math.nan, math.inf, -math.inf, 1e300, 10**40, -3, "7", None, {"a": 1}][int(rng.integers(0, 9))]
    files["counters.npy"] = _npy(np.array([json.dumps(c)]))
    return _zip(files)


MUTATIONS = [flip_bytes, truncate, edit_header, extra_member, nested_json, absurd_config, absurd_counters]


def check_load(path: Path, what: str) -> str:
    """Load one mutant in-process: 'loaded' (a usable network) or 'refused' (one line naming the file)."""
    tracemalloc.start()
    try:
        net = SpikingNetwork.load(path)
    except CheckpointError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg and str(path) in msg, f"{what}: {msg!r}"
        outcome = "refused"
    except Exception as exc:  # anything else escaping the loader is a defect
        pytest.fail(f"{what}: {type(exc).__name__}: {str(exc)[:300]}")
    else:
        outcome = "loaded"
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MEMORY_MB << 20, f"{what}: used {peak >> 20} MB"
    if outcome == "loaded":
        d = net.predict_indices(np.arange(0, net.sizes[0], 7, dtype=np.int32))
        assert np.all(np.isfinite(d.scores)), what
    return outcome


def _cap_memory():
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = RLIMIT_BYTES if hard == resource.RLIM_INFINITY else min(RLIMIT_BYTES, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def check_cli(path: Path, data_dir: Path, what: str) -> None:
    for cmd in (["info", str(path)], ["eval", "--model", str(path), "--data", str(data_dir), "--limit", "2",
                                      "--quiet"]):
        r = subprocess.run([sys.executable, "-m", "streamsnn", *cmd], capture_output=True, text=True, timeout=180,
                           preexec_fn=_cap_memory)
        err = r.stderr.strip()
        assert r.returncode in (0, 2), f"{what}: {cmd[0]} exit {r.returncode}: {err[-1500:]}"
        assert "Traceback" not in err and "MemoryError" not in err, f"{what}: {cmd[0]}: {err[-1500:]}"
        if r.returncode == 2:
            assert len(err.splitlines()) == 1 and str(path) in err, f"{what}: {cmd[0]}: {err!r}"


def fuzz(base: bytes, folder: Path, seed: int, n: int) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    outcomes = {"loaded": 0, "refused": 0}
    for k in range(n):
        mutate = MUTATIONS[k % len(MUTATIONS)] if k < 2 * len(MUTATIONS) else MUTATIONS[rng.integers(len(MUTATIONS))]
        path = folder / f"m{k}_{mutate.__name__}.npz"
        path.write_bytes(mutate(base, rng))
        outcomes[check_load(path, f"{path.name} (seed {seed})")] += 1
        path.unlink()
    return outcomes


def test_fuzz_checkpoints_in_process(base, tmp_path):
    outcomes = fuzz(base, tmp_path, seed=17, n=42)
    assert outcomes["refused"] >= 30, outcomes  # nearly every mutant is damaged; some flips hit unused bytes


def test_fuzz_checkpoints_through_the_cli(base, tmp_path, nmnist_dir):
    rng = np.random.default_rng(5)
    for mutate in (edit_header, absurd_config, nested_json):
        path = tmp_path / f"{mutate.__name__}.npz"
        path.write_bytes(mutate(base, rng))
        check_cli(path, nmnist_dir, f"{path.name} (seed 5)")
    path = tmp_path / "huge.npz"  # a declared terabyte array: refused before any allocation
    files = _members(base)
    head = io.BytesIO()
    npy.write_array_header_1_0(head, {"descr": "<f4", "fortran_order": False, "shape": (2**20, 2**20)})
    files["weight_0.npy"] = head.getvalue()
    path.write_bytes(_zip(files))
    check_cli(path, nmnist_dir, "huge.npz")


@pytest.mark.slow
def test_fuzz_checkpoints_many(base, tmp_path, nmnist_dir):
    for seed in range(2):
        fuzz(base, tmp_path, seed=1000 + seed, n=100)
    rng = np.random.default_rng(99)
    for k, mutate in enumerate(MUTATIONS):  # each kind of mutation once through the command line
        path = tmp_path / f"cli{k}_{mutate.__name__}.npz"
        path.write_bytes(mutate(base, rng))
        check_cli(path, nmnist_dir, f"{path.name} (seed 99)")
