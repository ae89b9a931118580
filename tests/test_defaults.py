"""Every default used in more than one place comes from `streamsnn.defaults`: the pipeline file's schema, the
library's settings, augmentation and the architecture agree, and no module restates a value."""

from __future__ import annotations

import ast
from pathlib import Path

from streamsnn import defaults
from streamsnn.config import SCHEMA
from streamsnn.learn.training import Augment, learning_settings
from streamsnn.pipeline.settings import PipelineSettings
from streamsnn.snn import SpikingNetwork

ROOT = Path(__file__).resolve().parents[1]


def test_the_pipeline_file_and_the_library_have_the_same_defaults():
    lib = PipelineSettings()
    for section, key in [("model", "recent"), ("model", "recent_events"), ("model", "feedback_per_s"),
                         ("model", "feedback_burst"), ("model", "feedback_lr_scale"), ("model", "max_classes"),
                         ("model", "new_class_lr"), ("pipeline", "queue_size"), ("pipeline", "policy"),
                         ("pipeline", "metrics_every_s")]:
        assert SCHEMA[section][key].default == getattr(lib, key), (section, key)


def test_augment_and_the_network_take_their_defaults_from_one_place():
    a = Augment()
    assert {"shift": a.shift, "dropout": a.dropout, "jitter_us": a.jitter_us} == defaults.AUGMENT
    assert SpikingNetwork(classes=10, seed=0).arch == defaults.DEFAULT_ARCH
    s = learning_settings(defaults.DEFAULT_ARCH)
    assert (s["lr"], s["lr_out"], s["epochs"]) == tuple(defaults.CONV_SETTINGS[k] for k in ("lr", "lr_out", "epochs"))
    stream = learning_settings(defaults.DEFAULT_ARCH, stream=True)
    assert stream["lr"] == defaults.CONV_SETTINGS["lr"] * defaults.STREAM_LR_SCALE


def _literals(tree) -> list:
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)]


def test_no_module_restates_the_default_architecture_or_augmentation():
    """The architecture string and the augmentation dict appear as literals only in defaults.py."""
    arch = defaults.DEFAULT_ARCH
    offenders = []
    for path in list((ROOT / "streamsnn").rglob("*.py")) + list((ROOT / "benchmarks").glob("*.py")):
        if path.name == "defaults.py" or path.name.startswith("tune_"):
            continue  # the tuning scripts list the candidates they compared, one of which became the default
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if arch in _literals(tree):
            offenders.append(f"{path.relative_to(ROOT)}: {arch!r}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict) and all(isinstance(k, ast.Constant) for k in node.keys):
                keys = {k.value for k in node.keys}
                if keys == set(defaults.AUGMENT) and [getattr(v, "value", None) for v in node.values] == \
                        list(defaults.AUGMENT.values()):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: the augmentation dict")
    assert offenders == []
