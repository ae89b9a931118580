"""Sinks that receive decisions (stages.Sink): console and JSON lines; the MQTT sink is streamsnn.mqtt.sink."""
