"""`streamsnn train`'s options checked before any work (one-line errors), and its per-layer lists: --tau-ms and
--layer-price."""

from __future__ import annotations

from ..errors import ConfigError
from ..snn.limits import MAX_LR_FACTOR


def parse_taus(text: str | None, n_hidden: int) -> tuple[float | None, list[float] | None]:
    """--tau-ms as (the output's ms or None, each hidden layer's µs or None); ConfigError in one line."""
    if text is None:
        return None, None
    try:
        vals = [float(v) for v in str(text).split(",")]
    except ValueError:
        vals = []
    if len(vals) not in (1, n_hidden + 1) or not all(0 <= v <= 1e6 for v in vals):
        raise ConfigError(f"--tau-ms {text}: give one time constant in ms (0: no leak) or one per hidden layer and "
                          f"then the output's ({n_hidden + 1} values, each above 0), each at most 1000000")
    if len(vals) == 1:
        return vals[0], None
    if min(vals) <= 0:
        raise ConfigError(f"--tau-ms {text}: a time constant per layer must be above 0 (a single 0 turns the "
                          "leak off)")
    return vals[-1], [v * 1000.0 for v in vals[:-1]]


def probes(args) -> bool:
    """Whether `train` probes the training split for time (`learn.timecheck`): the probe picks the learning rule,
    and the input delays of the default and of --learning membrane given without --delays/--delay-ms."""
    return args.learning is None or (args.learning == "membrane" and args.delays is None and args.delay_ms is None)


def parse_prices(text: str | None, n_hidden: int) -> list[float] | None:
    """--layer-price as one multiplier per hidden layer, or None; ConfigError in one line."""
    if text is None:
        return None
    try:
        vals = [float(v) for v in str(text).split(",")]
    except ValueError:
        vals = []
    if len(vals) != n_hidden or not all(0 <= v <= MAX_LR_FACTOR for v in vals):
        raise ConfigError(f"--layer-price {text}: give one multiplier per hidden layer ({n_hidden} values, each "
                          f"0..{MAX_LR_FACTOR:g}), e.g. {','.join(['2'] + ['1'] * (n_hidden - 1))}")
    return vals


def check_options(args) -> None:
    """The options that need no data, checked at once (ConfigError or CheckpointError in one line); --out
    too, so that a folder or an unwritable place is found before the training, not after it."""
    from ..snn.delays import MAX_DELAYS
    from ..snn.target import check_target

    if not 0.0 <= args.pieces <= 1.0:
        raise ConfigError(f"--pieces is a share of training items in [0, 1], got {args.pieces}")
    if args.hidden is not None and args.arch is not None:
        raise ConfigError("give --arch or --hidden, not both (--hidden H is --arch dense:H)")
    if getattr(args, "readout", None) and args.learning != "timing":
        raise ConfigError("--readout is a setting of --learning timing: add --learning timing or drop --readout")
    if args.hidden is not None and args.hidden < 1:
        raise ConfigError(f"--hidden must be at least 1, got {args.hidden}")
    if args.delays is not None and not 1 <= args.delays <= MAX_DELAYS:
        raise ConfigError(f"--delays {args.delays}: give 1..{MAX_DELAYS} copies of each input (1: no delays)")
    if args.delay_ms is not None and not 1 <= args.delay_ms <= 1e6:
        raise ConfigError(f"--delay-ms {args.delay_ms:g}: give a delay of 1..1000000 ms")
    if args.delay_ms is not None and args.delays == 1:
        raise ConfigError("--delay-ms is the time between delayed copies, and --delays 1 makes none: drop one of them")
    if args.learning == "timing" and ((args.delays or 1) > 1 or args.delay_ms is not None):
        raise ConfigError("learning 'timing' does not take input delays yet: drop --delays/--delay-ms, or use "
                          "--learning membrane")
    check_target(args.out, "--out", probe=True)  # before the training, not after it
