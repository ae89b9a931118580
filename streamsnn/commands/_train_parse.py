"""`streamsnn train`'s per-layer lists: --tau-ms and --layer-price, read and checked (one-line errors)."""

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
