"""User-facing errors: one clear line naming the thing at fault and what to do about it."""


class StreamsnnError(Exception):
    """An error the user can act on. The CLI prints `streamsnn: <message>` and exits with status 2.

    The message is a single line naming the file, address or key at fault and what to do.
    """

    exit_code = 2


class InputError(StreamsnnError):
    """A file, folder, camera or stream that cannot be read."""


class ConfigError(StreamsnnError):
    """A pipeline file or command-line value that is not valid."""


class CheckpointError(StreamsnnError):
    """A model checkpoint that cannot be loaded (truncated, foreign, wrong version)."""


class StageFailed(StreamsnnError):
    """An unexpected error that ended the run (a defect rather than bad input); exit status 1."""

    exit_code = 1


def first_line(exc: BaseException) -> str:
    """The informative first line of a (native) library's error: dv-processing and boost add a C++ location
    line, a stack trace and a ` [system:...]` suffix; those are dropped. The exception's type name when empty."""
    for line in str(exc).strip().splitlines():
        line = line.strip()
        if line and not line.startswith("/") and not line.startswith("Stacktrace"):
            return line.split(" [system:")[0]
    return type(exc).__name__
