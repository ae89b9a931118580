"""Feedback attacks: test accuracy of a trained network before and after floods of wrong labels, with the
daemon's feedback protections on (`Pipeline.apply_feedback`) and off (every message learned, as before).

The attacks are those of issue 9: (1) 500 wrong labels, one per new decision; (2) 500 wrong labels
spread over 5 decisions within 0.1 s. Decisions are the network's own classifications of training
samples, made as a live deployment makes them (no true label attached: nothing for the "contradicts
a known label" rule to check), except in the rows marked "labelled decisions" (dataset replay or
labelled packets, where the window's true label is known). Feedback arrival times are simulated
(the rate limit reads an injected clock), so the figures do not depend on the machine's speed: attack
(1) arrives either as fast as a replay decides (one decision per ms) or at a live camera's pace (20
decisions a second, one label each). "Off" replays the old code path: every message that names a
recent decision is learned with `learn_one`, whatever came before.

Run alone with `python -m benchmarks --only feedback` (add `--quick` for a smaller, shorter-trained
network).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import Context, NotMeasurable, Result

try:
    from streamsnn.pipeline.feedback import FEEDBACK_LR_SCALE
except ImportError:  # pragma: no cover - older code
    FEEDBACK_LR_SCALE = 1.0

ATTACK_LABELS = 500


class Clock:
    """Simulated seconds for the feedback rate limit."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def train(ctx: Context, folder: Path):
    """A network trained with the project's training loop; returns (checkpoint path, settings)."""
    try:
        from streamsnn.learn.training import Augment, evaluate, load_split, train_epoch
        from streamsnn.snn import SpikingNetwork
    except ImportError as exc:
        raise NotMeasurable(f"training API not available ({exc})") from exc
    hidden, epochs = (200, 4) if ctx.quick else (800, 10)
    net = SpikingNetwork((2312, hidden, 10), seed=0)
    data = load_split(ctx.nmnist, "train", net, quiet=True)
    t0 = time.perf_counter()
    for e in range(epochs):
        train_epoch(net, data, epoch=e, epochs=epochs, seed=0, augment=Augment(jitter_us=0.0),  # as measured: no jitter
                    quiet=True)
    seconds = time.perf_counter() - t0
    test = load_split(ctx.nmnist, "test", net, quiet=True)
    path = folder / "trained.npz"
    net.save(path)
    return path, test, evaluate, {"hidden": hidden, "epochs": epochs, "train_seconds": round(seconds, 1)}


async def attack(ckpt: Path, samples: list, targets: list[int], times: list[float], wrong: list[int], *,
                 protected: bool, labelled: bool, lr_scale: float) -> tuple[object, dict]:
    """Decisions on `samples`; feedback message k names decision targets[k] with label wrong[k] at times[k].

    A decision is made (and kept among the recent ones) just before the first message that names it,
    as a live daemon makes it before anyone can answer it. Returns the attacked network and counters.
    """
    from streamsnn.pipeline import Pipeline
    from streamsnn.pipeline.segment import Window
    from streamsnn.snn import SpikingNetwork

    net = SpikingNetwork.load(ckpt)
    clock = Clock()
    pipe = Pipeline(None, net, [], recent=128, clock=clock, feedback_lr_scale=lr_scale)
    decided: set[int] = set()
    learned_off = 0
    try:
        for i, t, label in zip(targets, times, wrong):
            clock.now = t
            b = samples[i]
            if i not in decided:
                decided.add(i)
                w = Window(b, b.t_start, b.t_end, b.sample, b.label if labelled else None)
                w.predicted = net.predict_one(b).label
                pipe.recent.add(w)
            if protected:
                await pipe.apply_feedback({"sample": b.sample, "label": label})
            else:  # the old behaviour: every message about a recent decision is learned, at the full rate
                await pipe.in_worker(net.learn_one, b, label)
                learned_off += 1
    finally:
        pipe._worker.shutdown(wait=True)
    fb = dict(pipe.counters.feedback)
    if not protected:
        fb["learned"] = learned_off
    return net, fb


SCALES = (1.0, 0.3, 0.1, 0.03)


def step_size(ckpt: Path, samples: list, evaluate, test, rng) -> list[list]:
    """Accuracy after n labels (distinct decisions) learned at each of SCALES times the learning rates:
    wrong labels (n = 1, 5, 25) and right ones (n = 100, 400), mean of 3 random draws."""
    from streamsnn.snn import SpikingNetwork

    rows = []
    for kind, n in (("wrong", 1), ("wrong", 5), ("wrong", 25), ("right", 100), ("right", 400)):
        accs = {s: [] for s in SCALES}
        for _ in range(3):
            picks = rng.choice(len(samples), n, replace=False)
            labels = [int(samples[i].label if kind == "right" else (samples[i].label + rng.integers(1, 10)) % 10)
                      for i in picks]
            for scale in accs:
                net = SpikingNetwork.load(ckpt)
                for i, label in zip(picks, labels):
                    b = samples[int(i)]
                    net.learn_one(b, label, prediction=label, lr_scale=scale)
                accs[scale].append(evaluate(net, test)["accuracy"])
        rows.append([f"{n} {kind}", *(round(float(np.mean(accs[s])), 3) for s in SCALES)])
    return rows


def run(ctx: Context) -> Result:
    r = Result("feedback", "Feedback attacks: accuracy with and without the protections")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, test, evaluate, info = train(ctx, Path(tmp))
        from streamsnn.snn import SpikingNetwork

        before = evaluate(SpikingNetwork.load(ckpt), test)["accuracy"]
        train_samples = ctx.samples("train")
        rng = np.random.default_rng(9)
        picks = [int(i) for i in rng.choice(len(train_samples), ATTACK_LABELS, replace=False)]
        samples = [train_samples[i] for i in picks]

        def wrong_for(idx: list[int]) -> list[int]:  # a random label other than the true one
            return [int((samples[i].label + rng.integers(1, 10)) % 10) for i in idx]

        one_each = list(range(ATTACK_LABELS))
        five = [k % 5 for k in range(ATTACK_LABELS)]
        scenarios = [
            ("1: one wrong label per new decision, as fast as a replay decides (1 per ms)",
             one_each, [k * 0.001 for k in one_each], False),
            ("1: one wrong label per new decision, at a live camera's pace (20 per s)",
             one_each, [k * 0.05 for k in one_each], False),
            ("1: one wrong label per new decision, labelled decisions (true label known)",
             one_each, [k * 0.05 for k in one_each], True),
            ("2: 500 wrong labels on 5 decisions within 0.1 s",
             five, [k * 0.1 / ATTACK_LABELS for k in range(ATTACK_LABELS)], False),
            ("reference: the right label per new decision, at a live camera's pace (20 per s)",
             one_each, [k * 0.05 for k in one_each], False),
        ]
        rows = []
        for name, targets, times, labelled in scenarios:
            wrong = [samples[i].label for i in targets] if name.startswith("reference") else wrong_for(targets)
            for protected in (False, True):
                net, fb = asyncio.run(attack(ckpt, samples, targets, times, wrong, protected=protected,
                                             labelled=labelled, lr_scale=FEEDBACK_LR_SCALE))
                after = evaluate(net, test)["accuracy"]
                refused = {k: v for k, v in fb.items() if k not in ("received", "learned", "ignored", "disabled") and v}
                rows.append([name, "on" if protected else "off (old)", len(targets), fb["learned"],
                             ", ".join(f"{k} {v}" for k, v in refused.items()) or "-",
                             round(before, 3), round(after, 3)])
                r.metric(f"attack {name}; protections {'on' if protected else 'off'}: test accuracy after",
                         round(after, 3), "")
        step_rows = step_size(ckpt, samples, evaluate, test, rng)
    r.metric("test accuracy of the trained network before any attack", round(before, 3), "")
    r.table("Accuracy on the 100 real test samples after each attack",
            ["attack", "protections", "labels sent", "learned", "refused (reason count)",
             "accuracy before", "accuracy after"], rows)
    r.table("What one learning step does: n labels (distinct decisions, wrong or right) learned at a fraction "
            "of the network's learning rates (model.feedback_lr_scale); mean test accuracy of 3 draws, before "
            f"{before:.3f}", ["labels learned", *(f"scale {s:g}" for s in SCALES)], step_rows)
    r.note(f"Network 2312-{info['hidden']}-10 trained by `streamsnn.learn.training` ({info['epochs']} epochs, "
           f"augmentation, {info['train_seconds']} s); each attack starts from the same checkpoint.")
    r.note("Protections (defaults of `pipeline.Pipeline`, as `model.feedback_per_s = 10`, "
           "`model.feedback_burst = 20`): a decision is taught once, never against its known true label, "
           f"at most 10 labels a second after a burst of 20, learned at model.feedback_lr_scale = "
           f"{FEEDBACK_LR_SCALE:g} of the learning rates. Off: every message is learned at the full rate "
           "(the code before).")
    r.note("The second table is how model.feedback_lr_scale was chosen: the largest scale at which 25 wrong "
           "labels cost at most a few points while right labels still help (or do not hurt). One test sample "
           "is one point: compare each attack with the reference row.")
    r.note("Feedback times are simulated; the learned counts follow from them, not from this machine's speed. "
           "An attacker who stays under the rate limit and names a new unlabelled decision each time is "
           "limited only by the rate; restrict who may publish feedback with the broker's ACL (README).")
    return r
