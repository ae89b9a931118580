"""open_dataset on every layout, with real data: POKER-DVS class folders, AEDAT4 class folders on a bigger
sensor, flat lists with class names, labelled recordings, unlabelled DVS128 recordings; class order."""

import shutil

import numpy as np
import pytest
from conftest import need
from dataset_util import BIG_SENSOR, aedat4_class_folders, labelled_recording, nmnist_events, nmnist_picks, shifted

from streamsnn.errors import InputError
from streamsnn.io import open_dataset, read_events
from streamsnn.io.classes import class_name, class_order


# -- class order ---------------------------------------------------------------------------------
def test_class_order_numbers_are_indices_names_alphabetical():
    assert class_order(["5", "0", "9"]) == [str(d) for d in range(10)]  # digits keep their index
    assert class_order(["spade", "club", "diamond"]) == ["club", "diamond", "spade"]
    assert class_order(["2", "10", "x"]) == ["10", "2", "x"]  # not all numbers: alphabetical
    assert class_order(["1000", "2000"]) == ["1000", "2000"]  # too large to be indices: numeric order
    assert class_order([]) == []
    assert class_name(" 07 ") == "7" and class_name("club") == "club"


# -- class folders: POKER-DVS, real AEDAT 2.0 files --------------------------------------------
def test_poker_dvs_class_folders():
    ds = open_dataset(need("poker_dvs_inverted"))
    assert ds.layout == "class-folders" and ds.format == "AEDAT2 (DVS128)"
    assert ds.sensor_size == (128, 128)  # from the header, nothing decoded
    assert ds.classes == ["club", "diamond", "spade"]
    assert ds.split_counts() == {"train": 16, "test": 15} and len(ds) == 31
    assert ds.split("test").class_counts() == {"club": 6, "diamond": 4, "spade": 5}
    assert ds.events() is None  # not exact from AEDAT 2.0 file sizes
    s = {s.sample_id: s for s in ds}["xclub16i"]
    assert (s.split, s.label, s.label_name) == ("test", 0, "club")
    b = s.load()
    assert len(b) == 956 and b.label == 0 and b.meta["label_name"] == "club" and b.sample == "xclub16i"
    assert b.sensor_size == (128, 128)


def test_one_split_alone_keeps_names_and_a_missing_class_keeps_indices(tmp_path):
    test = open_dataset(need("poker_dvs_inverted/Test"))
    assert test.splits == ["test"] and test.classes == ["club", "diamond", "spade"] and len(test) == 15
    # a split without one class: indices come from the union of the splits
    src = need("poker_dvs_inverted")
    for split, cls in (("Train", "diamond"), ("Train", "spade"), ("Test", "spade")):
        shutil.copytree(src / split / cls, tmp_path / split / cls)
    ds = open_dataset(tmp_path)
    assert ds.classes == ["diamond", "spade"]
    assert {s.label for s in ds.split("test")} == {1}  # spade, as in train


def test_same_file_names_in_two_classes_get_distinct_ids(tmp_path):
    src = need("poker_dvs_inverted/Test/club/xclub16i.aedat")
    for cls in ("club", "spade"):
        (tmp_path / "train" / cls).mkdir(parents=True)
        (tmp_path / "train" / cls / "0001.aedat").symlink_to(src)
    ds = open_dataset(tmp_path)
    assert sorted(s.sample_id for s in ds) == ["train/club/0001", "train/spade/0001"]


# -- class folders: AEDAT4 written from N-MNIST onto a 96x72 sensor at an offset -----------------
@pytest.fixture(scope="module")
def aedat4_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("aedat4_classes")
    return root, aedat4_class_folders(root)


def test_aedat4_class_folders_on_a_bigger_sensor(aedat4_folders):
    root, written = aedat4_folders
    ds = open_dataset(root)
    assert ds.layout == "class-folders" and ds.format == "AEDAT4"
    assert ds.sensor_size == BIG_SENSOR  # from the AEDAT4 header
    digits = sorted({d for _, d in written.values()})
    assert ds.classes == [str(d) for d in range(max(digits) + 1)]
    assert ds.split_counts() == {"train": 6, "test": 4}
    for s in ds:
        split, digit = written[s.sample_id]
        assert (s.split, s.label, s.label_name) == (split, digit, str(digit))
    s = ds.split("test").samples[0]
    b = s.load()
    assert b.sensor_size == BIG_SENSOR and b.label == written[s.sample_id][1]
    np.testing.assert_array_equal(b.events, shifted(nmnist_events(s.sample_id)))


# -- flat folder with class names ------------------------------------------------------------
def test_flat_folder_with_class_names(tmp_path):
    src = need("poker_dvs_inverted")
    for f in src.rglob("*.aedat"):
        (tmp_path / f.name).symlink_to(f)
    train = [f for f in sorted((src / "Train").rglob("*.aedat"))]
    test = [f for f in sorted((src / "Test").rglob("*.aedat"))]
    (tmp_path / "train.txt").write_text("#sample #class\n" + "".join(f"{f.stem} {f.parent.name}\n" for f in train))
    (tmp_path / "test.txt").write_text("".join(f"{f.name}\t{f.parent.name}\r\n" for f in test))  # file names
    ds = open_dataset(tmp_path)
    assert ds.layout == "flat" and ds.classes == ["club", "diamond", "spade"]
    assert ds.split_counts() == {"train": 16, "test": 15} and ds.sensor_size == (128, 128)
    s = {s.sample_id: s for s in ds}["xclub16i"]
    assert s.split == "test" and s.load().meta["label_name"] == "club" and len(s.load()) == 956


def test_flat_list_naming_a_missing_file(tmp_path):
    (tmp_path / "train.txt").write_text("xclub99 club\n")
    with pytest.raises(InputError, match="xclub99"):
        open_dataset(tmp_path)


# -- labelled recordings ----------------------------------------------------------------------
def test_labelled_recording_is_cut_into_samples(tmp_path):
    rows = labelled_recording(tmp_path, "session1", nmnist_picks("test", 5))
    ds = open_dataset(tmp_path)
    assert ds.layout == "labelled-recordings" and ds.format == "AEDAT4" and ds.sensor_size == (34, 34)
    assert ds.splits == ["all"] and len(ds) == 5
    assert [s.sample_id for s in ds] == [f"session1#{k}" for k in range(1, 6)]
    assert ds.classes == class_order(c for c, *_ in rows)
    for s, (cls, start, end, events) in zip(ds, rows):
        assert (s.label_name, s.start_us, s.end_us) == (cls, start, end) and ds.classes[s.label] == cls
        b = s.load()
        np.testing.assert_array_equal(b.events, events)  # exactly that sample, nothing of its neighbours
        assert b.meta["label_name"] == cls and b.meta["segment_us"] == (start, end)


def test_labelled_recordings_split_by_folders_and_by_trial_lists(tmp_path):
    labelled_recording(tmp_path / "a" / "Train", "u1", nmnist_picks("train", 3), header=False)
    labelled_recording(tmp_path / "a" / "Test", "u2", nmnist_picks("test", 2))
    ds = open_dataset(tmp_path / "a")
    assert ds.split_counts() == {"train": 3, "test": 2}
    b = tmp_path / "b"
    labelled_recording(b, "u1", nmnist_picks("train", 3))
    labelled_recording(b, "u2", nmnist_picks("test", 2))
    (b / "trials_to_train.txt").write_text("u1.aedat4\n")
    (b / "trials_to_test.txt").write_text("u2.aedat4\n")
    assert open_dataset(b).split_counts() == {"train": 3, "test": 2}
    (b / "trials_to_test.txt").write_text("u2.aedat4\nu1.aedat4\n")  # in both lists: which split?
    with pytest.raises(InputError, match=r"trials_to_test.txt: line 2 lists 'u1.aedat4', which trials_to_train"):
        open_dataset(b)
    (b / "trials_to_test.txt").write_text("\n")
    with pytest.raises(InputError, match="u2.aedat4.*trials_to_train.txt"):
        open_dataset(b)


def test_labelled_recordings_of_one_split_folder_opened_alone(tmp_path):
    """A Test/ folder opened on its own is the test split, as class folders are; another name is 'all'."""
    labelled_recording(tmp_path / "Test", "u2", nmnist_picks("test", 2))
    assert open_dataset(tmp_path / "Test").split_counts() == {"test": 2}
    labelled_recording(tmp_path / "session", "u3", nmnist_picks("test", 2))
    assert open_dataset(tmp_path / "session").split_counts() == {"all": 2}


def test_label_times_are_absolute(tmp_path):
    rows = labelled_recording(tmp_path, "rec", nmnist_picks("test", 2))
    start = rows[0][1]
    # times written relative to the first event: no sample lies there, and the error says why
    (tmp_path / "rec_labels.csv").write_text(f"5,0,{rows[0][2] - start}\n")
    s = open_dataset(tmp_path).samples[0]
    with pytest.raises(InputError, match="absolute") as info:
        s.load()
    assert "rec.aedat4" in str(info.value) and "\n" not in str(info.value)


def test_label_file_without_its_recording(tmp_path):
    labelled_recording(tmp_path, "rec", nmnist_picks("test", 1))
    (tmp_path / "gone_labels.csv").write_text("3,1,2\n")
    with pytest.raises(InputError, match="gone_labels.csv: no recording gone.aedat4"):
        open_dataset(tmp_path)


def test_hidden_files_are_not_samples(tmp_path):
    d = tmp_path / "Train" / "club"
    d.mkdir(parents=True)
    (d / "xclub16i.aedat").symlink_to(need("poker_dvs_inverted/Test/club/xclub16i.aedat"))
    (d / "._xclub16i.aedat").write_bytes(b"\x00\x05\x16\x07")  # a macOS resource fork
    assert [s.sample_id for s in open_dataset(tmp_path)] == ["xclub16i"]


@pytest.mark.parametrize("line", ["5,300,200", "5,abc,400", "5,100", ",1,2"])
def test_bad_label_rows_name_file_and_line(tmp_path, line):
    labelled_recording(tmp_path, "rec", nmnist_picks("test", 1))
    (tmp_path / "rec_labels.csv").write_text(f"class,start,end\n3,1,2\n{line}\n")
    with pytest.raises(InputError, match=r"rec_labels.csv: line 3"):
        open_dataset(tmp_path)


# -- unlabelled recordings --------------------------------------------------------------------
def test_folder_of_unlabelled_dvs128_recordings():
    root = need("recordings/dvs128_aedat2")
    ds = open_dataset(root)
    assert ds.layout == "recordings" and not ds.is_labelled and ds.classes == []
    assert len(ds) == 11 and ds.splits == ["all"] and ds.sensor_size == (128, 128)
    assert all(s.label is None and s.label_name is None for s in ds)
    first = ds.samples[0].load()
    assert first.label is None and "label_name" not in first.meta and len(first) == len(read_events(ds.samples[0].path))
    with pytest.raises(InputError, match="unlabelled recordings; training and evaluation need labels"):
        ds.require_labels()


def test_mixed_formats_and_sensors_are_listed_but_sensor_unknown():
    ds = open_dataset(need("recordings"))
    assert ds.layout == "recordings" and ds.sensor_size is None
    assert ds.formats() == {"Prophesee EVT2/EVT3": 2, "AEDAT4": 1, "N-MNIST": 1}
