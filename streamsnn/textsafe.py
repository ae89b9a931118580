"""Untrusted text made safe to log or print: control, invisible and bidi characters escaped, length bounded."""

from __future__ import annotations

#: Longest text `shown` returns by default (an ellipsis marks what was cut).
LIMIT = 80
ELLIPSIS = "…"


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str) -> str:
    """`text` with every character that is not printable (str.isprintable: control characters such as
    newline, ESC and NUL, format characters such as zero-width spaces and bidi overrides, separators
    other than the space, surrogates, unassigned code points) written as \\xNN, \\uNNNN or \\UNNNNNNNN.

    Idempotent on its own output, so a line assembled from already escaped parts can pass through it
    again unchanged; backslashes are left as they are (see `shown` for untrusted values)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def shown(value, limit: int | None = LIMIT) -> str:
    """An untrusted value (a sample id, a key, a class or file name) as text safe for one log or terminal line.

    Like repr without the quotes: non-printable characters escaped (see `printable`) and backslashes
    doubled, so that a value can neither start a new line, send a terminal escape sequence, reorder
    the text around it, nor pass for an escape it is not. Longer than `limit` characters (of the
    value, before escaping; None: no limit) it is cut and ends in an ellipsis.
    """
    text = value if isinstance(value, str) else str(value)
    cut = limit is not None and len(text) > limit
    if cut:
        text = text[:limit]
    text = printable(text.replace("\\", "\\\\"))
    return text + ELLIPSIS if cut else text


def few(names, k: int = 5) -> str:
    """The first `k` of some names (class names, usually), each `shown`, and how many more there are."""
    names = list(names)
    return ", ".join(shown(n) for n in names[:k]) + (f" and {len(names) - k} more" if len(names) > k else "")

