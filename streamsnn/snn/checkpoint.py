"""Model checkpoints: atomic .npz write and strict load (format version, JSON config, no pickles).

Format 2 (written now): arrays ``weight_0`` .. ``weight_L`` (each hidden layer, then the output
layer) and ``bias``; JSON ``config`` with ``arch`` (list of layer dicts), ``input_map`` (sensor,
roi, grid), ``classes`` (names in output order, including classes added by feedback) and the
learning settings (``class_lr`` only when a class has its own output rate); JSON ``counters``.
Format 1 (the one-hidden-layer network, arrays ``W1``, ``W2``, ``b2``, config ``sizes`` and
``input_shape``) still loads, as a one-dense-layer network with classes "0".."n-1".
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..errors import CheckpointError

FORMAT = "streamsnn-snn"
VERSION = 2
#: Versions this code reads.
READABLE = (1, 2)
_META_KEYS = ("format", "version", "config", "counters")


def save_checkpoint(path, arrays: dict[str, np.ndarray], config: dict, counters: dict) -> Path:
    """Write arrays plus JSON config and counters to ``path`` atomically.

    A temporary file in the same folder is written, flushed and fsync'ed, then renamed over
    ``path`` and the folder is fsync'ed, so a reader sees either the old or the new file, whole.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise CheckpointError(f"cannot write model {path}: folder {folder} does not exist; create it first")
    payload = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    payload["format"] = np.array([FORMAT])
    payload["version"] = np.array([VERSION], dtype=np.int64)
    payload["config"] = np.array([json.dumps(config, sort_keys=True)])
    payload["counters"] = np.array([json.dumps(counters, sort_keys=True)])
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on folders
        pass
    return path


def load_checkpoint(path) -> tuple[int, dict[str, np.ndarray], dict, dict]:
    """Read a checkpoint fully into memory: (version, arrays, config, counters), or raise CheckpointError.

    Every array is read (pickled objects refused). Nothing is returned unless every check passed,
    so a caller never ends up with a half-loaded model.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model file {path} not found; train one with `streamsnn train --out {path}`")
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
        if magic != b"PK\x03\x04":
            raise CheckpointError(f"{path} is not a .npz checkpoint (not a zip archive); pass a file written "
                                  "by `streamsnn train`")
        with np.load(path, allow_pickle=False) as npz:
            names = set(npz.files)
            if "format" not in names or "version" not in names:
                raise CheckpointError(f"{path} is not a streamsnn model checkpoint (no format marker); "
                                      "pass a file written by `streamsnn train`")
            fmt = str(npz["format"][0])
            if fmt != FORMAT:
                raise CheckpointError(f"{path} is a {fmt!r} file, not a streamsnn model checkpoint")
            version = int(npz["version"][0])
            if version not in READABLE:
                raise CheckpointError(f"{path} has checkpoint format version {version}; this streamsnn "
                                      f"reads versions {', '.join(map(str, READABLE))}: retrain or use a "
                                      "matching streamsnn")
            missing = [k for k in _META_KEYS if k not in names]
            if missing:
                raise CheckpointError(f"{path} lacks {', '.join(missing)}; the file is damaged or foreign")
            arrays = {k: np.array(npz[k]) for k in names if k not in _META_KEYS}
            config = json.loads(str(npz["config"][0]))
            counters = json.loads(str(npz["counters"][0]))
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, IndexError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"cannot read model {path}: truncated or not a .npz checkpoint ({reason})") from None
    if not isinstance(config, dict) or not isinstance(counters, dict):
        raise CheckpointError(f"{path} has a malformed config or counters record; the file is damaged")
    return version, arrays, config, counters


def save_network(net, path) -> Path:
    """Write a SpikingNetwork in format 2."""
    arrays = {f"weight_{k}": w for k, w in enumerate(net.weights)}
    arrays["bias"] = net.bias
    return save_checkpoint(path, arrays, net.config(), net.counters())


def _format1(arrays: dict, config: dict) -> tuple[dict, dict]:
    """A format-1 file (one dense hidden layer) as format-2 arrays and config."""
    sizes = config.pop("sizes", None)
    grid = config.pop("input_shape", [34, 34, 2])
    for k in ("init_scale", "init_scale_out"):
        config.pop(k, None)
    if not isinstance(sizes, list) or len(sizes) != 3 or not isinstance(grid, list) or len(grid) != 3:
        raise ValueError("format-1 config needs sizes [inputs, hidden, classes] and input_shape [w, h, p]")
    config.update(arch=[{"kind": "dense", "units": int(sizes[1])}], classes=int(sizes[2]),
                  input_map={"sensor": grid[:2], "roi": None, "grid": grid})
    renamed = {"weight_0": arrays.get("W1"), "weight_1": arrays.get("W2"), "bias": arrays.get("b2")}
    return {k: v for k, v in renamed.items() if v is not None}, config


def load_network(cls, path, any_names: bool = False):
    """Read a checkpoint into a new ``cls`` (SpikingNetwork); CheckpointError names what is wrong.

    Class names are normalised as `streamsnn.classnames` says (a valid name written by an older
    version, e.g. with a trailing space, loads in its canonical form); a name that cannot be a class
    name, or two that match, refuse the checkpoint with a line saying how to repair it, unless
    `any_names`: then they are kept exactly as stored (for `streamsnn classes`)."""
    from .. import classnames
    from ..errors import ConfigError
    from ..textsafe import printable

    version, arrays, config, counters = load_checkpoint(path)
    raw_names = None
    try:
        if version == 1:
            arrays, config = _format1(arrays, dict(config))
        names = config.get("classes")
        if isinstance(names, list) and len(names) >= 2 and all(isinstance(c, str) for c in names):
            try:
                classnames.check_all(names)
            except ValueError as exc:
                if not any_names:
                    raise CheckpointError(f"{path}: {exc}; list and repair the classes with `streamsnn classes "
                                          f"{path}` (--rename '#N' NAME, --remove '#N')") from None
                raw_names, config = names, {**config, "classes": len(names)}
        net = cls(**{**config, "seed": config.get("seed", 0)})
    except (TypeError, ValueError, ConfigError) as exc:
        raise CheckpointError(f"{path} holds an unusable network config "
                              f"({printable(str(exc).splitlines()[0])})") from None
    if raw_names is not None:
        net.classes = list(raw_names)
    want = {f"weight_{k}": w.shape for k, w in enumerate(net.weights)}
    want["bias"] = net.bias.shape
    for k, shape in want.items():
        if k not in arrays:
            old = {"weight_0": "W1", "weight_1": "W2", "bias": "b2"}.get(k, k) if version == 1 else k
            raise CheckpointError(f"{path} lacks the array {old}; the file is damaged or foreign")
        a = arrays[k]
        if a.shape != shape or a.dtype.kind != "f":
            raise CheckpointError(f"{path}: array {k} has shape {a.shape} ({a.dtype}), expected {shape} "
                                  "floats; the file is damaged or foreign")
        if not np.all(np.isfinite(a)):
            raise CheckpointError(f"{path}: array {k} holds non-finite weights; the file is damaged")
    try:
        vals = {k: int(counters.get(k, 0)) for k in ("samples_seen", "events_seen", "updates",
                                                        "progressive_correct", "progressive_total", "epochs")}
    except (TypeError, ValueError):
        raise CheckpointError(f"{path} has malformed training counters; the file is damaged") from None
    net.weights = [np.ascontiguousarray(arrays[f"weight_{k}"], dtype=np.float32) for k in range(len(net.weights))]
    net.bias = np.ascontiguousarray(arrays["bias"], dtype=np.float32)
    for k, v in vals.items():
        setattr(net, k, v)
    net._token = str(counters.get("token", net._token))
    return net
