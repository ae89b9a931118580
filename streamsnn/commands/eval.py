"""`streamsnn eval --data DIR --model model.npz`: accuracy of a trained network (any architecture) on a folder's test split."""

from __future__ import annotations

import json
from pathlib import Path

ORDER = 21


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a trained model on the test split of an N-MNIST folder",
        description="Classify every sample of the test split (without learning) and report accuracy, "
                    "per-class accuracy, the confusion matrix (rows: true class, columns: predicted), "
                    "samples, events and events per second.",
    )
    p.add_argument("--data", type=Path, required=True, help="N-MNIST dataset folder")
    p.add_argument("--model", type=Path, required=True, help="model file written by `streamsnn train`")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    p.add_argument("--limit", type=int, default=None, help="use only N test samples, evenly spread")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..snn import SpikingNetwork
    from ..training import evaluate, load_split

    net = SpikingNetwork.load(args.model)
    test = load_split(args.data, "test", net, limit=args.limit, quiet=args.quiet or args.json)
    res = evaluate(net, test, quiet=args.quiet or args.json)
    res["model"] = str(args.model)
    res["arch"] = net.arch
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"model {args.model}: {net.arch} -> {net.n_classes} classes ({net.parameters:,} parameters), "
          f"{net.updates} updates, {net.epochs} epochs")
    print(f"accuracy {res['accuracy']:.4f} on {res['samples']} samples "
          f"({res['events']} events, {res['events_per_s'] / 1e6:.2f} M events/s)")
    print("per class: " + "  ".join(f"{c}:{'-' if a is None else f'{a:.2f}'}" for c, a in res["per_class"].items()))
    print("confusion (rows true, columns predicted):")
    width = max(4, *(len(c) for c in net.classes))
    print(" " * (width + 1) + " ".join(f"{c:>{width}}" for c in net.classes))
    for c, row in zip(net.classes, res["confusion"]):
        print(f"{c:>{width}} " + " ".join(f"{v:>{width}}" for v in row))
    return 0
