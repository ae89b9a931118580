"""Where a model is written: checked before any work (a folder, a device or a pipe is never replaced)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import CheckpointError

#: The process's umask, read once: a saved model gets the mode any new file would (mkstemp's is 0600).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def check_target(path, what: str = "cannot write model", probe: bool = False) -> Path:
    """The file a model is written to, or CheckpointError (one line starting with `what`) before any work.

    A symbolic link is followed: the file it points to is replaced and the link kept. The folder must exist,
    and the target must be a regular file if it exists (a folder, a device or a pipe is refused, never replaced);
    with `probe`, a file is created and removed in the folder to show that writing there works.
    """
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise CheckpointError(f"{what} {path}: folder {folder} does not exist; create it first")
    if path.exists() and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file (a device, pipe or socket)"
        raise CheckpointError(f"{what} {path}: it is {kind}; name a .npz file")
    if probe:
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            raise CheckpointError(f"{what} {path}: cannot create a file in {folder} ({exc.strerror}); "
                                  "choose another folder") from None
    return path


def new_file_mode() -> int:
    """The mode a new file gets from this process (0666 less the umask); mkstemp's own is 0600."""
    return 0o666 & ~_UMASK
