"""The registry of hidden layer kinds: the name in specs and checkpoints -> the class that implements it.

Adding a kind is one module here (a subclass of ``base.Layer``) and one ``register`` line below;
nothing else in the package names a kind. The table itself (``KINDS``) lives in ``base`` so that a
layer spec finds its class without importing this package back.
"""

from __future__ import annotations

from .base import KINDS, Layer, LayerSpec, kind_of, register
from .conv import ConvLayer
from .dense import DenseLayer
from .src import SrcLayer

register(DenseLayer)
register(ConvLayer)
register(SrcLayer)


def usage() -> str:
    """The text forms of every kind, for messages ("conv:C:K[:S[:P]] or dense:N or src:N")."""
    return " or ".join(cls.usage for cls in KINDS.values())


def layer_line(d: dict) -> str:
    """What one entry of ``SpikingNetwork.describe()["layers"]`` is, in words (without its shapes)."""
    cls = KINDS.get(d.get("kind"))
    return cls.line(d) if cls is not None else f"output {d['units']} classes"


__all__ = ["KINDS", "Layer", "LayerSpec", "register", "kind_of", "usage", "layer_line"]
