"""`streamsnn info PATH [--json] [--count]`: what an event file, a dataset (any layout) or a model checkpoint holds."""

from __future__ import annotations

import json
from pathlib import Path

from ..textsafe import printable, shown

ORDER = 50


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "info",
        help="describe an event file, a dataset or a model checkpoint",
        description="Describe an event file (format, sensor size, events, duration, polarity counts, "
                    "label) or a dataset: a folder in any layout streamsnn reads (class folders "
                    "Train|Test/<class>/<file>, flat files with train*.txt/test*.txt label lists, recordings "
                    "with <name>_labels.csv, a folder of unlabelled recordings) or tonic:<Class>:<folder>. "
                    "For a dataset: layout, format, sensor, samples, classes (name: samples), splits. "
                    "Listing a dataset decodes nothing: event counts come from file sizes where that is "
                    "exact (N-MNIST, 5 bytes per event) and are 'unknown' otherwise; --count decodes "
                    "every sample to count them and to measure the active region of the sensor. A model "
                    "checkpoint .npz: its format version, layers with kind and shapes, classes, input map, parameters, "
                    "training counters.",
    )
    p.add_argument("path", help="event file (.bin .bs2 .aedat4 .raw .aedat), dataset folder, "
                                "tonic:<Class>:<folder> or model (.npz)")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    p.add_argument("--count", action="store_true",
                   help="dataset: decode every sample (progress bar) for exact event counts and the active region")
    p.set_defaults(func=run)


def file_info(path: Path) -> dict:
    from ..io import read_events

    batch = read_events(path)
    off, on = batch.polarity_counts()
    return {
        "path": str(path),
        "kind": "file",
        "format": batch.meta.get("format"),
        "width": batch.width,
        "height": batch.height,
        "events": len(batch),
        "duration_us": batch.duration_us,
        "t_start_us": batch.t_start,
        "t_end_us": batch.t_end,
        "polarity": {"on": on, "off": off},
        "sample": batch.sample,
        "label": batch.label,
        **({"class": path.parent.name} if batch.label is None and _in_class_folder(path) else {}),
        "camera": batch.meta.get("camera") or batch.meta.get("plugin"),
    }


def _in_class_folder(path: Path) -> bool:
    """Whether a file sits in `Train|Test/<class>/`, the class-folders layout (its folder names its class)."""
    from ..io.folders import own_split

    return own_split(path.parent.parent) != "all" and not path.parent.name.startswith(".")


def folder_info(path, count: bool = False) -> dict:
    from ..io import open_dataset

    ds = open_dataset(path)
    formats = ds.formats()
    info = {
        "path": str(path),
        "kind": "dataset",
        "format": ds.format,
        "layout": ds.layout,
        "width": ds.width,
        "height": ds.height,
        "samples": len(ds),
        # Exact from file sizes for N-MNIST (5 bytes per event); unknown (None) for other formats
        # unless --count decodes them.
        "events": ds.events(),
        "labelled": ds.is_labelled,
        "classes": ds.class_counts(),
        "splits": ds.split_counts(),
        "split_classes": {name: ds.split(name).class_counts() for name in ds.splits} if ds.is_labelled else {},
    }
    if len(formats) > 1:  # beside "format", which joins their names
        info = {**{k: v for k, v in info.items() if k in ("path", "kind", "format")}, "formats": formats,
                **{k: v for k, v in info.items() if k not in ("path", "kind", "format")}}
    if count:
        info.update(_decoded_facts(ds))
    return info


def _decoded_facts(ds) -> dict:
    """Events per split, unreadable samples and the active region, from decoding every sample."""
    import sys

    import numpy as np
    from tqdm import tqdm

    from ..errors import InputError
    from ..io.region import region_from_counts

    events = dict.fromkeys(ds.splits, 0)
    bad, counts = [], None
    for s in tqdm(ds.samples, desc="counting", unit="sample", file=sys.stderr, leave=False,
                  disable=not sys.stderr.isatty()):
        try:
            b = s.load()
        except InputError as exc:
            bad.append(str(exc))
            continue
        events[s.split] += len(b)
        if counts is None:
            counts = np.zeros((b.height, b.width), np.int64)
        if counts.shape == (b.height, b.width) and len(b):
            counts += np.bincount(b.events["y"].astype(np.int64) * b.width + b.events["x"],
                                  minlength=counts.size).reshape(counts.shape)
    out = {"events": sum(events.values()), "split_events": events, "unreadable": len(bad)}
    if bad:
        out["first_unreadable"] = bad[0]
    if counts is not None and counts.any():
        x0, y0, w, h = region_from_counts(counts)
        out["active_region"] = {"x0": x0, "y0": y0, "width": w, "height": h,
                                "coverage": round(float(counts[y0:y0 + h, x0:x0 + w].sum() / counts.sum()), 4)}
    return out


def describe(path, count: bool = False) -> dict:
    """The facts `info` prints, as a dict (dataset -> summary without decoding, file -> decoded events)."""
    from ..io.tonicdata import is_spec

    p = Path(path)
    if is_spec(str(path)) or p.is_dir():
        return folder_info(path, count)
    if p.suffix.lower() == ".npz" or _zip_not_events(p):  # a model saved under another name is one too
        return model_info(p)
    return file_info(p)


def _zip_not_events(p: Path) -> bool:
    """Whether `p` is a regular file starting as a zip archive (a .npz) without an event file's extension."""
    from ..io.probe import extensions
    from ..snn.npzread import ZIP_MAGIC

    if p.suffix.lower() in extensions() or not p.is_file():
        return False
    try:
        with open(p, "rb") as f:
            return f.read(len(ZIP_MAGIC)) == ZIP_MAGIC
    except OSError:
        return False


def model_info(path: Path) -> dict:
    """A checkpoint: its format version, layers (kind, shapes, parameters), classes, input map, counters."""
    from ..snn import SpikingNetwork
    from ..snn.checkpoint import VERSION, load_checkpoint

    net = SpikingNetwork.load(path)
    version = load_checkpoint(path)[0]  # read again for the version alone: a checkpoint is small
    fmt = f"streamsnn checkpoint {version}" + ("" if version == VERSION else
                                               f" (older: saving it again writes format {VERSION})")
    chosen = getattr(net, "chosen", None)
    return {"path": str(path), "kind": "model", "format": fmt, "format_version": version, **net.describe(),
            **({"chosen": chosen} if chosen else {}), "spike_rates": getattr(net, "spike_rates", None)}


def _layer_line(d: dict) -> str:
    shape = lambda s: "x".join(map(str, s))  # noqa: E731
    from ..snn.layers import layer_line

    return f"{layer_line(d)}: {shape(d['in'])} -> {shape(d['out'])}, {d['parameters']:,} parameters"


def _spike_rows(rates: dict | None, updates) -> list[tuple[str, str]]:
    """One row per hidden layer: its spikes per input event as `train` measured them, and where; or "not measured"."""
    if not rates:
        why = "not measured (`streamsnn train` measures it; this model was saved by something else, or before it did)"
        return [("spikes per input event", why)]
    rows = [(f"layer {k + 1} spikes/event", f"{v:.3g}") for k, v in enumerate(rates["per_layer"])]
    since = (updates or 0) - rates["updates"]
    rows.append(("spikes measured on", f"{rates['samples']:,} {rates['split']} samples ({rates['events']:,} events)"
                 + (f", {since:,} updates ago" if since > 0 else "")))
    return rows


def _table(info: dict) -> str:
    rows: list[tuple[str, str]] = []
    for key, value in info.items():
        if key in ("kind", "format_version"):  # the version is in `format`'s line; JSON keeps it apart
            continue
        if key == "layers":
            rows += [(f"layer {k + 1}", _layer_line(d)) for k, d in enumerate(value)]
            continue
        if key == "classes" and isinstance(value, list):
            rows.append(("classes", ", ".join(shown(c, None) for c in value)))  # names may hold spaces
            continue
        if key == "input" and isinstance(value, dict):
            x0, y0, w, h = value["roi"]
            rows.append(("input", f"sensor {value['sensor'][0]}x{value['sensor'][1]}, region ({x0}, {y0}) "
                                  f"{w}x{h}, grid {'x'.join(map(str, value['grid']))}"
                                  + (f", {value['delays']} delayed copies {value['delay_us'] / 1000:g} ms apart"
                                     if value.get("delays", 1) > 1 else "")))
            continue
        if isinstance(value, float):
            rows.append((key, f"{value:g}"))
            continue
        if key == "spike_rates":  # measured by `train`; older checkpoints have none
            rows += _spike_rows(value, info.get("updates"))
            continue
        if key == "chosen" and isinstance(value, dict):  # what train chose on held-out training samples
            rows += [(f"chosen {k}", ("yes" if v else "no") if isinstance(v, bool) else f"{v:g}"
                      if isinstance(v, float) else str(v)) for k, v in value.items()]
            continue
        if key == "polarity":
            rows.append(("polarity", f"on {value['on']:,}  off {value['off']:,}"))
        elif key == "split_events":
            rows += [(f"events ({name})", f"{n:,}") for name, n in value.items()]
        elif key == "split_classes":
            for name, counts in value.items():
                rows.append((f"classes ({name})", "  ".join(f"{k}:{v}" for k, v in counts.items())))
        elif key == "active_region":
            rows.append(("active region", f"x {value['x0']}..{value['x0'] + value['width'] - 1}  "
                                          f"y {value['y0']}..{value['y0'] + value['height'] - 1}  "
                                          f"({value['width']} x {value['height']}, "
                                          f"{value['coverage']:.1%} of the events)"))
        elif key == "classes" and not value:
            rows.append(("classes", "none (unlabelled)"))
        elif key == "events" and value is None and info.get("kind") == "dataset":
            rows.append(("events", "unknown without decoding (--count decodes every sample)"))
        elif isinstance(value, bool):
            rows.append((key, "yes" if value else "no"))
        elif isinstance(value, dict):
            rows.append((key, "  ".join(f"{k}:{v:,}" if isinstance(v, int) else f"{k}:{v}" for k, v in value.items())))
        elif key == "label" and value is None and "class" in info:
            continue  # the class row says it
        elif key == "class":
            rows.append(("label", f"{shown(value, None)} (the class folder it is in)"))
        elif key == "duration_us" and value is not None:
            rows.append(("duration", f"{value:,} us ({value / 1e6:.3f} s)"))
        elif key in ("width", "height") and "width" in info:
            if key == "width":
                known = info["width"] is not None and info["height"] is not None
                rows.append(("sensor", f"{info['width']} x {info['height']}" if known else "unknown"))
        elif isinstance(value, int) and not isinstance(value, bool):
            rows.append((key, f"{value:,}"))
        else:
            rows.append((key, ("none" if info.get("kind") == "model" else "unknown") if value is None else str(value)))
    width = max(len(k) for k, _ in rows)
    # names, ids and paths come from files: nothing in them may reach the terminal raw
    return "\n".join(f"{k.ljust(width)}  {printable(v)}" for k, v in rows)


def run(args) -> int:
    info = describe(args.path, count=args.count)
    if args.json:
        print(json.dumps(info))
    else:
        print(_table(info))
    return 0
