"""Sinks that receive decisions: MQTT, console, JSON lines."""
