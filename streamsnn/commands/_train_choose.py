"""`streamsnn train`'s learning rates for a rule, its search of settings on held-out training samples
(`learn.choose`), and the held-out stream it scores a leak on."""

from __future__ import annotations


def timing_lr(steps: int | None, readout: str | None = None) -> float:
    """Learning "timing"'s hidden rate for a run of `steps` learning steps: TIMING_LR for the "rise" readout (the
    default, `defaults.TIMING_READOUT`); for "decay", TIMING_LR up to TIMING_REF_STEPS and smaller in proportion
    beyond, so that the hidden layer moves about as far in a long run as in the one it was chosen on."""
    from ..defaults import TIMING_LR, TIMING_READOUT, TIMING_REF_STEPS

    if (readout or TIMING_READOUT) != "decay" or not steps:
        return TIMING_LR
    return TIMING_LR * min(1.0, TIMING_REF_STEPS / steps)


def timing_gain(learning: str, layers) -> dict:
    """The initial weights' gain `train` gives learning "timing" on a network with convolutions (as a constructor
    argument; empty otherwise): defaults.TIMING_CONV_GAIN."""
    from ..defaults import TIMING_CONV_GAIN

    return {"init_gain": TIMING_CONV_GAIN} if learning == "timing" and any(lay.conv_like for lay in layers) else {}


def timing_rates_line(lr: float, lr_out: float, steps: int, readout: str | None = None,
                      gain: dict | None = None) -> str:
    """What `train` says of learning "timing"'s default rates (`timing_lr`; `steps` 0: the hidden rate was given)
    and of the initial weights' gain when `timing_gain` gave one (`gain`, its result), and of its label smoothing."""
    from ..defaults import TIMING_READOUT, TIMING_REF_STEPS, TIMING_SMOOTHING

    readout = readout or TIMING_READOUT
    slower = readout == "decay" and steps > TIMING_REF_STEPS
    less = f": TIMING_LR x {TIMING_REF_STEPS:,} / {steps:,} learning steps" if slower else ""
    drawn = f"; weights drawn at {gain['init_gain']:g}x the usual gain (defaults.TIMING_CONV_GAIN)" if gain else ""
    return (f"learning rates {lr:g} (hidden{less}), {lr_out:g} (output) for timing with the {readout!r} readout "
            f"(defaults.TIMING_LR, TIMING_LR_OUT, TIMING_READOUT){drawn}; label smoothing {TIMING_SMOOTHING:g} "
            "(TIMING_SMOOTHING)")


def default_rates(args, layers, stream: bool, learning: str, lr_out_given: float | None = None,
                  steps: int | None = None, readout: str | None = None) -> tuple[float, float]:
    """(lr, lr_out) of `train`: the ones given, else the defaults for these layers, data folders and stream crops,
    times MEMBRANE_LR_SCALE for a rule that learns from timing (learning "timing": its own, TIMING_LR and _OUT, the
    hidden one for a run of `steps` learning steps with its `readout`: `timing_lr`).
    With --lr given and not --lr-out, `lr_out_given` (the network's, when given) stays the output's."""
    from ..defaults import MEMBRANE_LR_SCALE, TIMING_LR_OUT
    from ..learn.training import learning_settings
    from ..snn.settings import TEMPORAL_MODES

    # the stream transforms' rates belong to the crops of a counting model, not to a temporal model's prefixes
    d = learning_settings(layers, several=len(args.data) > 1, stream=stream and learning not in TEMPORAL_MODES)
    if learning == "timing":
        d, k = {"lr": timing_lr(steps, readout), "lr_out": TIMING_LR_OUT}, 1.0
    else:
        k = MEMBRANE_LR_SCALE if learning in TEMPORAL_MODES else 1.0
    return (args.lr if args.lr is not None else d["lr"] * k,
            args.lr_out if args.lr_out is not None else
            (lr_out_given if args.lr is not None and lr_out_given is not None else d["lr_out"] * k))


def choose_settings(args, net, s, aug, picked, train, say):
    """Search the settings the user did not give on held-out training samples (`learn.choose`); returns
    the network to train and the augmentation, and updates `s` and `picked` (and `args.stream_crops`)."""
    from ..learn import choose
    from ..learn import datadefaults as dd
    from ..snn.settings import TEMPORAL_MODES

    # the leak is searched only where train set it from the input delays: a temporal rule, delays, no --tau-ms
    delay_us = net.input_map.delay_us if net.input_map.delays > 1 else 0
    vary_leak = net.learning in TEMPORAL_MODES and bool(delay_us) and args.tau_ms is None

    rates = {stream: default_rates(args, net.layers, stream, net.learning, net.lr_out, steps=s["epochs"] * len(train),
                                   readout=getattr(net, "readout", None)) for stream in (False, True)}
    make_net = NetMaker(net, rates, delay_us if vary_leak else 0)

    # a temporal model's prefixes (augment.PrefixCrops) win only when strictly better on held-out whole samples
    crops_apply = ((picked["why"]["stream_crops"].startswith("samples last") and args.stream_crops)
                   or picked.get("prefixes_searchable", False))
    base = choose.Candidate(1.0, aug is not None, bool(args.stream_crops))
    jobs = search_jobs(args)
    say(f"choosing settings on held-out training samples ({picked['why']['choose']}; --choose off skips; "
        + (f"{jobs} candidates at a time in worker processes, --jobs 1: one)" if jobs > 1 else "one at a time)"))
    c = choose.search(make_net, train, base, epochs=s["epochs"], seed=args.seed,
                      vary_lr=args.lr is None and args.lr_out is None, vary_augment=args.augment is None,
                      vary_stream=crops_apply, fixed_epochs=args.epochs is not None,
                      leaks=choose.LEAKS if vary_leak else (), first_leaks=choose.FIRST_LEAKS if vary_leak else (),
                      stream_score=HeldStream(args.data) if vary_leak else None, progress=say,
                      pieces=args.pieces, ends=getattr(args, "end_cuts", None), jobs=jobs)
    say(c.brief())
    w = c.winner.candidate
    if vary_leak:
        tau_us, why = make_net.leak(w.leak)
        why += ("; chosen on held-out training samples: better on whole samples or last decisions, worse on neither"
                if w.leak != base.leak else "; the default: a longer leak did not win on held-out samples")
        picked.update(tau_us=tau_us)
        picked["why"]["tau"] = why
        say(f"leak tau {tau_us / 1000:g} ms ({why})")
        if (firsts := make_net.layer_taus(w)) is not None:
            picked["layer_tau_us"] = firsts
            picked["why"]["layer_tau"] = (f"the first layer's leak {choose.share(w.first)}x the input delay, "
                                          "chosen on held-out training samples: better on whole samples or last "
                                          "decisions, worse on neither")
            say(f"first layer's leak tau {firsts[0] / 1000:g} ms ({picked['why']['layer_tau']})")
    lr, lr_out = rates[w.stream]
    s.update(lr=lr * w.lr_scale, lr_out=lr_out * w.lr_scale, epochs=c.winner.epochs or s["epochs"],
             schedule_epochs=s["epochs"])
    args.stream_crops = w.stream
    aug = dict(dd.AUGMENT) if w.augment else None
    net = make_net(w)
    net.chosen = c.record()
    picked.update(stream_crops=w.stream, augment=aug, chosen=net.chosen)
    return net, aug


class NetMaker:
    """`choose.search`'s network builder for `train`: a fresh network like `net` for a candidate, its learning rates
    (`rates`: (lr, lr_out) with stream crops off and on) times the candidate's scale and, where `train` sets the leak
    from the input delay (`delay_us` > 0), the candidate's leaks. A plain object, so that it pickles for the search's
    worker processes (`choose_pool`)."""

    def __init__(self, net, rates: dict, delay_us: float):
        self.cls, self.config, self.rates, self.delay_us = type(net), net.config(), rates, delay_us
        self.learning, self.tau_us, self.depth = net.learning, net.tau_us, len(net.layers)

    def leak(self, share: float) -> tuple[float, str]:
        """(the leak tau, why) for `share` of the input delay (`datadefaults.choose_tau`)."""
        from ..learn import datadefaults as dd

        return dd.choose_tau(None, None, self.learning, self.delay_us, delay_share=share)

    def tau(self, c) -> float | None:
        return self.leak(c.leak)[0] if self.delay_us else self.tau_us

    def layer_taus(self, c) -> list[float] | None:
        """Each hidden layer's leak for candidate `c`: None (all as the output's) unless its first layer has its own."""
        if not self.delay_us or c.first is None:
            return None
        return [self.leak(c.first)[0]] + [self.tau(c)] * (self.depth - 1)

    def __call__(self, c):
        lr, lr_out = self.rates[c.stream]
        return self.cls(**{**self.config, "lr": lr * c.lr_scale, "lr_out": lr_out * c.lr_scale, "tau_us": self.tau(c),
                           "layer_tau_us": self.layer_taus(c)})


def jobs_count(text: str) -> int:
    """`--jobs`'s type: a whole number of 1 or more (argparse says what is wrong in one line)."""
    from ._shared import at_least_one

    return at_least_one(text, "1 or more worker processes for --choose's candidates")


def add_jobs(p) -> None:
    """`train --jobs`."""
    p.add_argument("--jobs", type=jobs_count, default=None, metavar="N",
                   help="worker processes for --choose's candidates, run side by side with the same outcome as "
                        "one after another (default: the usable CPUs, at most 2; 1: one at a time)")


def search_jobs(args) -> int:
    """`--jobs`, or its default (`choose_pool.default_jobs`)."""
    from ..learn.choose_pool import default_jobs

    jobs = getattr(args, "jobs", None)
    return default_jobs() if jobs is None else jobs


def leak_text(net) -> str:
    """What train's line says of the network's leak: 'none', one time constant, or the first layer's and the rest's."""
    if not net.tau_us:
        return "none"
    firsts = net.layer_tau_us
    if all(t == net.tau_us for t in firsts):
        return f"{net.tau_us / 1000:g} ms"
    if all(t == net.tau_us for t in firsts[1:]):
        return f"{net.tau_us / 1000:g} ms (the first layer {firsts[0] / 1000:g} ms)"
    return "/".join(f"{t / 1000:g}" for t in (*firsts, net.tau_us)) + " ms (each layer, then the output)"


def items_text(stream) -> str:
    """What train's line says of its stream items."""
    from ..learn.augment import PrefixCrops

    if stream is None:
        return "off"
    return stream.name if isinstance(stream, PrefixCrops) else "on"


def cuts_text(ends) -> str:
    """What train's line adds about end cuts (`augment.EndCuts`): nothing when there are none."""
    return f", end cuts 0-{ends.max_us / 1000:g} ms" if ends else ""


class HeldStream:
    """`choose.search`'s `stream_score`: the held-out training samples played back to back as one live stream
    (`streameval.stream_evaluate`, the live window settings), scored by each sample's last decision. The
    samples are read again from the folders by id (the loaded split holds input indices, not events)."""

    def __init__(self, folders):
        self.folders, self.batches = folders, {}

    def __call__(self, net, held) -> float:
        from dataclasses import replace

        from ..learn.streameval import stream_evaluate

        key = tuple(held.ids)
        if key not in self.batches:
            self.batches[key] = [replace(b, label=int(lab)) for b, lab in zip(self.load(held.ids), held.labels)]
        return stream_evaluate(net, self.batches[key], classes=list(net.classes))["last_decision_accuracy"]

    def load(self, ids) -> list:
        from ..errors import InputError
        from ..io.dataset import open_dataset

        # the held-out ids come in the split's order, folder after folder: two folders may share an id
        folders = [{smp.sample_id: smp for smp in open_dataset(f).split("train").samples} for f in self.folders]
        out, f = [], 0
        for i in ids:
            while f < len(folders) and i not in folders[f]:
                f += 1
            if f == len(folders):
                raise InputError(f"held-out sample {i} is no longer in the training folders; run train again")
            out.append(folders[f][i].load())
        return out


def whole_sample_settings(args, net, s, rates: dict) -> str:
    """Undo the defaults of stream crops on several folders that were not given, for a model that learns whole samples
    after all: the epochs in ``s``, the first layer's price in ``rates`` (the network is rebuilt with them); what
    train's line adds about it."""
    from ..learn.training import learning_settings

    epochs, price = getattr(args, "epochs", None), getattr(args, "layer_price", None)
    if "layer_price" not in s or (epochs is not None and price is not None):
        return ""
    if epochs is None:
        s["epochs"] = learning_settings(net.layers, several=True, stream=False)["epochs"]
    if price is None:
        rates["layer_price"] = None
    return f"; {s['epochs']} epochs" + ("" if price else ", every layer's spikes priced once")


def temporal_stream_items(args, net, s, learning: str, picked: dict, rates: dict, say) -> None:
    """The stream items of the rule `train` picked: a temporal model's (prefixes, and --pieces) when --stream-crops
    is given, or where --choose finds them better; whole samples otherwise. Records them in ``picked``."""
    from ..learn.augment import PrefixCrops
    from ..snn.settings import TEMPORAL_MODES

    pieces = getattr(args, "pieces", 0.0)  # a caller's own Namespace may predate --pieces
    if learning in TEMPORAL_MODES and args.stream_crops:
        # a crop or a crossing starts in the middle of a sample, where a live temporal model's state (decide.continuous)
        # already holds what came before: its stream items are prefixes and samples after another (augment.PrefixCrops).
        # They lift its decisions inside gestures but cost an order-only task whole samples: given, or chosen on
        # held-out training samples (`--choose`), never on by default
        items = PrefixCrops(piece=pieces)
        picked["stream_items"] = items.name
        picked["pieces"] = pieces
        if picked["why"]["stream_crops"].startswith("--"):
            say(f"stream items: {items.describe()} (--stream-crops, for a temporal model)")
            return
        args.stream_crops = False
        picked["stream_crops"] = False
        picked["prefixes_searchable"] = True
        picked["why"]["stream_crops"] = ("a temporal model learns whole samples; prefixes only where --choose "
                                         "finds them better on held-out training samples")
        tries = f"--choose tries prefixes ({items.describe()})"
        if not picked["choose"]:  # nothing will try them: say how to have them, and record none
            picked["stream_items"], picked["pieces"] = None, 0.0
            tries = f"--choose off: no prefixes ({items.describe()} with --stream-crops)"
        say("stream crops off: a temporal model learns from whole samples (live, its state carries across "
            f"windows); {tries}" + whole_sample_settings(args, net, s, rates))
    elif pieces:
        picked["pieces"] = 0.0
        say(f"--pieces {pieces:g} has no effect here: pieces are stream items of a temporal model (--learning "
            "membrane or timing, or the data needing time) with stream items on")
