"""streamsnn: event-camera classification with an online, event-driven spiking network."""

__version__ = "0.1.0"
