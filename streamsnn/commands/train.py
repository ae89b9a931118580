"""`streamsnn train --data DIR`: train the spiking network online on an N-MNIST folder and save it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ORDER = 20

#: Defaults that meet the accuracy target on nmnist_small (see benchmarks/bench_snn.py).
DEFAULTS = {"epochs": 20, "hidden": 800, "lr": 0.001, "seed": 0}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train the spiking network on an N-MNIST folder",
        description="Train the event-driven spiking network online (minibatch 1, test-then-train) on the "
                    "train split of an N-MNIST folder (flat with label lists, or Train/<digit>/), report "
                    "train and test accuracy per epoch, and save the model (.npz) after every epoch.",
    )
    p.add_argument("--data", type=Path, required=True, help="N-MNIST dataset folder")
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"], help="passes over the training split (default %(default)s)")
    p.add_argument("--hidden", type=int, default=DEFAULTS["hidden"], help="hidden units (default %(default)s)")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="seed of weights, order and augmentation")
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"], help="learning rate (default %(default)s), cosine-decayed to 0.1x")
    p.add_argument("--learning", choices=("counts", "spikes"), default="counts",
                   help="backprop on spike counts, or the error sent back as spikes (default %(default)s)")
    p.add_argument("--out", type=Path, default=Path("model.npz"), help="model file to write (default %(default)s)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                   help="random shifts (+-2 px), 10%% event dropout and 1 ms time jitter on the training stream (default: on)")
    p.add_argument("--limit", type=int, default=None, help="use only N samples of each split, evenly spread (quick runs)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import ConfigError
    from ..snn import SpikingNetwork
    from ..training import Augment, evaluate, load_split, train_epoch

    if args.epochs < 1 or args.hidden < 1:
        raise ConfigError(f"--epochs and --hidden must be at least 1 (got {args.epochs}, {args.hidden})")
    if not args.out.parent.is_dir():
        raise ConfigError(f"--out {args.out}: folder {args.out.parent} does not exist; create it first")
    net = SpikingNetwork((2312, args.hidden, 10), seed=args.seed, lr=args.lr, learning=args.learning)
    train = load_split(args.data, "train", net, limit=args.limit, quiet=args.quiet)
    from ..io.dataset import open_dataset

    test = load_split(args.data, "test", net, limit=args.limit, quiet=args.quiet) \
        if "test" in open_dataset(args.data).splits else None
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    say(f"training {net.sizes} on {len(train)} samples ({train.n_events} events), "
        f"{len(test) if test else 0} test samples, augment={'on' if args.augment else 'off'}")
    augment = Augment(shift=2, dropout=0.1, jitter_us=1000.0) if args.augment else None
    for ep in range(args.epochs):
        r = train_epoch(net, train, epoch=ep, epochs=args.epochs, seed=args.seed, augment=augment, quiet=args.quiet)
        line = (f"epoch {ep + 1}/{args.epochs}: train {r['accuracy']:.3f}"
                f"{' (augmented)' if augment else ''}")
        if test:
            line += f"  test {evaluate(net, test)['accuracy']:.3f}"
        line += f"  {r['seconds']:.1f} s  {r['events_per_s'] / 1e6:.2f} M events/s learning"
        say(line)
        net.save(args.out)
    print(f"saved {args.out} (progressive accuracy {net.progressive_accuracy:.3f} over {net.progressive_total} "
          f"samples, {net.updates} updates)")
    return 0
