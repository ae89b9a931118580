"""Inputs and outputs of the synthetic camera: MNIST idx files, PNG folders, font digits, the N-MNIST
encoder (checked against tonic and the original files), SyntheticSource and `streamsnn synth`."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from conftest import need

from streamsnn.cli import main
from streamsnn.errors import ConfigError, InputError
from streamsnn.events import make_events
from streamsnn.io.mnist_idx import load_mnist, read_idx
from streamsnn.synth import SaccadeCamera
from streamsnn.synth.images import font_digits, png_digits
from streamsnn.synth.writer import encode_nmnist, write_label_list

TONIC_DTYPE = np.dtype([("x", "<i4"), ("y", "<i4"), ("t", "<i8"), ("p", "<i4")])


@pytest.fixture(scope="module")
def mnist():
    return load_mnist(need("mnist"))


# -- MNIST idx ---------------------------------------------------------------------------------
def test_mnist_test_split_facts(mnist):
    images, labels = mnist
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8 and labels.shape == (10000,)
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # MNIST's well-known first test labels
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert images.max() == 255 and images[:, 0, 0].max() == 0


def test_idx_gzip_or_plain_and_bad_files(tmp_path):
    gz = need("mnist/t10k-labels-idx1-ubyte.gz")
    plain = tmp_path / "labels-idx1-ubyte"
    plain.write_bytes(gzip.decompress(gz.read_bytes()))
    assert np.array_equal(read_idx(gz), read_idx(plain))
    cut = tmp_path / "cut"
    cut.write_bytes(plain.read_bytes()[:500])
    with pytest.raises(InputError, match="truncated"):
        read_idx(cut)
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x89PNG not an idx file")
    with pytest.raises(InputError, match="not an MNIST idx file"):
        read_idx(junk)
    with pytest.raises(InputError, match="cannot read"):
        read_idx(tmp_path / "missing")
    with pytest.raises(InputError, match="t10k-images-idx3-ubyte"):
        load_mnist(tmp_path)


# -- N-MNIST encoder ---------------------------------------------------------------------------
def test_encoder_reproduces_the_original_files_byte_for_byte():
    import tonic.io

    for k in (1, 60001, 60100):
        path = need(f"nmnist_small/{k}.bs2")
        raw = tonic.io.read_mnist_file(str(path), dtype=TONIC_DTYPE)
        assert encode_nmnist(make_events(raw["t"], raw["x"], raw["y"], raw["p"])) == path.read_bytes()


def test_encoder_round_trip_through_tonic(tmp_path):
    import tonic.io

    rng = np.random.default_rng(0)
    t = np.sort(rng.integers(0, 1 << 23, 5000))
    t[-1] = (1 << 23) - 1  # the largest timestamp the format holds
    ev = make_events(t, rng.integers(0, 34, 5000), rng.integers(0, 34, 5000), rng.integers(0, 2, 5000))
    f = tmp_path / "x.bin"
    f.write_bytes(encode_nmnist(ev))
    back = tonic.io.read_mnist_file(str(f), dtype=TONIC_DTYPE)
    for k in "txyp":
        assert np.array_equal(back[k], ev[k].astype(np.int64))
    with pytest.raises(InputError, match="timestamps"):
        encode_nmnist(make_events([1 << 23], [0], [0], [1]))
    with pytest.raises(InputError, match="239"):
        encode_nmnist(make_events([0], [240], [0], [1]))


def test_label_list_format(tmp_path):
    write_label_list(tmp_path / "test.txt", {"101": 6, "102": 0})
    assert (tmp_path / "test.txt").read_bytes() == b"#sample #class\r\n101\t6\r\n102\t0\r\n"


# -- PNG folders and font digits ---------------------------------------------------------------
def test_png_folder_labels_and_inversion(tmp_path, mnist):
    from PIL import Image

    images, labels = mnist
    (tmp_path / "3").mkdir()
    Image.fromarray(images[0]).save(tmp_path / "3" / "a.png")
    Image.fromarray(255 - images[1]).save(tmp_path / "7_b.png")  # dark digit on white paper
    Image.fromarray(images[2]).resize((56, 56)).save(tmp_path / "c.png")  # no label, other size
    digits = {d.name: d for d in png_digits(tmp_path)}
    assert set(digits) == {"png-3/a", "png-7_b", "png-c"}
    assert digits["png-3/a"].label == 3 and digits["png-7_b"].label == 7 and digits["png-c"].label is None
    assert np.array_equal(digits["png-3/a"].image, images[0])
    assert np.array_equal(digits["png-7_b"].image, images[1])  # inverted back to bright on dark
    assert digits["png-c"].image.shape == (28, 28)
    assert np.abs(digits["png-c"].image.astype(int) - images[2]).mean() < 10
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="broken.png"):
        png_digits(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no .png files"):
        png_digits(tmp_path / "empty")


def test_font_digits_look_like_mnist():
    a = list(font_digits(30, seed=4))
    b = list(font_digits(30, seed=4))
    assert [d.label for d in a] == [d.label for d in b] and all(np.array_equal(x.image, y.image) for x, y in zip(a, b))
    assert not all(np.array_equal(x.image, y.image) for x, y in zip(a, font_digits(30, seed=5)))
    assert set(d.label for d in a) <= set(range(10)) and len(set(d.label for d in a)) >= 6
    for d in a:
        img = d.image.astype(float)
        assert d.image.shape == (28, 28) and d.image.dtype == np.uint8 and img.max() > 200
        ys, xs = np.indices(img.shape)
        cy, cx = (ys * img).sum() / img.sum(), (xs * img).sum() / img.sum()
        assert abs(cy - 14) < 3 and abs(cx - 14) < 3  # centred by mass, as in MNIST
        assert img[:2].max() < 50 and img[-2:].max() < 50  # a dark margin around the glyph
    # Random stroke width and size: ink area varies between renderings of the digits.
    ink = [np.count_nonzero(d.image > 128) for d in a]
    assert max(ink) > 1.8 * min(ink)


# -- SyntheticSource -----------------------------------------------------------------------------
async def test_source_yields_one_labelled_sample_per_image(mnist):
    from streamsnn.sources.synthetic import SyntheticSource

    images, labels = mnist
    src = SyntheticSource(images=images[100:103], labels=labels[100:103], speed=0, seed=2)
    got = [b async for b in src]
    assert [b.sample for b in got] == ["synth-1", "synth-2", "synth-3"]
    assert [b.label for b in got] == labels[100:103].tolist()
    assert all(b.meta["end_of_sample"] and b.sensor_size == (34, 34) and len(b) > 500 for b in got)
    assert src.counters["samples"] == 3
    # The same seed makes the same recordings as a camera used directly.
    cam = SaccadeCamera(seed=2)
    assert all(np.array_equal(b.events, cam.events(images[100 + i])) for i, b in enumerate(got))


async def test_source_loop_limit_and_font_digits():
    from streamsnn.sources.synthetic import SyntheticSource

    img = np.zeros((28, 28), np.uint8)
    img[6:22, 12:16] = 255
    looped = [b async for b in SyntheticSource(images=[img, 255 - img], speed=0, loop=True, limit=5)]
    assert [b.meta["pass"] for b in looped] == [0, 0, 1, 1, 2] and [b.meta["index"] for b in looped] == [0, 1, 0, 1, 0]
    assert all(b.label is None for b in looped)
    async with SyntheticSource(speed=0, limit=4, seed=1) as src:
        fonts = [b async for b in src]
    assert len(fonts) == 4 and all(b.label in range(10) and len(b) > 500 for b in fonts)
    with pytest.raises(ConfigError):
        SyntheticSource(images=[img], labels=[1, 2])
    with pytest.raises(ConfigError):
        SyntheticSource(speed=-1)


async def test_source_from_path_picks_the_input(tmp_path, mnist):
    from PIL import Image

    from streamsnn.sources.synthetic import SyntheticSource

    src = SyntheticSource.from_path(need("mnist"), first=101, count=2, speed=0)
    got = [b async for b in src]
    assert [b.sample for b in got] == ["mnist-101", "mnist-102"]
    assert [b.label for b in got] == mnist[1][100:102].tolist()
    Image.fromarray(mnist[0][0]).save(tmp_path / "7_a.png")
    got = [b async for b in SyntheticSource.from_path(tmp_path, speed=0)]
    assert [(b.sample, b.label) for b in got] == [("png-7_a", 7)]
    assert SyntheticSource.from_path(None).digits is None and SyntheticSource.from_path("font").digits is None
    with pytest.raises(InputError, match="not a folder"):
        SyntheticSource.from_path(tmp_path / "nope")


async def test_source_in_chunks_like_a_live_camera(mnist):
    from streamsnn.events import EventBatch
    from streamsnn.sources.synthetic import SyntheticSource

    images, labels = mnist
    whole = [b async for b in SyntheticSource(images=images[100:102], labels=labels[100:102], speed=0)]
    parts = [b async for b in SyntheticSource(images=images[100:102], labels=labels[100:102], speed=0,
                                              chunk_us=10_000)]
    ends = [i for i, b in enumerate(parts) if b.meta["end_of_sample"]]
    assert len(ends) == 2 and ends[-1] == len(parts) - 1 and len(parts) > 40
    first = EventBatch.concatenate(parts[:ends[0] + 1])
    assert np.array_equal(first.events, whole[0].events) and first.label == labels[100]
    assert all(b.duration_us < 10_000 for b in parts)


async def test_source_aclose_stops_an_endless_stream():
    from streamsnn.sources.synthetic import SyntheticSource

    src = SyntheticSource(speed=0)
    n = 0
    async for _ in src:
        n += 1
        if n == 3:
            await src.aclose()
    assert n == 3


# -- streamsnn synth ---------------------------------------------------------------------------
def test_synth_command_writes_a_dataset_open_dataset_reads(tmp_path, mnist, capsys):
    from streamsnn.io.dataset import open_dataset

    images, labels = mnist
    out = tmp_path / "synth"
    assert main(["synth", "--mnist", str(need("mnist")), "--first", "101", "--count", "6",
                 "--out", str(out), "--split", "test", "--seed", "3"]) == 0
    assert "wrote 6 samples" in capsys.readouterr().out
    ds = open_dataset(out)
    assert ds.splits == ["test"] and len(ds) == 6
    assert [s.sample_id for s in ds.samples] == [str(k) for k in range(101, 107)]
    assert [s.label for s in ds.samples] == labels[100:106].tolist()
    cam = SaccadeCamera(seed=3)
    for i, s in enumerate(ds.samples):
        b = s.load()
        assert b.sensor_size == (34, 34) and b.label == labels[100 + i]
        assert np.array_equal(b.events, cam.events(images[100 + i]))
    assert (out / "synth.json").is_file()


def test_a_second_split_written_beside_the_first_never_overwrites_it(tmp_path, capsys):
    """`synth --split test` into a folder holding the training split used to write its samples 1..N over the
    training files (their labels then wrong, and the same files in both lists)."""
    import json

    from streamsnn.io.dataset import open_dataset

    out = tmp_path / "s"
    assert main(["synth", "--font", "--count", "3", "--out", str(out), "-q"]) == 0
    before = {p.name: p.read_bytes() for p in out.glob("*.bin")}
    for _ in range(2):  # writing either split again gives the same files
        assert main(["synth", "--font", "--count", "2", "--split", "test", "--seed", "7", "--out", str(out), "-q"]) == 0
        assert main(["synth", "--font", "--count", "3", "--out", str(out), "-q"]) == 0
    assert {p.name: p.read_bytes() for p in out.glob("*.bin") if p.name in before} == before
    ds = open_dataset(out)
    train, test = ([s.sample_id for s in ds.samples if s.split == sp] for sp in ("train", "test"))
    assert train == ["1", "2", "3"] and test == ["4", "5"] and sorted(p.name for p in out.glob("*.bin")) == [
        "1.bin", "2.bin", "3.bin", "4.bin", "5.bin"]
    meta = json.loads((out / "synth.json").read_text())
    assert meta["split"] == "train" and [r["split"] for r in meta["other_splits"]] == ["test"]
    assert meta["other_splits"][0]["seed"] == 7
    # MNIST samples keep their image numbers: a clash is refused, and nothing is written
    mn = tmp_path / "m"
    assert main(["synth", "--mnist", str(need("mnist")), "--first", "1", "--count", "3", "--out", str(mn), "-q"]) == 0
    capsys.readouterr()
    assert main(["synth", "--mnist", str(need("mnist")), "--first", "3", "--count", "2", "--split", "test",
                 "--out", str(mn), "-q"]) == 2
    assert "already holds sample 3 (1 in all)" in capsys.readouterr().err
    assert not (mn / "test.txt").exists() and sorted(p.name for p in mn.glob("*.bin")) == ["1.bin", "2.bin", "3.bin"]


def test_synth_command_font_png_and_params(tmp_path, mnist):
    from PIL import Image

    from streamsnn.io.dataset import open_dataset

    assert main(["synth", "--font", "--count", "4", "--out", str(tmp_path / "f"), "-q"]) == 0
    ds = open_dataset(tmp_path / "f")
    assert ds.splits == ["train"] and len(ds) == 4 and all(s.label in range(10) for s in ds.samples)
    pngs = tmp_path / "pngs"
    pngs.mkdir()
    for k in range(3):
        Image.fromarray(mnist[0][k]).save(pngs / f"{mnist[1][k]}_{k}.png")
    coarse, fine = tmp_path / "coarse", tmp_path / "fine"
    assert main(["synth", "--png", str(pngs), "--out", str(coarse), "-q", "--param", "threshold_on=0.5",
                 "--param", "threshold_off=0.5"]) == 0
    assert main(["synth", "--png", str(pngs), "--out", str(fine), "-q"]) == 0
    a, b = open_dataset(coarse), open_dataset(fine)
    assert [s.label for s in a.samples] == sorted(mnist[1][:3].tolist())  # files in name order
    assert sum(s.n_events for s in a.samples) < 0.75 * sum(s.n_events for s in b.samples)


@pytest.mark.parametrize("argv,message", [
    (["--png", "{tmp}/none"], "does not exist"),
    (["--mnist", "{tmp}"], "t10k-images-idx3-ubyte"),
    (["--font", "--param", "thresh=1"], "KEY=VALUE"),
    (["--font", "--param", "threshold_on=-1"], "thresholds must be positive"),
    (["--font", "--count", "0"], "--count"),
    (["--png", "{tmp}/unlabelled"], "has no label"),
])
def test_synth_command_errors_are_one_line(tmp_path, capsys, argv, message):
    from PIL import Image

    (tmp_path / "unlabelled").mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "unlabelled" / "x.png")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["synth", *argv, "--out", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("streamsnn: error:") and message in err and err.count("\n") == 1


async def test_chunks_run_on_one_clock_like_a_camera(mnist):
    from streamsnn.sources.synthetic import SyntheticSource

    images, labels = mnist
    src = SyntheticSource(images=images[100:103], labels=labels[100:103], speed=0, chunk_us=20_000)
    parts = [b async for b in src]
    length_us = int(src.camera.params.length * 1000)
    t = np.concatenate([b.events["t"] for b in parts])
    assert np.all(np.diff(t) >= 0)  # never goes back: sliding windows see one stream
    starts = [b.t_start for a, b in zip(parts, parts[1:]) if a.meta["index"] != b.meta["index"]]
    assert [s // length_us for s in starts] == [1, 2]  # sample k starts k recording lengths in
