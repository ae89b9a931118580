"""Time slices of long recordings (the samples of labelled recordings): each recording decoded once for its slices."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from ..errors import InputError
from ..events import EventBatch
from .isolated import DecodeCancelled
from .read import read_events

_CACHE: OrderedDict[tuple, EventBatch | InputError] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 2  # recordings kept decoded (the one being cut, and the one before)


def _recording(path: Path, cancel=None) -> EventBatch:
    """The whole recording, decoded once for all its segments; a recording that cannot be read is
    remembered too, so its other segments fail at once instead of each waiting out the decoder."""
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
    if hit is None:
        try:
            hit = read_events(path, cancel=cancel)
        except DecodeCancelled:
            raise  # not the file's fault: the next reader tries again
        except InputError as exc:
            hit = exc
        with _CACHE_LOCK:
            _CACHE[key] = hit
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    if isinstance(hit, InputError):
        raise InputError(str(hit))
    return hit


def read_segment(path: Path, start_us: int, end_us: int, sample_id: str, *, cancel=None) -> EventBatch:
    """Events of a recording with start_us <= t < end_us (the last two recordings read stay decoded).

    The recording is read by `read_events` (header checks, native decoders in the worker, `cancel`);
    a slice without events is refused like an empty file, naming its label times.
    """
    path = Path(path)
    rec = _recording(path, cancel)
    batch = rec.slice_time(start_us, end_us)
    if not len(batch):
        span = f"{rec.t_start}..{rec.t_end} us" if len(rec) else "no events at all"
        raise InputError(f"{path}: sample {sample_id} ({start_us}..{end_us} us): empty sample: no events in that "
                         f"time; the recording spans {span}, and label times are absolute timestamps of the "
                         "recording (as in DVS Gesture), not offsets from its start; fix the label file")
    return batch.with_meta(meta={**rec.meta, "segment_us": (start_us, end_us)})
