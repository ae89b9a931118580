"""Class names as datasets write them (folder names, label lists, CSV rows): the canonical form and the index order."""

from __future__ import annotations

from typing import Iterable

from ..classnames import key, normalise
from ..errors import InputError
from ..textsafe import printable, shown

#: Class names that are all whole numbers below this are class indices (N-MNIST's digits).
MAX_NUMBERED_CLASS = 1000


def class_name(raw: str, where: str = "") -> str:
    """A class name as written in a folder name, label list or CSV, made canonical ("07" -> "7"; otherwise as
    `classnames.normalise` says); InputError naming `where` (the folder or line) when it cannot be one."""
    name = raw.strip()
    if name.isdigit() and name.isascii():
        return str(int(name))
    try:
        return normalise(name)
    except ValueError as exc:
        lead = f"{printable(where)}: " if where else ""  # (the error names the class itself)
        raise InputError(f"{lead}{exc}; rename it (class names: streamsnn/classnames.py)") from None


def class_order(names: Iterable[str]) -> list[str]:
    """Class names in index order.

    When every name is a whole number below MAX_NUMBERED_CLASS, the numbers are the class indices:
    the list runs "0", "1", ... up to the largest (numbers absent from the data stay as classes
    without samples), so an N-MNIST digit keeps its index in any subset. Otherwise the names are
    sorted alphabetically.
    """
    names = set(names)
    if names and all(n.isdigit() and n.isascii() for n in names):
        top = max(int(n) for n in names)
        if top < MAX_NUMBERED_CLASS:
            return [str(i) for i in range(top + 1)]
        return sorted(names, key=int)
    return sorted(names)


def check_distinct(root, classes: list[str]) -> None:
    """InputError when two class names of a dataset match regardless of case (one model cannot hold both)."""
    seen: dict[str, str] = {}
    for name in classes:
        other = seen.setdefault(key(name), name)
        if other != name:
            raise InputError(f"{printable(str(root))}: classes '{shown(other)}' and '{shown(name)}' differ only in "
                             "case; class names are matched regardless of case: rename or merge one")
