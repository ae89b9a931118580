"""Teaching from the live view: `POST /teach` checks who may teach, then hands its body to the daemon as feedback.

The body is a feedback message, exactly what `<prefix>/feedback` takes over MQTT
(`{"t_end_us": 123456, "label": "cup"}` or `{"sample": "60001", "label": 3}`), and it goes through
the same `pipeline.teacher.Teacher.teach`: the same parsing, the same checks against the recent
decisions, the same rate limit (shared with MQTT feedback), the same class growth within
`model.max_classes`, the same counters. Before that, this door checks:

- teaching is on (`liveview.teach`), else `403` with reason `teaching_off`;
- the token, when there is one (`liveview.teach_token`; beyond loopback one is generated when none is
  set), in the `X-Teach-Token` header, else `403` with reason `bad_token`;
- a `Content-Length` (else `411`; `400` with reason `bad_length` when it is not a plain number of bytes) of at
  most the feedback size limit (else `413`, nothing read), and
  the body arriving within the request deadline (else `408`).

The answer is JSON: `{"learned", "reason", "detail", "label", "added", "classes", "feedback"}` with
status 200 (learned), 400 (a malformed message: the reasons of `pipeline.feedback.parse`), 409
(refused: `unknown_sample`, `duplicate`, `contradicts_label`, `unknown_class`, `label_out_of_range`,
`disabled`), 429 (`rate_limited`, with `Retry-After`), 503 (`not_ready`: the pipeline has not started).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import secrets
from typing import Callable

from .. import defaults
from ..textsafe import printable

log = logging.getLogger("streamsnn.liveview")

TOKEN_HEADER = "x-teach-token"
#: Refusals of `pipeline.feedback.parse`: the message itself is wrong (HTTP 400; `oversized` 413).
MALFORMED = frozenset({"bad_json", "not_object", "unknown_keys", "missing_label", "missing_target", "wrong_type",
                       "bad_class_name"})
LOG_FIRST = 20  # refused logins logged at WARNING; further ones at DEBUG


def is_loopback(host: str) -> bool:
    """Whether `host` (the address the view listens on) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def status_of(reason: str | None) -> int:
    """The HTTP status answering a feedback outcome: learned (None) 200, else by the refusal's reason."""
    if reason is None:
        return 200
    if reason in MALFORMED:
        return 400
    return {"oversized": 413, "rate_limited": 429, "error": 500, "not_ready": 503}.get(reason, 409)


class Teaching:
    """Who may teach through the live view, and the teaching itself (see the module docstring).

    `connect(teacher)` (a `pipeline.teacher.Teacher`) is called by the daemon once the pipeline exists;
    `on_taught(window, label)` is called for every window learned this way: the hook through which the
    taught window is also recorded into a dataset (`record_taught`, with liveview.record_to); what it returns
    (the file written) goes into the answer as `recorded`; None: nothing recorded.
    """

    def __init__(self, enabled: bool = False, token: str = "", host: str = "127.0.0.1",
                 max_bytes: int = defaults.MAX_FEEDBACK_BYTES):
        self.enabled, self.max_bytes = bool(enabled), int(max_bytes)
        self.generated = bool(self.enabled and not token and not is_loopback(host))
        self.token = secrets.token_urlsafe(18) if self.generated else str(token or "")
        self.teacher = None
        self.on_taught: Callable | None = None  # hook: also record the taught window (streamsnn record)
        self.counts = {"requests": 0, "learned": 0, "refused": 0, "forbidden": 0, "bad_requests": 0}

    def connect(self, teacher) -> None:
        self.teacher = teacher
        self.max_bytes = getattr(teacher, "max_bytes", self.max_bytes)

    def public(self) -> dict:
        """What the page is told: whether it may teach, and whether a token must go with it."""
        return {"enabled": self.enabled, "token": bool(self.token)}

    async def handle(self, headers: dict[str, str], reader: asyncio.StreamReader, timeout: float,
                     classes: Callable[[], list]) -> tuple[int, dict]:
        """Answer one `POST /teach` (its headers read, its body not yet): (status, JSON answer)."""
        self.counts["requests"] += 1
        if not self.enabled:
            return self._forbidden("teaching_off", "teaching is off; start the daemon with liveview.teach = true "
                                                   "(streamsnn demo --teach)")
        if self.token and not hmac.compare_digest(headers.get(TOKEN_HEADER, "").encode("utf-8", "replace"),
                                                  self.token.encode()):
            return self._forbidden("bad_token", f"a wrong or missing teaching token (header {TOKEN_HEADER}); "
                                                "it is liveview.teach_token, or printed when the daemon started")
        raw = headers.get("content-length")
        if raw is None:
            return self._bad(411, "no_length", "send the feedback message with a Content-Length")
        if not (raw.isascii() and raw.isdigit()):  # int() would take "-5", " 7" and "1_0"
            return self._bad(400, "bad_length", f"Content-Length {raw[:20]!r} is not a number of bytes")
        length = int(raw)
        if length > self.max_bytes:
            return self._bad(413, "oversized", f"{length} bytes, more than {self.max_bytes}")
        try:
            body = await asyncio.wait_for(reader.readexactly(length), timeout)
        except TimeoutError:
            return self._bad(408, "timeout", f"the body did not arrive within {timeout:g} s")
        except asyncio.IncompleteReadError:
            return self._bad(400, "short_body", "the body is shorter than its Content-Length")
        if self.teacher is None:
            return self._bad(503, "not_ready", "the pipeline is starting; try again in a moment")
        msg = body
        if self.on_taught is not None:  # recorded too: a name that cannot be a class folder is refused first
            msg, unfit = _recordable(body, self.max_bytes)
            if unfit:
                return self._bad(400, "bad_class_name", f"{unfit}; taught windows are recorded here "
                                                        "(liveview.record_to), one folder per class")
        try:
            out = await self.teacher.teach(msg)
        except Exception as exc:  # noqa: BLE001 - a defect answers 500 and is logged; the view goes on
            log.warning("teaching from the live view failed: %s: %s", type(exc).__name__, exc)
            return self._bad(500, "error", f"{type(exc).__name__}: {exc}")
        self.counts["learned" if out.learned else "refused"] += 1
        recorded, unrecorded = None, {}
        if out.learned and self.on_taught is not None:
            try:
                recorded = self.on_taught(out.window, out.label)
            except Exception as exc:  # noqa: BLE001 - what was learned stays learned; the answer says it
                log.warning("the taught window was not recorded: %s: %s", type(exc).__name__, exc)
                unrecorded = {"not_recorded": printable(f"{type(exc).__name__}: {exc}")}
        return status_of(out.reason), {**({"recorded": printable(str(recorded))} if recorded else unrecorded),
            "learned": out.learned, "reason": out.reason, "detail": printable(out.detail), "label": out.label,
            "added": out.added, "classes": list(classes()),
            "feedback": dict(self.teacher.counters.feedback)}

    def _forbidden(self, reason: str, detail: str) -> tuple[int, dict]:
        self.counts["forbidden"] += 1
        level = logging.WARNING if self.counts["forbidden"] <= LOG_FIRST else logging.DEBUG
        log.log(level, "live view: teaching refused (%s)", reason)
        return 403, {"learned": False, "reason": reason, "detail": detail}

    def _bad(self, status: int, reason: str, detail: str) -> tuple[int, dict]:
        self.counts["bad_requests"] += 1
        return status, {"learned": False, "reason": reason, "detail": detail}


def _recordable(body: bytes, max_bytes: int):
    """(the message, parsed once by `feedback.parse`, or the body as it came when the teacher will refuse it
    with its own reason; why its label cannot be a class folder (`io.record.sample_name`), or None)."""
    from ..errors import InputError
    from ..io.record import sample_name
    from ..pipeline.feedback import Refused, parse

    try:
        fb = parse(body, max_bytes)
    except Refused:
        return body, None
    if isinstance(fb.label, str):
        try:
            sample_name(fb.label)
        except InputError as exc:
            return fb, str(exc)
    return fb, None


def record_taught(folder) -> Callable:
    """An `on_taught` hook writing each taught window into the class folders of `folder` (`io.record.Recorder`:
    the layout `streamsnn record` writes and `train` reads), its times starting at 0; returns the file's path."""
    import numpy as np

    from ..events import EventBatch
    from ..io.record import Recorder

    recorder = Recorder(folder)

    def hook(window, label):
        ev = np.array(window.batch.events, copy=True)
        if len(ev):
            ev["t"] -= ev["t"][0]
        done = recorder.capture(str(label), EventBatch(ev, window.batch.width, window.batch.height))
        log.info("recorded the taught window as %s (%s)", done.path, done.split)
        return done.path.relative_to(recorder.folder)

    return hook
