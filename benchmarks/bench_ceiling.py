"""What the data and the architecture allow: the default spiking network beside its ReLU twin.

O'Connor & Welling's integrate-and-fire network is a ReLU network in the long-run limit, so the same layers as a
conventional network, trained by gradient descent (Adam, minibatches, many passes) on the same inputs (event counts
per input unit: both polarities on the 34x34 grid, log(1 + count)), bound what online spike-driven learning can
reach with that architecture and that data. This benchmark trains both on the same samples, 3 seeds each:

- `test`: the default command's data (nmnist_small's 1,000 real + the 9,900 synthetic training samples), scored on
  the 100 real test samples;
- `held`: the same with the last quarter of each class of the 1,000 real training samples held out (the split
  `train --choose` uses), scored on those 250 real samples outside the training set.

Arms: `snn` (`streamsnn train` with its defaults, scored as `streamsnn eval` scores whole samples), `twin` (the
default architecture as a ReLU network in torch, 15 epochs, shifts of up to 2 input units as `train` augments) and,
on request, `wide` (a larger convolutional network with batch normalisation, pooling and dropout, 20 epochs: does
more capacity than the default's lift the ceiling?) and `dense` (the twin of `dense:800`, the one-layer network the
`timing` and `spikes` rules train (2312-800-10), trained as `twin`: what that architecture allows them).

Run: `python -m benchmarks.bench_ceiling [--splits test,held] [--arms snn,twin] [--seeds 0,1,2]` (or
`python -m benchmarks --only ceiling`; with `--quick` one seed)
(writes benchmarks/results/ceiling.{json,md}; a run of other arms or one split names them:
`--splits held --arms wide` writes ceiling-wide-held.{json,md}). Needs torch (the `bench` extra) and the synthetic
samples (`STREAMSNN_SYNTH`, as bench_stream).
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from .bench_stream import SYNTH, train_model  # noqa: E402
from .common import DATA, ROOT, Context, NotMeasurable, Result, run_alone  # noqa: E402

SPLITS = {"test": "the 100 real test samples (trained on 1,000 real + 9,900 synthetic)",
          "held": "the last quarter of each class of the 1,000 real training samples, held out "
                  "(`learn.choose.hold_out`, as `train --choose` holds out; trained on the other real ones + 9,900 "
                  "synthetic)"}
ARMS = ("snn", "twin", "wide", "dense")
#: The network of the `dense` arm (bench_time's timing and spikes arms).
DENSE_ARCH = "dense:800"
TWIN_EPOCHS, WIDE_EPOCHS, BATCH, LR, SHIFT = 15, 20, 64, 1e-3, 2


def held_out_folder(nmnist: Path, root: Path) -> Path:
    """A folder of links to nmnist_small's training samples whose `train.txt` keeps three quarters of each class and
    whose `test.txt` holds the last quarter (`learn.choose.hold_out`, in the label list's order)."""
    from streamsnn.io.labellists import read_label_list
    from streamsnn.learn.choose import hold_out

    labels = read_label_list(nmnist / "train1K.txt")
    names = list(labels)
    kept, held = hold_out([labels[n] for n in names])
    root.mkdir(parents=True, exist_ok=True)
    for n in names:
        (root / f"{n}.bs2").symlink_to((nmnist / f"{n}.bs2").resolve())
    for fname, pos in (("train.txt", kept), ("test.txt", held)):
        (root / fname).write_text("#sample #class\n" + "".join(f"{names[k]}\t{labels[names[k]]}\n" for k in pos))
    return root


def count_images(arrays, net) -> np.ndarray:
    """(samples, P, H, W) float32 log(1 + events per input unit) in the network's input map (unit p*H*W + y*W + x)."""
    p, h, w = net.geometry[0].in_shape
    return np.log1p(arrays.counts(p * h * w).reshape(len(arrays), p, h, w))


def build(kind: str, geometry, n_classes: int):
    """The torch network of an arm: `twin` mirrors each placed layer of `geometry` (conv: same channels, kernel,
    stride, padding; dense: same units; ReLU after each), then a linear output; `wide`: see the module."""
    import torch.nn as nn

    p, h, w = geometry[0].in_shape
    if kind == "wide":
        blocks = []
        for c_in, c_out in ((p, 64), (64, 128), (128, 128)):
            blocks += [nn.Conv2d(c_in, c_out, 3, 1, 1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]
        return nn.Sequential(*blocks, nn.Flatten(), nn.Dropout(0.3), nn.Linear(128 * (h // 8) * (w // 8), 256),
                             nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, n_classes))
    layers = []
    for g in geometry:
        spec = g.layer
        if spec.kind == "conv":
            layers += [nn.Conv2d(g.in_shape[0], spec.units, spec.kernel, spec.stride, spec.padding), nn.ReLU()]
        elif spec.kind == "dense":
            layers += [nn.Flatten(), nn.Linear(int(np.prod(g.in_shape)), spec.units), nn.ReLU()]
        else:
            raise NotMeasurable(f"no ReLU twin for a {spec.kind} layer")
    return nn.Sequential(*layers, nn.Linear(geometry[-1].layer.units, n_classes))


def fit_torch(kind: str, geometry, train: tuple, test: tuple, seed: int, epochs: int) -> tuple[float, float]:
    """Train an arm's torch network (Adam, cosine schedule, minibatches of BATCH, each shifted by up to SHIFT units
    with wrap-around) on `train` (images, labels); returns (accuracy on `test`, seconds)."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x, y = torch.tensor(train[0]), torch.tensor(train[1], dtype=torch.long)
    net = build(kind, geometry, int(max(train[1].max(), test[1].max())) + 1)
    opt = torch.optim.Adam(net.parameters(), LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    t0 = time.perf_counter()
    for _ in range(epochs):
        net.train()
        order = rng.permutation(len(x))
        for i in range(0, len(x), BATCH):
            j = order[i:i + BATCH]
            dy, dx = (int(v) for v in rng.integers(-SHIFT, SHIFT + 1, 2))
            loss = F.cross_entropy(net(torch.roll(x[j], (dy, dx), (2, 3))), y[j])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    net.eval()
    with torch.no_grad():
        pred = net(torch.tensor(test[0])).argmax(1).numpy()
    return float((pred == test[1]).mean()), time.perf_counter() - t0


def snn_accuracy(folders: list[Path], scored: Path, seed: int, tmp: Path) -> tuple[float, float]:
    """`streamsnn train` with its defaults on `folders`, scored on the test split of `scored` as `streamsnn eval`
    scores whole samples; returns (accuracy, training seconds)."""
    from streamsnn.learn.training import evaluate, load_split
    from streamsnn.snn import SpikingNetwork

    path = tmp / f"snn-{seed}.npz"
    seconds = train_model(folders, seed, path, None, [])
    net = SpikingNetwork.load(path)
    return float(evaluate(net, load_split(scored, "test", net, quiet=True))["accuracy"]), seconds


def _spread(values) -> str:
    v = 100 * np.asarray(values)
    return f"{v.mean():.1f} ± {v.std():.1f} ({', '.join(f'{a:.1f}' for a in v)})"


def run(ctx: Context, splits=("test", "held"), arms=("snn", "twin"), seeds=(0, 1, 2)) -> Result:
    from streamsnn.defaults import DEFAULT_ARCH
    from streamsnn.learn.training import load_split
    from streamsnn.snn import SpikingNetwork

    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise NotMeasurable(f"torch is not installed ({exc}); pip install -e '.[bench]'") from exc
    if not SYNTH.is_dir():
        raise NotMeasurable(f"synthetic samples not found in {SYNTH}: run `streamsnn synth --mnist "
                            f"../shared/data/mnist --first 101 --out {SYNTH}` or set STREAMSNN_SYNTH")
    nmnist = ctx.nmnist
    if ctx.quick:  # `python -m benchmarks --quick --only ceiling`: one seed
        seeds = tuple(seeds)[:1]
    template = SpikingNetwork(arch=DEFAULT_ARCH, input_shape=(34, 34, 2))
    dense = SpikingNetwork(arch=DENSE_ARCH, input_shape=(34, 34, 2))  # the same input map, one dense layer
    r = Result("ceiling", "What the data and the architecture allow: the default network and its ReLU twin"
               + ("; dense:800 as a ReLU network" if "dense" in arms else ""))
    rows, acc = [], {}
    tmp = Path(tempfile.mkdtemp(prefix="bench-ceiling-"))
    try:
        synth = load_split(SYNTH, "train", template, quiet=True)
        for split in splits:
            data = nmnist if split == "test" else held_out_folder(nmnist, tmp / "held")
            real, scored = load_split(data, "train", template, quiet=True), load_split(data, "test", template,
                                                                                       quiet=True)
            train = (np.concatenate([count_images(real, template), count_images(synth, template)]),
                     np.concatenate([real.labels, synth.labels]))
            test = (count_images(scored, template), np.asarray(scored.labels))
            for arm in arms:
                got, secs = [], []
                for seed in seeds:
                    if arm == "snn":
                        a, s = snn_accuracy([data, SYNTH], data, seed, tmp)
                    else:
                        kind, net = ("twin", dense) if arm == "dense" else (arm, template)  # dense: a twin too
                        a, s = fit_torch(kind, net.geometry, train, test, seed,
                                         WIDE_EPOCHS if arm == "wide" else TWIN_EPOCHS)
                    got.append(a)
                    secs.append(s)
                    print(f"ceiling: {split} {arm} seed {seed}: {100 * a:.1f} % ({s:.0f} s)", file=sys.stderr,
                          flush=True)
                acc[split, arm] = float(np.mean(got))
                rows.append([split, arm, len(train[1]), len(test[1]), _spread(got), float(np.mean(secs))])
                r.metric(f"[{split}] {arm}: whole-sample accuracy, mean of {len(seeds)} seeds", 100 * acc[split, arm],
                         "%")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    r.table("Whole-sample accuracy % (mean ± std (each seed)) and training seconds (one core)",
            ["split", "arm", "training samples", "scored samples", "accuracy %", "train s"], rows)
    for split in splits:
        if (split, "snn") in acc and (split, "twin") in acc:
            r.metric(f"[{split}] spiking network minus its ReLU twin", 100 * (acc[split, "snn"] - acc[split, "twin"]),
                     "points")
    r.note("Splits: " + "; ".join(f"`{s}`: {SPLITS[s]}" for s in splits) + ".")
    r.note(f"snn: `streamsnn train --data D --data SYNTH --seed S` (its defaults: {template.arch}, stream transforms, "
           "augmentation), whole samples scored as `streamsnn eval`. twin: the same layers as a ReLU network (torch), "
           f"Adam at {LR:g} with a cosine schedule, minibatches of {BATCH}, {TWIN_EPOCHS} epochs, each minibatch "
           f"shifted by up to {SHIFT} input units; input log(1 + events per input unit), both polarities on the 34x34 "
           f"grid (the spiking network's input map). wide: 3 convolutions (64, 128, 128 channels, 3x3, batch "
           f"normalisation, 2x2 max pooling), dense 256, dropout 0.3, {WIDE_EPOCHS} epochs, otherwise as twin. dense: "
           f"{DENSE_ARCH} (2312-800-10) as a ReLU network, trained as twin.")
    r.note("One sample is 1 point of the 100 test samples and 0.4 of the 250 held-out ones; accuracy does not depend "
           "on the machine's load, the seconds do.")
    return r


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_ceiling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--splits", default="test,held", help="comma-separated: test, held (default both)")
    p.add_argument("--arms", default="snn,twin", help=f"comma-separated of {', '.join(ARMS)} (default snn,twin)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    splits = [s for s in args.splits.split(",") if s]
    arms = [a for a in args.arms.split(",") if a]
    bad = [s for s in splits if s not in SPLITS] + [a for a in arms if a not in ARMS]
    if bad:
        p.error(f"unknown split or arm: {', '.join(bad)}")
    seeds = [int(s) for s in args.seeds.split(",") if s]
    # the default run writes ceiling.{json,md}; others name their arms and splits, so that no run overwrites another
    other = ([] if set(arms) <= {"snn", "twin"} else arms) + ([] if set(splits) == set(SPLITS) else splits)
    ctx = Context(out=args.out.resolve(), data=args.data.resolve(), stem="-".join(["ceiling", *other]))
    return run_alone("python -m benchmarks.bench_ceiling", ctx, lambda: run(ctx, splits, arms, seeds),
                     label="ceiling", contention="Accuracy does not depend on load; the seconds do (shared machine).")


if __name__ == "__main__":
    sys.exit(main())
