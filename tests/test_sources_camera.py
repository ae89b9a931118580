"""CameraSource without a camera: the absent-camera error is real here (no USB camera exists).

The packet read loop a camera uses is shared with DvStreamSource and tested there on real data.
"""

import pytest

from streamsnn.errors import InputError
from streamsnn.sources.camera import CameraSource


def no_camera():
    import dv_processing as dv

    if dv.io.camera.discover():
        pytest.skip("an iniVation camera is connected; these tests need none")


async def test_absent_camera_is_one_line():
    no_camera()
    with pytest.raises(InputError) as err:
        async with CameraSource():
            pass
    msg = str(err.value)
    assert msg.startswith("no iniVation camera found") and "recording" in msg and "\n" not in msg


async def test_absent_camera_with_serial_names_it():
    no_camera()
    src = CameraSource(serial="DXA00093")
    with pytest.raises(InputError, match="serial DXA00093"):
        await src.__anext__()
    await src.aclose()


class _FakeCamera:
    """What `dv.io.camera.open` returns, as far as CameraSource uses it (no USB camera exists here)."""

    def __init__(self, refuse: bool = False):
        self.intervals, self.refuse = [], refuse

    def isEventStreamAvailable(self):
        return True

    def getCameraName(self):
        return "DVXplorer_FAKE01"

    def setTimeInterval(self, interval):
        if self.refuse:
            raise RuntimeError("Device does not support this setting\nmore")
        self.intervals.append(interval)


def _fake_usb(monkeypatch, camera):
    import types

    import dv_processing as dv

    monkeypatch.setattr(dv.io.camera, "discover", lambda: [types.SimpleNamespace(serialNumber="FAKE01")])
    monkeypatch.setattr(dv.io.camera, "open", lambda *a: camera)


def test_the_camera_packet_interval_is_set_when_configured(monkeypatch):
    from datetime import timedelta

    from streamsnn.config import build_config
    from streamsnn.sources.build import build_source

    cam = _FakeCamera()
    _fake_usb(monkeypatch, cam)
    src = build_source(build_config({"source": {"kind": "camera", "packet_us": 1000}}))
    assert src._open() is cam and cam.intervals == [timedelta(milliseconds=1)]
    assert src.name == "camera:DVXplorer_FAKE01"
    other = _FakeCamera()
    _fake_usb(monkeypatch, other)
    build_source(build_config({"source": {"kind": "camera"}}))._open()  # 0: the camera's own setting
    assert other.intervals == []


def test_a_camera_that_refuses_the_packet_interval_says_so_in_one_line(monkeypatch):
    _fake_usb(monkeypatch, _FakeCamera(refuse=True))
    with pytest.raises(InputError) as err:
        CameraSource(packet_us=500)._open()
    msg = str(err.value)
    assert "500 us" in msg and "source.packet_us = 0" in msg and "DVXplorer_FAKE01" in msg and "\n" not in msg


def test_the_live_camera_pipeline_asks_for_1_ms_packets():
    from pathlib import Path

    from streamsnn.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[1] / "pipelines" / "live-camera.toml")
    assert cfg.source.kind == "camera" and cfg.source.packet_us == 1000
