"""The long-running service: checks the source, builds network and sinks from a Config, runs, shuts down cleanly."""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import re
import signal
import socket
import sys
import time
from pathlib import Path

from .config import Config
from .errors import CheckpointError, ConfigError
from .pipeline import Pipeline, PipelineSettings
from .pipeline.decide import Decider, by_index_note
from .pipeline.feedback import MAX_FEEDBACK_BYTES
from .pipeline.segment import Segmenter
from .pipeline.workers import start_pool
from .sources.build import build_source
from .systemd import notify

log = logging.getLogger(__name__)

# A stop that has not finished this long after SIGINT/SIGTERM prints every thread's stack to stderr (the log),
# once, so that what holds it up can be seen; the daemon goes on stopping (systemd's TimeoutStopSec kills it).
STOP_REPORT_S = 30.0


def _stderr_fd() -> int | None:
    """stderr's file descriptor, when it has one (faulthandler writes to a descriptor, not a Python stream)."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None


#: A stop signal repeated within this many seconds of the first is the same request (GNU `timeout` sends its
#: signal to the process and then to its process group, and both can arrive); later, it means "exit now".
REPEAT_S = 0.25

#: How long the source or one sink may take to close before the daemon goes on without it (the MQTT sink's own
#: drain is bounded at 10 s + 2 s: this is longer).
CLOSE_TIMEOUT_S = 20.0


async def _close_within(what: str, closing) -> None:
    """Await `closing` (a close coroutine) for at most CLOSE_TIMEOUT_S; one that fails or overruns is logged in one
    line and left behind (not awaited after its cancel: a close that ignored it would hang the stop again)."""
    task = asyncio.ensure_future(closing)
    done, _ = await asyncio.wait({task}, timeout=CLOSE_TIMEOUT_S)
    if not done:
        task.cancel()
        log.warning("closing %s took more than %g s; going on without it", what, CLOSE_TIMEOUT_S)
        _log_pending_tasks(f"closing {what}")
    elif not task.cancelled() and task.exception() is not None:
        log.warning("closing %s failed: %s", what, task.exception())


def _log_pending_tasks(why: str = "") -> None:
    """Log every asyncio task still pending, with where each waits (a stop that hangs on the event loop)."""
    import io

    tasks = [t for t in asyncio.all_tasks() if not t.done()]
    out = io.StringIO()
    for t in tasks:
        t.print_stack(limit=8, file=out)
    log.warning("%s; %d asyncio task(s) pending (stacks below)",
                why or f"the stop is still running {STOP_REPORT_S:g} s after the signal", len(tasks))
    sys.stderr.write(out.getvalue())  # as they are: a stack's lines are not one log line
    sys.stderr.flush()


def _stack_dumps() -> None:
    """`kill -USR1 PID` prints every thread's stack to stderr (the daemon goes on)."""
    if (fd := _stderr_fd()) is not None and hasattr(signal, "SIGUSR1"):
        try:
            faulthandler.register(signal.SIGUSR1, file=fd, all_threads=True, chain=False)
        except (RuntimeError, ValueError):  # not the main thread
            pass


def node_id(cfg: Config) -> str:
    """This daemon's name in topics: pipeline.node_id, else the host name (MQTT wildcards removed)."""
    raw = cfg.pipeline.node_id or socket.gethostname() or "node"
    if cfg.pipeline.node_id and re.search(r"[/+#\s]", raw):
        raise ConfigError(f"pipeline.node_id {raw!r} must not contain '/', '+', '#' or spaces")
    return re.sub(r"[/+#\s]", "-", raw)


def load_network(cfg: Config, *, dry: bool = False):
    """The checkpoint when model.checkpoint names an existing file, else a fresh network (seeded). `dry` (`run
    --check`): the same refusals, but no folder made, no file written to probe the place, nothing logged."""
    from .snn import SpikingNetwork
    from .snn.target import check_target

    m = cfg.model
    path = Path(m.checkpoint).expanduser() if m.checkpoint else None
    if path is not None and path.is_dir():
        raise CheckpointError(f"model.checkpoint {path} is a folder; name a .npz file")
    if path is not None and not dry:  # a place it can never be saved to is found now, not at every save with the
        try:  # learning lost
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CheckpointError(f"model.checkpoint {path}: cannot create its folder {path.parent} "
                                  f"({exc.strerror}); choose another place") from None
        check_target(path, "model.checkpoint", probe=True)
    elif path is not None and path.exists():
        check_target(path, "model.checkpoint")  # a device or a pipe: refused as run refuses it
    if path is not None and path.exists():
        net = SpikingNetwork.load(path)
        if dry:
            return net, path
        log.info("model: resumed from %s (%s -> %d classes, %d samples seen, %d updates)", path, net.arch,
                 net.n_classes, net.samples_seen, net.updates)
        return net, path
    net = fresh_network(m)
    if dry:
        return net, path
    log.info("model: fresh network %s -> %d classes (seed %d)%s", net.arch, net.n_classes, m.seed,
             f", will be saved to {path}" if path else ", not saved (model.checkpoint is empty)")
    return net, path


def fresh_network(m):
    """The network [model] `m` makes when its checkpoint does not exist yet (ConfigError in one line)."""
    from .snn import SpikingNetwork

    arch = f"dense:{m.hidden}" if m.hidden else (m.arch or None)
    return SpikingNetwork(arch=arch, input_shape=(m.input_width, m.input_height, 2), classes=m.classes,
                          seed=m.seed, learning=m.learning, lr=m.lr or None, lr_out=m.lr_out or None,
                          tau_us=m.tau_ms * 1000.0 if m.tau_ms else None)


def build_segmenter(cfg: Config):
    """The pipeline's Segmenter from [segment] (ConfigError in one line when its values do not go together)."""
    g = cfg.segment
    return Segmenter(g.mode, g.window_us, g.hop_us, g.min_events, max_events=g.max_events,
                     max_sample_us=g.max_sample_us, label_windows=g.label_windows, overlap=g.overlap)


def check(cfg: Config) -> None:
    """What `run` builds from the configuration before it starts anything, built once (`run --check`): the MQTT
    settings, the segmenter, the pipeline's settings and the network (the checkpoint read, or a fresh one made;
    nothing written).
    ConfigError or CheckpointError in one line, as `run` would give it."""
    if cfg.mqtt.enabled:
        from .mqtt.settings import settings_from_config

        settings_from_config(cfg, node_id(cfg))
    build_segmenter(cfg)
    PipelineSettings.from_config(cfg)
    load_network(cfg, dry=True)


async def run_service(cfg: Config, *, quiet: bool = False, announce=None) -> int:
    """Run the pipeline until the source ends or SIGTERM/SIGINT; returns the exit status (0).

    Order: what the configuration names is checked first: a dataset replay lists its files (a bad
    `source.path` or split fails before anything starts), the network loads, a live source opens (a
    missing camera or stream fails before the broker starts, and the stream is read soon after it
    opened), then the sinks, the broker and the MQTT connection start (an `mqtt` source opens after
    the broker), and systemd (when it started us) hears READY=1.
    `announce(broker_settings)`, when given, is called once the MQTT sink is connected (the demo
    prints where to watch).
    """
    node = node_id(cfg)
    settings = None
    if cfg.mqtt.enabled:  # bad values fail before anything starts
        from .mqtt.settings import settings_from_config

        settings = settings_from_config(cfg, node)
    segmenter = build_segmenter(cfg)
    source = build_source(cfg, progress=not quiet, mqtt=settings)
    sinks = []
    broker = mqtt_sink = pipe = live = pool = None
    stopping = False
    loop = asyncio.get_running_loop()

    first_at = None  # when the stop began (time.monotonic())

    def on_signal(sig: signal.Signals) -> None:  # also during start-up: then the run is skipped
        nonlocal stopping, first_at
        name = signal.Signals(sig).name
        if stopping and time.monotonic() - first_at < REPEAT_S:
            # the same request delivered twice at once (GNU timeout signals the process and then its group): ignored
            log.debug("%s received again within %g s: the same stop", name, REPEAT_S)
            return
        if stopping:  # a second Ctrl-C: the user does not want to wait for the drain
            log.warning("%s received again: exiting now, without finishing the stop (what was not saved yet is "
                        "lost; the last checkpoint saved stays intact)", name)
            logging.shutdown()
            os._exit(128 + int(sig))
        stopping, first_at = True, time.monotonic()
        log.info("%s received: stopping (drain, publish, checkpoint; %s again to exit at once)", name, name)
        if (fd := _stderr_fd()) is not None:  # a stop that hangs shows where (every thread's stack, once)
            faulthandler.dump_traceback_later(STOP_REPORT_S, repeat=False, file=fd, exit=False)
        loop.call_later(STOP_REPORT_S, _log_pending_tasks, "")  # ... and what the event loop still waits for
        if pipe is not None:
            pipe.stop()

    _stack_dumps()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        if cfg.source.kind in ("replay", "synthetic"):  # lists the dataset: a bad path or split fails first
            await source.open()
        net, ckpt = load_network(cfg)
        known = getattr(source, "sensor_size", None)  # a dataset's, from its headers, or the synthetic camera's:
        if cfg.source.kind in ("replay", "synthetic") and known is not None:  # another sensor fails now (it
            what = f"source.path {source.name}" if cfg.source.kind == "replay" else f"the {source.name} camera"
            net.input_map.check_sensor(*known, what)  # skipped every window: exit 0, or forever on a camera)
        if (ds := getattr(source, "dataset", None)) is not None and (note := by_index_note(net.classes, ds.classes)):
            log.warning("source.path %s: %s", source.name, note)  # learned from as such, if labels are learned
        await asyncio.to_thread(net.warm_up)  # compile/load the kernels before events arrive
        pool = await start_pool(net, cfg.pipeline.workers, cfg.pipeline.refresh_s)  # workers: before the stream opens
        if cfg.source.kind in ("camera", "dvstream"):  # a live stream: opened just before it is read (an
            await source.open()  # absent camera or stream still fails before the broker starts)
            # a model whose region is part of its sensor cannot read another sensor: one line, exit 2
            net.input_map.check_sensor(source.width, source.height, f"{cfg.source.kind} {source.name}")
        if cfg.console.enabled and not quiet:
            from .sinks.console import ConsoleSink

            sinks.append(ConsoleSink(decisions=cfg.console.decisions, total=_expected_windows(source, cfg)))
        if cfg.jsonl.path:
            from .sinks.jsonl import JsonlSink

            sinks.append(JsonlSink(cfg.jsonl.path))
        if cfg.mqtt.enabled:
            broker, mqtt_sink = await _start_mqtt(cfg, settings)
            sinks.append(mqtt_sink)
            if announce is not None:
                announce(settings)
        if cfg.liveview.enabled:
            source = await _start_liveview(cfg, source, sinks, node, net, quiet)
            live = sinks[-1]
        if cfg.source.kind == "mqtt":
            await source.open()
        pipe = Pipeline(
            source, net, sinks,
            PipelineSettings.from_config(cfg, checkpoint=ckpt, max_feedback_bytes=(
                settings.max_feedback_bytes if settings is not None else MAX_FEEDBACK_BYTES)),
            segmenter=segmenter,
            decider=Decider(cfg.segment.smooth_us, revive=cfg.model.revive),
            feedback=mqtt_sink.feedback if mqtt_sink is not None else None,
            extra_metrics=lambda: _extra_metrics(source, mqtt_sink), pool=pool,
        )
        if live is not None:  # the page teaches through the same Teacher as MQTT feedback
            live.teaching.connect(pipe.teacher)
        if stopping:
            pipe.stop()  # a signal arrived while starting: run() then only drains and saves
        notify("READY=1", f"STATUS=classifying as {node}")
        await pipe.run()
        if ckpt is not None and pipe.exit_saved:
            log.info("checkpoint saved to %s", ckpt)
    finally:
        notify("STOPPING=1")
        if pool is not None:  # workers: no process outlives the daemon (a no-op when the pipeline stopped them)
            await pool.close()
        await _close_within("the source", source.aclose())  # idempotent; the pipeline normally closed it already
        for sink in reversed(sinks):  # a sink that fails or hangs while closing must not hide the others
            await _close_within(type(sink).__name__, sink.close())
        if broker is not None:  # amqtt's shutdown waits for its clients' handlers: bounded as the sinks' closes are
            await _close_within("the embedded MQTT broker", broker.stop())
        for sig in (signal.SIGTERM, signal.SIGINT):  # until here: a second signal while closing exits at once
            loop.remove_signal_handler(sig)
    return 0


async def _start_mqtt(cfg: Config, settings):
    """The embedded broker (when mqtt.broker = "embedded") and a started MqttSink."""
    from .mqtt.discovery import Discovery
    from .mqtt.sink import MqttSink

    broker = None
    if cfg.mqtt.broker == "embedded":
        from .mqtt.broker import EmbeddedBroker

        broker = await EmbeddedBroker("127.0.0.1", cfg.mqtt.port).start()
        settings.port = broker.port  # mqtt.port = 0: the port the broker found
    try:
        discovery = Discovery(settings, enabled=cfg.mqtt.ha_discovery, prefix=cfg.mqtt.ha_prefix)
        sink = MqttSink(settings, discovery=discovery)
        await sink.start()
    except BaseException:
        if broker is not None:
            await broker.stop()
        raise
    log.info("publishing to %s under %s/", settings.address, settings.prefix)
    return broker, sink


async def _start_liveview(cfg: Config, source, sinks: list, node: str, net, quiet: bool):
    """Start the live web page as a sink that also sees every batch; returns the source to read from."""
    from .pipeline.stages import class_names
    from .web.view import LiveView, tap

    lv = cfg.liveview
    live = await LiveView(lv.host, lv.port, fps=lv.fps, decay_ms=lv.decay_ms, max_clients=lv.max_clients,
                          classes=list(class_names(net)), title=f"streamsnn · {node}",
                          model=f"{net.arch} → {net.n_classes} classes", teach=lv.teach,
                          teach_token=lv.teach_token).start()
    sinks.append(live)
    t = live.teaching
    if lv.teach and lv.record_to:  # the taught windows also become a dataset
        from .web.teach import record_taught

        t.on_taught = record_taught(lv.record_to)
        log.info("windows taught from the page are recorded into %s", lv.record_to)
    log.info("live view on %s%s%s", live.url, f" (listening on every interface, {lv.host})"
             if lv.host in ("0.0.0.0", "::") else "", (" (teaching on" + (", with a token)" if t.token else ")"))
             if t.enabled else "")
    if not quiet:
        print(f"[streamsnn] live view: open {live.url}", file=sys.stderr, flush=True)
    if t.generated:  # beyond loopback without liveview.teach_token: the only place this token is shown
        print(f"[streamsnn] live view teaching token: {t.token} (open {live.url}#token={t.token}, or send it "
              "as the X-Teach-Token header; set liveview.teach_token to choose it)", file=sys.stderr, flush=True)
    return tap(source, live.publish_events)


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


def run(cfg: Config, *, quiet: bool = False, announce=None) -> int:
    """`streamsnn run`: the service in its own event loop."""
    return asyncio.run(run_service(cfg, quiet=quiet, announce=announce))
