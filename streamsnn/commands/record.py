"""`streamsnn record`: capture labelled samples from a live source into a class-folders dataset folder."""

from __future__ import annotations

import sys
from pathlib import Path

from .. import defaults as d

ORDER = 55

SPLIT_RULE = "the n-th sample of a class goes to Test when n is a multiple of --test-every, else to Train"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "record", help="record labelled samples from a camera, DV stream, MQTT packets or the synthetic camera "
                       "into a dataset folder that info/train/eval read",
        description="Read a live source and write samples of --seconds of stream each as "
                    "FOLDER/Train/<class>/<class>-<n>.aedat4 and FOLDER/Test/<class>/... (AEDAT4 by dv-processing; "
                    f"{SPLIT_RULE}, default {d.RECORD_TEST_EVERY}). Interactive: type a class name (or its "
                    "number in the list) and Enter to record one sample; the counts per class are shown as it "
                    "goes; 'q' or Ctrl-D stops. "
                    "With --class NAME --count N: N samples of one class, no questions. A sample is written under "
                    "a temporary name and renamed when complete: Ctrl-C or a crash never leaves half a file "
                    "(leftovers are removed at the next start). The source is --source SPEC or a pipeline file's "
                    "[source] section (with its [mqtt] section for an mqtt source).")
    p.add_argument("pipeline", nargs="?", help="pipeline file (TOML) whose [source] to record from")
    p.add_argument("--source", metavar="SPEC",
                   help="instead of a pipeline file: camera[:SERIAL], tcp://host:port or unix:/path (DV stream), "
                        "mqtt://host:port[/topic] (event packets; default topic streamsnn/events), synthetic "
                        "(font digits), synthetic:gestures or synthetic:DIR (MNIST idx or PNG digits)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a source value, e.g. --set source.speed=0 (repeatable)")
    p.add_argument("--out", type=Path, required=True, metavar="FOLDER", help="dataset folder to record into")
    p.add_argument("--seconds", type=float, default=d.RECORD_SECONDS,
                   help="length of one sample in stream time (default %(default)s)")
    p.add_argument("--test-every", type=int, default=d.RECORD_TEST_EVERY, metavar="N",
                   help="every N-th sample of a class goes to Test (default %(default)s; 0 = all to Train)")
    p.add_argument("--classes", default="", metavar="A,B,...",
                   help="class names to list (and number) in the prompt before they have samples")
    p.add_argument("--class", dest="label", metavar="NAME", help="record without questions: samples of this class")
    p.add_argument("--count", type=int, default=1, metavar="N", help="with --class: how many samples (default 1)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors (and the prompt when interactive)")
    p.set_defaults(func=main)


def source_config(args):
    """The validated pipeline Config whose [source] (and [mqtt]) the command reads."""
    from ..config import build_config, load_config
    from ..errors import ConfigError

    if args.pipeline and args.source:
        raise ConfigError("give a pipeline file or --source, not both")
    if args.pipeline:
        return load_config(args.pipeline, args.overrides)
    spec = args.source
    if not spec:
        raise ConfigError("record needs a source: --source camera, tcp://host:port, mqtt://host:port, synthetic, "
                          "or a pipeline file")
    raw: dict = {"mqtt": {"enabled": False}}
    if spec == "camera" or spec.startswith("camera:"):
        raw["source"] = {"kind": "camera", "serial": spec.partition(":")[2]}
    elif spec.startswith(("tcp://", "unix:")):
        raw["source"] = {"kind": "dvstream", "address": spec}
    elif spec.startswith("mqtt://"):
        where, _, topic = spec[len("mqtt://"):].partition("/")
        host, _, port = where.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"--source {spec}: expected mqtt://host:port[/topic], e.g. mqtt://127.0.0.1:1883")
        raw["source"] = {"kind": "mqtt", "topic": topic or "streamsnn/events"}
        raw["mqtt"] = {"enabled": True, "broker": host, "port": int(port)}
        raw["pipeline"] = {"node_id": "record"}
    elif spec == "synthetic" or spec.startswith("synthetic:"):
        # camera-like: real time, 10 ms chunks on one running clock, endless
        raw["source"] = {"kind": "synthetic", "path": spec.partition(":")[2], "speed": 1.0, "loop": True,
                         "chunk_us": 10_000}
    else:
        raise ConfigError(f"--source {spec}: expected camera[:SERIAL], tcp://host:port, unix:/path, "
                          "mqtt://host:port[/topic], synthetic, synthetic:gestures or synthetic:DIR")
    return build_config(raw, f"--source {spec}", args.overrides)


def main(args) -> int:
    import asyncio

    from ..errors import ConfigError
    from ..io.record import Recorder
    from ..sources.build import build_source

    cfg = source_config(args)
    if args.count <= 0:
        raise ConfigError(f"--count must be positive, got {args.count}")
    say = (lambda msg: None) if args.quiet else (lambda msg: print(msg, flush=True))
    rec = Recorder(args.out, args.seconds, test_every=args.test_every, notice=say)
    if args.label is not None:
        args.label = rec.resolve(args.label)  # a bad name fails before the source opens
    for name in filter(None, (c.strip() for c in args.classes.split(","))):
        rec.counts.setdefault(rec.resolve(name), {"train": 0, "test": 0})
    settings = None
    if cfg.source.kind == "mqtt":
        from ..daemon import node_id
        from ..mqtt.settings import settings_from_config

        settings = settings_from_config(cfg, node_id(cfg))
    source = build_source(cfg, progress=not args.quiet, mqtt=settings)
    return asyncio.run(_record(args, rec, source, say))


async def _record(args, rec, source, say) -> int:
    import asyncio

    from ..errors import InputError
    from ..textsafe import shown

    wanted: asyncio.Queue = asyncio.Queue()
    interactive = args.label is None
    if interactive:
        _read_lines(asyncio.get_running_loop(), wanted)
    else:
        for _ in range(args.count):
            wanted.put_nowait(args.label)
        wanted.put_nowait(None)
    results: asyncio.Queue = asyncio.Queue()
    await source.open()
    flowing = asyncio.Event()
    pump = asyncio.create_task(_pump(source, rec, results, flowing))
    rule = SPLIT_RULE.replace("--test-every", str(args.test_every))
    say(f"recording {args.seconds:g} s samples into {args.out} ({rule})")
    written = 0
    try:
        say("waiting for the source's first events ...")
        await _next(asyncio.ensure_future(flowing.wait()), pump)
        while True:
            if interactive:
                print(f"{rec.summary()}\ntype a class name or its number and Enter to record a sample; q or Ctrl-D "
                      "stops\n> ", end="", flush=True)
            line = await _next(wanted, pump)
            if line is None or (interactive and line.strip().lower() in ("q", "quit")):
                break
            if not line.strip():
                continue
            try:
                label = rec.start(_pick(rec, line.strip()))
            except InputError as exc:
                if not interactive:
                    raise
                print(exc, flush=True)
                continue
            say(f"recording '{shown(label)}' for {args.seconds:g} s ...")
            done = await _wait(rec, results, pump, args.seconds, interactive)
            if done is not None:
                written += 1
                where = done.path.relative_to(args.out)
                say(f"wrote {where} ({done.events:,} events, {done.seconds:.2f} s, {done.split})")
    except BaseException:
        if rec.recording is not None:
            print(f"stopped: the sample of '{shown(rec.recording)}' was not written", file=sys.stderr, flush=True)
        raise
    finally:
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)
        await source.aclose()
    say(f"{written} sample(s) written; {args.out} now holds:\n{rec.summary()}")
    return 0


async def _pump(source, rec, results, flowing) -> None:
    """Feed every batch of the source to the recorder (batches between samples are dropped)."""
    async for batch in source:
        done = rec.feed(batch)  # first: a batch it refuses (another sensor) ends the pump before anyone records
        flowing.set()
        if done is not None:
            results.put_nowait(done)


async def _next(wanted, pump):
    """The next wanted class (a line; or `wanted` done, when it is a future), or None at the end; InputError
    when the source ended first."""
    import asyncio

    from ..errors import InputError

    get = wanted if isinstance(wanted, asyncio.Future) else asyncio.ensure_future(wanted.get())
    await asyncio.wait({get, pump}, return_when=asyncio.FIRST_COMPLETED)
    if get.done():
        return get.result()
    get.cancel()
    pump.result()  # the source's error, if it failed
    raise InputError("the source ended; nothing more to record")


async def _wait(rec, results, pump, seconds: float, interactive: bool):
    """The Recorded sample once written; a stream that goes quiet ends the sample after 2 x seconds + 1 s of
    wall time with what it holds. None when that was nothing (interactive mode, after saying so)."""
    import asyncio

    from ..errors import InputError

    get = asyncio.ensure_future(results.get())
    await asyncio.wait({get, pump}, timeout=2 * seconds + 1, return_when=asyncio.FIRST_COMPLETED)
    if get.done():
        return get.result()
    get.cancel()
    if pump.done():
        label = rec.recording
        rec.cancel()
        pump.result()
        raise InputError(f"the source ended before the sample of '{label}' was complete; it was not written")
    try:
        return rec.finish()
    except InputError as exc:
        if not interactive:
            raise
        print(exc, flush=True)
        return None


def _pick(rec, text: str) -> str:
    """A class name typed, or its number in the list (a class named like the number wins)."""
    from ..classnames import find

    if text.isdigit() and find(text, rec.classes) is None and 1 <= int(text) <= len(rec.classes):
        return rec.classes[int(text) - 1]
    return text


def _read_lines(loop, wanted) -> None:
    """Lines typed on stdin go to `wanted` (None at end of input), read by a daemon thread."""
    import threading

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(wanted.put_nowait, line)
        loop.call_soon_threadsafe(wanted.put_nowait, None)

    threading.Thread(target=read, name="record-keyboard", daemon=True).start()
