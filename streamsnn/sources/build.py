"""The source a pipeline's [source] section names, built in one place (for `streamsnn run` and `streamsnn publish`)."""

from __future__ import annotations

from ..pipeline.stages import Source


def build_source(cfg, *, progress: bool = True, mqtt=None) -> Source:
    """The configured source (`pipeline.stages.Source`); `mqtt`: the MqttSettings an `mqtt` source connects with.

    Nothing is opened or read here (see `Source.open`), except that a replay without `source.path`
    finds N-MNIST (and may download it, with a progress bar when `progress`).
    """
    s = cfg.source
    if s.kind == "replay":
        from ..io.nmnist_fetch import find_nmnist
        from .files import ReplaySource

        path = find_nmnist(s.path or None, progress=progress)
        return ReplaySource(path, speed=s.speed, split=s.split or None, loop=s.loop, limit=s.limit or None,
                            shuffle=s.shuffle, seed=s.seed, chunk_us=s.chunk_us or None)
    if s.kind == "synthetic":
        from .synthetic import SyntheticSource

        return SyntheticSource.from_path(s.path or None, speed=s.speed, loop=s.loop, limit=s.limit or None,
                                         seed=s.seed, chunk_us=s.chunk_us or None)
    if s.kind == "camera":
        from .camera import CameraSource

        return CameraSource(serial=s.serial or None, packet_us=s.packet_us or None, reconnect=s.reconnect)
    if s.kind == "dvstream":
        from .dvstream import DvStreamSource

        return DvStreamSource(s.address, reconnect=s.reconnect)
    from ..mqtt.source import MqttEventSource

    return MqttEventSource(mqtt, s.topic or mqtt.topic("events"), s.group or None, max_events=s.max_packet_events)
