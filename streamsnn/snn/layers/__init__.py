"""The registry of hidden layer kinds: the name in specs and checkpoints -> the class that implements it.

Adding a kind is one module here (a subclass of ``base.Layer``) and one line in ``KINDS`` (or a
call of ``register``); nothing else in the package names a kind.
"""

from __future__ import annotations

from ...errors import ConfigError
from .base import Layer, LayerSpec
from .conv import ConvLayer
from .dense import DenseLayer

KINDS: dict[str, type[Layer]] = {
    "dense": DenseLayer,
    "conv": ConvLayer,
}


def register(cls: type[Layer]) -> type[Layer]:
    """Add (or replace) a layer kind under ``cls.kind``; returns ``cls`` (usable as a class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Layer) and cls.kind):
        raise TypeError(f"{cls!r} is not a Layer subclass with a kind")
    KINDS[cls.kind] = cls
    return cls


def kind_of(kind: str) -> type[Layer]:
    """The class of a layer kind; ConfigError naming the known kinds when there is none."""
    try:
        return KINDS[kind]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown layer kind {str(kind)[:40]!r}; known: {usage()}") from None


def usage() -> str:
    """The text forms of every kind, for messages ("conv:C:K[:S[:P]] or dense:N")."""
    return " or ".join(cls.usage for cls in KINDS.values())


def layer_line(d: dict) -> str:
    """What one entry of ``SpikingNetwork.describe()["layers"]`` is, in words (without its shapes)."""
    cls = KINDS.get(d.get("kind"))
    return cls.line(d) if cls is not None else f"output {d['units']} classes"


__all__ = ["KINDS", "Layer", "LayerSpec", "register", "kind_of", "usage", "layer_line"]
