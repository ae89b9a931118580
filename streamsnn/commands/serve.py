"""`streamsnn serve FILE`: stream a recording over a DV network socket in real time, like a live camera."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from ._shared import at_least_one

ORDER = 60
#: How long the packets still queued for connected clients may take to go out after the last one was written.
FLUSH_S = 30.0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve a recording as a live DV network stream",
        description="Stream an event file over dv-processing's NetworkWriter, paced by its timestamps, "
                    "exactly as the DV software publishes a live camera. Connect with a 'dvstream' "
                    "source (address printed on stdout), dv-processing's NetworkReader or DV's network "
                    "input. By default playback starts when the first client connects; Ctrl-C or "
                    "SIGTERM stops it (exit 0).",
    )
    p.add_argument("file", type=Path,
                   help="event file (.bin .bs2 .aedat4 .raw .aedat), or a dataset folder of any layout `info` "
                        "reads, or tonic:<Class>:<folder> (its samples back to back)")
    p.add_argument("--split", help="dataset folder: serve only this split (e.g. test)")
    p.add_argument("--limit", type=at_least_one, help="dataset folder: serve only the first N samples")
    p.add_argument("--port", type=int, default=7777, help="TCP port (default 7777; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 for all interfaces)")
    p.add_argument("--unix", metavar="PATH", help="serve on this UNIX socket instead of TCP")
    p.add_argument("--loop", action="store_true", help="repeat the recording until stopped")
    p.add_argument("--speed", type=float, default=1.0, help="1 = real time (default), k = k times faster, 0 = unpaced")
    p.add_argument("--chunk-us", type=int, default=10_000, help="packet length in sensor time (default 10000 us)")
    p.add_argument("--no-wait", action="store_true", help="stream at once instead of waiting for a client")
    p.add_argument("--linger", type=float, default=1.0, metavar="S",
                   help="after the last packet, keep connections open S seconds so clients receive all (default 1)")
    p.add_argument("-q", "--quiet", action="store_true", help="only print the address")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import ConfigError
    from ..io import read_events
    from ..sources.serve import ServeStats, StreamServer, dataset_as_stream, prepare_chunks, serve_recording

    if not 0 <= args.speed < float("inf"):  # nan too
        raise ConfigError(f"--speed {args.speed} must be >= 0 (1 = real time, 0 = as fast as possible)")
    if not 0 <= args.linger < float("inf"):
        raise ConfigError(f"--linger {args.linger} must be a number of seconds >= 0")
    if args.chunk_us <= 0:
        raise ConfigError(f"--chunk-us {args.chunk_us} must be positive")
    say = (lambda *a: None) if args.quiet else (lambda msg: print(f"streamsnn: {msg}", file=sys.stderr, flush=True))

    if args.file.is_dir() or str(args.file).startswith("tonic:"):
        rec = dataset_as_stream(args.file, split=args.split, limit=args.limit)
    else:
        if args.split or args.limit:
            raise ConfigError("--split and --limit apply to dataset folders; FILE is a single recording")
        rec = read_events(args.file)
    if not len(rec):
        from ..errors import InputError

        raise InputError(f"{args.file}: holds no events; nothing to serve")
    server = StreamServer(rec.width, rec.height, host=args.host, port=args.port, unix=args.unix,
                          camera_name=f"streamsnn-{args.file.stem}")
    print(f"serving {args.file} ({rec.meta.get('format', 'events')}, {rec.width}x{rec.height}, "
          f"{len(rec):,} events, {rec.duration_us / 1e6:.2f} s{', looped' if args.loop else ''}) "
          f"on {server.address}", flush=True)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if not args.no_wait:
        say("waiting for a client (DvStreamSource, DV's network input, ...)")
    first_pass = prepare_chunks(server, rec, args.chunk_us)  # convert before the clock starts
    stats = ServeStats()
    serve_recording(server, rec, speed=args.speed, loop=args.loop, chunk_us=args.chunk_us,
                    wait_for_client=not args.no_wait, stop=stop, stats=stats, first_pass=first_pass)
    server.flush(timeout=FLUSH_S)  # a client still starting up (a daemon) reads the stream late
    if stats.late:
        say(f"{stats.late:,} packets went out more than 10 ms late: the recording's event rate is more than "
            "this machine converts in real time (try a lower --speed)")
    if not stop.is_set():
        # An empty write queue does not mean the clients have the data yet (packets in flight are
        # lost if the process ends at once), so keep the sockets open a moment longer.
        stop.wait(max(0.0, args.linger))
    say(f"served {stats.events:,} events in {stats.chunks:,} packets ({stats.passes} full pass"
        f"{'es' if stats.passes != 1 else ''}) to {stats.clients} client(s)"
        f"{'; stopped' if stop.is_set() else ''}")
    # End the process here: letting Python tear the NetworkWriter down can hang (a dv-processing
    # 2.0.4 deadlock, see streamsnn/sources/serve.py), so flush what we printed and leave; the OS closes the
    # sockets and clients see the end of the stream.
    import logging
    import os

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
