"""What a class name is, in this one place: `normalise` (or ValueError with the reason) and `find` (case-blind match).

A class name is text of 1..64 characters, after these steps: Unicode NFC (so "é" typed as e + a
combining accent and "é" are one name), surrounding whitespace trimmed, runs of inner spaces made
one space. It holds no control characters (Unicode category Cc: NUL, tab, newline, ESC, ...), no
format or invisible characters (Cf: zero-width spaces and joiners, bidi overrides, BOM; also
surrogates Cs and private-use Co), no whitespace other than the single inner spaces (no tab,
no-break or other-width spaces, line or paragraph separators), and at least one letter, digit,
punctuation mark or symbol (a name of combining marks alone is invisible).

Case: names are matched case-insensitively (str.casefold), so "CUP" names the class "cup" when the
model has it; a class keeps the case it was first given. One model never holds two names that
match each other.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from .textsafe import shown

MAX_LENGTH = 64
_REFUSED = {"Cc": "a control character", "Cf": "an invisible (format) character", "Cs": "a surrogate",
            "Co": "a private-use character", "Zl": "a line separator", "Zp": "a paragraph separator"}


def normalise(name) -> str:
    """The canonical form of a class name (see the module doc); ValueError saying why it cannot be one."""
    if not isinstance(name, str):
        raise ValueError(f"a class name is text, not {type(name).__name__}")
    text = unicodedata.normalize("NFC", name)
    for ch in text:
        cat = unicodedata.category(ch)
        what = _REFUSED.get(cat) or ("whitespace other than a space" if cat == "Zs" and ch != " " else None)
        if what:
            raise ValueError(f"class name '{shown(name)}' holds {what} (U+{ord(ch):04X}); use visible characters "
                             "and single spaces")
    text = " ".join(part for part in text.split(" ") if part)
    if not text:
        raise ValueError(f"class name '{shown(name)}' is empty or only spaces")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"class name '{shown(name)}' is {len(text)} characters long, more than {MAX_LENGTH}")
    if not any(unicodedata.category(ch)[0] in "LNPS" for ch in text):
        raise ValueError(f"class name '{shown(name)}' has no visible character (letter, digit, punctuation or "
                         "symbol)")
    return text


def key(name: str) -> str:
    """What two class names are compared by: the normalised name, case-folded."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def find(name: str, classes: Iterable[str]) -> int | None:
    """The index of the class that `name` (normalised) names in `classes`: the exact name, else the one
    name equal to it regardless of case; None when there is none (or, for an old model holding names
    that differ only in case, more than one)."""
    classes = list(classes)
    if name in classes:
        return classes.index(name)
    k = key(name)
    hits = [i for i, c in enumerate(classes) if key(c) == k]
    return hits[0] if len(hits) == 1 else None


def check_all(names: Iterable) -> list[str]:
    """Every name normalised, in order; ValueError naming the first bad one (by position) or two that match."""
    out: list[str] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(names):
        try:
            name = normalise(raw)
        except ValueError as exc:
            raise ValueError(f"class {i}: {exc}") from None
        k = key(name)
        if k in seen:
            raise ValueError(f"class names must be distinct: classes {seen[k]} ('{shown(out[seen[k]])}') and {i} "
                             f"('{shown(raw)}') are the same name (names are matched regardless of case)")
        seen[k] = i
        out.append(name)
    return out
