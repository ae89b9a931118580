"""`streamsnn info PATH [--json]`: what an event file, a dataset folder or a model checkpoint holds."""

from __future__ import annotations

import json
from pathlib import Path

ORDER = 50


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "info",
        help="describe an event file, a dataset folder or a model checkpoint",
        description="Describe an event file (format, sensor size, events, duration, polarity counts, "
                    "label), an N-MNIST dataset folder (samples, samples per class, splits) or a model "
                    "checkpoint .npz (layers with kind and shapes, classes, input map, parameters, "
                    "training counters). Folder event counts come from file sizes (5 bytes per N-MNIST "
                    "event), so nothing is decoded. In --json output, class labels are object keys and "
                    "hence strings.",
    )
    p.add_argument("path", type=Path,
                   help="event file (.bin .bs2 .aedat4 .raw .aedat), dataset folder or model (.npz)")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
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
        "camera": batch.meta.get("camera") or batch.meta.get("plugin"),
    }


def folder_info(path: Path) -> dict:
    from ..io import open_dataset

    ds = open_dataset(path)
    return {
        "path": str(path),
        "kind": "dataset",
        "format": ds.format,
        "layout": ds.layout,
        "width": ds.width,
        "height": ds.height,
        "samples": len(ds),
        # Exact for N-MNIST (file size / 5 bytes per event); no file is decoded.
        "events": sum(s.n_events for s in ds.samples),
        "classes": {str(k): v for k, v in ds.classes.items()},
        "splits": ds.split_counts(),
        "split_classes": {name: {str(k): v for k, v in ds.split(name).classes.items()} for name in ds.splits},
    }


def model_info(path: Path) -> dict:
    """A checkpoint: layers (kind, shapes, parameters), classes, input map, counters."""
    from ..snn import SpikingNetwork

    net = SpikingNetwork.load(path)
    return {"path": str(path), "kind": "model", **net.describe()}


def describe(path: Path) -> dict:
    """The facts `info` prints, as a dict (folder -> dataset summary, .npz -> model, file -> decoded events)."""
    if path.is_dir():
        return folder_info(path)
    if path.suffix.lower() == ".npz":
        return model_info(path)
    return file_info(path)


def _layer_line(d: dict) -> str:
    shape = lambda s: "x".join(map(str, s))  # noqa: E731
    if d["kind"] == "conv":
        what = f"conv {d['channels']} ch, {d['kernel']}x{d['kernel']} kernel, stride {d['stride']}, pad {d['padding']}"
    elif d["kind"] == "dense":
        what = f"dense {d['units']} units"
    else:
        what = f"output {d['units']} classes"
    return f"{what}: {shape(d['in'])} -> {shape(d['out'])}, {d['parameters']:,} parameters"


def _table(info: dict) -> str:
    rows: list[tuple[str, str]] = []
    for key, value in info.items():
        if key == "kind":
            continue
        if key == "layers":
            rows += [(f"layer {k + 1}", _layer_line(d)) for k, d in enumerate(value)]
            continue
        if key == "classes" and isinstance(value, list):
            rows.append(("classes", " ".join(value)))
            continue
        if key == "input" and isinstance(value, dict):
            x0, y0, w, h = value["roi"]
            rows.append(("input", f"sensor {value['sensor'][0]}x{value['sensor'][1]}, region ({x0}, {y0}) "
                                  f"{w}x{h}, grid {'x'.join(map(str, value['grid']))}"))
            continue
        if isinstance(value, float):
            rows.append((key, f"{value:g}"))
            continue
        if key == "polarity":
            rows.append(("polarity", f"on {value['on']:,}  off {value['off']:,}"))
        elif key == "split_classes":
            for name, counts in value.items():
                rows.append((f"classes ({name})", "  ".join(f"{k}:{v}" for k, v in counts.items())))
        elif isinstance(value, dict):
            rows.append((key, "  ".join(f"{k}:{v:,}" if isinstance(v, int) else f"{k}:{v}" for k, v in value.items())))
        elif key == "duration_us" and value is not None:
            rows.append(("duration", f"{value:,} us ({value / 1e6:.3f} s)"))
        elif key in ("width", "height") and "width" in info:
            if key == "width":
                rows.append(("sensor", f"{info['width']} x {info['height']}"))
        elif isinstance(value, int) and not isinstance(value, bool):
            rows.append((key, f"{value:,}"))
        else:
            rows.append((key, ("none" if info.get("kind") == "model" else "unknown") if value is None else str(value)))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def run(args) -> int:
    info = describe(args.path)
    if args.json:
        print(json.dumps(info))
    else:
        print(_table(info))
    return 0
