"""Command-line entry point: `streamsnn <command> ...`; each command lives in streamsnn/commands/."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import signal
import sys
import threading

from . import __version__
from .errors import StreamsnnError
from .textsafe import printable


def _command_modules():
    """The modules of streamsnn.commands, in their declared ORDER (then by name)."""
    from . import commands

    mods = [importlib.import_module(f"{commands.__name__}.{m.name}")
            for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")]
    return sorted(mods, key=lambda m: (getattr(m, "ORDER", 100), m.__name__))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamsnn",
        description="Classify event-camera streams with an online, event-driven spiking network "
                    "and publish the decisions over MQTT.",
    )
    parser.add_argument("--version", action="version", version=f"streamsnn {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="debug log output, with tracebacks (the default is INFO; `run -q`: WARNING)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        mod.add_parser(sub)
    return parser


class OneLineFormatter(logging.Formatter):
    """Log lines whose message cannot forge others: control, invisible and bidi characters in it are escaped
    (a traceback, added after the message, keeps its lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C, so that cleanup runs (e.g. a decoder worker is killed)."""


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    # Commands that run a service (run, demo, serve, publish) install their own SIGTERM handling.
    previous = usr1 = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
        if hasattr(signal, "SIGUSR1"):  # the daemon's stack dump (`kill -USR1`): until it is set up, not a kill
            usr1 = signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    try:
        return _main(argv)
    except Terminated:  # here, so that a signal while the parser is built gets the same line and status
        print("streamsnn: terminated (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("streamsnn: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if usr1 is not None:
            signal.signal(signal.SIGUSR1, usr1)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # here, so that a closed pipe (`... | head`) is caught below
        return status
    except BrokenPipeError:  # the reader of our output went away: stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # the status of a process ended by SIGPIPE
    except StreamsnnError as exc:
        print(f"streamsnn: error: {printable(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a path the system refuses (a name too long, no permission, ...): one line, not a traceback
        if args.verbose:
            logging.getLogger("streamsnn").exception("the system refused a file operation")
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        what = exc.strerror or type(exc).__name__
        print(f"streamsnn: error: {printable(where + ': ' if where else '')}{printable(what)}; check the path "
              "and what may be done there", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
