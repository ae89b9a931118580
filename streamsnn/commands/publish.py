"""`streamsnn publish SOURCE`: send events from any source to an MQTT topic as binary event packets."""

from __future__ import annotations

import sys
from pathlib import Path

from ..mqtt.settings import PASSWORD_ENV
from ._shared import at_least_one

ORDER = 65


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "publish",
        help="publish events from a file, dataset, DV stream or camera to MQTT",
        description="Read events from SOURCE and publish them as streamsnn event packets (see docs/mqtt.md) "
                    "on an MQTT topic, where daemons with an 'mqtt' source classify them; daemons in one "
                    "shared-subscription group split the stream. SOURCE is an event file, a dataset "
                    "folder (one packet per sample, with its label), a DV network stream "
                    "(tcp://host:port or unix:/path) or 'camera' / 'camera:SERIAL'. The password is read "
                    f"from ${PASSWORD_ENV}, never from the command line.",
    )
    p.add_argument("source", help="event file, dataset folder, tcp://host:port, unix:/path, camera[:SERIAL]")
    p.add_argument("--broker", default="127.0.0.1:1883", help="MQTT broker host:port (default 127.0.0.1:1883)")
    p.add_argument("--topic", default="streamsnn/events", help="topic to publish on (default streamsnn/events)")
    p.add_argument("--qos", type=int, default=1, choices=(0, 1, 2), help="MQTT QoS (default 1)")
    p.add_argument("--username", help=f"MQTT user name (password from ${PASSWORD_ENV})")
    p.add_argument("--tls-ca", help="CA file to verify the broker (turns TLS on)")
    p.add_argument("--tls-cert", help="client certificate file (with --tls-key)")
    p.add_argument("--tls-key", help="client key file")
    p.add_argument("--speed", type=float, default=1.0,
                   help="files and datasets: 1 = real time (default), k = k times faster, 0 = unpaced")
    p.add_argument("--split", help="dataset split to publish (e.g. test)")
    p.add_argument("--limit", type=at_least_one, help="stop after this many samples (datasets) or batches")
    p.add_argument("--loop", action="store_true", help="files and datasets: repeat until stopped")
    p.add_argument("--chunk-us", type=int, help="one recording: packet length in sensor time (default 10000 us)")
    p.add_argument("--node-id", default="publisher", help="MQTT client name part (default publisher)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=run)


def parse_broker(text: str) -> tuple[str, int]:
    """`host:port` or `host` (port 1883); ConfigError naming --broker otherwise."""
    from ..errors import ConfigError

    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, "1883"
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--broker {text!r} must be host:port, e.g. 127.0.0.1:1883")
    return host, int(port)


def source_config(args):
    """The [source] section the command line names, as a validated pipeline Config (see sources.build)."""
    from ..config import build_config
    from ..errors import ConfigError

    spec = args.source
    if spec == "camera" or spec.startswith("camera:"):
        section = {"kind": "camera", "serial": spec.partition(":")[2]}
    elif spec.startswith(("tcp://", "unix:")):
        section = {"kind": "dvstream", "address": spec}
    elif not Path(spec).exists() and not spec.startswith("tonic:"):
        raise ConfigError(f"source {spec}: no such file or folder (or give tcp://host:port, unix:/path, camera)")
    else:
        section = {"kind": "replay", "path": spec, "speed": args.speed, "split": args.split or "",
                   "loop": args.loop, "limit": args.limit or 0, "chunk_us": args.chunk_us or 0}
    return build_config({"source": section, "mqtt": {"enabled": False}}, "streamsnn publish")


def run(args) -> int:
    import asyncio

    from ..mqtt.settings import MqttSettings, TlsSettings, password_from_env
    from ..sources.build import build_source

    host, port = parse_broker(args.broker)
    tls = None
    if args.tls_ca or args.tls_cert:
        tls = TlsSettings(ca_file=args.tls_ca, cert_file=args.tls_cert, key_file=args.tls_key)
    settings = MqttSettings(host=host, port=port, node_id=args.node_id, qos=args.qos, username=args.username,
                            password=password_from_env(args.username), tls=tls)
    source = build_source(source_config(args), progress=not args.quiet)
    return asyncio.run(_publish(args, settings, source))


async def _publish(args, settings, source) -> int:
    import asyncio
    import signal

    from tqdm import tqdm

    from ..mqtt.publisher import MqttEventPublisher

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    bar = tqdm(desc=f"publishing to {args.topic}", unit="batch", file=sys.stderr, leave=False,
               disable=args.quiet or not sys.stderr.isatty())
    sent = 0
    try:
        await source.open()
        async with MqttEventPublisher(settings, args.topic) as pub:
            async for batch in source:
                await pub.publish(batch)
                sent += 1
                bar.update()
                if stop.is_set() or (args.limit is not None and sent >= args.limit):
                    break
    finally:
        bar.close()
        await source.aclose()
    if not args.quiet:
        c = pub.counters
        print(f"published {sent:,} batches ({c['events']:,} events, {c['packets']:,} packets, "
              f"{c['bytes'] / 1e6:.1f} MB) to {args.topic} on {settings.address}", flush=True)
    return 0
