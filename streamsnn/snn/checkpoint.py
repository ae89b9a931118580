"""Model checkpoints: atomic .npz write and strict load (format version, JSON config, no pickles)."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..errors import CheckpointError

FORMAT = "streamsnn-snn"
VERSION = 1
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


def load_checkpoint(path, required: tuple[str, ...]) -> tuple[dict[str, np.ndarray], dict, dict]:
    """Read a checkpoint fully into memory: (arrays, config, counters), or raise CheckpointError.

    ``required`` names the arrays that must be present. Nothing is returned unless every check
    passed, so a caller never ends up with a half-loaded model.
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
            if version != VERSION:
                raise CheckpointError(f"{path} has checkpoint format version {version}; this streamsnn "
                                      f"reads version {VERSION}: retrain or use a matching streamsnn")
            missing = [k for k in (*_META_KEYS, *required) if k not in names]
            if missing:
                raise CheckpointError(f"{path} lacks {', '.join(missing)}; the file is damaged or foreign")
            arrays = {k: np.array(npz[k]) for k in required}
            config = json.loads(str(npz["config"][0]))
            counters = json.loads(str(npz["counters"][0]))
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, IndexError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"cannot read model {path}: truncated or not a .npz checkpoint ({reason})") from None
    if not isinstance(config, dict) or not isinstance(counters, dict):
        raise CheckpointError(f"{path} has a malformed config or counters record; the file is damaged")
    return arrays, config, counters
