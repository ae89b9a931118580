"""The event-driven spiking network of O'Connor & Welling (2016): kernels, model, checkpoints."""

from .network import Decision, SpikingNetwork

__all__ = ["SpikingNetwork", "Decision"]
