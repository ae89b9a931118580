"""`streamsnn run PIPELINE.toml`: run a pipeline (replay, camera, DV stream, MQTT events) as a service."""

from __future__ import annotations

ORDER = 10


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "run", help="run a pipeline file: source -> spiking network -> MQTT/console/JSONL sinks",
        description="Run a pipeline file until its source ends or SIGTERM/SIGINT (then drain, publish, "
                    "checkpoint and exit 0). Examples: pipelines/nmnist-replay.toml, pipelines/dv-stream.toml.")
    p.add_argument("pipeline", help="pipeline file (TOML)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a value of the file (repeatable), e.g. --set mqtt.port=1884")
    p.add_argument("--check", action="store_true", help="validate, print the resolved configuration and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no console output except errors")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..config import load_config

    cfg = load_config(args.pipeline, args.overrides)
    if args.check:
        from ..daemon import check

        check(cfg)
        print(cfg.to_toml(), end="")
        print(_derived(cfg))
        return 0
    import logging

    from ._shared import exit_on_sigterm

    exit_on_sigterm()
    if args.quiet:
        logging.getLogger().setLevel(logging.WARNING)
    from ..daemon import run

    return run(cfg, quiet=args.quiet)


def _derived(cfg) -> str:
    """Comment lines with what the empty values resolve to (node id, topics, dataset), without side effects."""
    from ..daemon import node_id
    from ..errors import StreamsnnError

    node = node_id(cfg)
    prefix = cfg.mqtt.prefix or f"streamsnn/{node}"
    lines = [f"\n# node id: {node}"]
    if cfg.mqtt.enabled:
        broker = "embedded broker on 127.0.0.1" if cfg.mqtt.broker == "embedded" else cfg.mqtt.broker
        lines.append(f"# mqtt: {broker}:{cfg.mqtt.port}, topics {prefix}/classification, /classes, /status, "
                     "/metrics, /feedback")
        if cfg.mqtt.ha_discovery:
            from ..mqtt.discovery import ha_id

            lines.append(f"# home assistant: {cfg.mqtt.ha_prefix}/sensor/{ha_id(node)}/<sensor>/config (retained)")
    if cfg.source.kind == "replay":
        from ..io.nmnist_fetch import find_nmnist

        try:
            lines.append(f"# dataset: {find_nmnist(cfg.source.path or None, download=False)}")
        except StreamsnnError as exc:
            lines.append(f"# dataset: {exc}")
    return "\n".join(lines)
