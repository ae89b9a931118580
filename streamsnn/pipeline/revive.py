"""A network that learns from its windows in the daemon, watched: a good copy kept, a failing network revived.

Learning online, a network's activity can creep up until its weights run away (training offline has the same
trouble, ``learn/watch.py``). Seen in the live demo (`streamsnn run pipelines/demo.toml`, a fresh network learning
every 100 ms window): seed 7 reached 87 % of its windows right after 7,000 updates, then its convolutions fired
more and more (1.7 -> 8.9 spikes per input event in the second) and its weights overflowed within 4,000 more; seed
1 did the same and then fell silent, deciding 40,000 windows by its bias alone. Measured and not enough alone: a
step bound (``max_step`` 0.05 or 0.01), a spike price 10x (one seed still ran away, later), 100x (silent), a price
that rose with the climb, scaling the climbing layer's weights down.

So the daemon watches the network as ``train`` does, on the windows it learns from (test then train):
- every ``KEEP_EVERY`` learned windows in good health (no update refused since the last copy, not silent, the
  running accuracy not more than half of ``COLLAPSE_DROP`` under its peak, every hidden layer firing at most
  ``HEALTHY_RATE`` times the lowest rate it had at a copy) it keeps a copy of the weights (and takes a new one at
  once when a class is added or removed: the output layer changed shape);
- it revives the network from that copy, with its learning rates halved (``lr_backoff``, kept in the checkpoint),
  when the network is silent (``SILENT_WINDOWS`` windows in a row), when ``MAX_REFUSED`` updates were
  refused since the copy, when a hidden layer fires more than ``RUNAWAY_RATE`` times its lowest rate at a copy, or
  when the running accuracy of the learned windows (a mean over about
  ``COLLAPSE_WINDOWS``) falls more than ``COLLAPSE_DROP`` under the highest it reached (since the start or the
  last revival).
Each revival is logged in one WARNING line and counted (``revivals`` in the metrics); the model's version changes
(its weights did). A network that never fails costs one copy of its weights every ``KEEP_EVERY`` windows.
"""

from __future__ import annotations

import logging
import secrets

from ..snn.guard import back_off, restore, snapshot

log = logging.getLogger(__name__)

#: Learned windows between copies of a healthy network's weights.
KEEP_EVERY = 1000
#: Learned windows the running accuracy spans (and waits for before its peak counts), and how far under that peak it
#: may fall (as in ``learn/watch.py``: a sound run moves by a few points).
COLLAPSE_WINDOWS = 1000
COLLAPSE_DROP = 0.10
#: Updates refused since the copy that make a revival.
MAX_REFUSED = 5
#: Learned windows the running spikes per input event of each hidden layer span; a copy is taken only while every
#: layer fires at most HEALTHY_RATE times the lowest rate it had at a copy, and a layer above RUNAWAY_RATE times it
#: makes a revival (the demo runs above: the second convolution settled near 1 spike per input event and fired 1.7 at
#: the accuracy's peak, 3.6 a thousand updates before the weights overflowed).
RATE_WINDOWS = 200
HEALTHY_RATE, RUNAWAY_RATE = 1.5, 3.0
#: Windows in a row with input events and no spike of the last hidden layer after which the network is silent: its
#: every decision is its bias alone (``decide.silence``). A sound model's last layer fires about 0.1 spikes per input
#: event, tens a window.
SILENT_WINDOWS = 200


class LiveWatch:
    """The good copy and the health of one learning network in a daemon (see the module)."""

    def __init__(self):
        self.good = None  # (guard.snapshot of the weights, lr_backoff, classes)
        self.learned = 0  # learned windows since the copy
        self.refused_at = 0  # the network's `nonfinite` when the copy was taken
        self.acc, self.peak, self.scored = 0.0, 0.0, 0
        self.rates = None  # each hidden layer's running spikes per input event (learned windows)
        self.low = None  # ... and the lowest each had at a copy

    def collapsing(self, drop: float) -> bool:
        return self.scored >= COLLAPSE_WINDOWS and self.acc < self.peak - drop

    def runaway(self) -> int | None:
        """The first hidden layer firing more than RUNAWAY_RATE times its lowest rate at a copy, or None."""
        if self.low is None or self.scored < RATE_WINDOWS:
            return None
        over = [k for k, (r, lo) in enumerate(zip(self.rates, self.low)) if r > RUNAWAY_RATE * max(lo, 1e-3)]
        return over[0] if over else None

    def calm(self) -> bool:
        """Whether every hidden layer fires at most HEALTHY_RATE times its lowest rate at a copy."""
        return self.low is None or all(r <= HEALTHY_RATE * max(lo, 1e-3) for r, lo in zip(self.rates, self.low))

    def after(self, net, right: bool, spikes=(), events: int = 0) -> None:
        """After a window ``net`` learned from (``right``: its prediction, made before the update, was right;
        ``spikes`` per hidden layer on its ``events`` input events)."""
        if spikes and events:
            now = [s / events for s in spikes]
            if self.rates is None or len(self.rates) != len(now):
                self.rates = now
            else:
                self.rates = [r + (x - r) / min(self.scored + 1, RATE_WINDOWS) for r, x in zip(self.rates, now)]
        if self.good is None or len(self.good[-1]) != len(net.classes):
            self.keep(net)
        self.learned += 1
        self.scored += 1
        self.acc += (float(right) - self.acc) / min(self.scored, COLLAPSE_WINDOWS)
        if self.scored >= COLLAPSE_WINDOWS:
            self.peak = max(self.peak, self.acc)
        refused = getattr(net, "nonfinite", 0) - self.refused_at
        if getattr(net, "silent_windows", 0) >= SILENT_WINDOWS:
            self.revive(net, f"its last hidden layer fired no spike on {net.silent_windows} windows in a row")
        elif refused >= MAX_REFUSED:
            self.revive(net, f"{refused} updates were refused as non-finite or huge")
        elif self.collapsing(COLLAPSE_DROP):
            self.revive(net, f"its running accuracy fell to {self.acc:.0%} from the {self.peak:.0%} it reached "
                             f"(means over about {COLLAPSE_WINDOWS} learned windows)")
        elif (k := self.runaway()) is not None:
            self.revive(net, f"hidden layer {k + 1} fires {self.rates[k]:.3g} spikes per input event, more than "
                             f"{RUNAWAY_RATE:g} times the {self.low[k]:.3g} it fired at its healthy copy")
        elif self.learned >= KEEP_EVERY and refused == 0 and not self.collapsing(COLLAPSE_DROP / 2) and self.calm():
            self.keep(net)

    def keep(self, net) -> None:
        """Take the copy of the network's weights to go back to."""
        self.good = (snapshot(net), net.lr_backoff, list(net.classes))
        self.learned, self.refused_at = 0, getattr(net, "nonfinite", 0)
        if self.rates is not None and self.scored >= RATE_WINDOWS:  # settled: the rates a healthy copy fires at
            self.low = list(self.rates) if self.low is None or len(self.low) != len(self.rates) else [
                min(lo, r) for lo, r in zip(self.low, self.rates)]

    def revive(self, net, why: str) -> None:
        """Back to the copy with the learning rates halved; one WARNING line, counted in ``net.revivals``."""
        weights, backoff, classes = self.good
        restore(net, weights)
        net.lr_backoff = backoff
        back_off(net)
        self.good = (weights, net.lr_backoff, classes)  # a second revival from it halves again
        net._token = secrets.token_hex(4)  # other weights, another model version
        net.revivals = getattr(net, "revivals", 0) + 1
        net.silent_windows = 0
        self.learned, self.refused_at = 0, getattr(net, "nonfinite", 0)
        self.acc, self.peak, self.scored = 0.0, 0.0, 0
        self.rates = None
        log.warning("the network failed while it learned (%s); revived with its last healthy weights (kept every %d "
                    "learned windows) and the learning rates halved (now x%g; revival %d this run)", why, KEEP_EVERY,
                    net.lr_backoff, net.revivals)


