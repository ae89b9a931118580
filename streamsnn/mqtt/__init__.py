"""MQTT: settings, the reconnect loop, the wire schema, the sink, Home Assistant discovery, event packets.

Modules: `settings` (MqttSettings, TlsSettings), `connection` (aiomqtt clients, backoff, the
reconnect loop), `probe` (telling a TLS mix-up from an outage), `schema` (topics and the
classification JSON), `sink` (MqttSink) and `inflight` (its publishes awaiting a PUBACK),
`discovery` (Home Assistant), `packets` (the binary event packet format), `source`
(MqttEventSource), `publisher` (MqttEventPublisher) and `broker` (the embedded amqtt broker of the
zero-config default). Names are imported on first use, so `import streamsnn.mqtt` does not load aiomqtt.
"""

_WHERE = {
    "MqttSettings": "settings", "TlsSettings": "settings", "PASSWORD_ENV": "settings",
    "settings_from_config": "settings", "Connection": "connection", "Backoff": "connection",
    "SCHEMA_VERSION": "schema", "classification_payload": "schema", "MqttSink": "sink",
    "Discovery": "discovery", "MqttEventSource": "source", "MqttEventPublisher": "publisher",
    "encode": "packets", "decode": "packets", "EmbeddedBroker": "broker",
}

__all__ = list(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
