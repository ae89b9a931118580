"""`streamsnn synth`: write a dataset made by the synthetic camera: N-MNIST-like digits, or labelled gestures."""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import asdict, fields
from pathlib import Path

ORDER = 60


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "synth",
        help="make an N-MNIST-format dataset from still digits with the synthetic saccade camera, or a "
             "labelled gesture dataset (--gestures)",
        description="Record still digits (MNIST idx files, a PNG folder, or digits rendered from a font) "
                    "with a simulated ATIS sensor making N-MNIST's three saccades, and write them as "
                    "<n>.bin files (N-MNIST encoding) plus a '#sample #class' label list, a flat "
                    "dataset folder that `streamsnn info`/replay/train read. With --gestures: a shape moved along "
                    "ten gestures (swipes, circles, wave, nod, L paths) in front of the same simulated pixels "
                    "on a 64x64 sensor, written as Train/<gesture>/*.aedat4 and Test/<gesture>/*.aedat4.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--mnist", type=Path, metavar="DIR",
                     help="folder with MNIST idx files (t10k-images-idx3-ubyte[.gz] and labels)")
    src.add_argument("--png", type=Path, metavar="DIR",
                     help="folder of PNG digits, labelled by <label>/ subfolders or <label>_*.png names")
    src.add_argument("--font", action="store_true", help="digits rendered from a font with random pose and stroke")
    src.add_argument("--gestures", action="store_true",
                     help="labelled synthetic gestures (10 classes that differ by motion only) instead of digits")
    p.add_argument("--mnist-split", choices=("test", "train"), default=None,
                   help="which MNIST files to read: t10k-* (test, default) or train-*")
    p.add_argument("--first", type=int, default=None, metavar="K",
                   help="first image to use, 1-based (MNIST: images 1-100 made the real N-MNIST test "
                        "samples 60001-60100; use 101 to stay clear of them)")
    p.add_argument("--count", type=int, default=None, metavar="N",
                   help="number of samples (default: all images from --first on; 1000 with --font); "
                        "with --gestures: training samples per class (default 100)")
    p.add_argument("--test-count", type=int, default=None, metavar="N",
                   help="--gestures: test samples per class (default: a quarter of --count, at least 1)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="output folder (default: ./synth-nmnist, or ./synth-gestures with --gestures)")
    p.add_argument("--split", choices=("train", "test"), default=None,
                   help="label list to write: train.txt (default) or test.txt; with --gestures: write only "
                        "this split (default both)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the sensor, the noise, the font digits and the gestures")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="override a camera parameter, e.g. threshold_on=0.3 or, with --gestures, "
                        "duration_ms=[300,1500] (repeatable; see synth.json or gestures.json)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=run)


def parse_params(items: list[str], cls=None):
    """SaccadeParams (or `cls`, e.g. GestureParams) with KEY=VALUE overrides (values parsed as JSON:
    numbers, lists, booleans)."""
    from ..errors import ConfigError
    from ..synth import SaccadeParams

    cls = cls or SaccadeParams
    known = {f.name for f in fields(cls)}
    kw = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in known:
            raise ConfigError(f"--param {item!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(known))}")
        try:
            v = json.loads(value)
        except json.JSONDecodeError:
            raise ConfigError(f"--param {item!r}: value is not a number, boolean or JSON list") from None
        kw[key] = _tuples(v)
    params = cls(**kw)
    params.check()
    return params


def _tuples(v):
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def run(args) -> int:
    from tqdm import tqdm

    from ..errors import ConfigError, InputError
    from ..synth import SaccadeCamera
    from ..synth.images import font_digits, mnist_digits, png_digits
    from ..synth.writer import write_label_list, write_nmnist

    if args.count is not None and args.count <= 0:
        raise ConfigError(f"--count must be positive, got {args.count}")
    if args.gestures:
        if args.first is not None or args.mnist_split is not None:
            raise ConfigError("--first and --mnist-split choose MNIST images; --gestures draws its own samples: drop "
                              "them")
        return run_gestures(args)
    args.first = 1 if args.first is None else args.first
    args.mnist_split = args.mnist_split or "test"
    if args.test_count is not None:
        raise ConfigError("--test-count is for --gestures; digits write one split (--split) of --count samples")
    args.split = args.split or "train"
    if args.first < 1:
        raise ConfigError(f"--first counts from 1, got {args.first}")
    params = parse_params(args.param)
    if args.mnist:
        digits = mnist_digits(args.mnist, args.mnist_split, args.first, args.count)
        source = {"mnist": str(args.mnist), "split": args.mnist_split, "first": args.first}
    elif args.png:
        digits = png_digits(args.png)[args.first - 1:]
        digits = digits[:args.count] if args.count else digits
        source = {"png": str(args.png), "first": args.first}
    else:
        digits = list(font_digits(args.count or 1000, seed=args.seed))
        source = {"font": True}
    if not digits:
        raise InputError(f"no images left from --first {args.first}; lower --first")
    unlabelled = [d.name for d in digits if d.label is None]
    if unlabelled:
        raise InputError(f"image {unlabelled[0]} has no label; put it in a <label>/ folder or name it <label>_*.png")

    out = args.out or Path("synth-nmnist")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    taken, earlier = other_splits(out, args.split)
    # MNIST samples keep their image number; other inputs are numbered 1..N, or after the folder's other split
    # when those numbers are taken there (so that writing either split again gives the same files)
    def numbered(first: int) -> list[str]:
        return [d.name.split("-", 1)[1] if d.name.startswith("mnist-") else str(n) for n, d in enumerate(digits, first)]

    ids = numbered(1)
    if set(ids) & taken and not digits[0].name.startswith("mnist-"):
        ids = numbered(1 + max((int(k) for k in taken if k.isdigit()), default=0))
    if clash := sorted(set(ids) & taken, key=lambda k: (len(k), k)):
        raise InputError(f"--out {out} already holds sample {clash[0]} ({len(clash)} in all) in another split's "
                         "label list; write this split to another folder")
    camera = SaccadeCamera(params, args.seed)
    labels, names, events = {}, {}, 0
    bar = tqdm(list(zip(ids, digits)), desc="synth", unit="sample", file=sys.stderr,
               disable=args.quiet or not sys.stderr.isatty())
    for sid, d in bar:
        batch = camera.record(d.image, sample=sid, label=d.label)
        write_nmnist(out / f"{sid}.bin", batch)
        labels[sid], names[sid] = d.label, d.name
        events += len(batch)
    write_label_list(out / f"{args.split}.txt", labels)
    meta = {"generator": "streamsnn synth", "split": args.split, "seed": args.seed, "source": source,
            "params": asdict(params), "samples": names, **({"other_splits": earlier} if earlier else {})}
    (out / "synth.json").write_text(json.dumps(meta, indent=1) + "\n")
    if not args.quiet:
        print(f"wrote {len(labels)} samples ({events} events, {events / len(labels):.0f} per sample) "
              f"to {out} with label list {args.split}.txt")
    return 0


def other_splits(out: Path, split: str) -> tuple[set[str], list[dict]]:
    """The sample ids the folder's other split lists (a second run writing the test split beside the training
    one must not overwrite its files), and what synth.json recorded of the runs that wrote them."""
    from ..io.labellists import label_lists, read_labels

    taken = {sid for sp, path in label_lists(out) if sp != split for sid in read_labels(path)}
    earlier: list[dict] = []
    if taken and (out / "synth.json").is_file():
        with contextlib.suppress(ValueError, OSError):
            old = json.loads((out / "synth.json").read_text())
            runs = [{k: v for k, v in old.items() if k != "other_splits"}] + list(old.get("other_splits", []))
            earlier = [r for r in runs if isinstance(r, dict) and r.get("split") != split]
    return taken, earlier


def run_gestures(args) -> int:
    """Train/<gesture>/<gesture>-<k>.aedat4 and Test/<gesture>/<gesture>-test-<k>.aedat4 under --out,
    plus gestures.json (seed, parameters, every sample's drawn motion)."""
    from tqdm import tqdm

    from ..errors import ConfigError, InputError
    from ..synth.gestures import CLASSES, GestureCamera, GestureParams, draw, sample_rng
    from ..synth.writer import write_aedat4

    count = 100 if args.count is None else args.count
    test = max(1, count // 4) if args.test_count is None else args.test_count
    if test <= 0:
        raise ConfigError(f"--test-count must be positive, got {test}")
    params = parse_params(args.param, GestureParams)
    splits = [(0, "train", count), (1, "test", test)]
    splits = [s for s in splits if args.split in (None, s[1])]
    out = args.out or Path("synth-gestures")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder")
    kept = _earlier_gestures(out, {s[1] for s in splits}, args.seed, asdict(params))
    camera = GestureCamera(params, args.seed)
    jobs = [(no, split, c, name, k) for no, split, n in splits for c, name in enumerate(CLASSES) for k in range(n)]
    samples, events, seconds = {}, 0, 0.0
    bar = tqdm(jobs, desc="gestures", unit="sample", file=sys.stderr,
               disable=args.quiet or not sys.stderr.isatty())
    for no, split, c, name, k in bar:
        rng = sample_rng(args.seed, no, c, k)
        spec = draw(params, name, rng)
        sid = f"{name}-{k + 1}" if split == "train" else f"{name}-test-{k + 1}"
        batch = camera.record(spec, rng, sample=sid)
        folder = out / split.capitalize() / name
        folder.mkdir(parents=True, exist_ok=True)
        write_aedat4(folder / f"{sid}.aedat4", batch)
        samples[sid] = {"split": split, **asdict(spec), "events": len(batch)}
        events += len(batch)
        seconds += spec.length_ms / 1000
    meta = {"generator": "streamsnn synth --gestures", "seed": args.seed, "classes": list(CLASSES),
            "params": asdict(params), "samples": {**kept, **samples}}
    (out / "gestures.json").write_text(json.dumps(meta, indent=1) + "\n")
    if not args.quiet:
        made = ", ".join(f"{n} {split}" for _, split, n in splits)
        print(f"wrote {len(samples)} gesture samples ({made} per class, {len(CLASSES)} classes; {events} events, "
              f"{events / len(samples):.0f} per sample, {seconds / len(samples):.2f} s each on average) "
              f"to {out} as {'/'.join(s.capitalize() for _, s, _ in splits)}/<gesture>/*.aedat4")
    return 0


def _earlier_gestures(out: Path, splits: set[str], seed: int, params: dict) -> dict:
    """Before `synth --gestures` writes `splits` into `out`: remove the gesture files an earlier run wrote there
    for those splits (a second run with other counts left the first's extra samples beside its own, and
    gestures.json described only the second), and return gestures.json's entries of the other splits, kept.
    InputError when those were made with another seed or other parameters (one set, one generator)."""
    import re

    from ..errors import InputError
    from ..synth.gestures import CLASSES

    meta_path = out / "gestures.json"
    try:
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        old = {sid: m for sid, m in meta.get("samples", {}).items() if m.get("split") not in splits}
    except (OSError, ValueError, AttributeError):
        raise InputError(f"{meta_path}: not a gestures.json that synth wrote; give another --out") from None
    if old and (meta.get("seed"), meta.get("params")) != (seed, json.loads(json.dumps(params))):
        left = sorted({m.get("split", "?") for m in old.values()})
        raise InputError(f"--out {out} holds the {' and '.join(left)} split of another --seed or --param; write "
                         "this split with the same ones (see gestures.json), or into another folder")
    for split in splits:
        for name in CLASSES:
            folder = out / split.capitalize() / name
            pattern = re.compile(rf"{re.escape(name)}-{'test-' if split == 'test' else ''}\d+\.aedat4")
            if folder.is_dir():
                for f in folder.iterdir():
                    if pattern.fullmatch(f.name) and f.is_file():
                        f.unlink()
    return old
