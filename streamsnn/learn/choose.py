"""Settings `train` chooses on held-out training samples: learning rates, epochs, augmentation, stream crops.

When (`should_search`): `--choose on` always, `--choose off` never; `--choose auto` (the default)
when the data are few (`datadefaults.is_small`: under 50 training samples per class) or unlike
N-MNIST, the data every default was measured on: a sensor other than 34x34 (the sensor of the input
map `train` picked). The real N-MNIST folder (1,000 samples of 34x34) and N-MNIST plus synthetic
samples (the first folder decides the sensor) are neither, so they train exactly as before.

Held-out part (`hold_out`): the last quarter (at least one sample) of every class's training samples,
in the dataset's order; a class with a single sample keeps it for training. A contiguous block, not a
random draw: samples cut from one recording follow each other in that order, and neighbouring pieces
are nearly the same events, so a random quarter would score candidates on near-copies of samples they
trained on. The test split is never read.

Search (`search`): each candidate trains on the other three quarters with the epochs capped at the
default (or the user's) epochs, and is scored on the held-out part after every epoch. Its score is its
best held-out accuracy, read at the last epoch that reached it (its best epoch; the leaks below are judged
there too). Its epochs, how long the winner then trains: all of them, unless the best epoch is clearly better
than the last (`stops_early`: right on more held-out samples than the last epoch by over two standard
deviations of a sign test on the samples where the two disagree, and so are the five epochs around it, each sample's
share of right answers over them, against the last five epochs), and then the best epoch. On a few held-out
samples the accuracy peaks early by chance (POKER-DVS, 4 held out: 100 % after 1 to 12 epochs; taking the first
such epoch trained seed 1 for 12 epochs instead of 40, 86.7 % on the test split against 100 %), and a run cut
at its best epoch stops with the learning rate still high, its decay planned over all the epochs: synthetic
gestures' default command (100 held out) kept 13 epochs of 40 on seed 2, 92 % of the test gestures against
95 % for the same settings trained 40 (`--choose off`). Until 2026-12-07 every run took its best epoch. The best
of many epochs scored on a few samples can also be one lucky epoch: DVS128 people told apart by recording (31
held out, seed 2) peaked at 77 % on epoch 11 between 68 and 58 %, the epochs around it averaged 61 % and the last
five 59 %; that run trained 11 epochs and scored 27.5 % of its test split, where seeds 0 and 1 trained 40 (57 and 59 %).
So the epochs around the best (CUT_WINDOW each side) must beat the last epochs as well, per sample on average.
Coordinate search,
at most 5 runs (7 with the two leaks below): the default first, then learning rates x0.5 and x0.25 (lr
and lr_out together), then augmentation toggled, then the stream crops toggled when the samples are long enough for them
(`datadefaults.choose_stream`), each at the best so far. A candidate replaces the best so far only
with a strictly higher held-out accuracy, so the default stays unless one held-out sample more is
right. A setting the user gave (`--lr`/`--lr-out`, `--epochs`, `--augment`/`--no-augment`,
`--stream-crops`/`--no-stream-crops`) is fixed, not searched. The winner then trains on the whole
training split; its learning rate decays over the capped epochs as it did in the search.
Leak (`leaks`): a temporal network with input delays whose leak `train` sets (no `--tau-ms`) also tries a
leak of 1/2 of the delay against the default DELAY_TAU_SHARE (1/4), at the best so far, last. Synthetic
gestures want 1/2, the order-only task 1/4 (datadefaults.py): a longer leak can win on whole samples and
still lose live, where it carries the previous sample into the next decision. So this candidate is judged on
two figures, held-out whole samples and the held-out samples' last decisions played back to back as one stream
(`stream_score`, `streameval.stream_evaluate`'s `last_decision_accuracy`), both read at the epoch the whole-sample
score chose, and replaces the best only when it is higher on one of them and lower on neither (`takes`). Until
2026-12-07 it had to be strictly higher on whole samples: on the order task with mug, pencil and scissors
(seed 0) the first layer's leak below tied the best on whole samples (96 % of 90) and got 89 % of last decisions
against 83 %, and was not taken.
First layer's leak (`first_leaks`): then, under the same rule, the first hidden layer leaking over the whole
delay (FIRST_LEAKS) while the later layers and the output keep the leak chosen. Each delayed copy's first-layer
units then hold all of their part of the sample, not its last quarter. Trained on 3/4 of the training split of an
order-only task whose objects are harder to tell apart (BioLab mug, pencil, scissors; 120 ms segments; `--tau-ms
120,30,30,30 --choose off --no-augment`, 40 epochs) and scored on its last quarter, seeds 0 / 1, it gave
94.4 / 93.3 % of whole samples against 86.7 / 85.6 %, and 86.7 / 83.3 % of last decisions against 81.1 / 81.1 %;
on the first order task 100 / 100 %, as without it (a tie on both: not taken); on synthetic gestures (seed 0)
92.0 % whole against 90.0 %, but 79.0 % of last decisions against 84.0 %: refused there by the rule.
Every candidate trains with its items' ends cut as `train` cuts them (`augment.end_cuts`: by default for a network
with a leak and input delays; `--end-cuts`), so the search scores the training the winner gets.
Side by side (`search(jobs=N)`, `train --jobs`, `choose_pool`): the candidates run in worker processes, the next ones
started before the outcome of the one waited for is known; the same candidates are tried and chosen in the same order.
Why so little: a cross-validated small-data preset once lost on held-out checks (datadefaults.py), so
only settings whose wrong value shows on a few samples are searched, and the default wins ties.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from . import datadefaults as dd

MODES = ("auto", "on", "off")
#: Learning-rate multipliers searched, the default first.
MULTIPLIERS = (1.0, 0.5, 0.25)
#: Share of each class's training samples held out (the last ones in the dataset's order).
HELD_OUT = 0.25
#: The sensor the defaults were measured on (N-MNIST's ATIS crop).
NMNIST_SENSOR = (34, 34)
#: Leak shares of the input delay tried besides the default (dd.DELAY_TAU_SHARE): gestures want 1/2.
LEAKS = (1 / 2,)
#: The first hidden layer's leak as a share of the input delay, tried after the leak (see the docstring).
FIRST_LEAKS = (1.0,)


def should_search(mode: str, n_train: int, n_classes: int, sensor) -> tuple[bool, str]:
    """Whether `train` chooses settings on a held-out part of the training split, and why (see the docstring)."""
    if mode in ("on", "off"):
        return mode == "on", f"--choose {mode}"
    small = dd.is_small(n_train, n_classes)
    unlike = tuple(int(v) for v in sensor) != NMNIST_SENSOR
    if not (small or unlike):
        return False, "N-MNIST-like data: the defaults were measured on such"
    why = [f"{n_train / max(1, n_classes):.0f} training samples per class"] if small else []
    why += [f"a {sensor[0]}x{sensor[1]} sensor, not N-MNIST's 34x34"] if unlike else []
    return True, " and ".join(why)


def hold_out(labels, frac: float = HELD_OUT) -> tuple[np.ndarray, np.ndarray]:
    """(positions kept for training, positions held out): the last `frac` of each class, at least one
    (none of a class with a single sample), in the given order."""
    labels = np.asarray(labels)
    held: list[int] = []
    for c in np.unique(labels):
        pos = np.flatnonzero(labels == c)
        if len(pos) >= 2:
            held += pos[-min(len(pos) - 1, max(1, round(frac * len(pos)))):].tolist()
    held_arr = np.asarray(sorted(held), np.int64)
    return np.setdiff1d(np.arange(len(labels)), held_arr), held_arr


@dataclass(frozen=True)
class Candidate:
    """One setting tried: learning rates times `lr_scale`, augmentation and stream crops on or off, and the
    leak as a share of the input delay (used only where `train` sets the leak from the delay); `first`, the first
    hidden layer's own leak as a share of the delay (None: the same leak as the others)."""

    lr_scale: float = 1.0
    augment: bool = True
    stream: bool = False
    leak: float = dd.DELAY_TAU_SHARE
    first: float | None = None

    def name(self, base: Candidate) -> str:
        parts = [f"lr x{self.lr_scale:g}"] if self.lr_scale != base.lr_scale else []
        parts += [f"augment {'on' if self.augment else 'off'}"] if self.augment != base.augment else []
        parts += [f"crops {'on' if self.stream else 'off'}"] if self.stream != base.stream else []
        parts += [f"leak {share(self.leak)} of the delay"] if self.leak != base.leak else []
        parts += [f"first layer's leak {share(self.first)}x the delay"] if self.first != base.first else []
        return ", ".join(parts) or "default"


def share(x: float) -> str:
    """A share as a small fraction for people: 0.5 -> '1/2'."""
    return str(Fraction(x).limit_denominator(16))


#: How many standard deviations of a sign test the best epoch must beat the last by to be trained instead of all
#: the epochs (`clearly_better`).
SIGN_SIGMAS = 2.0
#: Epochs each side of the best one, and half the last epochs, that `stops_early` also compares (the window is
#: 2 * CUT_WINDOW + 1 epochs): one epoch above its neighbours is not the curve turning down.
CUT_WINDOW = 2


@dataclass
class Result:
    candidate: Candidate
    accuracy: float = 0.0   # best held-out accuracy
    epochs: int = 0         # how long the winner trains: all the epochs, or `best` when clearly better
    failed: str = ""        # why training stopped, when it did
    curve: list = field(default_factory=list)  # held-out accuracy after each epoch
    last: float | None = None  # held-out last-decision accuracy as a stream at `best` (when scored)
    last_at: dict = field(default_factory=dict)  # epoch -> that figure, for the epochs that could be the best
    best: int = 0           # the last epoch that reached `accuracy`

    def why_epochs(self) -> str:
        """Why `epochs` is not the best epoch, when it is not (for the lines `train` prints)."""
        if not self.best or self.epochs == self.best or not self.curve:
            return ""
        return f" (its best epoch, {self.best}, {self.not_clearly()})"

    def windows(self) -> tuple[float, float]:
        """The held-out accuracy averaged over the epochs around the best one and over the last ones (`stops_early`)."""
        around, late = cut_windows(self.curve, self.best)
        return float(np.mean(around)), float(np.mean(late))

    def not_clearly(self) -> str:
        """Why the best epoch does not stop the run, for people: what `stops_early` found."""
        around, late = self.windows()
        return (f"is not clearly better than the last, {self.curve[-1]:.0%}, nor the epochs around it ({around:.0%} "
                f"on average) than the last {2 * CUT_WINDOW + 1} ({late:.0%})")


def hits(net, data) -> np.ndarray:
    """Which samples of `data` (the held-out samples) the network classifies right (bool), each whole sample
    from a fresh state as `training.evaluate` scores them: without the reset a leaky network carried the previous
    held-out sample into the next one (the order-only task scored 17 %, chance, while its test split was 100 %)."""
    right = np.zeros(len(data), bool)
    for k in range(len(data)):
        if net.tau_us is not None:
            net.reset()
        right[k] = net.predict_indices(data.idx[k], data.t[k]).label == int(data.labels[k])
    return right


def clearly_better(a, b, sigmas: float = SIGN_SIGMAS) -> bool:
    """Whether held-out hits `a` beat `b` (bool arrays over the same samples) by more than `sigmas` standard
    deviations of a sign test on the samples where they disagree: (only a right) - (only b right) > sigmas *
    sqrt(disagreements). With 2: at least 5 samples against none the other way, 7 against 1, 11 against 3.
    Also for each sample's share of epochs right (floats in 0..1): with d = a - b per sample, sum(d) > sigmas *
    sqrt(sum(d^2)), which for bool hits is the sign test above."""
    d = np.asarray(a, float) - np.asarray(b, float)
    return float(d.sum()) > sigmas * float(np.sqrt((d * d).sum()))


def stops_early(right, best: int, sigmas: float = SIGN_SIGMAS, half: int = CUT_WINDOW) -> bool:
    """Whether the winner trains only to its best epoch `best` (1-based) instead of all of them, from the held-out
    hits after each epoch (`right`, one bool array per epoch): its hits clearly better than the last epoch's, and
    each sample's share of right answers over the epochs around it (`half` each side) clearly better than over the
    last 2 * half + 1 epochs. A single epoch that beats its neighbours by chance (the best of many, on a few
    samples) does not stop the run; a curve that has turned down does."""
    if not clearly_better(right[best - 1], right[-1], sigmas):
        return False
    around, late = cut_windows(right, best, half)
    return clearly_better(np.mean(around, axis=0), np.mean(late, axis=0), sigmas)


def cut_windows(per_epoch, best: int, half: int = CUT_WINDOW):
    """The epochs `stops_early` compares, as slices of `per_epoch` (one entry per epoch): the ones around the best
    (1-based `best`, `half` each side, clipped at the ends) and the last 2 * half + 1."""
    return per_epoch[max(0, best - 1 - half):best + half], per_epoch[max(0, len(per_epoch) - 2 * half - 1):]


def run_candidate(make_net, cand: Candidate, rest, held, *, epochs: int, seed: int, fixed_epochs: bool,
                  stream_score=None, pieces: float = 0.0, ends: bool | None = False) -> Result:
    """Train `make_net(cand)` on `rest` for `epochs` epochs, scoring `held` after each (see the docstring).
    With `stream_score(net, held)`, also the held-out stream's last decisions, at every epoch that could be
    the chosen one (the last epoch, or one at least as good as all before), so the figure belongs to it.
    `pieces`: a temporal network's share of pieces among its stream items (`augment.PrefixCrops`); `ends`: its
    items' ends cut as `train` cuts them (`augment.end_cuts`: None decides by the network, False never)."""
    from .augment import end_cuts, stream_items
    from .training import Augment, train_epoch
    from .watch import NetworkSilent

    net, res = make_net(cand), Result(cand)
    augment = Augment(**dd.AUGMENT) if cand.augment else None
    stream = stream_items(net, pieces=pieces) if cand.stream else None
    cuts = end_cuts(net, ends)
    right = []  # held-out hits after each epoch
    for ep in range(epochs):
        try:
            train_epoch(net, rest, epoch=ep, epochs=epochs, seed=seed, augment=augment, stream=stream, ends=cuts,
                        quiet=True)
        except NetworkSilent as exc:
            res.failed = str(exc).splitlines()[0]
            break
        right.append(hits(net, held))
        res.curve.append(float(right[-1].mean()) if len(right[-1]) else 0.0)
        if stream_score and (ep == epochs - 1 if fixed_epochs else res.curve[-1] >= max(res.curve)):
            res.last_at[ep + 1] = stream_score(net, held)
    if res.failed or not res.curve:
        return res
    if fixed_epochs:
        res.accuracy, res.best = res.curve[-1], len(res.curve)
        res.epochs = res.best
    else:
        res.accuracy = max(res.curve)
        res.best = max(e for e, a in enumerate(res.curve, 1) if a == res.accuracy)
        res.epochs = res.best if stops_early(right, res.best) else len(res.curve)
    res.last = res.last_at.get(res.best)
    return res


def takes(r: Result, best: Result, *, leak: bool) -> bool:
    """Whether candidate `r` replaces `best`: a strictly higher held-out accuracy; a leak is judged on two figures,
    held-out whole samples and last decisions on the held-out stream (a leak that helps whole samples can hurt
    live), and replaces `best` when it is higher on one of them and lower on neither."""
    if r.failed:
        return False
    if not leak:
        return r.accuracy > best.accuracy
    if r.last is None or best.last is None:
        return False
    return r.accuracy >= best.accuracy and r.last >= best.last and (r.accuracy > best.accuracy or r.last > best.last)


@dataclass
class Choice:
    """What the search tried and chose."""

    winner: Result
    base: Candidate
    results: list
    held: int
    total: int
    searched: str
    cap: int
    leak_searched: bool = False  # the leak was a coordinate (record its share only then)
    first_searched: bool = False  # and the first layer's leak (record it, 0 for "as the others", only then)

    def brief(self) -> str:
        tried = "; ".join(f"{r.candidate.name(self.base)} {r.accuracy:.0%} at {r.best} ep"
                          + (f" (last decision {r.last:.0%})" if r.last is not None else "")
                          + (" (stopped: network silent)" if r.failed else "") for r in self.results)
        return (f"chose on {self.held} held-out training samples (last quarter of each class, {self.total - self.held} "
                f"left to train; searched {self.searched}): {tried} -> {self.winner.candidate.name(self.base)}, "
                f"{self.winner.epochs} epochs" + self.winner.why_epochs())

    def record(self) -> dict:
        """A flat dict of strings, numbers and booleans for the checkpoint (`checkpoint.check_chosen`)."""
        w = self.winner
        return {"held_out": self.held, "training_samples": self.total, "searched": self.searched,
                "winner": w.candidate.name(self.base), "lr_scale": w.candidate.lr_scale, "epochs": w.epochs,
                "schedule_epochs": self.cap, "augment": w.candidate.augment, "stream_crops": w.candidate.stream,
                **({"leak_share": w.candidate.leak} if self.leak_searched else {}),
                **({"first_leak_share": w.candidate.first or 0.0} if self.first_searched else {}),
                "held_out_accuracy": w.accuracy,
                **({"held_out_last_decision": w.last} if w.last is not None else {}),
                "best_epoch": w.best,
                "tried": "; ".join(f"{r.candidate.name(self.base)} {r.accuracy:.3f} at {r.best}"
                                   + (f" last {r.last:.3f}" if r.last is not None else "")
                                   for r in self.results)}


def search(make_net, data, base: Candidate, *, epochs: int, seed: int = 0, vary_lr: bool = True,
           vary_augment: bool = True, vary_stream: bool = False, fixed_epochs: bool = False,
           multipliers=MULTIPLIERS, leaks=(), first_leaks=(), stream_score=None, progress=None,
           pieces: float = 0.0, ends: bool | None = False, jobs: int = 1) -> Choice:
    """Coordinate search over the settings not fixed (see the docstring) on `data` (a `training.SampleArrays`
    of the training split); `make_net(candidate)` builds a fresh network for a candidate. `leaks`: leak shares
    tried besides `base.leak`, and `first_leaks`: the first layer's, which need `stream_score(net, held)` (held-out
    last-decision accuracy). `pieces` and `ends`: as in `run_candidate`. `jobs` > 1: candidates run side by side in
    that many worker processes, the next ones started before the outcome of the one waited for (`choose_pool`); the
    same candidates are tried and chosen as with one."""
    from .choose_pool import CandidatePool

    leaky = bool(leaks or first_leaks)
    if leaky and stream_score is None:
        raise ValueError("search: leaks are judged on the held-out stream too; give stream_score")
    rest_pos, held_pos = hold_out(data.labels)
    if not len(held_pos):  # every class has a single sample: nothing to score on, the defaults stay
        return Choice(Result(base, epochs=epochs), base, [], 0, len(data), "nothing (one sample per class)", epochs)
    rest, held = data.pick(rest_pos), data.pick(held_pos)
    kw = dict(epochs=epochs, seed=seed, fixed_epochs=fixed_epochs, stream_score=stream_score if leaky else None,
              pieces=pieces, ends=ends)
    # the steps after the first candidate, in order: (the candidate built from the best so far, a leak?)
    plan = [(lambda b, m=m: dataclasses.replace(base, lr_scale=m), False) for m in multipliers[1:]] if vary_lr else []
    searched = [f"lr x{'/x'.join(f'{m:g}' for m in multipliers)}"] if vary_lr else []
    if vary_augment:
        plan.append((lambda b: dataclasses.replace(b, augment=not b.augment), False))
        searched.append("augment on/off")
    if vary_stream:
        plan.append((lambda b: dataclasses.replace(b, stream=not b.stream), False))
        searched.append("stream crops on/off")
    if leaks:
        plan += [(lambda b, x=x: dataclasses.replace(b, leak=x), True) for x in leaks]
        searched.append("leak " + " or ".join(share(x) for x in (base.leak, *leaks)) + " of the delay")
    if first_leaks:
        plan += [(lambda b, x=x: dataclasses.replace(b, first=x), True) for x in first_leaks]
        searched.append("first layer's leak as the others' or " + " or ".join(f"{share(x)}x" for x in first_leaks)
                        + " the delay")
    results: list[Result] = []
    pool = CandidatePool(jobs, run_candidate, make_net, rest, held, kw) if jobs > 1 and plan else None

    def trial(cand: Candidate, k: int, best: Candidate) -> Result:
        """Candidate `cand`, step `k` of the plan, with `best` the best so far; with a pool, the steps after it are
        started as built from `best` (as if `cand` does not win)."""
        r = next((r for r in results if r.candidate == cand), None)
        if r is None:
            if pool:
                pool.ahead([cand] + [make(best) for make, _ in plan[k:]])
                r = pool.result(cand)
            else:
                r = run_candidate(make_net, cand, rest, held, **kw)
            results.append(r)
            if progress:
                progress(f"  tried {cand.name(base)}: held-out {r.accuracy:.0%} at epoch {r.best}"
                         + (f" (that epoch {r.not_clearly()}, on {len(held)} samples: all {r.epochs} would train)"
                            if r.epochs != r.best else "")
                         + (f", last decision {r.last:.0%} as a stream" if r.last is not None else ""))
        return r

    try:
        first = dataclasses.replace(base, lr_scale=multipliers[0])
        best = trial(first, 0, first)
        for k, (make, leak) in enumerate(plan):
            r = trial(make(best.candidate), k + 1, best.candidate)
            if takes(r, best, leak=leak):
                best = r
    finally:
        if pool:
            pool.close()
    searched.append(f"epochs 1-{epochs}" if not fixed_epochs else f"{epochs} epochs fixed")
    return Choice(best, base, results, len(held), len(data), ", ".join(searched), epochs, bool(leaks),
                  bool(first_leaks))
