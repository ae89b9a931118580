"""Bad input to the readers: one-line InputError naming the path, from the function and from the CLI."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import need

from streamsnn.errors import InputError
from streamsnn.io import SUPPORTED_EXTENSIONS, open_dataset, read_events


def _missing(tmp_path):
    return tmp_path / "nope.bs2", "no such file"


def _unsupported(tmp_path):
    p = tmp_path / "events.csv"
    p.write_text("t,x,y,p\n1,2,3,1\n")
    return p, ".aedat4"


def _truncated_nmnist(tmp_path):
    p = tmp_path / "1.bs2"
    p.write_bytes(bytes([3, 4, 0x80, 0, 10]) * 4 + bytes([5, 6, 0]))  # 4 events and 3 stray bytes
    return p, "multiple of 5"


def write_aedat4(path, n=5000, size=(64, 48)):
    """A small real AEDAT4 file written by dv-processing; returns the (t, x, y, p) written."""
    import dv_processing as dv

    i = np.arange(n)
    t, x, y, p = 1000 + 10 * i, i % size[0], (i // size[0]) % size[1], i % 3 == 0
    writer = dv.io.MonoCameraWriter(str(path), dv.io.MonoCameraWriter.EventOnlyConfig("test", size))
    store = dv.EventStore()
    for row in zip(t.tolist(), x.tolist(), y.tolist(), p.tolist()):
        store.push_back(*row)
    writer.writeEvents(store)
    del writer  # closes the file
    return t, x, y, p


def _truncated_aedat4(tmp_path):
    whole = tmp_path / "whole.aedat4"
    write_aedat4(whole)
    p = tmp_path / "cut.aedat4"
    p.write_bytes(whole.read_bytes()[:-400])
    return p, "AEDAT4"


def _text_as_aedat4(tmp_path):
    p = tmp_path / "notes.aedat4"
    p.write_text("these are notes, not a recording\n" * 20)
    return p, "AEDAT4"


def _empty(tmp_path):
    p = tmp_path / "empty.aedat4"
    p.touch()
    return p, "empty"


def _empty_nmnist(tmp_path):
    p = tmp_path / "empty.bin"
    p.touch()
    return p, "empty"


AEDAT2_HEADER = b"#!AER-DAT2.0\r\n# AEChip: ch.unizh.ini.jaer.chip.retina.DVS128\r\n"


def _truncated_aedat2(tmp_path):
    p = tmp_path / "cut.aedat"
    p.write_bytes(AEDAT2_HEADER + bytes(8 * 10 + 5))
    return p, "truncated"


def _raw_without_header(tmp_path):
    p = tmp_path / "noheader.raw"
    p.write_bytes(bytes(range(256)) * 8)
    return p, "EVT"


def _evt2_data_behind_evt3_header(tmp_path):
    p = tmp_path / "mixed.raw"
    evt3 = need("recordings/prophesee_evt3_sample.raw").read_bytes()
    evt2 = need("recordings/prophesee_evt2_sample.raw").read_bytes()
    header = b"".join(line for line in evt3.splitlines(keepends=True)[:12] if line.startswith(b"%"))
    body = evt2[evt2.index(b"% evt 2.0\n") + len(b"% evt 2.0\n"):]
    p.write_bytes(header + body)
    return p, "cannot decode as Prophesee EVT3"


def _aedat3_behind_aedat_name(tmp_path):
    p = tmp_path / "new.aedat"
    p.write_bytes(b"#!AER-DAT3.1\r\n#Format: RAW\r\n#!END-HEADER\r\n" + bytes(28))
    return p, "only AEDAT 2.0"


def _other_format_behind_bin_name(tmp_path):
    p = tmp_path / "walk.bin"
    data = AEDAT2_HEADER + bytes(8 * 20)
    p.write_bytes(data[: len(data) // 5 * 5])
    return p, "not an N-MNIST file"


def _davis_aedat2(tmp_path):
    p = tmp_path / "davis.aedat"
    p.write_bytes(b"#!AER-DAT2.0\r\n# AEChip: eu.seebetter.ini.chips.davis.DAVIS240C\r\n" + bytes(16))
    return p, "DAVIS240C"


FILE_CASES = [
    _missing, _unsupported, _empty, _empty_nmnist, _truncated_nmnist, _other_format_behind_bin_name,
    _truncated_aedat4, _text_as_aedat4, _truncated_aedat2, _aedat3_behind_aedat_name, _davis_aedat2,
    _raw_without_header, _evt2_data_behind_evt3_header,
]


@pytest.mark.parametrize("case", FILE_CASES, ids=lambda c: c.__name__.strip("_"))
def test_read_events_error(case, tmp_path):
    path, words = case(tmp_path)
    with pytest.raises(InputError) as info:
        read_events(path)
    msg = str(info.value)
    assert str(path) in msg and words in msg
    assert "\n" not in msg


def test_unsupported_extension_lists_supported_ones(tmp_path):
    path, _ = _unsupported(tmp_path)
    with pytest.raises(InputError) as info:
        read_events(path)
    assert all(ext in str(info.value) for ext in SUPPORTED_EXTENSIONS)


def _not_a_dataset(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    (d / "cat.jpg").write_bytes(b"\xff\xd8")
    return d, "not a dataset folder"


def test_folder_that_is_not_a_dataset(tmp_path):
    path, words = _not_a_dataset(tmp_path)
    with pytest.raises(InputError, match=words) as info:
        open_dataset(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("case", FILE_CASES + [_not_a_dataset], ids=lambda c: c.__name__.strip("_"))
def test_cli_reports_one_line_and_exits_2(case, tmp_path):
    path, words = case(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "streamsnn", "info", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("streamsnn: error: ")
    assert str(path) in lines[0] and words in lines[0]
    assert "Traceback" not in proc.stderr
