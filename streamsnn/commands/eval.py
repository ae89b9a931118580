"""`streamsnn eval --data DIR --model model.npz`: accuracy of a trained network on a folder's test split."""

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
                    "samples, events and events per second. A sample that cannot be read (truncated, "
                    "corrupt, empty) is skipped, logged and counted (`skipped` in --json), as replay does.",
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
    res["skipped"] = len(test.skipped)  # unreadable samples, not scored (each logged on stderr)
    res["skipped_samples"] = test.skipped
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"model {args.model}: {net.sizes}, {net.updates} updates, {net.epochs} epochs")
    print(f"accuracy {res['accuracy']:.4f} on {res['samples']} samples "
          f"({res['events']} events, {res['events_per_s'] / 1e6:.2f} M events/s)")
    if test.skipped:
        print(f"skipped {len(test.skipped)} unreadable sample(s), not scored: " + "; ".join(test.skipped[:3])
              + (" ..." if len(test.skipped) > 3 else ""))
    print("per class: " + "  ".join(f"{c}:{'-' if a is None else f'{a:.2f}'}" for c, a in res["per_class"].items()))
    print("confusion (rows true, columns predicted):")
    print("     " + " ".join(f"{c:>4}" for c in range(len(res["confusion"]))))
    for c, row in enumerate(res["confusion"]):
        print(f"{c:>4} " + " ".join(f"{v:>4}" for v in row))
    return 0
