"""Home Assistant MQTT discovery: retained configs that make a "streamsnn <node>" device appear without YAML.

With `mqtt.ha_discovery = true` the sink publishes, retained, one config per sensor on
`<ha_prefix>/sensor/streamsnn_<node>/<object>/config` (Home Assistant's discovery topic layout; a node id
with characters other than [A-Za-z0-9_-] gets a hash suffix, see `ha_id`):

- `classification`: state = the class name of each decision (`value_template` on the classification
  JSON), attributes `label`, `confidence`, `scores`, `sample`, `true_label_name` (`json_attributes_topic`);
- `confidence`, `events_per_s`, `decisions`, `progressive_accuracy`, `outbox`: from the same
  classification and metrics messages.

Every sensor is `available` while `<prefix>/status` says `online` (the retained status and last
will), and all share one `device` block. With discovery turned off the sink subscribes to its own
config topics and clears every retained config it finds (an empty retained message removes the
entity in Home Assistant), so turning the option off removes the device.
"""

from __future__ import annotations

import hashlib
import json
import re

import aiomqtt

from .. import __version__
from .schema import STATUS_OFFLINE, STATUS_ONLINE
from .settings import MqttSettings

#: (object id, name, topic under the prefix, value template, extra config keys)
SENSORS = (
    ("classification", "Classification", "classification", "{{ value_json.label_name }}",
     {"icon": "mdi:eye",
      "json_attributes_template": "{{ {'label': value_json.label, 'confidence': value_json.confidence, "
                                  "'scores': value_json.scores, 'sample': value_json.sample, "
                                  "'true_label_name': value_json.true_label_name} | tojson }}"}),
    ("confidence", "Confidence", "classification", "{{ (value_json.confidence * 100) | round(1) }}",
     {"unit_of_measurement": "%", "state_class": "measurement", "icon": "mdi:gauge"}),
    ("events_per_s", "Events per second", "metrics", "{{ value_json.events_per_s | round(0) }}",
     {"unit_of_measurement": "events/s", "state_class": "measurement", "icon": "mdi:flash"}),
    ("decisions", "Decisions", "metrics", "{{ value_json.decisions }}",
     {"state_class": "total_increasing", "icon": "mdi:counter"}),
    ("progressive_accuracy", "Progressive accuracy", "metrics",
     "{{ (value_json.progressive_accuracy * 100) | round(1) if value_json.progressive_accuracy is not none "
     "else none }}",
     {"unit_of_measurement": "%", "state_class": "measurement", "icon": "mdi:school"}),
    ("outbox", "MQTT outbox", "metrics", "{{ value_json.mqtt.outbox }}",
     {"state_class": "measurement", "entity_category": "diagnostic", "icon": "mdi:tray-full"}),
)

#: Hex digits of SHA-256 appended to a node id that had to be changed to fit Home Assistant's ids.
HASH_DIGITS = 8


def ha_id(node: str) -> str:
    """The device's id in discovery topics and unique ids: `streamsnn_<node>`, only [A-Za-z0-9_-].

    A node id of those characters only is kept as it is; any other character becomes `_` and the id
    gets `_` and 8 hex digits of the SHA-256 of the node id, so `cam.1` and `cam_1` get different
    devices, and one daemon cannot clear another's configs.
    """
    clean = re.sub(r"[^A-Za-z0-9_-]", "_", node)
    if clean == node:
        return "streamsnn_" + node
    return f"streamsnn_{clean}_{hashlib.sha256(node.encode('utf-8', 'surrogatepass')).hexdigest()[:HASH_DIGITS]}"


class Discovery:
    """The discovery configs of one daemon (`enabled`), or the clean-up of old ones (not `enabled`)."""

    def __init__(self, settings: MqttSettings, *, enabled: bool = True, prefix: str = "homeassistant") -> None:
        self.settings, self.enabled, self.prefix = settings, enabled, prefix.rstrip("/")
        self.device_id = ha_id(settings.node_id)
        self.pattern = f"{self.prefix}/sensor/{self.device_id}/+/config"
        self.removed: list[str] = []

    def topic(self, object_id: str) -> str:
        return f"{self.prefix}/sensor/{self.device_id}/{object_id}/config"

    def config(self, object_id: str, name: str, topic: str, template: str, extra: dict) -> dict:
        s = self.settings
        out = {
            "name": name,
            "unique_id": f"{self.device_id}_{object_id}",
            "state_topic": s.topic(topic),
            "value_template": template,
            "availability": [{"topic": s.topic("status"), "payload_available": STATUS_ONLINE,
                              "payload_not_available": STATUS_OFFLINE}],
            "device": {"identifiers": [self.device_id], "name": f"streamsnn {s.node_id}",
                       "manufacturer": "streamsnn", "model": "event-camera spiking network",
                       "sw_version": __version__},
            "origin": {"name": "streamsnn", "sw_version": __version__},
            **extra,
        }
        if "json_attributes_template" in extra:
            out["json_attributes_topic"] = s.topic(topic)
        return out

    def configs(self) -> list[tuple[str, bytes]]:
        """(topic, payload) of every retained config to publish (none when discovery is off)."""
        if not self.enabled:
            return []
        return [(self.topic(oid), json.dumps(self.config(oid, *rest)).encode()) for oid, *rest in SENSORS]

    async def subscribe(self, client: aiomqtt.Client) -> None:
        """Discovery off: listen for retained configs of this device, to clear them (see `handles`)."""
        if not self.enabled:
            await client.subscribe(self.pattern, qos=1)

    def stale(self, msg: aiomqtt.Message) -> str | None:
        """The topic to clear (publish empty, retained) when `msg` is a config of this device left from
        a run with discovery on, while it is now off; None otherwise."""
        if self.enabled or not msg.payload or not msg.topic.matches(self.pattern):
            return None
        self.removed.append(str(msg.topic))
        return str(msg.topic)
