"""Finding the N-MNIST dataset as users expect: a path, $STREAMSNN_DATA, the cache, ../shared/data, or a download."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..errors import InputError

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
_EVENT_FILES = ("*.bin", "*.bs2")


def cache_dir() -> Path:
    """Where a downloaded N-MNIST lives: $XDG_CACHE_HOME/streamsnn/nmnist or ~/.cache/streamsnn/nmnist."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "streamsnn" / "nmnist"


def _has_samples(folder: Path) -> bool:
    return folder.is_dir() and any(next(folder.rglob(p), None) for p in _EVENT_FILES)


def candidates(cwd: Path | None = None) -> list[tuple[str, Path]]:
    """The places searched after an explicit path, in order, each with the reason it is searched."""
    cwd = Path.cwd() if cwd is None else cwd
    out = []
    env = os.environ.get("STREAMSNN_DATA")
    if env:
        env_path = Path(env).expanduser()
        out += [("$STREAMSNN_DATA", env_path / "nmnist_small"), ("$STREAMSNN_DATA", env_path)]
    out.append(("cache", cache_dir()))
    out.append(("../shared/data beside the current directory", cwd.parent / "shared" / "data" / "nmnist_small"))
    out.append(("../shared/data beside the repository", REPO.parent / "shared" / "data" / "nmnist_small"))
    return out


def find_nmnist(path: str | Path | None = None, *, download: bool = True, cwd: Path | None = None,
                progress: bool = True) -> Path | str:
    """Folder (or file) to replay.

    An explicit `path` must exist (a `tonic:<Class>:<folder>` spec is returned as it is for
    open_dataset to check). Otherwise the first of `candidates()` holding event files wins, and
    when none does, N-MNIST is downloaded through tonic into `cache_dir()`. Without network (or
    with download=False) raises InputError saying where to put the files.
    """
    if path and str(path).startswith("tonic:"):
        return path  # a dataset through tonic's classes: open_dataset checks it
    if path:
        p = Path(path).expanduser()
        if not p.exists():
            raise InputError(f"dataset path {p} does not exist; set source.path to an N-MNIST folder or "
                             "leave it empty to search $STREAMSNN_DATA and the cache")
        return p
    for why, folder in candidates(cwd):
        if _has_samples(folder):
            log.info("dataset: %s (%s)", folder, why)
            return folder
    target = cache_dir()
    where = (f"no N-MNIST found; put the N-MNIST .bin files (Train/ and Test/ folders, or a folder of .bs2 "
             f"files with train1K.txt/test100.txt labels) in {target}, or set STREAMSNN_DATA or source.path")
    if not download:
        raise InputError(where)
    return _download(target, where, progress)


def _download(target: Path, where: str, progress: bool) -> Path:
    try:
        import tonic
    except ImportError:  # pragma: no cover - tonic is a dependency
        raise InputError(where) from None
    target.mkdir(parents=True, exist_ok=True)
    log.info("downloading N-MNIST (about 1 GB) into %s", target)
    try:
        for train in (False, True):
            tonic.datasets.NMNIST(save_to=str(target), train=train)
    except Exception as exc:  # no network, a proxy, a full disk: all end the same way for the user
        raise InputError(f"{where} (download failed: {type(exc).__name__})") from None
    return target
