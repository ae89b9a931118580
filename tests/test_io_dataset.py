"""open_dataset on both layouts: the real flat folder with label lists, and a tonic layout built in tmp."""

import shutil

import pytest
from conftest import need

from streamsnn.errors import InputError
from streamsnn.io import open_dataset, read_events
from streamsnn.io.labellists import read_label_list


def test_flat_folder_counts():
    ds = open_dataset(need("nmnist_small"))
    assert len(ds) == 1100
    assert ds.splits == ["train", "test"]
    assert len(ds.split("train")) == 1000 and len(ds.split("test")) == 100
    assert ds.classes == [str(d) for d in range(10)]  # digits are their own class index
    assert sum(ds.class_counts().values()) == 1100
    assert ds.split("test").class_counts()["8"] == 2  # the data README: digit 8 has only 2 test samples
    assert ds.split("test").classes == ds.classes
    first = ds.samples[0]
    assert first.sample_id == "1" and first.label == 5 and first.label_name == "5" and first.split == "train"
    b = first.load()
    assert len(b) == 4681 and b.label == 5 and b.sample == "1" and b.meta["label_name"] == "5"


def test_label_list_tolerates_crlf_and_spaces(tmp_path):
    lst = tmp_path / "train3.txt"
    lst.write_bytes(b"#sample #class\r\n1\t5\r\n2   0\r\n\r\n3 4\n4.bs2 7\r\n")
    assert read_label_list(lst) == {"1": 5, "2": 0, "3": 4, "4": 7}


def test_label_list_class_names_may_hold_spaces_after_a_tab_and_the_list_a_byte_order_mark(tmp_path, caplog):
    """`big dog` and `big cat` (tab-separated) were both read as `big`: two classes merged without a word; a byte-order
    mark (Notepad) made a sample named "\ufeff#sample"; `./3.bs2` was not a file name. A third column or a trailing
    comment is still ignored, and a space-separated line with more fields is named in one WARNING."""
    import logging

    from streamsnn.io.labellists import read_labels

    src = need("nmnist_small")
    for k in (1, 2, 3, 4, 5, 6):
        shutil.copy(src / f"{k}.bs2", tmp_path / f"{k}.bs2")
    lst = tmp_path / "train.txt"
    lst.write_bytes("\ufeff#sample #class\r\n1\tbig dog\r\n2\tbig  cat\tok\r\n./3.bs2\tbig dog\n4\tsmall dog  # x\n"
                    "5 small dog\n6 small ok  # seen\n".encode())
    with caplog.at_level(logging.WARNING, logger="streamsnn.io.labellists"):
        got = read_labels(lst)
    assert got == {"1": "big dog", "2": "big cat", "3": "big dog", "4": "small dog", "5": "small", "6": "small"}
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "2 line(s) hold more than two space-separated fields" in said[0]
    assert sorted(open_dataset(tmp_path).classes) == ["big cat", "big dog", "small", "small dog"]


def test_a_sample_listed_twice_is_refused_when_the_lists_disagree(tmp_path):
    """A sample listed twice with two classes took the last one without a word, and a sample in both the
    training and the test list was trained on and then scored."""
    src = need("nmnist_small")
    for k in (1, 2, 3):
        shutil.copy(src / f"{k}.bs2", tmp_path / f"{k}.bs2")
    lst = tmp_path / "train.txt"
    lst.write_text("#sample #class\n1 5\n2 0\n1 5\n")  # the same line twice: harmless
    assert read_label_list(lst) == {"1": 5, "2": 0}
    lst.write_text("#sample #class\n1 5\n2 0\n1 3\n")
    with pytest.raises(InputError, match=r"line 4 gives sample 1 class '3', but line 2 gave it '5'"):
        read_label_list(lst)
    lst.write_text("#sample #class\n1 5\n2 0\n")
    (tmp_path / "test.txt").write_text("#sample #class\n3 4\n2 0\n")
    with pytest.raises(InputError, match=r"lists sample 2, which train.txt lists too \(a sample in both splits"):
        open_dataset(tmp_path)
    (tmp_path / "test.txt").write_text("#sample #class\n3 4\n")
    (tmp_path / "train_more.txt").write_text("#sample #class\n2 0\n1 6\n")
    with pytest.raises(InputError, match=r"lists sample 1, which train.txt lists too \(there with class '5', here"):
        open_dataset(tmp_path)
    (tmp_path / "train_more.txt").write_text("#sample #class\n2 0\n")  # agrees: read once
    ds = open_dataset(tmp_path)
    assert sorted((s.split, s.sample_id) for s in ds.samples) == [("test", "3"), ("train", "1"), ("train", "2")]


def test_info_on_one_file_ignores_a_text_file_beside_it_that_is_no_label_list(tmp_path, capsys):
    """`info 1.bs2` failed on a `train_help.txt` beside it ("line 2 is '[--quiet]'"); its label still comes from a
    real list there."""
    from streamsnn.cli import main

    shutil.copy(need("nmnist_small") / "1.bs2", tmp_path / "1.bs2")
    (tmp_path / "train_help.txt").write_text("usage: streamsnn train\n  [--quiet]\n")
    assert main(["info", str(tmp_path / "1.bs2")]) == 0
    (tmp_path / "train1.txt").write_text("#sample #class\n1 5\n")
    assert main(["info", str(tmp_path / "1.bs2"), "--json"]) == 0
    assert '"label": 5' in capsys.readouterr().out


def test_flat_folder_with_missing_sample_file(tmp_path):
    (tmp_path / "test1.txt").write_text("#sample #class\n7 3\n")
    with pytest.raises(InputError, match="7"):
        open_dataset(tmp_path)


def test_unknown_split_lists_the_available_ones():
    with pytest.raises(InputError, match="train, test"):
        open_dataset(need("nmnist_small")).split("validation")


@pytest.fixture
def tonic_layout(tmp_path):
    """Train/<digit>/ and Test/<digit>/ holding links to a few real samples (tmp only)."""
    src = need("nmnist_small")
    train = read_label_list(src / "train1K.txt")
    test = read_label_list(src / "test100.txt")
    picks = {"Train": list(train.items())[:6], "Test": list(test.items())[:3]}
    for split, items in picks.items():
        for sample_id, label in items:
            d = tmp_path / "NMNIST" / split / str(label)
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{sample_id}.bin").symlink_to(src / f"{sample_id}.bs2")
    return tmp_path / "NMNIST", picks


def test_tonic_layout(tonic_layout):
    root, picks = tonic_layout
    ds = open_dataset(root)
    assert ds.layout == "class-folders"
    assert ds.splits == ["train", "test"]
    assert len(ds.split("train")) == 6 and len(ds.split("test")) == 3
    expected = {}
    for items in picks.values():
        for _, label in items:
            expected[str(label)] = expected.get(str(label), 0) + 1
    assert {k: v for k, v in ds.class_counts().items() if v} == expected
    # digits are their own index even when some digits are absent
    assert ds.classes == [str(d) for d in range(max(int(k) for k in expected) + 1)]
    by_id = {s.sample_id: s for s in ds.samples}
    sample_id, label = picks["Test"][0]
    b = by_id[sample_id].load()
    assert b.label == label and b.sample == sample_id and (b.width, b.height) == (34, 34)
    # A single file of that layout knows its label from its <digit>/ folder.
    single = read_events(root / "Test" / str(label) / f"{sample_id}.bin")
    assert single.label == label and single.sample == sample_id


def test_folder_holding_tonic_download(tonic_layout):
    root, _ = tonic_layout  # tmp/NMNIST/{Train,Test}, as tonic.datasets.NMNIST(save_to=tmp) leaves it
    ds = open_dataset(root.parent)
    assert ds.root == root and ds.layout == "class-folders" and ds.splits == ["train", "test"]


def test_one_split_folder_of_the_tonic_layout(tonic_layout):
    root, picks = tonic_layout
    ds = open_dataset(root / "Test")
    assert ds.splits == ["test"] and len(ds) == len(picks["Test"])
    assert sorted(s.sample_id for s in ds) == sorted(i for i, _ in picks["Test"])


def test_load_all_returns_every_sample(tonic_layout):
    root, _ = tonic_layout
    ds = open_dataset(root).split("test")
    batches = ds.load_all(progress=True)
    assert [b.sample for b in batches] == [s.sample_id for s in ds.samples]
    assert all(b.label == s.label for b, s in zip(batches, ds.samples))


def test_empty_split_folders_are_rejected(tmp_path):
    (tmp_path / "Train").mkdir()
    with pytest.raises(InputError, match=str(tmp_path)):
        open_dataset(tmp_path)


def test_copy_of_flat_folder_in_tmp_keeps_labels(tmp_path):
    src = need("nmnist_small")
    shutil.copy(src / "test100.txt", tmp_path / "test100.txt")
    for sample_id in read_label_list(src / "test100.txt"):
        (tmp_path / f"{sample_id}.bs2").symlink_to(src / f"{sample_id}.bs2")
    ds = open_dataset(tmp_path)
    assert ds.splits == ["test"] and len(ds) == 100
    assert ds.class_counts() == open_dataset(src).split("test").class_counts()
