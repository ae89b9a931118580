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
