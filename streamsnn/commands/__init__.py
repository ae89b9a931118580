"""Subcommands of the `streamsnn` CLI.

Each module here defines `add_parser(subparsers)` (which sets `func=<callable(args) -> int>` as the
parser default) and an optional `ORDER` for the help listing. Keep module-level imports light so
that `streamsnn --help` stays fast: import numba-heavy code inside the command function.
"""
