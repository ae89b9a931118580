"""bench_live's denser-camera arm: a recording made k times denser, replayed at real time through `streamsnn run`.

Replaying a recording k times faster gives k times the events per second but also k times the decisions per
second (one per hop of sensor time), and a window queue that holds 1/k of the wall time it holds live: a far
harder load per event than a camera's. A busy camera at real time still gives one decision every 50 ms, of
bigger windows. This arm emulates that camera: k copies of (at most the first second of) the recording laid over
one another, copy j of n = ceil(k) shifted in time by j/n of the piece's length (circularly, so the piece keeps
its length; a fractional k keeps that share of the last copy's events, chosen at random with a fixed seed),
written as one AEDAT4 file (dv-processing) and looped at real time (`source.speed = 1`); for k < 1 every
(1/k)-th event is kept. The search is over k, as bench_live's is over the speed.
"""

from __future__ import annotations

import asyncio
import math
import sys
from pathlib import Path

import numpy as np

BASE_US = 1_000_000   # the looped piece: at most the recording's first second
MAX_COPIES = 2048     # an upper bound on k (the densest DVS128 recording needs about 1,100 for 5 M events/s)
FINE_BELOW = 8        # k under this is searched in quarters (a dense recording brackets between 1 and 2 copies)


def copies(k: float) -> float:
    """k as the arm uses it: quarters from 1 to FINE_BELOW, whole copies above, 1/m below 1."""
    if k >= 1:
        return round(k * 4) / 4 if k < FINE_BELOW else float(min(MAX_COPIES, round(k)))
    m = round(1.0 / k)
    return 1.0 if m <= 1 else 1.0 / min(m, MAX_COPIES)


def dense_events(events: np.ndarray, k: float, base_us: int = BASE_US) -> tuple[np.ndarray, int]:
    """The piece made k times denser (see the module doc) and its length in us."""
    t0 = int(events["t"][0])
    piece = events[events["t"] - t0 < base_us]
    span = int(piece["t"][-1]) - t0 + 1
    if k < 1:
        return piece[::round(1.0 / k)].copy(), span
    n, parts = math.ceil(k), []
    for j in range(n):
        part = piece.copy()
        if j + 1 > k:  # the fractional copy: that share of its events
            part = part[np.random.default_rng(j).random(len(part)) < k - j]
        part["t"] = t0 + (part["t"] - t0 + (j * span) // n) % span
        parts.append(part)
    out = np.concatenate(parts)
    return out[np.argsort(out["t"], kind="stable")], span


class DenseRuns:
    """`streamsnn run` at real time on the recording made k times denser (files cached per k in `tmp`)."""

    def __init__(self, runs, max_runs: int):
        self.runs, self.max_runs = runs, max_runs  # a bench_live.Runs: its daemon, model, settings, workers
        self.tried: list[dict] = []
        self._files: dict[float, tuple[Path, int, int]] = {}

    def file(self, k: float) -> tuple[Path, int, int]:
        """(path, events, span in us) of the k-times denser piece."""
        if k not in self._files:
            import dv_processing as dv

            from streamsnn.sources._dv import array_to_store

            rec = self.runs.rec
            ev, span = dense_events(rec.batch.events, k)
            path = self.runs.tmp / f"dense-{rec.name}-{k:g}.aedat4"
            config = dv.io.MonoCameraWriter.EventOnlyConfig("bench-dense", (rec.batch.width, rec.batch.height))
            writer = dv.io.MonoCameraWriter(str(path), config)
            writer.writeEvents(array_to_store(ev))
            del writer  # closes the file
            self._files[k] = (path, len(ev), span)
        return self._files[k]

    def rate(self, k: float) -> float:
        """Camera events per second of the looped k-times denser stream at real time."""
        from .bench_live import chunk_for

        _, n, span = self.file(k)
        return n / (span + chunk_for(1.0, self.runs.hop)) * 1e6

    def at(self, k: float, seconds: float | None = None) -> dict:
        from .bench_live import chunk_for, daemon_run, judge, write_pipeline

        r = self.runs
        path, n, span = self.file(k)
        chunk = chunk_for(1.0, r.hop)
        seconds = seconds or r.seconds
        passes = max(1, math.ceil(seconds * 1e6 / (span + chunk)))
        toml = write_pipeline(r.tmp / f"dense-{r.rec.name}.toml", r.live, path, 1.0, chunk, passes, r.model,
                              r.workers)
        raw = asyncio.run(daemon_run(r.tmp, r.port, toml, timeout=seconds * 3 + 120))
        res = judge(raw, 1.0, self.rate(k), r.hop)
        res.update({"cmd": raw["cmd"], "copies": k, "passes": passes, "wall_s": raw["wall_s"], "workers": r.workers})
        print(f"bench_live: {r.rec.name}, {r.workers} worker(s), {k:g}x denser at real time "
              f"({res['offered'] / 1e6:.2f} M events/s offered): {res['why']}", file=sys.stderr, flush=True)
        return res

    def search(self, start_rate: float, steps: int) -> dict | None:
        """The densest k that kept up: from the k of `start_rate` events/s, doubled while it keeps up (halved while
        not) until two runs bracket it, then `steps` geometric bisections (k rounded: whole copies, 1/m below 1)."""
        k = copies(start_rate / self.rate(1.0))
        good = bad = None
        while len(self.tried) < self.max_runs:
            if good is not None and bad is not None:
                if steps <= 0:
                    break
                k, steps = copies(math.sqrt(good["copies"] * bad["copies"])), steps - 1
                if k in (good["copies"], bad["copies"]):
                    break
            r = self.at(k)
            self.tried.append(r)
            good, bad = (r, bad) if r["ok"] else (good, r)
            nxt = copies(k * 2 if r["ok"] else k / 2)
            if nxt == k:  # at a bound (MAX_COPIES copies, or one event in MAX_COPIES kept)
                break
            k = nxt
        return good
