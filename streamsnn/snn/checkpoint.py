"""Model checkpoints: atomic .npz write and strict load (format version, JSON config, no pickles).

Format 2 (written now): the arrays each hidden layer lists (``layers.Layer.arrays``): ``weight_k``
for layer k's weights, ``weight_k_NAME`` for any other array of its kind; then ``weight_L`` (the
output layer, L hidden layers) and ``bias``; JSON ``config`` with ``arch`` (list of layer dicts), ``input_map`` (sensor,
roi, grid), ``classes`` (names in output order, including classes added by feedback) and the
learning settings (``class_lr`` only when a class has its own output rate; ``tau_s_ratio``, ``readout`` and
``readout_forget`` only under learning "timing", files without them are of the other modes, a "timing" file without
``readout`` reads out with "decay", one without ``readout_forget`` with ``defaults.TIMING_FORGET``, one without
``label_smoothing`` learns with none; ``layer_price``
only when a hidden layer's spikes are priced
otherwise than once, files without it price them once; ``chosen``, what `train` chose on
held-out training samples, only when it searched: a small flat dict, `check_chosen`; ``spike_rates``, the spikes
per input event per hidden layer `train` measured, optional, `check_spike_rates`); JSON ``counters``;
optionally the rehearsal memory (``memory_idx``, ``memory_len``, ``memory_label``, ``memory_t``, ``memory_live``:
integers, see ``memory.Memory``; files without it load with an empty memory, without ``memory_live`` none is live)
and what fitting a class added by feedback keeps (``memory_scene``, ``memory_pool``: float rows of the last layer's
units, with integer ``memory_scene_label``, ``memory_pool_label``, ``memory_pool_item``, and ``memory_recent``, the
recent decided windows a scene is taken from; see ``fitkeep``; files without them load with none).
Format 1 (the one-hidden-layer network, arrays ``W1``, ``W2``, ``b2``, config ``sizes`` and
``input_shape``) still loads, as a one-dense-layer network with classes "0".."n-1".
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .. import defaults
from ..errors import CheckpointError, ConfigError
from . import guard, limits, npzread
from .layers.base import sound
from .target import check_target, new_file_mode

FORMAT = "streamsnn-snn"
VERSION = 2
#: Versions this code reads.
READABLE = (1, 2)
_META_KEYS = ("format", "version", "config", "counters")
#: The arrays of format 2 and of format 1; any other member is never read.
_ARRAY_NAME = re.compile(r"weight_\d{1,3}(?:_[a-z][a-z0-9]{0,15})?|bias|W1|W2|b2")
#: The rehearsal memory's arrays (``memory.Memory.arrays``; integers, optional).
_MEMORY_NAME = re.compile(r"memory_(?:idx|len|label|t|live|scene_label|pool_label|pool_item)")
#: ... and the float rows of what fitting a new class keeps (``fitkeep.FitKeep.arrays``; optional).
_FIT_NAME = re.compile(r"memory_(?:scene|pool|recent)")
#: Largest checkpoint file: every parameter stored as float64, plus room for the config.
MAX_MEMORY_VALUES = 1 << 26  # the rehearsal memory's arrays together
MAX_FILE_BYTES = 8 * (limits.MAX_PARAMETERS + MAX_MEMORY_VALUES) + (16 << 20)
MAX_WEIGHT = limits.MAX_WEIGHT  # largest magnitude of a stored weight or bias


def save_checkpoint(path, arrays: dict[str, np.ndarray], config: dict, counters: dict) -> Path:
    """Write arrays plus JSON config and counters to ``path`` atomically (``check_target`` first).

    A temporary file in the same folder is written, flushed and fsync'ed, then renamed over
    ``path`` and the folder is fsync'ed, so a reader sees either the old or the new file, whole. The
    file keeps the mode of the one it replaces (a new one: 0666 less the umask).
    """
    path = check_target(path)
    folder = path.parent if str(path.parent) else Path(".")
    mode = (path.stat().st_mode & 0o7777) if path.exists() else new_file_mode()
    payload = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    payload["format"] = np.array([FORMAT])
    payload["version"] = np.array([VERSION], dtype=np.int64)
    payload["config"] = np.array([json.dumps(config, sort_keys=True)])
    payload["counters"] = np.array([json.dumps(counters, sort_keys=True)])
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise CheckpointError(f"cannot write model {path}: cannot create a file in {folder} ({exc.strerror}); "
                              "choose another folder") from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on folders
        pass
    return path


def load_checkpoint(path) -> tuple[int, dict[str, np.ndarray], dict, dict]:
    """Read a checkpoint into memory: (version, arrays, config, counters), or raise CheckpointError.

    Sizes are checked before anything is read (see npzread): the file at most MAX_FILE_BYTES, at most
    npzread.MAX_MEMBERS members, each weight array's declared shape matching its stored size and all of
    them together at most limits.MAX_PARAMETERS values; members other than the format's arrays are
    never read. Nothing is returned unless every check passed, so a caller never ends up with a
    half-loaded model.
    """
    path = Path(path)
    if not path.is_file():
        if path.exists():  # a folder, /dev/null: "not found" sent people looking for a file that is there
            kind = "a folder" if path.is_dir() else "not a regular file"
            raise CheckpointError(f"model file {path} is {kind}; give a .npz made by streamsnn train or run")
        raise CheckpointError(f"model file {path} not found; train one with `streamsnn train --out {path}`")
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            magic = fh.read(4)
            if magic != npzread.ZIP_MAGIC:
                raise CheckpointError(f"{path} is not a .npz checkpoint (not a zip archive); pass a file written "
                                      "by `streamsnn train`")
            if size > MAX_FILE_BYTES:
                raise CheckpointError(f"{path} is {size:,} bytes, more than a checkpoint may be ({MAX_FILE_BYTES:,})")
            npzread.check_directory(fh, size)
            with zipfile.ZipFile(fh) as zf:
                names = {n[:-4] for n in zf.namelist() if n.endswith(".npy")}
                if "format" not in names or "version" not in names:
                    raise CheckpointError(f"{path} is not a streamsnn model checkpoint (no format marker); "
                                          "pass a file written by `streamsnn train`")
                meta = npzread.read_members(zf, ["format", "version"], max_elements=256)
                fmt = str(meta["format"].reshape(-1)[0]) if meta["format"].size else ""
                if fmt != FORMAT:
                    raise CheckpointError(f"{path} is a {fmt[:40]!r} file, not a streamsnn model checkpoint")
                v = meta["version"].reshape(-1)
                version = int(v[0]) if v.size and v.dtype.kind in "iu" else -1
                if version not in READABLE:
                    raise CheckpointError(f"{path} has checkpoint format version {version}; this streamsnn "
                                          f"reads versions {', '.join(map(str, READABLE))}: retrain or use a "
                                          "matching streamsnn")
                missing = [k for k in _META_KEYS if k not in names]
                if missing:
                    raise CheckpointError(f"{path} lacks {', '.join(missing)}; the file is damaged or foreign")
                text = npzread.read_members(zf, ["config", "counters"], max_elements=2 * npzread.MAX_JSON_CHARS,
                                            kinds="U")
                config, counters = (npzread.parse_json(str(text[k].reshape(-1)[0]) if text[k].size else "", k)
                                    for k in ("config", "counters"))
                wanted = sorted(n for n in names if _ARRAY_NAME.fullmatch(n))
                arrays = npzread.read_members(zf, wanted, max_elements=limits.MAX_PARAMETERS, kinds="f")
                kept = sorted(n for n in names if _MEMORY_NAME.fullmatch(n))
                arrays.update(npzread.read_members(zf, kept, max_elements=MAX_MEMORY_VALUES, kinds="iu"))
                rows = sorted(n for n in names if _FIT_NAME.fullmatch(n))
                arrays.update(npzread.read_members(zf, rows, max_elements=MAX_MEMORY_VALUES, kinds="f"))
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, IndexError, OverflowError,
            TypeError, MemoryError, RecursionError, UnicodeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"cannot read model {path}: damaged, truncated or not a .npz checkpoint ({reason})"
                              ) from None
    if not isinstance(config, dict) or not isinstance(counters, dict):
        raise CheckpointError(f"{path} has a malformed config or counters record; the file is damaged")
    return version, arrays, config, counters


def array_name(layer: int, suffix: str = "") -> str:
    """The checkpoint name of hidden layer ``layer``'s array ``suffix`` ("": its weights)."""
    return f"weight_{layer}_{suffix}" if suffix else f"weight_{layer}"


def network_arrays(net) -> dict[str, np.ndarray]:
    """Every array a checkpoint of ``net`` holds, by name: each hidden layer's, the output weights, the bias."""
    arrays = {array_name(k, sfx): a for k, layer in enumerate(net.hidden) for sfx, a in layer.arrays().items()}
    arrays[array_name(len(net.hidden))] = net.out_weight
    arrays["bias"] = net.bias
    return arrays


def problems(net) -> str | None:
    """What would make the loader refuse a checkpoint of ``net`` (non-finite or absurd values), or None."""
    for name, a in network_arrays(net).items():
        if not sound(a):
            return f"{name} holds non-finite values (or beyond {MAX_WEIGHT:g})"
    if not np.all((net.class_lr > 0) & (net.class_lr <= limits.MAX_LR_FACTOR)):
        return f"class_lr holds values that are not finite in (0, {limits.MAX_LR_FACTOR:g}]"
    try:
        for k, high in (("lr", limits.MAX_LR), ("lr_out", limits.MAX_LR), ("lr_conv", limits.MAX_LR_FACTOR),
                        ("max_step", limits.MAX_GAIN), ("activity", limits.MAX_GAIN), ("init_gain", limits.MAX_GAIN),
                        ("theta", limits.MAX_GAIN), ("ref_events", limits.MAX_REF_EVENTS)):
            limits.finite(k, getattr(net, k), 0, high)
    except ConfigError as exc:
        return str(exc)
    return None


#: Bounds of the ``chosen`` record: entries, characters of a key and of a text value.
MAX_CHOSEN_KEYS, MAX_CHOSEN_KEY, MAX_CHOSEN_TEXT = 32, 40, 2000


def check_chosen(chosen) -> dict:
    """``chosen`` if it is a dict of at most MAX_CHOSEN_KEYS entries, each a short string key with a bool,
    an integer, a finite number or a text of at most MAX_CHOSEN_TEXT characters; else ValueError."""
    if not isinstance(chosen, dict) or len(chosen) > MAX_CHOSEN_KEYS:
        raise ValueError(f"chosen must be an object of at most {MAX_CHOSEN_KEYS} entries")
    for k, v in chosen.items():
        if not isinstance(k, str) or not 0 < len(k) <= MAX_CHOSEN_KEY:
            raise ValueError(f"chosen has a key that is not a name of at most {MAX_CHOSEN_KEY} characters")
        ok = (isinstance(v, (bool, int)) and abs(v) <= limits.MAX_COUNTER) \
            or (isinstance(v, float) and math.isfinite(v)) or (isinstance(v, str) and len(v) <= MAX_CHOSEN_TEXT)
        if not ok:
            raise ValueError(f"chosen {k[:40]} is not a bool, a finite number or a short text")
    return chosen


#: Bounds of the ``spike_rates`` record: the most spikes per input event a layer may claim, the longest split name.
MAX_SPIKE_RATE, MAX_SPLIT_NAME = 1e9, 16


def check_spike_rates(rates, n_layers: int) -> dict:
    """``rates`` if it is what `train` records (``training.spike_record``): ``per_layer``, one finite number
    0..MAX_SPIKE_RATE per hidden layer (``n_layers``), the integers ``samples``, ``events`` and ``updates`` and
    a short ``split`` name; else ValueError."""
    keys = {"per_layer", "samples", "events", "split", "updates"}
    if not isinstance(rates, dict) or set(rates) != keys:
        raise ValueError("spike_rates must be an object of " + ", ".join(sorted(keys)))
    per = rates["per_layer"]
    if not isinstance(per, list) or len(per) != n_layers or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x <= MAX_SPIKE_RATE for x in per):
        raise ValueError(f"spike_rates per_layer must hold one number 0..{MAX_SPIKE_RATE:g} per hidden layer "
                         f"({n_layers})")
    for k in ("samples", "events", "updates"):
        v = rates[k]
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= limits.MAX_COUNTER:
            raise ValueError(f"spike_rates {k} is not an integer 0..{limits.MAX_COUNTER}")
    if not isinstance(rates["split"], str) or not 0 < len(rates["split"]) <= MAX_SPLIT_NAME:
        raise ValueError(f"spike_rates split is not a name of at most {MAX_SPLIT_NAME} characters")
    return rates


def save_network(net, path) -> Path:
    """Write a SpikingNetwork in format 2; CheckpointError (nothing written, an earlier file kept) when it
    holds non-finite values or anything else the loader would refuse (checked by building it in memory)."""
    wrong = problems(net)
    chosen = getattr(net, "chosen", None)
    rates = getattr(net, "spike_rates", None)
    if wrong is None and (chosen or rates):
        try:
            if chosen:
                check_chosen(chosen)
            if rates:
                check_spike_rates(rates, len(net.hidden))
        except ValueError as exc:
            wrong = str(exc)
    if wrong is not None:
        raise CheckpointError(f"model not saved to {path}: {wrong}; the file there is kept as it was")
    arrays = {**network_arrays(net), **net.memory.arrays(net.hidden_updates)}
    config = {**net.config(), **({"chosen": chosen} if chosen else {}), **({"spike_rates": rates} if rates else {})}
    try:  # what the loader would make of it, built in memory (names aside: `streamsnn classes` repairs those)
        network_from(type(net), "the model", VERSION, arrays, json.loads(json.dumps(config)),
                     json.loads(json.dumps(net.counters())), any_names=True)
    except CheckpointError as exc:
        raise CheckpointError(f"model not saved to {path}: it would not load ({exc}); the file there is kept as "
                              "it was") from None
    return save_checkpoint(path, arrays, config, net.counters())


def _format1(arrays: dict, config: dict) -> tuple[dict, dict]:
    """A format-1 file (one dense hidden layer) as format-2 arrays and config."""
    sizes = config.pop("sizes", None)
    grid = config.pop("input_shape", [34, 34, 2])
    for k in ("init_scale", "init_scale_out"):
        config.pop(k, None)
    if not isinstance(sizes, list) or len(sizes) != 3 or not isinstance(grid, list) or len(grid) != 3:
        raise ValueError("format-1 config needs sizes [inputs, hidden, classes] and input_shape [w, h, p]")
    config.update(arch=[{"kind": "dense", "units": int(sizes[1])}], classes=int(sizes[2]),
                  input_map={"sensor": grid[:2], "roi": None, "grid": grid})
    renamed = {"weight_0": arrays.get("W1"), "weight_1": arrays.get("W2"), "bias": arrays.get("b2")}
    return {k: v for k, v in renamed.items() if v is not None}, config


def _declared_shapes(config: dict) -> dict[str, tuple]:
    """The array shapes the config's network has, from its declared sizes alone (checked against the
    limits; nothing allocated)."""
    from .arch import DEFAULT_ARCH, InputMap, check_sizes, parse_arch

    arch, imap, classes = config.get("arch", DEFAULT_ARCH), config.get("input_map"), config.get("classes", 10)
    if not isinstance(arch, (str, list)) or not isinstance(imap, (dict, type(None))) \
            or not isinstance(classes, (int, list)) or isinstance(classes, bool):
        raise ValueError("arch must be a spec or a list of layers, input_map an object, classes a count or a list")
    if imap is None:
        grid = config.get("input_shape", (34, 34, 2))
        imap = {"sensor": list(grid)[:2], "grid": grid} if isinstance(grid, (list, tuple)) else {}
    n = classes if isinstance(classes, int) else len(classes)
    limits.check_classes(n)
    geometry = check_sizes(parse_arch(arch), InputMap.from_dict(imap).layer_grid, n)
    shapes = {array_name(k, sfx): shape for k, g in enumerate(geometry)
              for sfx, shape in g.layer.cls.array_shapes(g).items()}
    shapes[array_name(len(geometry))] = (geometry[-1].n_out, n)
    shapes["bias"] = (n,)
    return shapes


def _counter(counters: dict, k: str) -> int:
    v = counters.get(k, 0)
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= limits.MAX_COUNTER:
        raise ValueError(f"counter {k} is {str(v)[:40]}, not an integer 0..{limits.MAX_COUNTER}")
    return v


def load_network(cls, path, any_names: bool = False):
    """Read a checkpoint into a new ``cls`` (SpikingNetwork); CheckpointError names what is wrong.

    The declared sizes (classes, layers, grid) are checked against the limits and the arrays' shapes
    before the network is built; the settings (learning rates, threshold, ...) by the constructor.
    Class names are normalised as `streamsnn.classnames` says (a valid name written by an older
    version, e.g. with a trailing space, loads in its canonical form); a name that cannot be a class
    name, or two that match, refuse the checkpoint with a line saying how to repair it, unless
    `any_names`: then they are kept exactly as stored (for `streamsnn classes`)."""
    return network_from(cls, path, *load_checkpoint(path), any_names=any_names)


def network_from(cls, path, version: int, arrays: dict, config: dict, counters: dict, any_names: bool = False):
    """``load_network`` of what `load_checkpoint` read; `path` only names it in the errors."""
    from .. import classnames
    from ..textsafe import printable

    raw_names = None
    try:
        config = dict(config)
        chosen = check_chosen(config.pop("chosen")) if "chosen" in config else None
        rates = config.pop("spike_rates", None)  # optional: files written before it was measured have none
        if config.get("learning") == "timing":  # files written before the "rise" readout read out with "decay",
            config.setdefault("readout", "decay")  # and those before label smoothing learn without it
            config.setdefault("label_smoothing", 0.0)
        if version == 1:
            arrays, config = _format1(arrays, dict(config))
        want = _declared_shapes(config)
        if rates is not None:
            check_spike_rates(rates, sum(1 for k in want if re.fullmatch(r"weight_\d+", k)) - 1)
        names = config.get("classes")
        if isinstance(names, list) and len(names) >= 2 and all(isinstance(c, str) for c in names):
            try:
                classnames.check_all(names)
            except ValueError as exc:
                if not any_names:
                    raise CheckpointError(f"{path}: {exc}; list and repair the classes with `streamsnn classes "
                                          f"{path}` (--rename '#N' NAME, --remove '#N')") from None
                raw_names, config = names, {**config, "classes": len(names)}
    except (TypeError, ValueError, OverflowError, ConfigError) as exc:
        raise CheckpointError(f"{path} holds an unusable network config "
                              f"({printable(str(exc).splitlines()[0])})") from None
    for k, shape in want.items():
        if k not in arrays:
            old = {"weight_0": "W1", "weight_1": "W2", "bias": "b2"}.get(k, k) if version == 1 else k
            raise CheckpointError(f"{path} lacks the array {old}; the file is damaged or foreign")
        a = arrays[k]
        if a.shape != shape or a.dtype.kind != "f":
            raise CheckpointError(f"{path}: array {k} has shape {a.shape} ({a.dtype}), expected {shape} "
                                  "floats; the file is damaged or foreign")
        if not sound(a):
            raise CheckpointError(f"{path}: array {k} holds non-finite weights (or beyond {MAX_WEIGHT:g}); "
                                  "the file is damaged")
    try:
        vals = {k: _counter(counters, k) for k in ("samples_seen", "events_seen", "updates",
                                                   "progressive_correct", "progressive_total", "epochs")}
        backoff = counters.get("lr_backoff", 1.0)
        if isinstance(backoff, bool) or not isinstance(backoff, (int, float)) or not guard.MIN_BACKOFF <= backoff <= 1:
            raise ValueError(f"lr_backoff is {str(backoff)[:40]}, not a number {guard.MIN_BACKOFF:g}..1")
        vals["lr_backoff"] = float(backoff)
        token = counters.get("token")
        if token is not None and not (isinstance(token, str) and 0 < len(token) <= 64):
            raise ValueError("token is not a short string")
    except ValueError as exc:
        raise CheckpointError(f"{path} has malformed training counters ({exc}); the file is damaged") from None
    try:
        net = cls(**{**config, "seed": config.get("seed", 0)})
    except (TypeError, ValueError, OverflowError, ConfigError) as exc:
        raise CheckpointError(f"{path} holds an unusable network config "
                              f"({printable(str(exc).splitlines()[0])})") from None
    if raw_names is not None:
        net.classes = list(raw_names)
    if chosen:
        net.chosen = chosen
    if rates is not None:
        net.spike_rates = rates
    for k, layer in enumerate(net.hidden):
        layer.set_arrays({sfx: arrays[array_name(k, sfx)] for sfx in layer.array_shapes(layer.geo)})
    net.out_weight = np.ascontiguousarray(arrays[array_name(len(net.hidden))], dtype=np.float32)
    net.bias = np.ascontiguousarray(arrays["bias"], dtype=np.float32)
    try:
        net.memory.load_arrays(arrays, net.input_map.n_inputs, net.n_classes, width=net.out_weight.shape[0],
                               version=net.hidden_updates, pool=defaults.FIT_POOL)
    except ValueError as exc:
        raise CheckpointError(f"{path}: its rehearsal memory is unusable ({exc}); the file is damaged") from None
    net.restore_counters(vals, token)
    return net
