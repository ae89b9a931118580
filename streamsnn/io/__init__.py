"""File formats as plain functions: N-MNIST (tonic), AEDAT4 (dv-processing), Prophesee EVT (expelliarmus), AEDAT 2.0.

Every reader checks a file's header in Python before any native decoder sees it; the native
decoders run in a worker process with a deadline and a memory limit (`streamsnn.io.isolated`).
A file ends in an EventBatch or in one InputError line naming it, within the deadline.
"""

from __future__ import annotations

from .dataset import open_dataset
from .isolated import DecodeLimits
from .probe import SUPPORTED_EXTENSIONS, check_file, empty_sample, probe
from .read import read_events
from .samples import Dataset, Sample

__all__ = ["read_events", "probe", "open_dataset", "check_file", "empty_sample", "Dataset", "Sample",
           "DecodeLimits", "SUPPORTED_EXTENSIONS"]
