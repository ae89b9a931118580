"""AEDAT 2.0 timestamps are 32-bit and wrap once every 71.6 minutes on a real DVS128: a file whose clock
wraps back and forth (a "wrap storm") is refused with one line, never read as months of events."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import need

from streamsnn.errors import InputError
from streamsnn.io import read_events
from streamsnn.io.aedat2 import RECORD_DTYPE, read_aedat2


def aedat2(path, t) -> None:
    rec = np.zeros(len(t), RECORD_DTYPE)
    rec["address"] = (np.arange(len(t)) % 100) << 1  # ordinary pixels, no special events
    rec["t"] = np.asarray(t, np.uint32)
    path.write_bytes(b"#!AER-DAT2.0\r\n# AEChip: DVS128\r\n" + rec.tobytes())


def test_a_wrap_storm_is_refused_in_one_line(tmp_path):
    f = tmp_path / "storm.aedat"
    aedat2(f, np.tile([0xFFFF_FFFF, 0], 5000))  # 10,000 events that would span 248 days unwrapped
    with pytest.raises(InputError, match=r"storm\.aedat: timestamps jump ahead by more than 35\.8 minutes") as exc:
        read_aedat2(f)
    assert "\n" not in str(exc.value) and "corrupt" in str(exc.value)
    proc = subprocess.run([sys.executable, "-m", "streamsnn", "info", str(f)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "storm.aedat" in proc.stderr


def test_one_glitch_ahead_of_the_clock_is_refused(tmp_path):
    f = tmp_path / "glitch.aedat"
    t = np.arange(1000, 2000)
    t[500] = 0xFFFF_FFFF  # one corrupt timestamp: read as a wrap it would add 71.6 minutes to the rest
    aedat2(f, t)
    with pytest.raises(InputError, match="corrupt"):
        read_aedat2(f)


def test_a_real_wrap_still_reads_and_keeps_time_running(tmp_path):
    f = tmp_path / "wrap.aedat"
    t = (0xFFFF_FF00 + np.arange(0, 4000, 10)) & 0xFFFF_FFFF  # 4 ms of events across one wrap
    aedat2(f, t)
    b = read_aedat2(f)
    assert len(b) == 400 and b.duration_us == 3990 and np.all(np.diff(b.events["t"]) == 10)


def test_real_dvs128_recordings_still_read():
    folder = need("recordings/dvs128_aedat2")
    path = sorted(folder.glob("*.aedat"))[0]
    assert len(read_events(path)) > 0
