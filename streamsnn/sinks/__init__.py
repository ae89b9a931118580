"""Sinks that receive decisions (pipeline.stages.Sink): console and JSON lines; the MQTT sink is streamsnn.mqtt.sink."""
