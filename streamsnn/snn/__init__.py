"""The deep, event-driven spiking network of O'Connor & Welling (2016): layer kinds (``layers/``), kernels, model,
learning, checkpoints."""

from .arch import DEFAULT_ARCH, InputMap, parse_arch
from .network import Decision, SpikingNetwork

__all__ = ["SpikingNetwork", "Decision", "InputMap", "DEFAULT_ARCH", "parse_arch"]
