"""Bounded reading of .npz files: sizes checked from the zip directory and each .npy header before any data.

``numpy.load`` trusts a member's header: a declared shape of terabytes is a MemoryError, a deflated
member of zeros (a zip bomb) is inflated whole, an unused extra member is read anyway. Here the
end-of-central-directory record bounds the number of members, each wanted member's header gives
its dtype and shape without reading data, the shape must match the member's uncompressed size in
the zip directory, and the total is bounded before anything is allocated; members nobody asked for
are never read. Every problem is a ``ValueError`` whose message says what is wrong (the caller
names the file).
"""

from __future__ import annotations

import json
import math
import re
import struct
import zipfile

import numpy as np
from numpy.lib import format as npy

#: Most members of a checkpoint (it has 6 to a few dozen), and most bytes of its central directory.
MAX_MEMBERS = 256
MAX_DIRECTORY_BYTES = 1 << 20
#: Largest JSON text (config, counters) and deepest nesting of its lists and objects.
MAX_JSON_CHARS = 1 << 20
MAX_JSON_DEPTH = 16
_EOCD = b"PK\x05\x06"
#: The first bytes of a zip archive (a .npz checkpoint): what tells a model file from anything else.
ZIP_MAGIC = b"PK\x03\x04"


def check_directory(fh, size: int) -> None:
    """ValueError unless the zip's end record declares at most MAX_MEMBERS members in a small directory
    (read before ``zipfile`` builds an object per member)."""
    tail = min(size, 22 + 65535)
    fh.seek(size - tail)
    data = fh.read(tail)
    at = data.rfind(_EOCD)
    if at < 0 or len(data) - at < 22:
        raise ValueError("no zip directory at the end (truncated?)")
    entries, dir_bytes = struct.unpack_from("<xxxxxxxxxxHI", data, at)
    if entries > MAX_MEMBERS or dir_bytes > MAX_DIRECTORY_BYTES:
        raise ValueError(f"the zip directory declares {entries} members in {dir_bytes} bytes, more than "
                         f"{MAX_MEMBERS} members or {MAX_DIRECTORY_BYTES} bytes")


def _header(fh, name: str):
    """(shape, fortran order, dtype) of a .npy stream, read from its header only."""
    version = npy.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = npy.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, fortran, dtype = npy.read_array_header_2_0(fh)
    else:
        raise ValueError(f"member {name} has .npy format version {version}, not 1.0 or 2.0")
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise ValueError(f"member {name} holds {dtype} values (objects or records are never read)")
    if any(n < 0 for n in shape):
        raise ValueError(f"member {name} declares a negative shape {shape}")
    return tuple(shape), bool(fortran), dtype


def read_members(zf: zipfile.ZipFile, names, *, max_elements: int, kinds: str = "fiuU") -> dict[str, np.ndarray]:
    """The arrays ``names`` (without ``.npy``) of an open zip, each a dtype of one of ``kinds``; at most
    ``max_elements`` elements together (strings count their characters). All headers are checked before
    any data is read."""
    plan, total = [], 0
    for name in names:
        info = zf.getinfo(f"{name}.npy")
        with zf.open(info) as fh:
            shape, fortran, dtype = _header(fh, name)
            start = fh.tell()
        if dtype.kind not in kinds:
            raise ValueError(f"member {name} holds {dtype} values, expected {kinds} kinds")
        count = math.prod(shape) * (dtype.itemsize // 4 if dtype.kind == "U" else 1)
        total += count
        if total > max_elements:
            raise ValueError(f"member {name} declares shape {shape} ({dtype}): more than the {max_elements:,} "
                             "values a checkpoint may hold")
        nbytes = math.prod(shape) * dtype.itemsize
        if info.file_size != start + nbytes:
            raise ValueError(f"member {name} declares shape {shape} ({dtype}), {nbytes} bytes, but the zip "
                             f"holds {info.file_size - start} (damaged or a zip bomb)")
        plan.append((name, info, shape, fortran, dtype, start, nbytes))
    out = {}
    for name, info, shape, fortran, dtype, start, nbytes in plan:
        with zf.open(info) as fh:
            fh.read(start)
            data = fh.read(nbytes)
            if len(data) != nbytes or fh.read(1):  # reading to the end also checks the CRC
                raise ValueError(f"member {name} is shorter or longer than its header says")
        out[name] = np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C").copy()
    return out


def _no_constant(name: str):
    raise ValueError(f"{name} is not a finite number")


def parse_json(text: str, what: str):
    """A JSON document of at most MAX_JSON_CHARS characters nested at most MAX_JSON_DEPTH deep, without
    NaN or Infinity; ValueError naming ``what`` otherwise."""
    if len(text) > MAX_JSON_CHARS:
        raise ValueError(f"{what} is {len(text)} characters long, more than {MAX_JSON_CHARS}")
    depth = deepest = 0
    for ch in re.findall(r"[\[\]{}]", re.sub(r'"(?:[^"\\]|\\.)*"', "", text)):  # outside strings
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    if deepest > MAX_JSON_DEPTH:
        raise ValueError(f"{what} is nested {deepest} deep, more than {MAX_JSON_DEPTH}")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise ValueError(f"{what} is nested too deeply") from None
