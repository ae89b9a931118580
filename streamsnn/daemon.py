"""The long-running service: builds source, network and sinks from a Config, runs the pipeline, shuts down cleanly."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import sys
from pathlib import Path


from .config import Config
from .errors import CheckpointError, ConfigError
from .pipeline import Pipeline
from .segment import Segmenter

log = logging.getLogger(__name__)
PASSWORD_ENV = "STREAMSNN_MQTT_PASSWORD"  # the same variable `streamsnn publish` reads


def node_id(cfg: Config) -> str:
    """This daemon's name in topics: pipeline.node_id, else the host name (MQTT wildcards removed)."""
    raw = cfg.pipeline.node_id or socket.gethostname() or "node"
    if cfg.pipeline.node_id and re.search(r"[/+#\s]", raw):
        raise ConfigError(f"pipeline.node_id {raw!r} must not contain '/', '+', '#' or spaces")
    return re.sub(r"[/+#\s]", "-", raw)


def load_network(cfg: Config):
    """The checkpoint when model.checkpoint names an existing file, else a fresh network (seeded)."""
    from .snn import SpikingNetwork

    m = cfg.model
    path = Path(m.checkpoint).expanduser() if m.checkpoint else None
    if path is not None and path.is_dir():
        raise CheckpointError(f"model.checkpoint {path} is a folder; name a .npz file")
    if path is not None and path.exists():
        net = SpikingNetwork.load(path)
        log.info("model: resumed from %s (%s -> %d classes, %d samples seen, %d updates)", path, net.arch,
                 net.n_classes, net.samples_seen, net.updates)
        return net, path
    arch = f"dense:{m.hidden}" if m.hidden else (m.arch or None)
    net = SpikingNetwork(arch=arch, input_shape=(m.input_width, m.input_height, 2), classes=m.classes,
                         seed=m.seed, learning=m.learning, lr=m.lr or None, lr_out=m.lr_out or None)
    log.info("model: fresh network %s -> %d classes (seed %d)%s", net.arch, net.n_classes, m.seed,
             f", will be saved to {path}" if path else ", not saved (model.checkpoint is empty)")
    return net, path


def build_source(cfg: Config, *, progress: bool = True, mqtt=None):
    """The configured source (an async iterator of EventBatch with aclose())."""
    s = cfg.source
    if s.kind == "replay":
        from .datasets import find_nmnist
        from .sources.files import ReplaySource

        path = find_nmnist(s.path or None, progress=progress)
        return ReplaySource(path, speed=s.speed, split=s.split or None, loop=s.loop, limit=s.limit or None,
                            shuffle=s.shuffle, seed=s.seed)
    if s.kind == "synthetic":
        from .sources.synthetic import SyntheticSource

        return SyntheticSource.from_path(s.path or None, speed=s.speed, loop=s.loop, limit=s.limit or None,
                                         seed=s.seed, chunk_us=s.chunk_us or None)
    if s.kind == "camera":
        from .sources.camera import CameraSource

        return CameraSource(serial=s.serial or None)
    if s.kind == "network":
        from .sources.network import NetworkStreamSource

        return NetworkStreamSource(s.address)
    from .sources.mqtt import MqttEventSource

    return MqttEventSource(mqtt, s.topic or mqtt.topic("events"), s.group or None)


async def serve(cfg: Config, *, quiet: bool = False) -> int:
    """Run the pipeline until the source ends or SIGTERM/SIGINT; returns the exit status (0)."""
    node = node_id(cfg)
    settings = _mqtt_settings(cfg, node) if cfg.mqtt.enabled else None  # bad values fail before anything starts
    source = build_source(cfg, progress=not quiet, mqtt=settings)
    sinks = []
    broker = mqtt_sink = pipe = None
    stopping = False
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:  # also during start-up: then the run is skipped
        nonlocal stopping
        stopping = True
        log.info("%s received: stopping (drain, publish, checkpoint)", signal.Signals(sig).name)
        if pipe is not None:
            pipe.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        net, ckpt = load_network(cfg)
        await asyncio.to_thread(net.warm_up)  # compile/load the kernels before events arrive
        if cfg.console.enabled and not quiet:
            from .sinks.console import ConsoleSink

            sinks.append(ConsoleSink(decisions=cfg.console.decisions))
        if cfg.jsonl.path:
            from .sinks.jsonl import JsonlSink

            sinks.append(JsonlSink(cfg.jsonl.path))
        if cfg.mqtt.enabled:
            broker, mqtt_sink = await _start_mqtt(cfg, settings, net.n_classes)
            sinks.append(mqtt_sink)
        if cfg.liveview.enabled:
            source = await _start_liveview(cfg, source, sinks, node, net, quiet)
        if hasattr(source, "open"):  # a live stream starts flowing now; an absent camera fails here
            await source.open()
        for sink in sinks:
            if hasattr(sink, "total"):
                sink.total = _expected_windows(source, cfg)
        payload = _payload_fn(node)
        pipe = Pipeline(
            source, net, sinks, payload=payload,
            segmenter=Segmenter(cfg.segment.mode, cfg.segment.window_us, cfg.segment.hop_us, cfg.segment.min_events),
            queue_size=cfg.pipeline.queue_size, policy=cfg.pipeline.policy,
            learn_from_labels=cfg.model.learn_from_labels, learn_from_feedback=cfg.model.learn_from_feedback,
            recent=cfg.model.recent, metrics_every_s=cfg.pipeline.metrics_every_s,
            checkpoint=ckpt, save_every_s=cfg.model.save_every_s,
            feedback=mqtt_sink.feedback if mqtt_sink is not None else None,
            reject=mqtt_sink.reject_feedback if mqtt_sink is not None else None,
            extra_metrics=lambda: _extra_metrics(source, mqtt_sink),
        )
        if stopping:
            pipe.stop()  # a signal arrived while starting: run() then only drains and saves
        await pipe.run()
        if ckpt is not None:
            log.info("checkpoint saved to %s", ckpt)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        try:
            await source.aclose()  # idempotent; the pipeline normally closed it already
        except Exception as exc:
            log.warning("closing the source failed: %s", exc)
        for sink in reversed(sinks):
            try:
                await sink.close()
            except Exception as exc:  # a sink that fails to close must not hide the others
                log.warning("closing %s failed: %s", type(sink).__name__, exc)
        if broker is not None:
            await broker.stop()
    return 0


def _mqtt_settings(cfg: Config, node: str):
    from .sinks.mqtt import MqttSettings, TlsSettings

    m = cfg.mqtt
    tls = TlsSettings(ca_file=m.tls_ca, cert_file=m.tls_cert or None, key_file=m.tls_key or None,
                      insecure=m.tls_insecure) if m.tls_ca else None
    password = m.password or (os.environ.get(PASSWORD_ENV) if m.username else None) or None
    host = "127.0.0.1" if m.broker == "embedded" else m.broker
    return MqttSettings(host=host, port=m.port or 1883, node_id=node, prefix=m.prefix or None, qos=m.qos,
                        username=m.username or None, password=password, tls=tls, keepalive=m.keepalive,
                        outbox_size=m.outbox, client_id=m.client_id or None,
                        feedback=cfg.model.learn_from_feedback)


async def _start_mqtt(cfg: Config, settings, n_classes: int):
    """The embedded broker (when mqtt.broker = "embedded") and a started MqttSink."""
    from .sinks.mqtt import MqttSink

    broker = None
    if cfg.mqtt.broker == "embedded":
        from .broker import EmbeddedBroker

        broker = await EmbeddedBroker("127.0.0.1", cfg.mqtt.port).start()
        settings.port = broker.port  # mqtt.port = 0: the port the broker found
    try:
        sink = MqttSink(settings, n_classes=n_classes)
        await sink.start()
    except BaseException:
        if broker is not None:
            await broker.stop()
        raise
    log.info("publishing to %s under %s/", settings.address, settings.prefix)
    return broker, sink


async def _start_liveview(cfg: Config, source, sinks: list, node: str, net, quiet: bool):
    """Start the live web page as a sink that also sees every batch; returns the source to read from."""
    from .liveview import LiveView, tap

    lv = cfg.liveview
    live = await LiveView(lv.host, lv.port, fps=lv.fps, decay_ms=lv.decay_ms,
                          classes=list(net.classes), title=f"streamsnn · {node}",
                          model=f"{net.arch} → {net.n_classes} classes").start()
    sinks.append(live)
    log.info("live view on %s", live.url)
    if not quiet:
        print(f"[streamsnn] live view: open {live.url}", file=sys.stderr, flush=True)
    return tap(source, live.publish_events)


def _payload_fn(node: str):
    from .sinks.mqtt import classification_payload

    def payload(w, d, *, latency_ms: float, model_version: str) -> dict:
        return classification_payload(d, node_id=node, source=w.source, sample=w.sample,
                                      window=(w.t_start_us, w.t_end_us), latency_ms=latency_ms,
                                      model_version=model_version, true_label=w.label)
    return payload


def _expected_windows(source, cfg: Config) -> int | None:
    """How many decisions a dataset replay will make (for a progress bar), None when open-ended."""
    dataset = getattr(source, "dataset", None)
    if dataset is None or cfg.source.loop or cfg.segment.mode == "window":
        return None
    return min(len(dataset), cfg.source.limit) if cfg.source.limit else len(dataset)


def _extra_metrics(source, mqtt_sink) -> dict:
    out = {}
    counters = getattr(source, "counters", None)
    if isinstance(counters, dict):
        out["source"] = dict(counters)
        sub = getattr(source, "subscribed", None)
        if sub is not None:
            out["source"]["subscribed"] = sub.is_set()
    if mqtt_sink is not None:
        out["mqtt"] = mqtt_sink.stats()
    return out


def run(cfg: Config, *, quiet: bool = False) -> int:
    return asyncio.run(serve(cfg, quiet=quiet))
