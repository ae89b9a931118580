"""Pipeline files (TOML): the schema, validation with clear errors, `--set` overrides and printing."""

from __future__ import annotations

import difflib
import json
import logging
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from . import defaults as d
from .errors import ConfigError
from .pipeline.feedback import MAX_CLASSES

log = logging.getLogger(__name__)
#: Old names of source kinds, still accepted (with one warning line).
RENAMED_KINDS = {"network": "dvstream"}

@dataclass(frozen=True)
class Key:
    """One setting: its type (bool, int, float or str), default, allowed values and lower bound."""

    type: type
    default: Any
    help: str = ""
    choices: tuple = ()
    min: float | None = None
    secret: bool = False


#: Every section and key a pipeline file may hold. Empty strings mean "not set" and 0 "no limit".
SCHEMA: dict[str, dict[str, Key]] = {
    "source": {
        "kind": Key(str, "replay", "where events come from ('network' is the old name of 'dvstream')",
                    ("replay", "camera", "dvstream", "mqtt", "synthetic", "network")),
        "path": Key(str, "", "replay: a recording, a dataset folder or a folder of recordings (played in turn); "
                    "empty = find N-MNIST (see io/nmnist_fetch.py). "
                    "synthetic: a folder of MNIST idx files or PNG digits; empty = font-rendered digits; "
                    "'gestures' = random synthetic gestures (streamsnn demo --gestures)"),
        "split": Key(str, "", "replay: dataset split to play (e.g. train, test); empty = all samples"),
        "speed": Key(float, 0.0, "replay and synthetic pacing: 1 = real time, k = k times faster, "
                     "0 = as fast as possible", min=0),
        "loop": Key(bool, False, "replay, synthetic: start again at the end"),
        "limit": Key(int, 0, "replay, synthetic: stop after this many samples (0 = all)", min=0),
        "shuffle": Key(bool, False, "replay: shuffle the samples"),
        "seed": Key(int, 0, "replay: shuffle seed; synthetic: seed of the sensor and the digits"),
        "chunk_us": Key(int, 0, "synthetic and replay (samples, recordings): deliver events in chunks of this much "
                        "sensor time, as a camera does (0 = whole samples; 10 ms chunks for one recording)", min=0),
        "serial": Key(str, "", "camera: serial number (empty = first camera found)"),
        "packet_us": Key(int, 0, "camera: how much sensor time one of its packets holds, in microseconds "
                         "(dv-processing's setTimeInterval): a window's decision waits for the packet holding its "
                         "end; 0 = the camera's own setting", min=0),
        "address": Key(str, "127.0.0.1:7777", "dvstream: DV stream address (host:port, tcp://host:port, unix:/path)"),
        "reconnect": Key(bool, False, "camera, dvstream: when the camera is unplugged or the stream closes, log it and "
                         "wait for it to come back (retried with backoff up to 5 s) instead of ending the run"),
        "topic": Key(str, "", "mqtt: topic with event packets (empty = <prefix>/events)"),
        "group": Key(str, "", "mqtt: shared-subscription group; daemons with the same group split the packets"),
        "max_packet_events": Key(int, 262_144, "mqtt: largest number of events one packet may hold; larger "
                                 "packets are refused and counted (bad_packets)", min=1),
    },
    "segment": {
        "mode": Key(str, "auto", "per sample, sliding time windows, or auto (samples when the source has them)",
                    ("auto", "sample", "window")),
        "window_us": Key(int, 100_000, "sliding window length in microseconds", min=1),
        "hop_us": Key(int, 50_000, "time between the starts of consecutive windows", min=1),
        "min_events": Key(int, 1, "skip windows with fewer events than this (an idle sensor)", min=1),
        "smooth_us": Key(int, 0, "window mode: time constant in microseconds of the evidence averaged over "
                         "consecutive windows before deciding (0 = no smoothing; a leaky model's own state carries "
                         "across windows regardless)", min=0),
        "max_events": Key(int, 1_000_000, "most events one window or sample may hold; one that reaches it is "
                          "classified with what it has (counted: segment.cut)", min=1),
        "max_sample_us": Key(int, 60_000_000, "longest sample in microseconds; a sample that never ends is "
                             "classified in pieces this long (counted: segment.cut; 0 = no limit)", min=0),
        "overlap": Key(str, d.OVERLAP, "window mode, a network without a leak: how overlapping windows reach it. "
                       "inflight: each window's state is fed as its events arrive, so only the readout waits for "
                       "the window's end (the same decisions as repeat); chunks: each event is fed once, in "
                       "hop-long chunks, a window scored as the sum of its chunks (needs window_us a multiple of "
                       "hop_us); repeat: each window fed whole when it closes; auto: chunks when window_us is a "
                       "multiple of hop_us, else inflight", ("auto", "inflight", "chunks", "repeat")),
        "label_windows": Key(bool, False, "window mode over labelled samples (a simulated camera, a replay): each "
                             "window takes the label, class name and sample id of the sample covering most of it, "
                             "and is learned from with model.learn_from_labels (a leaky model: its fresh events on "
                             "the running state)"),
    },
    "model": {
        "checkpoint": Key(str, "", "checkpoint .npz: loaded at start when present, saved periodically and at exit"),
        "arch": Key(str, "", "hidden layers of a fresh network, e.g. \"conv:32:5:2:2,conv:64:3:2:1,dense:256\" "
                    "(a TOML list of such layers works too; empty = the default deep convolutional network; "
                    "a checkpoint keeps its own)"),
        "hidden": Key(int, 0, "shorthand for arch = \"dense:HIDDEN\" (0 = use arch)", min=0),
        "classes": Key(int, 10, "output classes of a fresh network", min=2),
        "input_width": Key(int, 34, "network input width (events from larger sensors are scaled)", min=1),
        "input_height": Key(int, 34, "network input height", min=1),
        "seed": Key(int, 0, "weight initialisation seed of a fresh network"),
        "lr": Key(float, 0.0, "learning rate of a fresh network's hidden layers (0 = the default for its kind)",
                  min=0),
        "lr_out": Key(float, 0.0, "learning rate of a fresh network's output layer (0 = the default for its kind)",
                      min=0),
        "learning": Key(str, "counts", "learning rule of a fresh network (membrane: learns the order of events, "
                        "needs tau_ms; timing: exact spike-time gradients, dense and conv layers)",
                        ("counts", "spikes", "membrane", "timing")),
        "tau_ms": Key(float, 0.0, "leak time constant of a fresh network in ms (0 = no leak, each window decided "
                      "from a fresh state; with a leak the state carries across windows); a checkpoint keeps its own",
                      min=0),
        "learn_from_labels": Key(bool, True, "learn (test-then-train) when a window carries its true label"),
        "revive": Key(bool, True, "put a network that fails while it learns from labelled windows (silent, updates "
                      "refused, running accuracy or activity run away, unless its healthy copy does the same on the "
                      "same windows: a change of scene, counted in scene_changes) back to its last healthy weights "
                      "with the learning rates halved; after 8 revivals in a run it stops learning from labels "
                      "(pipeline/revive.py)"),
        "learn_from_feedback": Key(bool, True, "learn from labels sent to <prefix>/feedback"),
        "recent": Key(int, d.RECENT, "how many recent decisions feedback can still refer to", min=1),
        "recent_events": Key(int, d.RECENT_EVENTS, "most events the recent decisions may hold together (about 13 bytes "
                             "each); the oldest are forgotten first", min=1),
        "feedback_per_s": Key(float, d.FEEDBACK_PER_S, "feedback messages learned per second at most, on average; "
                              "more are counted (rate_limited) and not learned (0 = no limit)", min=0),
        "feedback_burst": Key(int, d.FEEDBACK_BURST,
                              "feedback messages learned at once at most before feedback_per_s applies",
                              min=1),
        "feedback_lr_scale": Key(float, d.FEEDBACK_LR_SCALE, "learning-rate multiplier for feedback (a wrong label "
                                 "that gets through costs less; measured in benchmarks/bench_feedback.py)", min=0),
        "new_classes": Key(bool, False, "feedback naming a class the model does not know adds an output unit "
                           "for it (else refused, counted: unknown_class)"),
        "max_classes": Key(int, d.MAX_CLASSES_GROWN,
                           f"most classes the model may grow to through new_classes (at most {MAX_CLASSES})",
                           min=2),
        "new_class_lr": Key(float, d.NEW_CLASS_LR, "output learning-rate multiplier of a class added by feedback (see "
                            "benchmarks/bench_incremental.py)", min=0),
        "rehearse": Key(int, d.REHEARSE, "after each window taught by feedback, replay this many kept examples of "
                        "the other classes so they are not forgotten (0 = off, at most 64; see docs/daemon.md)", min=0),
        "memory_per_class": Key(int, d.MEMORY_PER_CLASS, "examples kept per class for rehearsal (from training, then "
                                "from taught windows; saved in the checkpoint; at most 1000)", min=0),
        "imprint": Key(bool, d.IMPRINT, "a class added by feedback starts from its first taught window's last-layer "
                       "spikes instead of zero weights (weight imprinting; see docs/daemon.md)"),
        "new_class_fit": Key(bool, d.NEW_CLASS_FIT, "feedback naming a class added by feedback teaches only its "
                             "output unit, fit to tell its windows from the old classes' kept examples and the "
                             "windows seen before it was added (so it does not take theirs; see docs/daemon.md)"),
        "keep_every": Key(int, d.KEEP_EVERY, "keep every this-many-th confidently decided window as a rehearsal "
                          "example of its decided class (at most half of a class's slots; 0 = off)", min=0),
        "keep_margin": Key(float, d.KEEP_MARGIN, "score margin (best minus second) a decision needs to be kept "
                           "(0 = measured: the median margin of the kept training examples)", min=0),
        "save_every_s": Key(float, 60.0, "checkpoint period in seconds (0 = only at exit)", min=0),
    },
    "pipeline": {
        "node_id": Key(str, "", "name of this daemon in topics and payloads (empty = host name)"),
        "queue_size": Key(int, d.QUEUE_SIZE, "capacity of each queue between stages", min=1),
        "policy": Key(str, d.POLICY, "when the network falls behind: wait, or drop the oldest/newest window",
                      ("block", "drop_oldest", "drop_newest")),
        "metrics_every_s": Key(float, d.METRICS_EVERY_S, "period of metrics messages and progress lines", min=0.05),
        "workers": Key(int, d.WORKERS, "processes deciding windows: 1 = one (learning and inference); N = the "
                       "learner plus N - 1 copies that only predict (see docs/daemon.md, 'More than one core')", min=1),
        "refresh_s": Key(float, d.REFRESH_S, "workers > 1: the copies take the learner's weights at most this often, "
                         "in seconds, once it learned (0 = before every window; a copy is at most this stale)", min=0),
    },
    "mqtt": {
        "enabled": Key(bool, True, "publish decisions over MQTT"),
        "broker": Key(str, "embedded", "broker host name, or 'embedded' to start one in this process"),
        "port": Key(int, 1883, "broker port (0 with the embedded broker: any free port)", min=0),
        "prefix": Key(str, "", "topic prefix (empty = streamsnn/<node id>)"),
        "qos": Key(int, 1, "MQTT quality of service", (0, 1, 2)),
        "client_id": Key(str, "", "MQTT client id (empty = streamsnn-<node id>-<6 random hex digits>, new at "
                                  "every start)"),
        "username": Key(str, "", "login name", secret=True),
        "password": Key(str, "", "login password (empty = $STREAMSNN_MQTT_PASSWORD when set)", secret=True),
        "tls_ca": Key(str, "", "CA certificate file; setting it turns TLS on"),
        "tls_cert": Key(str, "", "client certificate file"),
        "tls_key": Key(str, "", "client key file"),
        "tls_insecure": Key(bool, False, "skip the broker host name check (the certificate chain is still verified)"),
        "keepalive": Key(int, 30, "keep-alive interval in seconds", min=1),
        "outbox": Key(int, 10_000, "messages kept while the broker is away (overflow is counted)", min=1),
        "inflight": Key(int, 20, "publishes awaiting the broker's acknowledgement at once", min=1),
        "ha_discovery": Key(bool, False, "publish Home Assistant MQTT discovery configs (retained) so a "
                            "'streamsnn <node id>' device appears; false removes configs an earlier run left"),
        "ha_prefix": Key(str, "homeassistant", "Home Assistant's discovery prefix"),
    },
    "console": {
        "enabled": Key(bool, True, "print decisions and a progress line"),
        "decisions": Key(bool, True, "one line per decision (else only the progress and summary lines)"),
    },
    "liveview": {
        "enabled": Key(bool, False, "serve a live web page: event frames, decisions with scores, metrics"),
        "host": Key(str, "127.0.0.1", "address the page is served on (0.0.0.0 = every interface)"),
        "port": Key(int, 8080, "port of the page (0 = any free port; the URL is printed)", min=0),
        "fps": Key(float, 10.0, "frames per second sent to each browser, at most", min=0.5),
        "decay_ms": Key(float, 50.0, "how fast events fade from the frame (time constant)", min=1),
        "max_clients": Key(int, 32, "connections served at once (each open page holds one); more are answered "
                           "503 with Retry-After", min=1),
        "teach": Key(bool, False, "the page may teach: name what the camera sees (a class, or a new name when "
                     "model.new_classes is on), sent as feedback with all its checks; off: POST /teach answers 403"),
        "record_to": Key(str, "", "with teach on: also write every window taught from the page into this folder, "
                         "as class folders that train reads (the layout of streamsnn record; empty = off)"),
        "teach_token": Key(str, "", "token a teaching request must carry (empty: none on loopback; beyond "
                           "loopback one is generated and printed at start)", secret=True),
    },
    "jsonl": {
        "path": Key(str, "", "append one JSON line per decision to this file (empty = off)"),
    },
}


class Config:
    """A validated pipeline: `cfg.source.path`, `cfg.mqtt.port`, ...; `cfg.data` is the plain dict."""

    def __init__(self, data: dict[str, dict[str, Any]], origin: str = "<defaults>"):
        self.data = data
        self.origin = origin
        for section, values in data.items():
            setattr(self, section, SimpleNamespace(**values))

    def masked(self) -> dict[str, dict[str, Any]]:
        """The values with credentials replaced by '***' (for printing and logs)."""
        return {s: {k: ("***" if SCHEMA[s][k].secret and v else v) for k, v in vals.items()}
                for s, vals in self.data.items()}

    def to_toml(self) -> str:
        """The resolved configuration as TOML text, credentials masked."""
        lines = [f"# resolved from {self.origin}"]
        for section, values in self.masked().items():
            lines.append(f"\n[{section}]")
            for key, value in values.items():
                lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    return repr(v)


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check(where: str, section: str, key: str, value: Any) -> Any:
    """Return value converted to the key's type, or raise ConfigError naming section.key."""
    spec = SCHEMA[section][key]
    name = f"{where}: {section}.{key}"
    if (section, key) == ("model", "arch") and isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = ",".join(value)  # arch = ["conv:16:5:2:2", "dense:128"]
    if spec.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, spec.type) or (spec.type is not bool and isinstance(value, bool)):
        kind = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[spec.type]
        raise ConfigError(f"{name} must be {kind}, got {value!r}")
    if spec.type is float and not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if spec.choices and value not in spec.choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, spec.choices))}, got {value!r}")
    if spec.min is not None and value < spec.min:
        raise ConfigError(f"{name} must be at least {spec.min:g}, got {value!r}")
    return value


def _locate(where: str, dotted: str) -> tuple[str, str]:
    section, _, key = dotted.partition(".")
    if section not in SCHEMA:
        raise ConfigError(f"{where}: unknown section [{section}]{_suggest(section, SCHEMA)}; "
                          f"sections are {', '.join(SCHEMA)}")
    if key not in SCHEMA[section]:
        raise ConfigError(f"{where}: unknown key {section}.{key}{_suggest(key, SCHEMA[section])}; "
                          f"keys of [{section}] are {', '.join(SCHEMA[section])}")
    return section, key


def parse_override(text: str) -> tuple[str, str, Any]:
    """'section.key=value' -> (section, key, typed value); the schema decides the type."""
    where = f"--set {text}"
    dotted, eq, raw = text.partition("=")
    if not eq or "." not in dotted:
        raise ConfigError(f"{where}: expected section.key=value, e.g. --set mqtt.port=1884")
    section, key = _locate(where, dotted.strip())
    raw = raw.strip()
    kind = SCHEMA[section][key].type
    try:
        if kind is bool:
            lowered = raw.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise ValueError
            value: Any = lowered in ("true", "1", "yes", "on")
        elif kind is int:
            value = int(raw.replace("_", ""))
        elif kind is float:
            value = float(raw)
        else:
            value = raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'" else raw
    except ValueError:
        kind_name = {bool: "true or false", int: "an integer", float: "a number"}[kind]
        raise ConfigError(f"{where}: {section}.{key} must be {kind_name}, got {raw!r}") from None
    return section, key, _check("--set", section, key, value)


def defaults() -> dict[str, dict[str, Any]]:
    return {s: {k: spec.default for k, spec in keys.items()} for s, keys in SCHEMA.items()}


def build_config(raw: dict, origin: str = "<pipeline>", overrides: list[str] = ()) -> Config:
    """Validate a parsed TOML document, apply overrides, check cross-key rules."""
    data = defaults()
    for section, values in raw.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{origin}: {section!r} must be a [section] table, not a bare value")
        if section not in SCHEMA:
            _locate(origin, f"{section}.")
        for key, value in values.items():
            s, k = _locate(origin, f"{section}.{key}")
            data[s][k] = _check(origin, s, k, value)
    for text in overrides:
        s, k, v = parse_override(text)
        data[s][k] = v
    kind = data["source"]["kind"]
    if kind in RENAMED_KINDS:
        data["source"]["kind"] = RENAMED_KINDS[kind]
        log.warning("%s: source.kind = %r is now called %r; please rename it", origin, kind, RENAMED_KINDS[kind])
    cfg = Config(data, origin)
    _cross_checks(cfg)
    return cfg


def _cross_checks(cfg: Config) -> None:
    o = cfg.origin
    if cfg.segment.mode == "sample" and cfg.source.kind in ("camera", "dvstream"):
        raise ConfigError(f"{o}: segment.mode = 'sample' needs sample boundaries, which a {cfg.source.kind} "
                          "source lacks; use 'window' or 'auto'")
    if cfg.mqtt.tls_cert and not cfg.mqtt.tls_ca:
        raise ConfigError(f"{o}: mqtt.tls_cert needs mqtt.tls_ca (the CA file that turns TLS on)")
    if cfg.mqtt.broker == "embedded" and (cfg.mqtt.tls_ca or cfg.mqtt.username):
        raise ConfigError(f"{o}: the embedded broker runs without TLS or logins; "
                          "set mqtt.broker to your broker's host name, or clear mqtt.tls_ca/username")
    if cfg.mqtt.port == 0 and (cfg.mqtt.broker != "embedded" or cfg.source.kind == "mqtt"):
        raise ConfigError(f"{o}: mqtt.port = 0 (any free port) only works with the embedded broker and "
                          "a source other than mqtt; give the broker's port")
    if cfg.source.kind == "mqtt" and cfg.source.group and cfg.mqtt.broker == "embedded":
        raise ConfigError(f"{o}: source.group (a shared subscription) needs an MQTT 5 broker such as Mosquitto; "
                          "the embedded broker lacks them: set mqtt.broker, or clear source.group")
    if cfg.model.max_classes > MAX_CLASSES:
        raise ConfigError(f"{o}: model.max_classes must be at most {MAX_CLASSES}, got {cfg.model.max_classes}")
    if cfg.liveview.port > 65535:
        raise ConfigError(f"{o}: liveview.port must be at most 65535, got {cfg.liveview.port}")
    if not cfg.liveview.host.strip():  # asyncio would listen on every interface
        raise ConfigError(f"{o}: liveview.host is empty; give an address, e.g. 127.0.0.1 (this machine only) or "
                          "0.0.0.0 (every interface)")
    if not cfg.mqtt.ha_prefix or any(c in cfg.mqtt.ha_prefix for c in "+#"):
        raise ConfigError(f"{o}: mqtt.ha_prefix {cfg.mqtt.ha_prefix!r} must be a topic without wildcards")
    if cfg.model.arch and cfg.model.hidden:
        raise ConfigError(f"{o}: set model.arch or model.hidden, not both (hidden = N is arch = \"dense:N\")")
    _model_sizes(cfg)
    if cfg.source.kind == "mqtt" and not cfg.mqtt.enabled:
        raise ConfigError(f"{o}: source.kind = 'mqtt' needs mqtt.enabled = true")


def _model_sizes(cfg: Config) -> None:
    """A fresh network's sizes and rates within snn.limits (checked without building it)."""
    from .snn.arch import check_sizes, parse_arch
    from .snn.limits import MAX_LR, MAX_LR_FACTOR

    o, m = cfg.origin, cfg.model
    for key, value, high in (("lr", m.lr, MAX_LR), ("lr_out", m.lr_out, MAX_LR),
                             ("feedback_lr_scale", m.feedback_lr_scale, MAX_LR_FACTOR),
                             ("new_class_lr", m.new_class_lr, MAX_LR_FACTOR)):
        if value > high:
            raise ConfigError(f"{o}: model.{key} must be at most {high:g}, got {value!r}")
    for key, seed in (("model.seed", m.seed), ("source.seed", cfg.source.seed)):
        if not 0 <= seed < 2**63:  # (a negative shuffle seed failed the replay as "a defect")
            raise ConfigError(f"{o}: {key} must be an integer 0..2**63-1, got {seed!r}")
    key = "model.arch" if m.arch else "model.hidden" if m.hidden else "model.classes/input_width/input_height"
    try:  # the layers must parse, fit the input grid and stay within the limits
        arch = f"dense:{m.hidden}" if m.hidden else (m.arch or d.DEFAULT_ARCH)
        check_sizes(parse_arch(arch), (m.input_width, m.input_height, 2), m.classes)
    except ConfigError as exc:
        raise ConfigError(f"{o}: {key}: {exc}") from None


#: The largest pipeline file read (the examples are 1-3 KiB).
MAX_FILE_BYTES = 1 << 20


def load_config(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read and validate a pipeline file; raise ConfigError with one line naming the problem."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:  # at most MAX_FILE_BYTES: /dev/zero or a recording given by mistake
            data = fh.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise ConfigError(f"pipeline file {path} is larger than {MAX_FILE_BYTES >> 10} KiB; a pipeline file is a "
                              "short TOML text, see the pipelines/ folder")
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"pipeline file {path} not found; see the pipelines/ folder for examples") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read pipeline file {path}: {exc}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return build_config(raw, str(path), overrides)
