"""MNIST idx files (images and labels, gzip-compressed or not) read into NumPy arrays."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..errors import InputError

#: idx type codes -> big-endian NumPy dtypes.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an idx file (e.g. (10000, 28, 28) uint8 images, or (10000,) labels).

    Gzip compression is recognised by content, not by name. Raises InputError naming the file when
    it is missing, truncated or not an idx file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read MNIST idx file {path}: {exc}; check the path") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or raw[3] == 0:
        raise InputError(f"{path} is not an MNIST idx file (bad magic number); "
                         "expect e.g. t10k-images-idx3-ubyte(.gz)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise InputError(f"MNIST idx file {path} is truncated in its header; download it again")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    need = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header < need:
        raise InputError(f"MNIST idx file {path} is truncated: {len(raw) - header} data bytes, "
                         f"{need} expected for shape {shape}; download it again")
    return np.frombuffer(raw, dtype, int(np.prod(shape)), header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise InputError(f"no {stem} or {stem}.gz in {folder}; point to the folder holding the MNIST idx files")


def load_mnist(folder: str | Path, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(images (n, 28, 28) uint8, labels (n,) int64) of MNIST's "test" (t10k-*) or "train" split."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"MNIST folder {folder} does not exist; give the folder holding the idx files")
    prefix = {"test": "t10k", "train": "train"}.get(split)
    if prefix is None:
        raise InputError(f"unknown MNIST split {split!r}; use 'test' or 'train'")
    images = read_idx(_find(folder, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find(folder, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise InputError(f"MNIST files in {folder} do not match: images {images.shape}, labels {labels.shape}")
    return images, labels.astype(np.int64)
