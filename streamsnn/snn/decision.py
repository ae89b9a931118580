"""A classification as data (``Decision``) and the softmax its confidence is taken from."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Decision:
    """One classification: the winning class, per-class scores, and what it cost.

    ``scores`` is the output evidence (sum of output rows over last-layer spikes, plus bias,
    decayed when the network leaks); ``confidence`` its softmax probability of ``label``;
    ``events`` the input events used; ``spikes`` the spikes fired per hidden layer (outputs
    accumulate, they do not spike).
    """

    label: int
    scores: np.ndarray
    confidence: float
    events: int
    spikes: tuple[int, ...] = field(default=())


def softmax(s: np.ndarray) -> np.ndarray:
    z = np.asarray(s, dtype=np.float64)
    z = np.exp(z - z.max())
    return z / z.sum()
