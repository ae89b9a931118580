"""`streamsnn demo`: a simulated camera (or a recording, or a real camera), a trained network, the embedded
broker and the live view in one command; prints the URL to open."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from ._demo_gestures import DIGIT_EPOCHS, GESTURE_EPOCHS, GESTURES

ORDER = 5

#: The demo pipeline; pipelines/demo.toml holds the same values (a test keeps them equal).
DEMO = {
    "source": {"kind": "synthetic", "path": "", "speed": 1.0, "loop": True, "chunk_us": 20000, "seed": 0},
    # sliding windows as for a live camera (pipelines/live-camera.toml; a test keeps them equal), each
    # labelled with the digit filmed during most of it, so the page can mark decisions right or wrong
    "segment": {"mode": "window", "window_us": 100000, "hop_us": 50000, "min_events": 200, "label_windows": True},
    "model": {"checkpoint": "", "learn_from_labels": True, "save_every_s": 0.0},
    "pipeline": {"node_id": "demo", "policy": "drop_oldest", "metrics_every_s": 1.0},
    "mqtt": {"broker": "embedded", "port": 0},
    "console": {"decisions": False},
    "liveview": {"enabled": True, "host": "127.0.0.1", "port": 8080},
}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="watch digits classified live in a browser (no camera or dataset needed)",
        description="Start a simulated saccade camera filming digits (MNIST test images 101 on when "
                    "../shared/data/mnist is found, else font-rendered digits), a trained spiking network, "
                    "the embedded MQTT broker and the live view, paced in real time, and print the URL to "
                    "open. Without --model the network is trained briefly first (N-MNIST when found, plus "
                    "synthetic digits) and kept for the next demo. With --gestures it films random synthetic gestures "
                    "instead and trains on synthetic gestures (kept apart from the digit model). "
                    "Ctrl-C stops (exit 0).")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--recording", metavar="FILE", help="replay this recording or dataset folder instead, in a loop")
    what.add_argument("--camera", nargs="?", const="", metavar="SERIAL",
                      help="use a real iniVation camera (optionally by serial number)")
    what.add_argument("--images", metavar="DIR",
                      help="film this folder of MNIST idx files or PNG digits ('font' = font-rendered digits)")
    what.add_argument("--gestures", action="store_true",
                      help="film random synthetic gestures (swipes, circles, wave, nod, L paths) instead of digits")
    p.add_argument("--model", type=Path, metavar="CKPT",
                   help="a trained checkpoint (.npz); it is copied, never changed")
    p.add_argument("--retrain", action="store_true", help="train the demo model again even if one was kept")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"training passes when training first (default {DIGIT_EPOCHS}; with --gestures "
                        f"{GESTURE_EPOCHS} when the gestures need time: it then also learns from pieces and prefixes)")
    p.add_argument("--train-limit", type=int, default=None, metavar="N",
                   help="train on at most N real N-MNIST samples (quick runs)")
    p.add_argument("--synthetic", type=int, default=None, metavar="N",
                   help="synthetic digits added to the training set (default 1000); with --gestures: the "
                        f"gestures trained on (default {GESTURES})")
    p.add_argument("--host", default="127.0.0.1", help="live view address (default %(default)s)")
    p.add_argument("--port", type=int, default=8080, help="live view port (default %(default)s; 0 = any free port)")
    p.add_argument("--teach", action="store_true",
                   help="the page may teach: name what the camera sees, or a new class (liveview.teach, "
                        "model.new_classes); the windows are then unlabelled, as from a real camera, and the "
                        "model learns only from what it is taught")
    p.add_argument("--record", type=Path, metavar="FOLDER",
                   help="with --teach (implied): also write every window taught from the page into FOLDER as class "
                        "folders that `streamsnn train` reads (liveview.record_to; the layout of `streamsnn record`)")
    p.add_argument("--speed", type=float, default=1.0, help="1 = real time, k = k times faster (default %(default)s)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a pipeline value, as for streamsnn run")
    p.set_defaults(func=main)


def say(msg: str) -> None:
    print(f"[demo] {msg}", file=sys.stderr, flush=True)


def main(args) -> int:
    from ..config import build_config
    from ._shared import exit_on_sigterm

    exit_on_sigterm()
    if args.synthetic is None:
        args.synthetic = GESTURES if getattr(args, "gestures", False) else 1000
    raw = {section: dict(values) for section, values in DEMO.items()}
    raw["liveview"].update(host=args.host, port=args.port)
    raw["source"]["speed"] = args.speed
    images = None
    if args.camera is not None:
        raw["source"] = {"kind": "camera", "serial": args.camera}
        raw["segment"]["label_windows"] = False  # a real camera has no labels
        say(f"camera: the iniVation camera {args.camera or '(first found)'}, 100 ms windows")
    elif getattr(args, "gestures", False):
        from ..synth.gestures import CLASSES

        raw["source"]["path"] = "gestures"
        say("camera: simulated gestures on a 64x64 sensor, one after another: a shape moved along "
            f"{', '.join(CLASSES)}")
    elif args.recording:
        raw["source"] = {"kind": "replay", "path": args.recording, "speed": args.speed, "loop": True}
        raw["segment"] = {"mode": "auto"}  # a dataset folder: per sample; one recording: sliding windows
        say(f"camera: the recording {args.recording}, replayed in a loop at {args.speed:g}x real time")
    else:
        images = args.images or _find_mnist()
        raw["source"]["path"] = "" if images in (None, "font") else str(images)
        say("camera: simulated saccade camera filming " + (
            "font-rendered digits with random pose" if images in (None, "font") else
            f"the digits in {images}" + (" (MNIST test images 101 on)" if _is_mnist(images) else "")))
    if getattr(args, "record", None):
        args.teach = True
        raw["liveview"]["record_to"] = str(args.record)
    if getattr(args, "teach", False):  # a label known for a window would refuse any other name for it
        raw["liveview"]["teach"] = True
        raw["segment"]["label_windows"] = False
        raw["model"].update(learn_from_labels=False, new_classes=True)
        say("teaching on: name what the camera sees on the page (a class, or a new name adds a class)")
    build_config(raw, "streamsnn demo", args.overrides)  # a wrong --set fails before any training
    try:
        ckpt = _model(args, images)
    except KeyboardInterrupt:
        say("interrupted while training; nothing kept")
        return 0
    raw["model"]["checkpoint"] = str(ckpt)
    cfg = build_config(raw, "streamsnn demo", args.overrides)
    from ..daemon import run

    say("starting: open the live view URL below in a browser; Ctrl-C stops")
    teach = bool(getattr(args, "teach", False))
    if getattr(args, "gestures", False):
        return run(cfg, announce=lambda settings: announce(settings, "swipe_left", "gesture", teach))
    return run(cfg, announce=lambda settings: announce(settings, teach=teach))


def announce(settings, example: str = "3", thing: str = "digit", teach: bool = False) -> None:
    """Where the demo's decisions go, and ready commands to watch them and to send feedback."""
    where = f"-h {settings.host} -p {settings.port}"
    say(f"MQTT: embedded broker on {settings.host}:{settings.port}, topics under {settings.prefix}/")
    say(f"  watch:    mosquitto_sub {where} -t '{settings.prefix}/#' -v")
    say(f"  feedback: mosquitto_pub {where} -t '{settings.prefix}/feedback' "
        "-m '{\"t_end_us\": <t_end_us of a classification>, \"label\": \"" + example + "\"}'")
    if not teach:  # with --teach the windows carry no label: feedback teaches, as on the page
        say(f"            (the demo learns each window's label, the {thing} filmed during most of it, so feedback on "
            "a window is refused as a duplicate and counted; with --set model.learn_from_labels=false it learns "
            "from feedback instead, as a camera pipeline does)")


def _find_mnist() -> Path | None:
    from ..io.nmnist_fetch import REPO

    for folder in (Path.cwd().parent / "shared" / "data" / "mnist", REPO.parent / "shared" / "data" / "mnist"):
        if _is_mnist(folder):
            return folder
    return None


def _is_mnist(folder) -> bool:
    return folder not in (None, "font") and any(Path(folder).glob("t10k-images-idx3-ubyte*"))


def _demo_dir() -> Path:
    from ..io.nmnist_fetch import cache_dir

    return cache_dir().parent


def _model(args, images) -> Path:
    """The checkpoint the demo runs with (and keeps learning into): a copy of --model, the kept demo model,
    or a model trained now."""
    from ..errors import CheckpointError

    gestures = getattr(args, "gestures", False)
    work = _demo_dir() / ("demo-gestures.npz" if gestures else "demo-model.npz")
    work.parent.mkdir(parents=True, exist_ok=True)
    if args.model is not None:
        if not args.model.is_file():
            raise CheckpointError(f"--model {args.model} not found; give a .npz made by streamsnn train or run")
        from ..snn import SpikingNetwork

        SpikingNetwork.load(args.model)  # a bad file is named as given, before it replaces the last copy
        copy = work.with_name(f"{work.stem}-given.npz")  # not the kept demo model, which a plain demo reuses
        shutil.copyfile(args.model, copy)
        say(f"network: {args.model} (a copy at {copy} learns during the demo)")
        return copy
    if work.exists() and not args.retrain:
        say(f"network: the demo model trained earlier, {work} (--retrain to train it again)")
        return work
    if gestures:
        from ._demo_gestures import train_gestures

        train_gestures(args, work, say)
    else:
        _train(args, images, work)
    return work


def _train(args, images, out: Path) -> None:
    """Train a fresh network briefly on real N-MNIST (when found) plus synthetic digits like the ones shown,
    with the stream transforms of `streamsnn train` (whole samples, time crops, crossings)."""

    from ..errors import ConfigError, InputError
    from ..io.nmnist_fetch import find_nmnist
    from ..learn.augment import StreamCrops
    from ..learn.training import Augment, SampleArrays, learning_settings, load_split, train_epoch
    from ..snn import SpikingNetwork
    from ..snn.arch import DEFAULT_ARCH

    if args.epochs is None:
        args.epochs = DIGIT_EPOCHS
    if args.epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {args.epochs}")
    rates = learning_settings(DEFAULT_ARCH, several=True, stream=True)  # as `streamsnn train` sets them
    net = SpikingNetwork(seed=0, lr=rates["lr"], lr_out=rates["lr_out"])  # the default deep convolutional network
    data = SampleArrays()
    try:
        nmnist = find_nmnist(None, download=False)
        data = load_split(nmnist, "train", net, limit=args.train_limit)
        say(f"training: {len(data)} real N-MNIST samples from {nmnist}")
    except InputError:
        say("training: no N-MNIST found (see pipelines/README.md, dataset discovery); synthetic digits only")
    synth = _synthetic_training(images, max(args.synthetic, 0 if len(data) else 100))
    if synth:
        data = data + SampleArrays.from_batches(net, synth)
    say(f"training: {net.arch} on {len(data)} samples, {args.epochs} epochs (once; the model is kept at {out})")
    augment = Augment()  # streamsnn/defaults.py AUGMENT
    for ep in range(args.epochs):
        r = train_epoch(net, data, epoch=ep, epochs=args.epochs, augment=augment, stream=StreamCrops())
        say(f"training: epoch {ep + 1}/{args.epochs}, accuracy {r['accuracy']:.3f}, {r['seconds']:.1f} s")
    net.memory.fill(net, data)  # examples per class, replayed when the page teaches one class (as `train` keeps)
    net.save(out)


def _synthetic_training(images, n: int) -> list:
    """n recordings by the simulated camera, of digits like the demo's but not the ones it shows first
    (MNIST test images 5001 on, else font-rendered digits, also for a PNG folder)."""
    if n <= 0:
        return []
    from tqdm import tqdm

    from ..synth import SaccadeCamera, SaccadeParams
    from ..synth.images import font_digits, mnist_digits

    digits = mnist_digits(images, "test", 5001, n) if _is_mnist(images) else list(font_digits(n, seed=1000))
    where = "MNIST test images 5001 on" if _is_mnist(images) else "font-rendered digits"
    say(f"training: filming {len(digits)} synthetic samples ({where})")
    cam = SaccadeCamera(SaccadeParams(), 1000)
    return [cam.record(d.image, sample=d.name, label=d.label)
            for d in tqdm(digits, desc="filming", unit="sample", file=sys.stderr, leave=False,
                          disable=not sys.stderr.isatty())]
