"""`streamsnn synth --gestures`: write the synthetic gesture set as class folders of AEDAT4 files."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path


def run_gestures(args) -> int:
    """Train/<gesture>/<gesture>-<k>.aedat4 and Test/<gesture>/<gesture>-test-<k>.aedat4 under --out,
    plus gestures.json (seed, parameters, every sample's drawn motion)."""
    from tqdm import tqdm

    from ..errors import ConfigError, InputError
    from ..synth.gestures import CLASSES, GestureCamera, GestureParams, draw, sample_rng
    from ..synth.writer import write_aedat4
    from .synth import parse_params

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
            "params": asdict(params), "samples": samples}
    (out / "gestures.json").write_text(json.dumps(meta, indent=1) + "\n")
    if not args.quiet:
        made = ", ".join(f"{n} {split}" for _, split, n in splits)
        print(f"wrote {len(samples)} gesture samples ({made} per class, {len(CLASSES)} classes; {events} events, "
              f"{events / len(samples):.0f} per sample, {seconds / len(samples):.2f} s each on average) "
              f"to {out} as {'/'.join(s.capitalize() for _, s, _ in splits)}/<gesture>/*.aedat4")
    return 0
