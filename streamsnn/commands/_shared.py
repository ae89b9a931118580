"""What several commands share: leaving at once on SIGTERM while a command is still starting up."""

from __future__ import annotations

import signal


def exit_on_sigterm() -> None:
    """SIGTERM before a service has started (imports, loading, training) ends the process with status 0:
    nothing is running yet that would need draining or saving. The service replaces the handler."""
    signal.signal(signal.SIGTERM, _stop_early)


def _stop_early(signum, frame):
    raise SystemExit(0)
