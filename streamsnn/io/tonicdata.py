"""Datasets already on disk through tonic's dataset classes: `tonic:<Class>:<folder>` (e.g. tonic:DVSGesture:~/data).

`<folder>` is what was passed to tonic as `save_to` (it holds `<Class>/`), or that `<Class>/` folder
itself. tonic lists and decodes the samples; streamsnn never lets it download: a dataset that is not
on disk gives one line saying what to fetch. Both splits are opened for classes that take `train=`.
"""

from __future__ import annotations

import inspect
from functools import partial
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..events import EventBatch, make_events
from .samples import Dataset, Sample, unique_ids

#: Class names where tonic's are abbreviations or decorated, so that a model trained on a folder
#: of the same data (N-MNIST digit folders, POKER-DVS `club/` ...) has the same names.
CLASS_NAMES = {
    "NMNIST": [str(d) for d in range(10)],
    "POKERDVS": ["club", "heart", "diamond", "spade"],
    "POKERDVS131": ["club", "heart", "diamond", "spade"],
}


def is_spec(text: str) -> bool:
    """True when a dataset is named as `tonic:<Class>:<folder>` rather than by a folder."""
    return text.startswith("tonic:")


def parse_spec(spec: str) -> tuple[str, Path]:
    """('DVSGesture', folder) from 'tonic:DVSGesture:folder'; InputError in one line if malformed."""
    parts = spec.split(":", 2)
    if len(parts) != 3 or parts[0] != "tonic" or not parts[1] or not parts[2]:
        raise InputError(f"{spec}: expected tonic:<DatasetClass>:<folder>, e.g. tonic:NMNIST:~/data")
    return parts[1], Path(parts[2]).expanduser()


def _dataset_class(name: str, spec: str):
    import tonic.dataset
    import tonic.datasets

    cls = getattr(tonic.datasets, name, None)
    if not (inspect.isclass(cls) and issubclass(cls, tonic.dataset.Dataset)):
        known = sorted(n for n, c in vars(tonic.datasets).items()
                       if inspect.isclass(c) and issubclass(c, tonic.dataset.Dataset)
                       and c is not tonic.dataset.Dataset)
        raise InputError(f"{spec}: tonic has no dataset class {name!r}; available: {', '.join(known)}")
    return cls


def _offline(cls, spec: str):
    """A subclass of tonic's dataset class (same name, so the same folder) that never downloads.

    tonic checks for the downloaded archive before it reads the extracted files; here the extracted
    folder is enough, and where tonic would download (or copy its bundled archive) we stop instead.
    """

    def missing(self, *args, **kwargs):
        where = Path(self.location_on_system, getattr(self, "folder_name", "") or "")
        raise InputError(f"{spec}: {where} is missing; download the dataset with tonic first "
                         f"(tonic.datasets.{cls.__name__}(save_to=...)) or point at the folder that holds it")

    def check(self):
        folder = Path(self.location_on_system, getattr(self, "folder_name", "") or "")
        return folder.is_dir() and any(folder.iterdir())

    return type(cls.__name__, (cls,), {"download": missing, "_copy_and_extract_local_data": missing,
                                       "_check_exists": check, "__module__": __name__})


def _class_names(cls, obj) -> list[str]:
    names = CLASS_NAMES.get(cls.__name__)
    if names is None:
        raw = getattr(obj, "classes", None)
        if isinstance(raw, dict):  # name -> index
            names = [str(n) for n, _ in sorted(raw.items(), key=lambda kv: kv[1])]
        elif isinstance(raw, (list, tuple)):
            names = [str(n) for n in raw]
        else:
            names = []
    top = max((int(t) for t in obj.targets), default=-1)
    return names + [str(i) for i in range(len(names), top + 1)]  # any target beyond the names: its number


def _load_item(obj, index: int, sensor: tuple[int, int] | None, source: str) -> EventBatch:
    """Decode one item through tonic and return it as an EventBatch of the dataset's sensor."""
    try:
        raw, _ = obj[index]
    except (OSError, ValueError, KeyError, IndexError, EOFError) as exc:
        raise InputError(f"{source}: tonic could not read item {index} ({type(exc).__name__}: {exc})") from None
    names = raw.dtype.names or ()
    if not all(k in names for k in ("x", "y", "t", "p")):
        raise InputError(f"{source}: item {index} has fields {', '.join(names)}, not x, y, t, p; "
                         "streamsnn reads camera events only")
    x, y, t = raw["x"].astype(np.int64), raw["y"].astype(np.int64), raw["t"].astype(np.int64)
    if len(raw) and (x.min() < 0 or y.min() < 0):
        raise InputError(f"{source}: item {index} has negative pixel coordinates")
    order = np.argsort(t, kind="stable") if len(t) > 1 and np.any(np.diff(t) < 0) else slice(None)
    events = make_events(t[order], x[order], y[order], np.asarray(raw["p"])[order] > 0)
    w, h = sensor or ((int(x.max()) + 1, int(y.max()) + 1) if len(raw) else (1, 1))
    return EventBatch(events, w, h, source=source, meta={"format": f"tonic {type(obj).__name__}"})


def open_tonic(spec: str):
    """Open `tonic:<Class>:<folder>` as a Dataset (listing through tonic; items decoded on load)."""
    name, folder = parse_spec(spec)
    cls = _dataset_class(name, spec)
    if not folder.is_dir():
        raise InputError(f"{spec}: no such folder {folder}; check the path")
    save_to = folder.parent if folder.name == name and not (folder / name).is_dir() else folder
    offline = _offline(cls, spec)
    takes_train = "train" in inspect.signature(cls.__init__).parameters
    splits = [("train", {"train": True}), ("test", {"train": False})] if takes_train else [("all", {})]
    opened, errors = [], []
    for split, kwargs in splits:
        try:
            opened.append((split, offline(save_to=str(save_to), **kwargs)))
        except InputError as exc:
            errors.append(str(exc))
        except Exception as exc:  # tonic's own checks: one line, never a traceback
            raise InputError(f"{spec}: tonic could not open the {split} split ({type(exc).__name__}: {exc})") from None
    if not opened:
        raise InputError(errors[0])
    sensor = tuple(int(v) for v in cls.sensor_size[:2]) if getattr(cls, "sensor_size", None) else None
    classes = _class_names(cls, opened[0][1])
    for _, obj in opened[1:]:
        extra = _class_names(cls, obj)
        classes += extra[len(classes):]
    samples = []
    for split, obj in opened:
        for i, target in enumerate(obj.targets):
            data = obj.data[i] if i < len(obj.data) else None
            path = Path(data) if isinstance(data, (str, Path)) else Path(obj.location_on_system)
            sample_id = path.stem if isinstance(data, (str, Path)) else f"{split}/{i}"
            samples.append(Sample(path, sample_id, int(target), split, label_name=classes[int(target)],
                                  item=partial(_load_item, obj, i, sensor, f"{spec} ({split} item {i})")))
    samples = unique_ids(samples, Path(opened[0][1].location_on_system))
    w, h = sensor or (None, None)
    return Dataset(Path(opened[0][1].location_on_system), "tonic", samples, format=f"tonic {name}",
                   width=w, height=h, classes=classes, name=spec)
