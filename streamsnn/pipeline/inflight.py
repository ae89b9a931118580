"""Working on stream windows while their events arrive (segment.overlap "inflight" and "chunks").

A network without a leak decides each window from the reset state. Instead of feeding a window's
events only when it closes, `InFlight.feed` takes each accepted stream batch (a `segment.Piece`) as it
arrives and feeds it into the states in flight, so when a window closes only its readout remains:

- "inflight": one state per window that has started and not closed (window_us / hop_us of them), each
  begun from the reset state (zeros, allocated when its first event arrives) and fed the window's
  events in order. The kernels take events one by one, so the potentials and counts, and the decision,
  are exactly those of the whole window fed at once (the "repeat" path). Each event still costs the
  network window_us / hop_us feeds, but they happen while the window is open.
- "chunks": one state per hop-long chunk, fed once; a window's scores are read out from the sum of
  the last hidden layer's counts over its chunks. Each event costs one feed. Integrate-and-fire
  depends on the order of events, so this is another classifier than the whole window: a chunk's
  potentials start from zero, and what was below threshold at a chunk's end is lost.

A window's state is used only when it holds exactly the window's events with the weights it was fed
with (same event count, same `model_version`, same output layer); otherwise the window is decided
from its own events (`decide.decide`, or the same chunks computed from the window for "chunks"), so a
dropped batch, a refused one, a cut, a restart or learning in between never changes a decision.
Everything here runs on the network's worker thread. Only the states whose span is still open keep
their potentials (window_us / hop_us of them at most); the others keep the last hidden layer's counts
until read out, at most `MAX_STATES` in all (the oldest are dropped first).
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from ..events import join_events
from ..snn import guard, propagate
from .segment import Piece, Window

log = logging.getLogger(__name__)

#: States (windows or chunks in flight, and finished ones not yet read out) kept at most.
MAX_STATES = 256


def temporal(net) -> bool:
    """Whether the network carries its state (potentials, evidence) from one call to the next, so a
    stream must reach it once, in order, never window by window: its `temporal` attribute when it has
    one, else whether it leaks (`tau_us` set)."""
    flag = getattr(net, "temporal", None)
    if flag is not None:
        return bool(flag)
    return getattr(net, "tau_us", None) is not None


def eligible(net) -> bool:
    """Whether `net` can be fed in pieces: a SpikingNetwork without a leak (a temporal one carries its own state)
    and without input delays (their copies need the window's times)."""
    from ..snn.network import SpikingNetwork

    return isinstance(net, SpikingNetwork) and not temporal(net) and net.delay_line.copies == 1


def _weights(net) -> tuple:
    """What a state's counts depend on besides its events (a change makes them stale)."""
    return net.model_version, id(net.out_weight), tuple(id(layer.weight) for layer in net.hidden)


def merged(pieces: list[Piece]) -> list[Piece]:
    """Consecutive pieces of one window grid joined into one (their events in order, the first one's origin):
    fed at once, they give every state the same events in the same order as one by one (the kernels take
    events one by one), for one call's overhead instead of one per piece (a worker that fell behind)."""
    out: list[Piece] = []
    run: list[Piece] = []
    for piece in pieces:
        if run and (piece.epoch, piece.window_us, piece.hop_us, piece.chunks) != (
                run[0].epoch, run[0].window_us, run[0].hop_us, run[0].chunks):
            out.append(_joined(run))
            run = []
        run.append(piece)
    if run:
        out.append(_joined(run))
    return out


def split_at(pieces: list[Piece], t_us: int) -> tuple[list[Piece], list[Piece]]:
    """The pieces' events before `t_us`, and those from `t_us` on (pieces in time order; empty parts left out)."""
    before: list[Piece] = []
    after: list[Piece] = []
    for p in pieces:
        n = len(p.batch)
        k = int(np.searchsorted(p.batch.events["t"], t_us, side="left"))
        if k:
            before.append(p if k == n else replace(p, batch=p.batch.slice_count(0, k)))
        if k < n:
            after.append(p if k == 0 else replace(p, batch=p.batch.slice_count(k)))
    return before, after


def _joined(run: list[Piece]) -> Piece:
    if len(run) == 1:
        return run[0]
    first = run[0].batch  # batches the segmenter accepted, of one sensor, in time order: valid when joined
    batch = first._trusted(join_events([p.batch.events for p in run]))
    return Piece(batch, run[0].epoch, run[0].origin, run[0].window_us, run[0].hop_us, run[0].chunks)


class _Span:
    """One window (or chunk) in flight: its layers' potentials and counts, then, once finished, only the
    last layer's counts and the spikes per layer."""

    __slots__ = ("arrays", "last", "spikes", "finite", "raw", "fed", "weights")

    def __init__(self, net, weights: tuple):
        self.arrays = [(np.zeros_like(layer.phi), np.zeros_like(layer.counts)) for layer in net.hidden]
        self.last = self.spikes = None
        self.finite = True
        self.raw = self.fed = 0  # events of the stream, and input events kept by the input map
        self.weights = weights

    def run(self, net, idx: np.ndarray | None) -> None:
        """Feed `idx` (None: nothing) into this state, or, when `idx` is None, finish it."""
        own = [(layer.phi, layer.counts) for layer in net.hidden]
        try:
            for layer, (phi, counts) in zip(net.hidden, self.arrays):
                layer.phi, layer.counts = phi, counts
            if idx is not None:
                propagate.feed(net, idx)
                return
            spikes = [float(layer.counts.sum()) for layer in net.hidden]
            self.finite = guard.state_finite(net.hidden, spikes)
            self.spikes = tuple(int(s) for s in spikes) if self.finite else tuple(0 for _ in spikes)
            self.last, self.arrays = net.hidden[-1].counts, None
        finally:
            for layer, (phi, counts) in zip(net.hidden, own):
                layer.phi, layer.counts = phi, counts

    def finish(self, net) -> None:
        if self.arrays is not None:
            self.run(net, None)


class InFlight:
    """The states in flight of one stream (see the module doc); `counters`: `read` (windows decided from
    their state), `recomputed` (decided from their own events instead), `feed_errors` (pieces refused)."""

    def __init__(self, max_states: int = MAX_STATES):
        self.max_states = max_states
        self.states: dict[tuple[int, int], _Span] = {}
        self.counters = {"read": 0, "recomputed": 0, "feed_errors": 0}

    def clear(self) -> None:
        self.states.clear()

    # -- as events arrive ---------------------------------------------------------------------
    def feed(self, net, piece: Piece) -> None:
        """Feed one accepted stream batch into the states it belongs to (never raises: a piece the network
        refuses drops every state, and the windows are decided from their own events)."""
        if not eligible(net) or not len(piece.batch):
            return
        try:
            self._feed(net, piece)
        except Exception as exc:  # noqa: BLE001 - a bad piece must not stop the stream
            self.counters["feed_errors"] += 1
            log.debug("in-flight feed failed: %s: %s", type(exc).__name__, exc)
            self.clear()

    def _feed(self, net, piece: Piece) -> None:
        idx, t = net.input_events(piece.batch)
        raw_t = piece.batch.events["t"]
        H = piece.hop_us
        span = H if piece.chunks else piece.window_us  # the time one state covers
        first, last = int(raw_t[0]), int(raw_t[-1])
        weights = _weights(net)
        for (epoch, start), st in self.states.items():  # spans over (or of an old grid): counts only from now
            if st.arrays is not None and (epoch != piece.epoch or start + span <= first):
                st.finish(net)

        def reaching(t_us: int) -> int:  # the first window (or chunk) start on the grid whose span holds t_us
            return piece.origin + max(0, -(-(t_us - span + 1 - piece.origin) // H)) * H

        s = reaching(first)
        while s <= last:
            key = (piece.epoch, s)
            lo_r, hi_r = np.searchsorted(raw_t, (s, s + span), side="left")
            st = self.states.get(key)
            if hi_r == lo_r and st is None:  # nothing here: on to the next event's first window (idle gaps)
                s = max(s + H, reaching(int(raw_t[lo_r])))
                continue
            if hi_r > lo_r:
                if st is None:
                    st = self.states[key] = _Span(net, weights)
                if st.arrays is not None and st.weights == weights:
                    lo, hi = np.searchsorted(t, (s, s + span), side="left")
                    st.run(net, idx[lo:hi])
                    st.raw += int(hi_r - lo_r)
                    st.fed += int(hi - lo)
                else:  # fed with other weights, or already finished: never read out
                    st.weights = None
            if st is not None and last >= s + span:
                st.finish(net)  # its last event has arrived: keep only what the readout needs
            s += H
        while len(self.states) > self.max_states:
            del self.states[min(self.states)]

    # -- when a window closes -----------------------------------------------------------------
    def decide(self, net, window: Window):
        """The Decision of a window keyed by the segmenter (None: decide it the usual way, `decide.decide`).

        "inflight": from its state when that holds exactly its events, else None. "chunks": from the sum of
        its chunks' counts, the chunks computed from the window's events where their states do not fit."""
        if window.key is None or not eligible(net):
            return None
        for old in [k for k in self.states if k < window.key]:  # windows go in order: these are past
            del self.states[old]
        weights = _weights(net)
        if not window.chunk_us:
            st = self.states.pop(window.key, None)
            if st is None or st.weights != weights or st.raw != window.events:
                self.counters["recomputed"] += 1
                return None
            self.counters["read"] += 1
            return self._decision(net, [st])
        return self._decision(net, self._chunks(net, window, weights))

    def _chunks(self, net, window: Window, weights: tuple) -> list[_Span]:
        epoch, start = window.key
        H = window.chunk_us
        n = max(1, -(-(int(window.t_end_us) - start) // H))
        found = [st for i in range(n) if (st := self.states.get((epoch, start + i * H))) is not None]
        if found and all(st.weights == weights for st in found) and sum(st.raw for st in found) == window.events:
            self.counters["read"] += 1
            return found
        self.counters["recomputed"] += 1
        idx, t = net.input_events(window.batch)
        chunks = []
        for i in range(n):
            st = _Span(net, weights)
            lo, hi = np.searchsorted(t, (start + i * H, start + (i + 1) * H), side="left")
            st.run(net, idx[lo:hi])
            st.fed = int(hi - lo)
            chunks.append(st)
        return chunks

    @staticmethod
    def _decision(net, states: list[_Span]):
        for st in states:
            st.finish(net)
        total = states[0].last if len(states) == 1 else np.sum([st.last for st in states], axis=0, dtype=np.float32)
        if all(st.finite for st in states):
            scores = propagate.scores_of(net, total)
            spikes = tuple(int(sum(col)) for col in zip(*(st.spikes for st in states)))
        else:
            scores, spikes = np.full(net.n_classes, np.nan, np.float32), tuple(0 for _ in net.hidden)
        fed = sum(st.fed for st in states)
        net.samples_seen += 1
        net.events_seen += fed
        return net.decision_of(scores, spikes, fed)
