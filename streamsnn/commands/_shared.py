"""What several commands share: leaving at once on SIGTERM while a command is still starting up; counts in options."""

from __future__ import annotations

import argparse
import signal


def exit_on_sigterm() -> None:
    """SIGTERM before a service has started (imports, loading, training) ends the process with status 0:
    nothing is running yet that would need draining or saving. The service replaces the handler."""
    signal.signal(signal.SIGTERM, _stop_early)


def _stop_early(signum, frame):
    raise SystemExit(0)


def at_least_one(text: str, what: str = "a whole number of 1 or more") -> int:
    """argparse type of a count such as --limit: a whole number of 1 or more (0 would run on nothing); the error
    (one line from argparse) says `give {what}, not ...`."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"give {what}, not {text!r}")
    return n


class Once(argparse.Action):
    """An option that may be given once: a second one is an error (argparse's one line), not silently the last."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest, None) not in (None, self.default):
            parser.error(f"argument {option_string}: given twice; give it once")
        setattr(namespace, self.dest, values)

