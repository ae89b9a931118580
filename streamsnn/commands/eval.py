"""`streamsnn eval --data DIR --model model.npz`: accuracy of a trained network on a dataset's test split."""

from __future__ import annotations

import json
from pathlib import Path

from ._shared import Once, at_least_one

ORDER = 21


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a trained model on the test split of a dataset folder",
        description="Classify every sample of the test split (without learning) and report accuracy, "
                    "per-class accuracy by class name, the confusion matrix (rows: true class, columns: "
                    "predicted, in the model's class order), samples, events and events per second. Dataset "
                    "classes are matched to the model's by name; samples of a class the model does not have "
                    "are not scored and are reported (`unknown_classes` in --json). A sample that cannot be "
                    "read (truncated, corrupt, empty) is skipped, logged and counted (`skipped` in --json), "
                    "as replay does. Events go through the model's input map (its region and grid).",
    )
    p.add_argument("--data", type=Path, required=True, action=Once,
                   help="dataset folder (any layout `streamsnn info` reads)")
    p.add_argument("--model", type=Path, required=True, action=Once, help="model file written by `streamsnn train`")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    p.add_argument("--limit", type=at_least_one, default=None, help="use only N test samples, evenly spread")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_stream_arguments(p)
    p.set_defaults(func=run)


def add_stream_arguments(p) -> None:
    from ..learn.streameval import LIVE_HOP_US, LIVE_MIN_EVENTS, LIVE_OVERLAP, LIVE_SMOOTH_US, LIVE_WINDOW_US

    g = p.add_argument_group(
        "stream evaluation", "--stream plays the test samples back to back as one stream (no sample "
        "boundaries reach the network) through the daemon's sliding windows, and scores each decision "
        "against the sample covering most of its window, and each sample's last decision (the last window "
        "ending inside it) against its label (last_decision_accuracy); a model with a leak gets each event "
        "once, its state carried across windows, as in the daemon")
    g.add_argument("--stream", action="store_true", help="evaluate as a continuous stream")
    g.add_argument("--window-us", type=int, default=None,
                   help=f"window length in us (default: the live pipelines', {LIVE_WINDOW_US})")
    g.add_argument("--hop-us", type=int, default=None,
                   help=f"time between window starts in us (default: the live pipelines', {LIVE_HOP_US})")
    g.add_argument("--min-events", type=int, default=None,
                   help=f"skip windows with fewer events (default: the live pipelines', {LIVE_MIN_EVENTS})")
    g.add_argument("--tau-us", type=float, default=None,
                   help="run the model with this lazy leak time constant in us (0: no leak; default: the model's own)")
    g.add_argument("--smooth-us", type=float, default=None,
                   help="decide on the evidence (log-probabilities) of consecutive windows averaged with this time "
                        f"constant in us, as the daemon's [segment] smooth_us (0: each window alone; default: the "
                        f"live pipelines', {LIVE_SMOOTH_US})")
    g.add_argument("--gap-us", type=int, default=None, help="idle time between samples in us (default 0)")
    g.add_argument("--overlap", choices=("auto", "inflight", "chunks", "repeat"), default=None,
                   help="how overlapping windows reach a model without a leak, as the daemon's [segment] overlap: "
                        "inflight (each window's own state, fed as events arrive) and repeat give the same "
                        f"decisions; chunks feeds each event once (default: the live pipelines', {LIVE_OVERLAP})")


def run(args) -> int:
    if args.stream:
        return run_stream(args)
    given = [f for f in ("window_us", "hop_us", "min_events", "tau_us", "smooth_us", "gap_us", "overlap")
             if getattr(args, f) is not None]
    if given:
        from ..errors import ConfigError

        raise ConfigError(f"--{given[0].replace('_', '-')} applies to stream evaluation only; add --stream")
    from ..learn.training import confusion_lines, evaluate, load_split
    from ..snn import SpikingNetwork

    net = SpikingNetwork.load(args.model)
    test = load_split(args.data, "test", net, limit=args.limit, quiet=args.quiet or args.json)
    res = evaluate(net, test, quiet=args.quiet or args.json)
    res["model"] = str(args.model)
    res["skipped"] = len(test.skipped)  # unreadable samples, not scored (each logged on stderr)
    res["skipped_samples"] = test.skipped
    res["arch"] = net.arch
    res["unknown_classes"] = dict(test.unknown)  # dataset classes the model lacks: samples not scored
    res["events_outside_region"] = test.outside  # dropped by the model's input map
    if args.json:
        print(json.dumps(res))
        return 0
    print(model_line(args.model, net))
    print(f"accuracy {res['accuracy']:.4f} on {res['samples']} samples "
          f"({res['events']} events, {res['events_per_s'] / 1e6:.2f} M events/s)")
    if test.skipped:
        print(skipped_line(test.skipped))
    if test.unknown:
        print(f"not scored: {sum(test.unknown.values())} sample(s) of classes the model does not have: "
              + ", ".join(f"{c} ({n})" for c, n in test.unknown.items()))
    print("per class: " + "  ".join(f"{c}:{'-' if a is None else f'{a:.2f}'}" for c, a in res["per_class"].items()))
    print("confusion (rows true, columns predicted):")
    print("\n".join(confusion_lines(net.classes, net.classes, res["confusion"])))
    return 0


def run_stream(args) -> int:
    from ..learn import streameval
    from ..snn import SpikingNetwork

    net = SpikingNetwork.load(args.model)
    samples, classes, skipped = streameval.load_samples(args.data, "test", limit=args.limit,
                                                        quiet=args.quiet or args.json)
    settings = {k: v for k, v in (("window_us", args.window_us), ("hop_us", args.hop_us),
                                  ("min_events", args.min_events), ("tau_us", args.tau_us),
                                  ("smooth_us", args.smooth_us),
                                  ("gap_us", args.gap_us)) if v is not None}
    settings["overlap"] = args.overlap or streameval.LIVE_OVERLAP
    res = streameval.stream_evaluate(net, samples, classes=classes, **settings)
    res["model"] = str(args.model)
    res["skipped"] = len(skipped)  # unreadable samples, left out of the stream (each logged on stderr)
    res["skipped_samples"] = skipped
    res["arch"] = net.arch
    if args.json:
        print(json.dumps(res))
        return 0
    print(model_line(args.model, net))
    print("\n".join(streameval.report_lines(res)))
    if skipped:
        print(skipped_line(skipped, "left out of the stream"))
    return 0


def model_line(path, net) -> str:
    """The first line of both evaluations: the model file and what it is."""
    return (f"model {path}: {net.arch} -> {net.n_classes} classes ({net.parameters:,} parameters), "
            f"{net.updates} updates, {net.epochs} epochs")


def skipped_line(skipped: list[str], what: str = "not scored") -> str:
    """One line for people about unreadable samples: how many, and the first reasons."""
    from ..textsafe import printable  # the reasons name files of the dataset: no raw control characters

    return printable(f"skipped {len(skipped)} unreadable sample(s), {what}: " + "; ".join(skipped[:3])
                     + (" ..." if len(skipped) > 3 else ""))
