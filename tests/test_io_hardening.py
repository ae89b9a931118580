"""Corrupt files that used to hang, blow memory or mislead the readers (issue 9): each now ends in one line.

Every case is built from a real recording in ../shared/data. Cases that hung forever before the
fix run as subprocesses with a timeout, so a regression fails instead of freezing the suite.
"""

from __future__ import annotations

import os
import resource
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import need

from streamsnn.errors import InputError
from streamsnn.io import DecodeLimits, probe, read_events

ROOT = Path(__file__).resolve().parent.parent
AEDAT4 = "recordings/tonic_sample.aedat4"
#: One byte inside an LZ4 packet of tonic_sample.aedat4 that makes dv-processing spin forever in
#: LZ4F_decompress (found by fuzzing; the header and packet layout stay intact).
HANG_AT, HANG_VALUE = 639363, 146


def info(path, *, env=None, timeout=60, limit_bytes=None) -> subprocess.CompletedProcess:
    """`streamsnn info PATH` as a subprocess (optionally under an address-space limit)."""
    def limit():
        if limit_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, "-m", "streamsnn", "info", str(path)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})}, preexec_fn=limit)


def one_error_line(proc, *words) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("streamsnn: error: ") and "Traceback" not in proc.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def hanging_aedat4(tmp_path: Path) -> Path:
    data = bytearray(need(AEDAT4).read_bytes())
    data[HANG_AT] = HANG_VALUE
    p = tmp_path / "stuck.aedat4"
    p.write_bytes(bytes(data))
    return p


@pytest.mark.parametrize("evt", ["2.0", "3.0"])
def test_prophesee_file_ending_inside_its_header(tmp_path, evt):
    # expelliarmus looked for the newline of the last '%' line forever, at 100 % CPU
    p = tmp_path / "h.raw"
    p.write_bytes(f"% evt {evt}\n% plugin_n".encode())
    one_error_line(info(p, timeout=30), str(p), "ends inside its Prophesee text header")


def test_aedat4_with_sensor_width_zero(tmp_path):
    # the example: dv.io.MonoCameraRecording() never returned
    p = tmp_path / "zero.aedat4"
    p.write_bytes(need(AEDAT4).read_bytes().replace(b'"sizeX" type="int">320<', b'"sizeX" type="int">0<'))
    one_error_line(info(p, timeout=30), str(p), "AEDAT4")
    same_length = tmp_path / "zero3.aedat4"  # the XML still parses: the sensor size itself is refused
    same_length.write_bytes(need(AEDAT4).read_bytes().replace(b'"sizeX" type="int">320<', b'"sizeX" type="int">000<'))
    with pytest.raises(InputError, match="event sensor size 000x240"):
        probe(same_length)


@pytest.mark.parametrize("size", [-1, 2**31 - 1])
def test_aedat4_absurd_header_size_under_a_memory_limit(tmp_path, size):
    # dv-processing allocated the announced size: 2-4 GB for a 1 MB file, MemoryError and a traceback
    data = bytearray(need(AEDAT4).read_bytes())
    data[14:18] = struct.pack("<i", size)
    p = tmp_path / "big.aedat4"
    p.write_bytes(bytes(data))
    one_error_line(info(p, timeout=60, limit_bytes=2 << 30), str(p), "header size")


def test_prophesee_absurd_geometry_is_refused_before_decoding(tmp_path):
    # the body is not EVT3: had the decoder run first, its complaint would be the error
    p = tmp_path / "geo.raw"
    p.write_bytes(b"% evt 3.0\n% geometry 99999999x99999999\n" + struct.pack("<H", 0xB000) * 64)
    with pytest.raises(InputError, match="header geometry says 99999999x99999999 pixels"):
        read_events(p)


@pytest.mark.parametrize("name, word", [("prophesee_evt2_sample.raw", 4), ("prophesee_evt3_sample.raw", 2)])
def test_prophesee_file_cut_inside_an_event_word(tmp_path, name, word):
    # a copy cut short was decoded without a word: the last word's half dropped, or read as garbage
    src = need(f"recordings/{name}").read_bytes()
    whole = read_events(need(f"recordings/{name}"))
    p = tmp_path / "cut.raw"
    p.write_bytes(src[:-(word // 2 + 1)] if word == 4 else src[:-1])
    with pytest.raises(InputError, match=rf"cut.raw: its [\d,]+ bytes of EVT[23] data end inside a {word}-byte event "
                                         "word: the file was cut short"):
        read_events(p)
    p.write_bytes(src[:-2 * word])  # cut at a word: nothing shows it; the events before the cut are read
    assert 0 < len(read_events(p)) <= len(whole)


def test_dvs128_file_appended_to_itself(tmp_path):
    # the second header was decoded as events: 1,884 s instead of 20.8 s for this one (its header
    # is a whole number of 8-byte records, so nothing looked truncated)
    src = need("recordings/dvs128_aedat2/cam255_neal_standing_up.aedat").read_bytes()
    p = tmp_path / "twice.aedat"
    p.write_bytes(src + src)
    with pytest.raises(InputError, match=f"second '#!AER-DAT' header at byte {len(src)}: two recordings"):
        read_events(p)


@pytest.mark.parametrize("name", ["recordings/prophesee_evt3_sample.raw", AEDAT4])
def test_other_formats_appended_to_themselves(tmp_path, name):
    src = need(name).read_bytes()
    p = tmp_path / f"twice{Path(name).suffix}"
    p.write_bytes(src + src)
    with pytest.raises(InputError, match=f"second .*header at byte {len(src)}"):
        read_events(p)


def test_decoder_past_its_deadline_is_abandoned(tmp_path):
    p = hanging_aedat4(tmp_path)
    t0 = time.monotonic()
    with pytest.raises(InputError, match="decoder did not finish within 2 s; the file is probably corrupt") as err:
        read_events(p, limits=DecodeLimits(timeout_s=1.5, s_per_mb=0.5))
    assert str(p) in str(err.value) and "\n" not in str(err.value)
    assert time.monotonic() - t0 < 60  # it returned: the stuck worker was killed, not waited for
    assert len(read_events(need(AEDAT4))) == 111954  # and the next file decodes in a fresh worker


def test_cancel_abandons_a_decode(tmp_path):
    from streamsnn.io.isolated import DecodeCancelled

    p = hanging_aedat4(tmp_path)
    cancel = threading.Event()
    threading.Timer(1.0, cancel.set).start()
    with pytest.raises(DecodeCancelled, match="cancelled"):
        read_events(p, limits=DecodeLimits(timeout_s=600), cancel=cancel)


def test_decoder_memory_is_bounded(tmp_path):
    # EVT3 vector words carry up to 12 events per 2 bytes: 4 MB -> 24 M events -> 390 MB decoded
    row = [0x3000] + [0x5FFF] * 100  # VECT_BASE_X x=0, then 100 VECT_12 words with every bit set
    words = np.array([0x8000, 0x6000, 0x0000] + row * 20_000, dtype="<u2")  # TIME_HIGH, TIME_LOW, ADDR_Y
    p = tmp_path / "dense.raw"
    p.write_bytes(b"% evt 3.0\n% geometry 2048x2048\n" + words.tobytes())
    with pytest.raises(InputError, match="ran out of memory"):
        read_events(p, limits=DecodeLimits(memory_mb=64, memory_per_mb=1))


def test_decoder_warning_never_precedes_the_error_line(tmp_path):
    # expelliarmus printed "WARNING: The timestamps are not monotonic." on fd 2 before our error line
    def cd(x, y, t_low=0, on=1):
        return (on << 28) | (t_low << 22) | (x << 11) | y

    words = [0x8000_0000 | 10, cd(1, 1), 0x8000_0000 | 5, cd(100, 1)]  # time goes back, then x=100 > 64
    p = tmp_path / "back.raw"
    p.write_bytes(b"% evt 2.0\n% geometry 64x64\n" + np.array(words, "<u4").tobytes())
    one_error_line(info(p), str(p), "outside the 64x64 sensor")


def test_a_decode_leaves_the_process_stderr_alone(tmp_path, capfd):
    # prophesee.py used to point fd 2 at a temporary file during a decode: other threads' output
    # written meanwhile ended up inside our error message instead of on stderr
    src = need("recordings/prophesee_evt2_sample.raw").read_bytes()
    start = src.index(b"% evt 2.0\n") + len(b"% evt 2.0\n")
    p = tmp_path / "long.raw"
    p.write_bytes(src[:start] + src[start:] * 24 + struct.pack("<I", 0x5 << 28))  # an unknown word at the end
    read_events(need("recordings/prophesee_evt3_sample.raw"))  # a warm worker: the decode starts at once
    stop = threading.Event()
    ticks: list[int] = []

    def tick():
        while not stop.is_set():
            os.write(2, f"tick {len(ticks)}\n".encode())
            ticks.append(len(ticks))
            time.sleep(0.001)

    writer = threading.Thread(target=tick)
    writer.start()
    while len(ticks) < 3:  # the writer is running before the decode starts
        time.sleep(0.001)
    try:
        with pytest.raises(InputError, match="cannot decode as Prophesee EVT2") as err:
            read_events(p)
    finally:
        stop.set()
        writer.join()
    assert "tick" not in str(err.value)
    err_text = capfd.readouterr().err
    assert all(f"tick {i}\n" in err_text for i in ticks)
    assert "event type not recognised" not in err_text  # the decoder's own print stays in its worker
