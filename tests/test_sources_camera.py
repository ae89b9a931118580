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
