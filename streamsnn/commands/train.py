"""`streamsnn train --data DIR [--data DIR ...]`: train the spiking network online on dataset folders and save it."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ._shared import at_least_one
from ._train_checks import at_chance, blind
from ._train_choose import (
    HeldStream,  # noqa: F401 (API)
    add_jobs,
    choose_settings,
    cuts_text,
    default_rates,
    items_text,
    leak_text,
    temporal_stream_items,
    timing_gain,
    timing_rates_line,
)
from ._train_parse import check_options, parse_prices, parse_taus, probes

ORDER = 20

ARCH_HELP = ("hidden layers, comma-separated: conv:C:K[:S[:P]] (C channels, KxK kernel, stride S = 1, "
             "padding P = 0), dense:N (N units) or src:N (N recurrent spiking units: their own spikes feed back "
             "into the layer; learned by backpropagation through time over the sample's trace of spikes), "
             "e.g. conv:16:5:2:2,conv:32:3:2:1,dense:128 or conv:16:5:2:2,src:128; "
             "the output layer (one unit per class) is added. Default: the deep convolutional network "
             "%(default)s; dense:800 is the earlier one-layer network")


def add_parser(subparsers) -> None:
    from ..learn import choose
    from ..learn import datadefaults as dd
    from ..learn.augment import PrefixCrops, StreamCrops
    from ..snn.arch import DEFAULT_ARCH
    from ..snn.settings import READOUTS

    STREAM, PREFIX = StreamCrops(), PrefixCrops()

    p = subparsers.add_parser(
        "train",
        help="train the spiking network on dataset folders",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train the event-driven spiking network online (minibatch 1, test-then-train) on the\n"
                    "train split of one or more dataset folders (N-MNIST flat with label lists, or\n"
                    "Train/<digit>/; several --data are concatenated, the test split comes from the first\n"
                    "folder that has one), report train and test accuracy per epoch, and save the model\n"
                    "(.npz) after every epoch. Learning rates and epochs default to the values measured\n"
                    "for the kind of network (convolutional or dense, see benchmarks/README.md).",
        epilog="The best N-MNIST model here: real samples plus synthetic saccade-camera recordings\n"
               "of MNIST digits that the real test samples were not made from:\n"
               "  streamsnn synth --mnist ../shared/data/mnist --first 101 --out synth\n"
               "  streamsnn train --data ../shared/data/nmnist_small --data synth",
    )
    p.add_argument("--data", type=Path, action="append", required=True, metavar="DIR",
                   help="dataset folder; repeat to train on several (e.g. real N-MNIST plus `streamsnn synth` output)")
    p.add_argument("--arch", default=None, help=ARCH_HELP.replace("%(default)s", DEFAULT_ARCH))
    p.add_argument("--hidden", type=int, default=None, help="shorthand for --arch dense:HIDDEN")
    p.add_argument("--epochs", type=int, default=None,
                   help="passes over the training data (default: by network kind and number of folders: 40 / 6 "
                        "for a convolutional network on one folder / several (9 on several with stream crops), "
                        "20 / 6 for a dense one; at most that many as --choose picks)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights, order and augmentation")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate of the hidden layers, cosine-decayed to 0.1x (default: by network kind, halved "
                        "for conv with --stream-crops; timing: 1e-4, x 4,000 / the run's steps above 4,000 steps)")
    p.add_argument("--lr-out", type=float, default=None, help="learning rate of the output layer")
    p.add_argument("--lr-conv", type=float, default=None, help="multiplies --lr for convolutional layers")
    p.add_argument("--layer-price", default=None, metavar="X,X,...",
                   help="one multiplier per hidden layer of the price a spike adds to the loss (learning counts, "
                        "membrane and timing; default 1 each, 2 on the first layer of a convolutional network "
                        "trained on several folders with stream crops): e.g. 2,1,1 makes the first layer fire less, "
                        "which is where most of the network's work per event is (docs/performance.md)")
    p.add_argument("--learning", choices=("counts", "spikes", "membrane", "timing"), default=None,
                   help="counts: backprop on spike counts; spikes: the error sent back as spikes (dense layers "
                        "only) (both O'Connor & Welling 2016); membrane: backprop on leaky membrane traces "
                        "(Lee, Delbruck & Pfeiffer 2016), learns the order of events, needs a leak "
                        "(--tau-ms); timing: exact gradients through every spike's time (Yamamoto, Sakemi & "
                        "Aihara 2022), current-based units, dense and conv layers, needs a leak. Default: membrane "
                        "when the training split needs time (a linear probe on "
                        "held-out training samples: does a sample played backwards become another class?), else "
                        "counts; train says which and why")
    p.add_argument("--readout", choices=READOUTS, default=None,
                   help="learning timing: how the output weighs a spike by its age: rise (default: an earlier spike "
                        "weighs more, forgotten over 2 leak time constants) or decay (the leaky evidence of the other "
                        "rules; ahead on small data held out, docs/network.md)")
    p.add_argument("--tau-ms", default=None, metavar="MS[,MS...]",
                   help="leak time constant in ms: one value for every layer (0: no leak), or one per hidden layer "
                        "and then the output's (e.g. 20,20,50,200 for three hidden layers); default: none for "
                        "counts and spikes, a sixth of the median training sample's length for membrane (a quarter "
                        "of the delay with --delays)")
    p.add_argument("--delays", type=int, default=None, metavar="K",
                   help="synaptic delays on the input: K copies of every input unit, copy k receiving each event "
                        "k x --delay-ms later, so the first layer sees what happened now, D ago, 2D ago (1: none). "
                        f"Default: {dd.DELAY_COPIES} when the training split needs time (the probe of --learning, "
                        "also run for --learning membrane), else none; --learning timing takes none")
    p.add_argument("--delay-ms", type=float, default=None, metavar="MS",
                   help="time between the delayed copies (default: a third of the median training sample's length)")
    p.add_argument("--out", type=Path, default=Path("model.npz"), help="model file to write (default %(default)s)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random shifts (+-2 px), 10%% event dropout and 1 ms time jitter on the training "
                        "stream (default: on, off for --learning timing, or as --choose picks)")
    p.add_argument("--choose", choices=choose.MODES, default="auto",
                   help="choose learning rates (x1, x0.5, x0.25), epochs, augmentation, stream crops and, for a "
                        "temporal network with input delays and no --tau-ms, the leak (1/4 or 1/2 of the delay; 1/2 "
                        "only if better on held-out whole samples or last decisions as a stream, and worse on neither) "
                        "on a held-out part of the training split (the last quarter of each class; never the test "
                        "split), then train on the whole split with the winner; the default settings win ties. "
                        f"auto (default): when the data are few (under {dd.SMALL_PER_CLASS} training samples per "
                        "class) or the sensor is not N-MNIST's 34x34; settings given on the command line are kept, "
                        "not searched. Costs up to 7 shorter training runs (side by side: --jobs); train prints them")
    add_jobs(p)
    g = p.add_argument_group(
        "input and data-driven defaults",
        "Classes (names and count) come from the data. Input map: a sensor of at most\n"
        f"{dd.MAX_NATIVE}x{dd.MAX_NATIVE} (N-MNIST) is used whole; on a bigger sensor the region of interest is the\n"
        "data's active region plus a margin of 1/8 of its longest side, and the grid is that\n"
        f"region at native resolution when its longest side is <= {dd.MAX_NATIVE} px, else pooled by the\n"
        f"integer factor ceil(longest / {dd.MAX_NATIVE}) (346x260 -> 44x33, 640x480 -> 46x35). The\n"
        "architecture is the N-MNIST default for any number of samples (measured on small data too:\n"
        "benchmarks/README.md, \"Own data\"); on few samples or another sensor, learning rates,\n"
        "epochs, augmentation and stream crops are chosen on held-out training samples (--choose).\n"
        "train prints what it picked and why.")
    g.add_argument("--grid", default=None, metavar="WxH",
                   help="input grid in units (default: from the region, see above)")
    g.add_argument("--roi", default=None, metavar="X,Y,W,H",
                   help="region of interest of the sensor in pixels (default: active region + margin, see above)")
    g.add_argument("--polarities", type=int, choices=(1, 2), default=None,
                   help="2 keeps ON and OFF events apart, 1 merges them (default 2)")
    p.add_argument("--stream-crops", action=argparse.BooleanOptionalAction, default=None,
                   help="train for live streams as well as whole samples: each training item is a whole sample "
                        f"({STREAM.whole * 100:.0f}%%), a random time crop of one "
                        f"({(1 - STREAM.whole - STREAM.crossing) * 100:.0f}%%, "
                        f"{STREAM.min_us // 1000}-{STREAM.max_us // 1000} ms, log-uniform) or a crossing "
                        f"({STREAM.crossing * 100:.0f}%%): a {STREAM.window_us // 1000} ms window over the end "
                        "of one sample and the start of another, labelled with the one covering more of it, as "
                        "the daemon's sliding windows see a camera; crops and crossings under 200 events are drawn "
                        "again. A temporal model (--learning membrane or timing) learns instead from prefixes of "
                        f"samples ({PREFIX.prefix * 100:.0f}%%, cut at {PREFIX.min_us // 1000} ms or later; the "
                        f"rest whole), each item following another whole sample {PREFIX.after * 100:.0f}%% of the "
                        "time, as its live state carries across windows. Default: on when the training samples last "
                        "at least that window, "
                        "as N-MNIST's 300 ms do; off for shorter ones, e.g. card pips of a few ms; train says which")
    p.add_argument("--pieces", type=float, default=0.0, metavar="SHARE",
                   help="for a temporal model's stream items (--stream-crops, or prefixes chosen by --choose): the "
                        "share of items that are pieces of 100-300 ms from inside a sample, so that the network "
                        "answers in the middle of a motion, not only at its end. For classes told apart by their "
                        "motion (gestures, 0.5: windows right 76 -> 81 %% held out, 81 -> 83 %% on the test split); "
                        "not for classes told "
                        "apart only by the order of motions that also occur alone (a piece of one is a piece of "
                        "another). Default 0")
    p.add_argument("--end-cuts", action=argparse.BooleanOptionalAction, default=None,
                   help="cut each training item's end by a random 0-50 ms (the live hop), as a live model's last "
                        "decision in a sample sees it (default: on for a model with a leak and input delays, as "
                        "train gives data that need time; off otherwise)")
    p.add_argument("--limit", type=at_least_one, default=None,
                   help="use only N samples of each split, evenly spread (quick runs of the same settings)")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object (per-epoch figures, "
                                                       "final test accuracy) on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.set_defaults(func=run)


def plan(args, say) -> tuple:
    """The network and settings `train` uses, from the arguments and the data; says what it picked."""
    from ..errors import ConfigError
    from ..io.dataset import open_dataset
    from ..learn import choose
    from ..learn import datadefaults as dd
    from ..learn.training import learning_settings
    from ..snn import SpikingNetwork
    from ..snn.arch import DEFAULT_ARCH, parse_arch

    check_options(args)
    grid = dd.parse_box(args.grid, 2, "--grid", "x") if args.grid else None
    roi = dd.parse_box(args.roi, 4, "--roi", ",") if args.roi else None
    datasets = [open_dataset(d) for d in args.data]
    for ds in datasets:
        ds.require_labels()
    classes, classes_from = dd.data_classes(datasets)
    dd.check_sensors(datasets)
    choice = dd.choose_input(datasets[0], roi=roi, grid=grid, polarities=args.polarities)
    # the dataset's size (not --limit, which makes a quick run of the same settings)
    n_train = sum(len(ds.split("train")) if "train" in ds.splits else 0 for ds in datasets)
    small = dd.is_small(n_train, len(classes))
    arch = f"dense:{args.hidden}" if args.hidden is not None else args.arch
    arch_from = "--arch" if arch else "default"
    layers = parse_arch(arch or DEFAULT_ARCH)
    if args.learning == "timing":  # before any data is read
        from ..snn.settings import check_timing_layers

        check_timing_layers(layers)
    from ..learn.augment import StreamCrops

    args.stream_crops, stream_from = dd.choose_stream(datasets, args.stream_crops, StreamCrops().window_us)
    s = learning_settings(layers, several=len(args.data) > 1, stream=args.stream_crops)
    for key in ("epochs", "lr", "lr_out", "lr_conv"):
        if getattr(args, key) is not None:
            s[key] = getattr(args, key)
    if s["epochs"] < 1:
        raise ConfigError(f"--epochs must be at least 1, got {s['epochs']}")
    args.tau_ms, layer_tau_us = parse_taus(args.tau_ms, len(layers))
    layer_price = parse_prices(args.layer_price, len(layers))
    price_from = "--layer-price" if layer_price else "stream crops on several folders: defaults.STREAM_FIRST_PRICE"
    layer_price = layer_price or s.get("layer_price")
    # until the training split is loaded, probed and measured (`pick_learning`): a rule that needs a leak waits
    learning = args.learning if args.learning in ("counts", "spikes") or (args.learning and args.tau_ms) else "counts"
    tau_us, tau_from = dd.choose_tau(None, args.tau_ms, learning) if args.tau_ms is not None else (None, "")
    net = SpikingNetwork(arch=layers, input_map=choice.input_map, classes=classes, seed=args.seed,
                         learning=learning, tau_us=tau_us, layer_tau_us=layer_tau_us if tau_us else None,
                         layer_price=layer_price, **{k: s[k] for k in ("lr", "lr_out", "lr_conv", "max_step")})
    aug, aug_from = dd.choose_augment(args.augment, args.learning)
    per_class = f"{n_train / max(1, len(classes)):,.1f}".removesuffix(".0")  # 49.7, not "50, fewer than 50"
    say(f"classes: {', '.join(classes)} ({classes_from}); {choice.describe()}")
    few = f", fewer than {dd.SMALL_PER_CLASS}: the defaults were checked on such data, benchmarks/README.md"
    limited = (f", settings for all of them; --limit {args.limit}: trains on that many"
               if (args.limit or n_train) < n_train else "")
    say(f"data: {n_train} training samples ({per_class} per class{few if small else ''}{limited}); "
        f"arch {net.arch} ({arch_from}); "
        f"{s['epochs']} epochs; augment "
        + (f"shift +-{aug['shift']} px, dropout {aug['dropout']:.0%}, jitter {aug['jitter_us'] / 1000:g} ms"
           if aug else "off") + aug_from
        + f"; stream crops {'on' if args.stream_crops else 'off'} ({stream_from})"
        + (f"; spike price x{','.join(f'{x:g}' for x in layer_price)} by hidden layer ({price_from})"
           if layer_price else ""))
    picked = {"classes": classes, "input": choice.input_map.to_dict(), "small_data": small,
              "stream_crops": args.stream_crops,
              "augment": aug, "why": {"classes": classes_from, "sensor": choice.sensor_from,
                                      "roi": choice.roi_from, "grid": choice.grid_from, "arch": arch_from,
                                      "stream_crops": stream_from}}
    picked["choose"], picked["why"]["choose"] = choose.should_search(args.choose, n_train, len(classes),
                                                                     choice.input_map.sensor)
    return net, s, aug, picked


def pick_learning(args, net, s, train, picked, say, probe=None):
    """The learning rule and leak (from the arguments, else from a probe of the loaded training split:
    `learn.timecheck`, on `probe`: the whole training split under --limit); returns the network to train (rebuilt
    when they change) and records the choice."""
    from dataclasses import replace

    import numpy as np

    from ..defaults import MEMBRANE_ACTIVITY_SCALE, MEMBRANE_LR_CONV, MEMBRANE_LR_SCALE
    from ..learn import datadefaults as dd
    from ..learn import timecheck
    from ..snn.settings import TEMPORAL_MODES

    needed, check = False, None
    if probes(args):
        check = timecheck.check_time(train if probe is None else probe, net.input_map.n_inputs, net.n_classes,
                                     net.input_shape[2])
        needed = check.needed
        picked["time_probe"] = {"forward": check.forward, "reversible": check.reversible, "held_out": check.held_out}
    if args.learning is not None:
        learning, why = args.learning, "--learning"
    else:  # membrane needs a leak (--tau-ms 0: none); the delays still let a counting network see the order
        learning = "membrane" if needed and args.tau_ms != 0 else "counts"
        why = check.describe() + ("; --tau-ms 0 leaves membrane no leak" if needed and args.tau_ms == 0 else "")
    lengths = [int(t[-1]) - int(t[0]) for t in train.t if len(t)]
    median = float(np.median(lengths)) if lengths else None
    unprobed = None if check is not None else f"--learning {learning}, no probe of the data; --delays 3 adds them"
    copies, delay_us, delays_from = dd.choose_delays(median, args.delays, args.delay_ms, needed, unprobed)
    tau_us, tau_from = dd.choose_tau(median, args.tau_ms, learning, delay_us)
    input_map = replace(net.input_map, delays=copies, delay_us=delay_us)
    say(f"learning {learning} ({why}); leak " + (f"tau {tau_us / 1000:g} ms ({tau_from})" if tau_us
                                                  else f"none ({tau_from})")
        + f"; input {input_map.describe_delays()} ({delays_from})")
    picked.update(learning=learning, tau_us=tau_us)
    picked["input"] = input_map.to_dict()
    picked["why"].update(learning=why, tau=tau_from, delays=delays_from)
    rates = {}  # settings the network is rebuilt with
    if learning == "timing" and getattr(args, "readout", None):
        rates["readout"] = args.readout
    temporal_stream_items(args, net, s, learning, picked, rates, say)
    if learning in TEMPORAL_MODES and (args.lr is None or args.lr_out is None):
        # the rule's own rate for each one not given (--lr-out alone once left timing's hidden rate 10x too high)
        steps, readout = s["epochs"] * len(train), rates.get("readout", getattr(net, "readout", None))
        lr, lr_out = default_rates(args, net.layers, args.stream_crops, learning, steps=steps, readout=readout)
        rates.update(lr=lr, lr_out=lr_out, **(gain := timing_gain(learning, net.layers)))
        s.update(lr=lr, lr_out=lr_out)
        given = getattr(args, "lr_conv", None) is not None
        scaled = args.lr is None  # the price and the convolutions' rate follow the hidden rate the rule scales
        conv = scaled and learning == "membrane" and not given and any(lay.conv_like for lay in net.layers)
        if learning == "membrane" and scaled:  # the spikes' price keeps the step it has under counts (defaults.py)
            rates["activity"] = net.activity * MEMBRANE_ACTIVITY_SCALE
        if conv:  # the convolutions learn slower still (defaults.MEMBRANE_LR_CONV)
            rates["lr_conv"] = s["lr_conv"] = net.lr_conv * MEMBRANE_LR_CONV
        if learning == "timing":
            line = timing_rates_line(lr, lr_out, steps if args.lr is None else 0, readout, gain)
        else:
            names = ["defaults.MEMBRANE_LR_SCALE"] + ["MEMBRANE_LR_CONV"] * conv + ["MEMBRANE_ACTIVITY_SCALE"] * scaled
            slower = f" (convolutions x{MEMBRANE_LR_CONV:g} more)" if conv else ""
            price = f" and spike price x{MEMBRANE_ACTIVITY_SCALE:g}" if scaled else ""
            line = f"learning rates x{MEMBRANE_LR_SCALE:g}{slower}{price} for {learning} ({', '.join(names)})"
        if args.lr is not None:
            line += "; the hidden rate as given (--lr)"
        elif args.lr_out is not None:
            line += "; the output rate as given (--lr-out)"
        say(line)
    if learning != net.learning or tau_us != net.tau_us or rates or input_map != net.input_map:
        net = type(net)(**{**net.config(), "learning": learning, "tau_us": tau_us, "input_map": input_map.to_dict(),
                           **rates})
    return net


def run(args) -> int:
    from ..learn.augment import end_cuts, stream_items
    from ..learn.training import Augment, evaluate, load_folders, measure_spikes, train_epoch

    quiet = args.quiet or args.json
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    net, s, aug, picked = plan(args, say)
    train, test, test_from = load_folders(args.data, net, limit=args.limit, quiet=quiet)
    # --limit: a quick run of the settings the whole data gets (50 samples made the time probe pick `membrane`)
    probe = load_folders(args.data, net, quiet=True)[0] if args.limit and probes(args) else None
    net = pick_learning(args, net, s, train, picked, say, probe)
    if picked["choose"]:
        net, aug = choose_settings(args, net, s, aug, picked, train, say)
    else:
        say(f"settings: the defaults, not searched ({picked['why']['choose']}; --choose on searches)")
    stream = stream_items(net, pieces=args.pieces) if args.stream_crops else None
    ends = end_cuts(net, args.end_cuts)
    picked["end_cut_us"] = ends.max_us if ends else 0
    say(f"training {net.arch} ({net.parameters:,} parameters) on {len(train)} samples ({train.n_events:,} events"
        f"{f', {train.outside:,} outside the region dropped' if train.outside else ''}) "
        f"from {len(args.data)} folder(s), {len(test) if test else 0} test samples"
        f"{f' from {test_from}' if test else ''}, {s['epochs']} epochs, augment={'on' if aug else 'off'}, "
        f"stream crops={items_text(stream)}, leak={leak_text(net)}{cuts_text(ends)}")
    from ..errors import InputError

    if not any(len(i) for i in train.idx):  # else a model of 0 updates was saved, exit 0
        raise InputError(f"none of the {len(train)} training samples has an event inside the input region "
                         f"({train.outside:,} outside it dropped); check --roi, or leave it out")
    blind(train, net, args)
    net.memory.fill(net, train)  # examples per class kept for rehearsal when the daemon is taught one class
    augment = Augment(**aug) if aug else None
    epochs = []
    t0 = time.perf_counter()
    for ep in range(s["epochs"]):
        r = train_epoch(net, train, epoch=ep, epochs=s.get("schedule_epochs", s["epochs"]), seed=args.seed,
                        augment=augment, stream=stream, ends=ends, quiet=quiet)
        row = {"epoch": ep + 1, "train_accuracy": r["accuracy"], "seconds": r["seconds"],
               "learn_events_per_s": r["events_per_s"], "nonfinite": r["nonfinite"], "revivals": r["revivals"],
               "lr_backoff": r["lr_backoff"]}
        line = (f"epoch {ep + 1}/{s['epochs']}: train {r['accuracy']:.3f}"
                f"{' (augmented)' if augment or stream else ''}")
        if test:
            ev = evaluate(net, test)
            row["test_accuracy"] = ev["accuracy"]
            line += f"  test {row['test_accuracy']:.3f}"
            net.spike_rates = ev["spike_rates"]  # kept in the checkpoint; `streamsnn info` shows it
        elif ep == s["epochs"] - 1:
            net.spike_rates = measure_spikes(net, train, "train")
        line += f"  {r['seconds']:.1f} s  {r['events_per_s'] / 1e6:.2f} M events/s learning"
        if r["nonfinite"] or r["revivals"]:
            line += (f"  ({r['nonfinite']} non-finite updates undone, {r['revivals']} revivals; learning rates now "
                     f"x{r['lr_backoff']:g})")
        say(line)
        epochs.append(row)
        if not net.updates:  # nothing learnt from a whole epoch: no model worth saving
            raise InputError(f"epoch {ep + 1}: no training item reached the network with an event in the input region "
                             f"({train.n_events:,} events there in all); check --roi and --grid")
        net.save(args.out)
    at_chance(epochs, net)
    summary = (f"saved {args.out} (progressive accuracy {net.progressive_accuracy:.3f} over {net.progressive_total} "
               f"samples, {net.updates} updates)")
    if args.json:
        print(json.dumps({"model": str(args.out), "arch": net.arch, "parameters": net.parameters,
                          "train_samples": len(train), "test_samples": len(test or []),
                          "test_from": str(test_from) if test_from else None, **s, "seed": args.seed, **picked,
                          "epochs_run": epochs, "test_accuracy": epochs[-1].get("test_accuracy"),
                          "seconds": time.perf_counter() - t0, "updates": net.updates,
                          "progressive_accuracy": net.progressive_accuracy,
                          "spikes_per_event": (getattr(net, "spike_rates", None) or {}).get("per_layer")}))
    else:
        print(summary)
    return 0
