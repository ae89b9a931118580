"""CameraSource: live events from an iniVation camera (DVXplorer, DAVIS, DVS128) through dv-processing."""

from __future__ import annotations

from datetime import timedelta

from ..errors import InputError, first_line
from ._live import LiveSource

_HINT = "connect one, or use a recording (source kind 'replay') or a DV stream (kind 'dvstream')"


class CameraSource(LiveSource):
    """Events from the camera with the given serial number (None: the first camera found).

    `async with CameraSource() as cam:` raises InputError at once when no camera is connected. The
    batches are the camera's packets as they arrive, with `source` = "camera:<name>" and no label;
    `packet_us` sets how much sensor time one packet holds (dv-processing's `setTimeInterval`; None: the
    camera's own setting), and so how long a window's end can wait inside a packet before the daemon sees it;
    `reconnect=True` waits for an unplugged camera to return.
    The packet read loop is the one DvStreamSource uses
    (sources/_dv.py PacketReader), so the DV-stream test exercises it on real data; only the opening
    below is camera-specific: without a camera here its error paths are tested, and with a stand-in
    for the opened camera the packet interval (tests/test_sources_camera.py).
    """

    def __init__(self, serial: str | None = None, packet_us: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.serial = serial or None
        self.packet_us = int(packet_us) if packet_us else None
        self.name = f"camera:{self.serial}" if self.serial else "camera"

    def _open(self):
        import dv_processing as dv

        what = f"serial {self.serial}" if self.serial else "any serial"
        try:
            found = dv.io.camera.discover()
        except Exception as exc:  # libusb unavailable, no permission to enumerate ...
            raise InputError(f"cannot list USB cameras ({first_line(exc)}); check USB access rights "
                             f"(udev rules) or {_HINT}") from None
        serials = [d.serialNumber for d in found]
        if not found or (self.serial and self.serial not in serials):
            others = f"; cameras present: {', '.join(serials)}" if serials else ""
            raise InputError(f"no iniVation camera found ({what}){others}; {_HINT}")
        try:
            camera = dv.io.camera.open(self.serial) if self.serial else dv.io.camera.open()
        except Exception as exc:
            raise InputError(f"cannot open the iniVation camera ({what}): {first_line(exc)}; "
                             f"check it is not in use by another program, or {_HINT}") from None
        if not camera.isEventStreamAvailable():
            raise InputError(f"camera {camera.getCameraName()} gives no event stream; "
                             "use an event camera (DVS/DAVIS/DVXplorer)")
        self.name = f"camera:{camera.getCameraName()}"
        if self.packet_us:
            try:
                camera.setTimeInterval(timedelta(microseconds=self.packet_us))
            except Exception as exc:
                raise InputError(f"camera {camera.getCameraName()}: cannot set its packets to {self.packet_us} us "
                                 f"({first_line(exc)}); set source.packet_us = 0 to keep its own") from None
        return camera
