"""`streamsnn demo --gestures`: the brief training of the gesture demo's network on synthetic gestures."""

from __future__ import annotations

import sys
from pathlib import Path


def train_gestures(args, out: Path, say) -> None:
    """Train the default network briefly on `args.synthetic` synthetic gestures (classes in turn, the
    training split's samples of `streamsnn synth --gestures`), with the stream transforms of `train`."""
    import numpy as np
    from tqdm import tqdm

    from ..errors import ConfigError
    from ..learn.augment import StreamCrops
    from ..learn.datadefaults import default_grid
    from ..learn.training import Augment, SampleArrays, learning_settings, train_epoch
    from ..snn import SpikingNetwork
    from ..snn.arch import DEFAULT_ARCH, InputMap
    from ..synth.gestures import CLASSES, GestureCamera, draw, sample_rng

    if args.epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {args.epochs}")
    n = max(args.synthetic, len(CLASSES))
    camera = GestureCamera()
    w, h = camera.params.width, camera.params.height
    gw, gh, _ = default_grid(w, h)  # as `streamsnn train` reads this sensor
    rates = learning_settings(DEFAULT_ARCH, several=False, stream=True)
    net = SpikingNetwork(input_map=InputMap((w, h), None, (gw, gh, 2)), classes=list(CLASSES), seed=0,
                         lr=rates["lr"], lr_out=rates["lr_out"])
    say(f"training: filming {n} synthetic gestures ({n // len(CLASSES)}+ per class)")
    data = SampleArrays()
    labels = []
    for k in tqdm(range(n), desc="filming", unit="sample", file=sys.stderr, leave=False,
                  disable=not sys.stderr.isatty()):
        c = k % len(CLASSES)
        rng = sample_rng(0, 0, c, k // len(CLASSES))
        b = camera.record(draw(camera.params, CLASSES[c], rng), rng, sample=f"{CLASSES[c]}-{k // len(CLASSES) + 1}")
        idx, t = net.input_events(b)
        data.idx.append(idx)
        data.t.append(t)
        data.ids.append(b.sample)
        labels.append(c)
    data.labels = np.asarray(labels, np.int64)
    data.classes = list(CLASSES)
    say(f"training: {net.arch} on {len(data)} gestures, {args.epochs} epochs (once; the model is kept at {out})")
    augment = Augment()
    for ep in range(args.epochs):
        r = train_epoch(net, data, epoch=ep, epochs=args.epochs, augment=augment, stream=StreamCrops())
        say(f"training: epoch {ep + 1}/{args.epochs}, accuracy {r['accuracy']:.3f}, {r['seconds']:.1f} s")
    net.save(out)
