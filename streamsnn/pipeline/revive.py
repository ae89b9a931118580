"""A network that learns from its windows in the daemon, watched: a healthy copy kept, a failing network revived.

Learning online, a network's activity can creep up until its weights run away (training offline has the same
trouble, ``learn/watch.py``). Seen in the live demo (`streamsnn run pipelines/demo.toml`, a fresh network learning
every 100 ms window): seed 7 reached 87 % of its windows right after 7,000 updates, then its convolutions fired
more and more (1.7 -> 8.9 spikes per input event in the second) and its weights overflowed within 4,000 more; seed
1 did the same and then fell silent, deciding 40,000 windows by its bias alone. Measured and not enough alone: a
step bound (``max_step`` 0.05 or 0.01), a spike price 10x (one seed still ran away, later), 100x (silent), a price
that rose with the climb, scaling the climbing layer's weights down.

So the daemon watches the network on the windows it learns from (test then train), as ``train`` does:
- it copies the weights before the first of them, and then at the end of every period of ``KEEP_EVERY`` learned
  windows in good health (no update refused or decision withheld in it, the running accuracy not more than half of
  ``COLLAPSE_DROP`` under its peak, every hidden layer firing at most ``HEALTHY_RATE`` times the lowest rate it had
  at a copy); a class added or removed meanwhile changes the output layer, and a revival then puts back the copy's
  output weights of the classes it had and keeps the others as they are;
- it revives the network from that copy with its learning rates halved (``lr_backoff``, kept in the checkpoint; from
  the lower of the copy's and the present one) when ``MAX_REFUSED`` updates were refused or decisions withheld as
  non-finite within a period, when its last hidden layer fired nothing on ``SILENT_WINDOWS`` windows in a row that
  were busy enough for the copy to fire on (``SILENT_EXPECTED`` spikes at its rate; an idle scene is no failure),
  when the running accuracy of the learned windows (a mean over about ``COLLAPSE_WINDOWS``) falls more than
  ``COLLAPSE_DROP`` under the highest it reached since the start or the last revival, or when a hidden layer fires
  more than ``RUNAWAY_RATE`` times the lowest rate it had at a copy.
Each revival is one WARNING line and counted (``revivals`` in the metrics and on the run's last line); the
model's version changes (its weights did). After ``MAX_REVIVALS`` in a run the network stops learning from labels
(one ERROR line with what to try, ``labels_stopped`` in the metrics): a network that keeps failing at ever lower
rates would only lose what it knows. Feedback taught since the copy is undone by a revival (its decisions stay
counted as taught). A network that never fails costs one copy of its weights every ``KEEP_EVERY`` learned windows.

A change of the windows (a scene that fires more per input event, a long run of a harder class, a scene the model
does not fire on) looks like a run-away, a collapse or silence too. So before a revival for any of those three, the
network and its healthy copy decide again the busy windows learned since the copy (the latest ``JUDGE_WINDOWS``, at
most ``JUDGE_EVENTS`` events, decided as the network decided them: each alone on a fresh state against the
network's prediction before it learned each, or a temporal network's stream since the copy replayed by both, the
windows it learned from in order, afresh at each new stream): the network is revived when it differs from
the copy there in any way (a layer firing more than ``HEALTHY_RATE`` times what the copy fires on them, right on
``COLLAPSE_DROP`` fewer of them and clear of chance, or silent where the copy fires), and when there are fewer than
``JUDGE_MIN`` such windows. Otherwise the
scene changed: the baseline of what triggered moves to it (the lowest rates scaled by what the copy fires on the new
windows, the accuracy's peak to where it is, the silent count to 0), one INFO line, counted (``scene_changes`` in the
metrics), and no copy is replaced. Refused updates are never a change of scene, and no copy is taken while the last
hidden layer is silent or any layer fires under 1 / ``RUNAWAY_RATE`` of its lowest rate at a copy.
Tried and not kept: judging by accuracy alone and taking the network as the copy when the copy did no better: it
took the demo's run-aways (still right on most windows) for changes of scene, made the climbing network the copy,
and seed 0 ended at 40 % after 8 revivals.
"""

from __future__ import annotations

import copy
import logging
import math
import secrets
from collections import deque

import numpy as np

from ..snn.guard import MIN_BACKOFF, back_off, restore, snapshot

log = logging.getLogger(__name__)

#: Learned windows between copies of a healthy network's weights.
KEEP_EVERY = 1000
#: Learned windows the running accuracy spans (and waits for before its peak counts), and how far under that peak it
#: may fall (as in ``learn/watch.py``: a sound run moves by a few points).
COLLAPSE_WINDOWS = 1000
COLLAPSE_DROP = 0.10
#: Updates refused (or decisions withheld) as non-finite within one period of KEEP_EVERY learned windows that make a
#: revival.
MAX_REFUSED = 5
#: Learned windows in a row on which the last hidden layer fired nothing, each busy enough for the copy to fire
#: SILENT_EXPECTED spikes at the lowest rate it had at a copy (before that rate is known: SILENT_EVENTS input events).
#: A sound model's last layer fires about 0.1 spikes per input event, tens a window.
SILENT_WINDOWS = 200
SILENT_EXPECTED, SILENT_EVENTS = 5.0, 1000
#: Learned windows the running spikes per input event of each hidden layer span; a copy is taken only while every
#: layer fires at most HEALTHY_RATE times the lowest rate it had at a copy, and a layer above RUNAWAY_RATE times it
#: makes a revival (the demo runs above: the second convolution settled near 1 spike per input event and fired 1.7 at
#: the accuracy's peak, 3.6 a thousand updates before the weights overflowed).
RATE_WINDOWS = 200
HEALTHY_RATE, RUNAWAY_RATE = 1.5, 3.0
#: Revivals in one run after which the network stops learning from labels (bench_online: 2-3 on the demo).
MAX_REVIVALS = 8
#: The busy windows learned since the copy that the network and its copy decide again before a revival for activity,
#: accuracy or silence (a change of scene is no failure): at most JUDGE_WINDOWS of them and JUDGE_EVENTS input events
#: in all (a large sensor's windows; about 0.3 s of work here), at least JUDGE_MIN (fewer: revived without judging).
JUDGE_WINDOWS, JUDGE_EVENTS, JUDGE_MIN = 100, 300_000, 20


class LiveWatch:
    """The healthy copy and the health of one learning network in a daemon (see the module)."""

    def __init__(self, readout=None):
        self.readout = readout  # (net, decision, t_us) -> the decision read out at t_us (decide.evidence_at)
        self.good = None  # (guard.snapshot of the weights, lr_backoff, classes)
        self.learned = 0  # learned windows in this period (since the copy, or the last KEEP_EVERY without one)
        self.refused_at = 0  # the network's `nonfinite` when the period began
        self.acc, self.peak, self.scored = 0.0, 0.0, 0
        self.rates = None  # each hidden layer's running spikes per input event (learned windows)
        self.low = None  # ... and the lowest each had at a copy
        self.silent = 0  # learned windows in a row, busy enough, without a last-layer spike
        self.revivals = 0
        self.stopped = False  # gave up: the network no longer learns from labels
        self.recent: deque = deque()  # (batch, class name, right, carried_to, stream) of the windows ``judge`` uses
        self.recent_events = self.judged_windows = 0

    def before(self, net) -> None:
        """Before a window ``net`` learns from: the first copy, of the weights it starts with."""
        if self.good is None:
            self.keep(net)

    def collapsing(self, drop: float) -> bool:
        return self.scored >= COLLAPSE_WINDOWS and self.acc < self.peak - drop

    def runaway(self) -> int | None:
        """The first hidden layer firing more than RUNAWAY_RATE times its lowest rate at a copy, or None."""
        if self.low is None or self.rates is None or self.scored < RATE_WINDOWS:
            return None
        over = [k for k, (r, lo) in enumerate(zip(self.rates, self.low)) if r > RUNAWAY_RATE * max(lo, 1e-3)]
        return over[0] if over else None

    def calm(self) -> bool:
        """Whether every hidden layer fires at most HEALTHY_RATE times its lowest rate at a copy, and at least
        1 / RUNAWAY_RATE of it (a layer falling silent is no healthy copy either; no such rate yet: calm; rates not
        measured since a revival: not yet)."""
        if self.low is None:
            return True
        return self.rates is not None and all(lo / RUNAWAY_RATE <= r <= HEALTHY_RATE * max(lo, 1e-3)
                                              for r, lo in zip(self.rates, self.low))

    def busy(self, events: int) -> bool:
        """Whether a window of ``events`` input events is busy enough for the copy to fire SILENT_EXPECTED last-layer
        spikes at the lowest rate it had at a copy (before that rate is known: SILENT_EVENTS events)."""
        return events * (self.low[-1] if self.low else SILENT_EXPECTED / SILENT_EVENTS) >= SILENT_EXPECTED

    def after(self, net, right: bool, spikes=(), events: int = 0, batch=None, output: int | None = None,
              carried_to: int | None = None, stream: int | None = None) -> None:
        """After a window ``net`` learned from (``right``: its prediction, made before the update, was right;
        ``spikes`` per hidden layer on its ``events`` input events; ``batch``, the events it was fed, ``output``, its
        true output, and ``carried_to``, for a temporal network deciding a stream with its state carried, the window's
        end it was read out at, of the segmenter's ``stream``; kept for ``judge``). A window on which the last hidden
        layer fired nothing and that was not busy (``busy``: an idle scene) says nothing of the network's health:
        only learned (a temporal network's events are kept as context, ``seen``)."""
        self.before(net)
        self.learned += 1
        fired = bool(spikes and spikes[-1])
        if spikes and events and (fired or self.busy(events)):
            now = [s / events for s in spikes]
            if self.rates is None or len(self.rates) != len(now):
                self.rates = now
            else:
                self.rates = [r + (x - r) / min(self.scored + 1, RATE_WINDOWS) for r, x in zip(self.rates, now)]
            self.silent = 0 if fired else self.silent + 1
            self.scored += 1
            self.acc += (float(right) - self.acc) / min(self.scored, COLLAPSE_WINDOWS)
            if self.scored >= COLLAPSE_WINDOWS:
                self.peak = max(self.peak, self.acc)
            if batch is not None and output is not None:
                self.remember(batch, str(net.classes[output]), right, carried_to, stream)
        elif batch is not None and carried_to is not None:
            self.seen(batch, carried_to, stream)
        refused = self.refused(net)
        if refused >= MAX_REFUSED:
            self.revive(net, f"{refused} updates were refused or decisions withheld as non-finite")
        elif self.silent >= SILENT_WINDOWS:
            self.judged(net, "silent", f"its last hidden layer fired no spike on {self.silent} busy windows in a row")
        elif self.collapsing(COLLAPSE_DROP):
            self.judged(net, "accuracy", f"its running accuracy fell to {self.acc:.0%} from the {self.peak:.0%} it "
                                         f"reached (means over about {COLLAPSE_WINDOWS} learned windows)")
        elif (k := self.runaway()) is not None:
            self.judged(net, k, f"hidden layer {k + 1} fires {self.rates[k]:.3g} spikes per input event, more than "
                                f"{RUNAWAY_RATE:g} times the {self.low[k]:.3g} it fired at a healthy copy")
        elif self.learned >= KEEP_EVERY:  # the end of a period: a copy when it was clean, else a new period
            if refused == 0 and not self.collapsing(COLLAPSE_DROP / 2) and self.calm() and not self.silent:
                self.keep(net)
            else:  # refusals count within one period: a stray one must not block every later copy
                self.new_period(net)

    def remember(self, batch, name: str | None, right: bool, carried_to: int | None = None,
                 stream: int | None = None) -> None:
        """Keep a busy learned window (its true class by name; ``carried_to``, ``stream``: see ``after``; ``name``
        None: a temporal network's window kept only for the events it was fed, ``seen``) for ``judge`` (the latest
        JUDGE_WINDOWS judged ones, JUDGE_EVENTS events in all)."""
        self.recent.append((batch, name, bool(right), carried_to, stream))
        self.recent_events += len(batch)
        self.judged_windows += name is not None
        while self.judged_windows > JUDGE_WINDOWS or (len(self.recent) > 1 and self.recent_events > JUDGE_EVENTS):
            old = self.recent.popleft()
            self.recent_events -= len(old[0])
            self.judged_windows -= old[1] is not None

    def seen(self, fresh, t_end_us: int, stream: int | None) -> None:
        """A temporal network's learned stream window that the watch does not judge (not busy): its fresh events, fed
        to both networks in the replay (``judge``). Only while there is a copy to judge. (Windows it did not learn
        from are left out: kept, they crowded the judged ones out of the event budget on a busy stream, and both
        networks miss them alike.)"""
        if self.good is not None and len(fresh):
            self.remember(fresh, None, False, int(t_end_us), stream)

    def forget(self) -> None:
        """Drop the windows kept for ``judge`` (at a copy or a revival: they judge the network that learned them)."""
        self.recent.clear()
        self.recent_events = self.judged_windows = 0

    def judge(self, net):
        """The network and its healthy copy on the recent busy windows, each deciding them as the network did: ([spikes
        per input event of each hidden layer], share right) for each. Each window alone on a fresh state, the network's
        share right its record (its prediction before learning each, test then train); a temporal network's stream
        (every window it was fed since the copy, ``seen`` ones too, afresh at each new stream, from a fresh state at
        the first) replayed by both, each scored on its replay (the network's own record carried a state the replay
        cannot rebuild). None when there is nothing to judge on (fewer than JUDGE_MIN windows, classes of the copy
        gone) or the copy gives no decision. A NonFinite of the network: raised."""
        if self.good is None or self.judged_windows < JUDGE_MIN:
            return None
        weights, _, classes = self.good
        now = copy.deepcopy(net, memo={id(getattr(net, "memory", None)): None})  # the rehearsal memory: not needed
        then = copy.deepcopy(now)
        try:
            restore(then, outputs_by_name(weights, classes, net))
        except (ValueError, IndexError):  # the layers changed shape since the copy
            return None
        out = []
        for k, clone in enumerate((now, then)):
            spikes, events, right = None, 0, 0
            names = [str(c) for c in clone.classes]
            clone.reset()
            stream = self.recent[0][4]
            for batch, name, was_right, carried_to, window_stream in self.recent:
                try:
                    if carried_to is None:
                        clone.reset()
                        d = clone.predict_one(batch)
                    else:
                        if window_stream != stream:  # a new stream: the network was reset there too
                            clone.reset()
                            stream = window_stream
                        d = clone.predict_one(batch)
                        d = self.readout(clone, d, carried_to) if self.readout else d
                except Exception:  # noqa: BLE001 - a copy that gives no decision cannot judge; the network failed
                    if k == 0:
                        raise
                    return None
                if name is None:  # fed for its events alone
                    continue
                spikes = list(d.spikes) if spikes is None else [a + b for a, b in zip(spikes, d.spikes)]
                events += d.events
                right += was_right if k == 0 and carried_to is None else names[d.label] == name
            out.append(([s / max(events, 1) for s in spikes], right / self.judged_windows))
        return out

    def judged(self, net, what, why: str) -> None:
        """A trigger for ``what`` (a hidden layer's index: its activity; "accuracy"; "silent"), said in ``why``:
        revived when the network differs from its copy on the same recent windows (``judge``) in any of the
        three (a layer firing more than HEALTHY_RATE times the copy, COLLAPSE_DROP fewer right and clear of chance,
        silent where the copy fires: whichever triggered), else the trigger's baseline moves to the new scene."""
        try:
            seen = self.judge(net)
        except Exception:  # noqa: BLE001 - the network gives no decision on windows it learned from: it failed
            seen = None
        if seen is None:
            return self.revive(net, why)
        (rates, acc), (copy_rates, copy_acc) = seen
        differs = [f"layer {k + 1} fires {r:.3g} spikes per input event on the same windows, its copy {c:.3g}"
                   for k, (r, c) in enumerate(zip(rates, copy_rates)) if r > HEALTHY_RATE * max(c, 1e-3)]
        n = self.judged_windows  # on few windows a difference must also be clear of chance (two standard errors)
        if copy_acc >= acc + max(COLLAPSE_DROP, 2 * math.sqrt((acc * (1 - acc) + copy_acc * (1 - copy_acc)) / n)):
            differs.append(f"its copy is right on {copy_acc:.0%} of the same windows, it on {acc:.0%}")
        if copy_rates[-1] > 0 and rates[-1] <= copy_rates[-1] / RUNAWAY_RATE:
            differs.append(f"its last layer fires {rates[-1]:.3g} spikes per input event on the same windows, its "
                           f"copy {copy_rates[-1]:.3g}")
        if differs:
            return self.revive(net, f"{why}; {differs[0]}")
        net.scene_changes = getattr(net, "scene_changes", 0) + 1
        if what == "accuracy":
            self.peak = min(self.peak, self.acc)
        elif what == "silent":
            self.silent = 0
        elif self.low is not None and self.rates is not None and len(self.low) == len(rates):
            # the baseline a healthy copy fires at, in this scene: its rate scaled by what the copy fires on it
            self.low = [max(lo, r * c / max(x, 1e-6)) for lo, r, c, x in zip(self.low, self.rates, copy_rates, rates)]
        log.info("not revived: %s, but its copy does the same on the same windows (it fires %s spikes per input event, "
                 "the copy %s; right on %.0f%% and %.0f%%): a change of scene, not a failure; the watch measures from "
                 "here (%d so far this run)", why, "/".join(f"{r:.3g}" for r in rates),
                 "/".join(f"{c:.3g}" for c in copy_rates), 100 * acc, 100 * copy_acc, net.scene_changes)

    def failed(self, net) -> None:
        """After a window ``net`` was to learn from gave no decision (scores not finite, activity ran away:
        ``guard.NonFinite``, counted in ``net.nonfinite``): revived once MAX_REFUSED such within a period."""
        self.before(net)
        if (refused := self.refused(net)) >= MAX_REFUSED:
            self.revive(net, f"{refused} updates were refused or decisions withheld as non-finite")

    def new_period(self, net) -> None:
        """Start counting learned windows and refusals afresh (at a copy, a revival, or a period without a copy)."""
        self.learned, self.refused_at = 0, getattr(net, "nonfinite", 0)

    def refused(self, net) -> int:
        """Updates refused and decisions withheld as non-finite in this period (``net.nonfinite`` counts them)."""
        return getattr(net, "nonfinite", 0) - self.refused_at

    def keep(self, net) -> None:
        """Take the copy of the network's weights to go back to."""
        self.good = (snapshot(net), net.lr_backoff, list(net.classes))
        self.new_period(net)
        self.forget()  # windows the copy learned from: they would judge it on what it was taught
        if self.rates is not None and self.scored >= RATE_WINDOWS:  # settled: the rates a healthy copy fires at
            self.low = list(self.rates) if self.low is None or len(self.low) != len(self.rates) else [
                min(lo, r) for lo, r in zip(self.low, self.rates)]

    def revive(self, net, why: str) -> None:
        """Back to the copy with the learning rates halved; one WARNING line, counted in ``net.revivals``; after
        MAX_REVIVALS, learning from labels stops (one ERROR line)."""
        weights, backoff, classes = self.good
        restore(net, outputs_by_name(weights, classes, net))
        net.lr_backoff = min(backoff, net.lr_backoff)
        floor = net.lr_backoff <= MIN_BACKOFF
        back_off(net)
        self.good = (weights, net.lr_backoff, classes)  # a second revival from it halves again
        net._token = secrets.token_hex(4)  # other weights, another model version
        net.revivals = getattr(net, "revivals", 0) + 1
        net.hidden_updates += 1  # other hidden layers: what was kept of the old ones (the new-class fit pool) is stale
        net.silent_windows = 0  # other weights: their own count
        net.floor_said = False  # decide.refused says it again if these rates too fall to the floor
        self.revivals += 1
        self.new_period(net)
        self.silent = 0
        self.acc, self.peak, self.scored = 0.0, 0.0, 0
        self.rates = None
        self.forget()  # judged by the network that failed: what it was right on says nothing of this one
        rates = "at their floor" if floor else "halved"
        log.warning("the network failed while it learned (%s); revived with its last healthy weights and the learning "
                    "rates %s (now x%g; revival %d of at most %d this run)", why, rates, net.lr_backoff, self.revivals,
                    MAX_REVIVALS)
        if self.revivals >= MAX_REVIVALS:
            self.stopped = net.labels_stopped = True
            log.error("the network failed %d times while it learned from labels; it keeps its last healthy weights and "
                      "no longer learns from labels in this run (feedback still teaches it; `labels_stopped` in the "
                      "metrics); its rates stay at x%g in its checkpoint: to learn from labels again, restart it (the "
                      "rates stay low) or train a model anew (`streamsnn train`, or a fresh network with lower "
                      "model.lr / model.lr_out); model.revive = false learns regardless", self.revivals,
                      net.lr_backoff)


def outputs_by_name(weights: list, classes: list, net) -> list:
    """``weights`` (a ``guard.snapshot`` taken when the network had ``classes``) for ``net`` as it is now: the output
    columns of the classes it still has (by name) from the copy, those of classes added since as they are now."""
    now = [str(c) for c in net.classes]
    if now == [str(c) for c in classes]:
        return weights
    *layers, out_then, bias_then = weights
    out, bias = net.out_weight.copy(), net.bias.copy()
    then = {str(c): i for i, c in enumerate(classes)}
    for j, name in enumerate(now):
        if name in then:
            out[:, j], bias[j] = out_then[:, then[name]], bias_then[then[name]]
    return [*layers, np.ascontiguousarray(out), bias]
