"""Watching a training run: updates refused as non-finite, and a network that falls silent, revived or stopped.

A network is *silent* when its last hidden layer fires no spike on ``SILENT_SAMPLES`` training
samples in a row (each with input events): its output is then its bias alone, the same for every
input, and learning cannot reach the hidden layers any more (no spike carries an error back).
A network is *stuck* when it gives the same class on ``STUCK_SAMPLES`` training samples in a row while at
least ``STUCK_CLASSES`` true classes pass (its hidden layers still fire, but what reaches the output no longer
depends on the input: the collapse a run away and then nearly silent network shows); it is revived as a silent one.
A network has *faded* when its last hidden layer's spikes per input event (a running mean over about
``FADE_SAMPLES`` samples) fall below 1/``FADE_RATIO`` of the highest that mean reached since the run (or the last
revival) began, and below ``FADE_FLOOR``: a few spikes a sample still pass, so it is neither silent nor stuck,
but the output barely hears the input (a `membrane` run on N-MNIST ended at 6 % this way, its last layer at 1/240
of a sound run's rate); it is revived as a silent one.
A network has *collapsed* when its training accuracy (test-then-train: each training item decided before it is
learned; a running mean over about ``COLLAPSE_SAMPLES`` items) falls more than ``COLLAPSE_DROP`` under the highest
that mean reached since the run (or the last revival) began: it still spikes and its decisions still follow the
input, but learning has wrecked what it knew. Seen on N-MNIST with twice the synthetic samples (20,550 training
samples, 9 epochs, seed 1): its convolutions' spikes per input event crept up epoch by epoch (3.4 and 4.2 at the
start of the last one), then ran away within it (4.5 and 16.4), the training accuracy fell from 0.875 to 0.785 and
the saved model scored 52 % on held-out samples against 93 % for the epoch before. It is revived as a silent one.
An update the network found non-finite (or huge) it undid itself and halved its learning rates
(``NonFinite.undone``, ``lr_backoff``): that is logged and counted. A network that is silent,
whose scores are not finite with its weights as they are, or whose updates were refused
``MAX_REFUSED`` times since its last good state (its weights, not its step, are the trouble: spike
counts grown so large that any step overflows) is *revived*: its weights go back to those it had at
the start of the last epoch that began in good health (the initial ones in the first epoch), with
half the learning-rate multiplier it had then (``lr_backoff``, kept in the checkpoint). After
``MAX_REVIVALS`` revivals training stops with ``NetworkSilent`` (one line; the CLI exits 2).
None of this acts on a run where nothing goes wrong, apart from one copy of the weights per epoch.
"""

from __future__ import annotations

import logging
import weakref

from ..errors import StreamsnnError
from ..snn.guard import NonFinite, back_off, restore, snapshot

log = logging.getLogger(__name__)

#: Consecutive samples (with events) without a spike of the last hidden layer that make a network silent.
SILENT_SAMPLES = 50
#: Consecutive training samples with the same decision, and the distinct true classes among them, that make a
#: network stuck (a healthy learner's decisions follow the classes long before; 2-class data is never judged).
STUCK_SAMPLES = 300
STUCK_CLASSES = 3
#: Samples the running mean of the last hidden layer's spikes per input event spans (and waits for before a peak
#: counts), and how far below its peak it may fall before the network has faded. A sound run's rate falls a few
#: times as it learns, never a hundredfold: the default N-MNIST training (real + synthetic, seed 0, 6 epochs) ended
#: each epoch at 1.04-1.23x under its peak (0.07-0.098 spikes per input event).
FADE_SAMPLES = 200
FADE_RATIO = 100.0
#: ... and only below this many spikes per input event: a rate that fell a hundredfold from a run-away peak (a
#: membrane run's last layer reached 40 spikes per input event, then settled at 0.4) has not faded.
FADE_FLOOR = 0.01
#: Training items the running mean of the training accuracy spans (and waits for before its peak counts), and how far
#: under its peak it may fall before the network has collapsed. A sound run's mean moves by a few points: 1,000 items
#: give it a spread of about a point, and epoch to epoch the default N-MNIST training's accuracy moves by one or two.
COLLAPSE_SAMPLES = 1000
COLLAPSE_DROP = 0.10
#: Updates refused since the last good state that make a revival.
MAX_REFUSED = 5
#: Revivals before training gives up.
MAX_REVIVALS = 4
#: Refused updates logged per epoch at WARNING (the rest at DEBUG; train_epoch reports the count).
LOG_FIRST = 3


class NetworkSilent(StreamsnnError):
    """Training stopped: the network fell silent (or kept computing non-finite scores) and could not be revived."""


def _weights(net) -> list:
    return [*snapshot(net), net.lr_backoff]


_WATCHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # network -> its Watch


class Watch:
    """The state of one network's training run across epochs (see the module doc); ``Watch.of(net)``."""

    def __init__(self, net):
        self.net = net
        self.silent = 0  # consecutive silent samples so far
        self.revivals = 0
        self.good = None  # the weights (and lr_backoff) to go back to
        self.logged = 0
        self.refused_since = 0  # updates refused since the good state
        self.same, self.last, self.labels = 0, None, set()  # the run of equal decisions, and its true classes
        self.rate, self.peak, self.seen = 0.0, 0.0, 0  # last layer's spikes per input event: running mean, its peak
        self.acc, self.acc_peak, self.decisions = 0.0, 0.0, 0  # training accuracy: running mean, its peak
        self.rates, self.rates_at_peak = None, None  # every hidden layer's spikes per input event, running mean

    @classmethod
    def of(cls, net) -> Watch:
        """The watch kept with ``net`` (made on first use)."""
        watch = _WATCHES.get(net)
        if watch is None:
            watch = _WATCHES[net] = cls(net)
        return watch

    def start_epoch(self) -> None:
        """Keep the weights as the ones to go back to, unless the network is failing already (falling silent, stuck,
        refusing updates, fading or collapsing)."""
        self.logged = 0
        healthy = (self.silent == 0 and self.refused_since == 0 and self.same < STUCK_SAMPLES // 2
                   and not (self.rate * FADE_RATIO ** 0.5 < self.peak and self.rate < FADE_FLOOR * FADE_RATIO ** 0.5)
                   and not self.collapsing(COLLAPSE_DROP / 2))
        if healthy or self.good is None:
            self.good = _weights(self.net)

    def refused(self, exc: NonFinite, epoch: int, sample: str) -> None:
        """A sample whose update (or scores) were not finite: log it in one line; revive unless it was undone."""
        self.logged += 1
        level = logging.WARNING if self.logged <= LOG_FIRST else logging.DEBUG
        log.log(level, "epoch %d, sample %s: %s", epoch + 1, sample, exc)
        if not exc.undone:
            self.revive(epoch, getattr(exc, "cause", "its scores were not finite"))
            return
        self.refused_since += 1
        if self.refused_since >= MAX_REFUSED:
            self.revive(epoch, f"{self.refused_since} updates refused as non-finite or huge")

    def collapsing(self, drop: float) -> bool:
        """Whether the running training accuracy is more than ``drop`` under its peak (once the peak counts)."""
        return self.decisions >= COLLAPSE_SAMPLES and self.acc < self.acc_peak - drop

    def spiked(self, spikes: tuple, events: int, epoch: int) -> None:
        """After a sample: count a silent one; revive the network after ``SILENT_SAMPLES`` in a row."""
        if not events or not spikes:
            return
        now = [s / events for s in spikes]
        if self.rates is None or len(self.rates) != len(now):
            self.rates = now
        else:
            self.rates = [r + (x - r) / COLLAPSE_SAMPLES for r, x in zip(self.rates, now)]
        self.silent = self.silent + 1 if spikes[-1] == 0 else 0
        if self.silent >= SILENT_SAMPLES:
            self.revive(epoch, f"its last hidden layer fired no spike on {self.silent} samples in a row")
            return
        self.seen += 1
        self.rate += (float(spikes[-1]) / events - self.rate) / min(self.seen, FADE_SAMPLES)
        if self.seen < FADE_SAMPLES:
            return
        self.peak = max(self.peak, self.rate)
        if self.rate * FADE_RATIO < self.peak and self.rate < FADE_FLOOR:
            self.revive(epoch, f"its last hidden layer faded to {self.rate:.3g} spikes per input event, under "
                               f"1/{FADE_RATIO:g} of the {self.peak:.3g} it reached")

    def decided(self, predicted: int, label: int, epoch: int) -> None:
        """After a sample: extend or restart the run of equal decisions; revive a stuck network."""
        if predicted != self.last:
            self.same, self.last, self.labels = 0, predicted, set()
        self.same += 1
        self.labels.add(label)
        if self.same >= STUCK_SAMPLES and len(self.labels) >= STUCK_CLASSES:
            self.revive(epoch, f"it gave class {predicted} on {self.same} samples in a row of "
                               f"{len(self.labels)} different classes")
            return
        self.decisions += 1
        self.acc += (float(predicted == label) - self.acc) / min(self.decisions, COLLAPSE_SAMPLES)
        if self.decisions < COLLAPSE_SAMPLES:
            return
        if self.acc > self.acc_peak:
            self.acc_peak, self.rates_at_peak = self.acc, self.rates
        if self.collapsing(COLLAPSE_DROP):
            self.revive(epoch, f"its training accuracy fell to {self.acc:.0%} from the {self.acc_peak:.0%} it reached "
                               f"(running means over about {COLLAPSE_SAMPLES} items){self._rates_text()}")

    def _rates_text(self) -> str:
        """The hidden layers' spikes per input event now and at the accuracy's peak, for the collapse's line."""
        if not self.rates or not self.rates_at_peak or len(self.rates) != len(self.rates_at_peak):
            return ""
        show = lambda rates: "/".join(f"{r:.3g}" for r in rates)  # noqa: E731
        return f"; hidden layers' spikes per input event {show(self.rates)}, {show(self.rates_at_peak)} at the peak"

    def revive(self, epoch: int, why: str) -> None:
        """Back to the good weights with the learning rates halved; NetworkSilent after MAX_REVIVALS."""
        net = self.net
        if self.revivals >= MAX_REVIVALS:
            raise NetworkSilent(
                f"training stopped in epoch {epoch + 1}: the network failed ({why}) again after {self.revivals} "
                f"revivals with halved learning rates (now x{net.lr_backoff:g}); try lower --lr and --lr-out "
                "(e.g. a quarter), another --seed, or shorter samples")
        *weights, backoff = self.good
        restore(net, weights)
        net.lr_backoff = backoff
        back_off(net)
        self.good[-1] = net.lr_backoff  # a second revival from the same weights halves again
        self.revivals += 1
        self.silent = self.refused_since = self.same = 0
        self.last, self.labels = None, set()
        self.rate, self.peak, self.seen = 0.0, 0.0, 0
        self.acc, self.acc_peak, self.decisions = 0.0, 0.0, 0
        log.warning("epoch %d: the network failed (%s); revived with the weights of an earlier epoch and the "
                    "learning rates halved (now x%g; revival %d of %d)", epoch + 1, why, net.lr_backoff,
                    self.revivals, MAX_REVIVALS)

