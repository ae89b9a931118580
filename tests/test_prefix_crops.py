"""Training items for temporal models: prefixes of a sample (the state a live window's decision reads) and items
preceded by another sample (what the previous gesture leaves in a live network), on real samples."""

from __future__ import annotations

import numpy as np
import pytest

from streamsnn.errors import ConfigError
from streamsnn.learn.augment import PrefixCrops, piece, prefix
from streamsnn.learn.training import load_split
from streamsnn.snn import SpikingNetwork
from tests.conftest import need, rigged_hits


@pytest.fixture(scope="module")
def real():
    """The first 30 real training samples as network input arrays."""
    return load_split(need("nmnist_small"), "train", SpikingNetwork(arch="dense:4"), limit=30, quiet=True)


def test_a_prefix_starts_with_the_sample_and_ends_at_a_cut_after_min_us(real):
    rng = np.random.default_rng(3)
    ends = []
    for k in range(len(real)):
        idx, t = real.idx[k], real.t[k]
        for _ in range(20):
            pi, pt = prefix(idx, t, 150_000, rng)
            np.testing.assert_array_equal(pt, t[:len(pt)])  # the first events, in order, none skipped
            np.testing.assert_array_equal(pi, idx[:len(pi)])
            # the cut falls after min_us: every event before t[0] + 150 ms is kept
            assert len(pt) >= np.searchsorted(t, t[0] + 150_000, side="left")
            ends.append((pt[-1] - t[0]) / (t[-1] - t[0]))
    ends = np.asarray(ends)
    # cuts spread over the rest of the sample (N-MNIST: 300 ms, so from about half of it to its end)
    assert ends.min() < 0.6 and (ends > 0.99).mean() < 0.2 and np.median(ends) < 0.9


def test_a_prefix_shorter_than_min_events_is_the_whole_sample(real):
    idx, t = real.idx[0], real.t[0]
    pi, pt = prefix(idx, t, 1, np.random.default_rng(0), min_events=len(t) + 1)
    assert len(pt) == len(t)
    short_t = t[:1]
    assert len(prefix(idx[:1], short_t, 150_000, np.random.default_rng(0))[1]) == 1


def test_prefix_crops_mix_whole_samples_and_prefixes_by_share_and_keep_the_label(real):
    tr = PrefixCrops(prefix=0.5, after=0.0)
    rng = np.random.default_rng(5)
    whole = 0
    for n in range(400):
        k = n % len(real)
        idx, t, label = tr(real, k, rng)
        assert label == real.labels[k] and len(idx) == len(t) and np.all(np.diff(t) >= 0)
        np.testing.assert_array_equal(t, real.t[k][:len(t)])
        whole += len(t) == len(real.t[k])
    assert 0.4 < whole / 400 < 0.65  # about half, plus the prefixes cut at the very end


def test_an_item_after_another_sample_joins_them_on_one_clock_under_the_later_label(real):
    tr = PrefixCrops(prefix=0.0, after=1.0)
    rng = np.random.default_rng(9)
    for k in range(len(real)):
        idx, t, label = tr(real, k, rng)
        own = real.t[k]
        assert label == real.labels[k]
        np.testing.assert_array_equal(t[-len(own):], own)  # this sample, last and untouched
        np.testing.assert_array_equal(idx[-len(own):], real.idx[k])
        before = t[:-len(own)]
        assert len(before) > 0 and before[-1] == own[0] - 1  # the other one ends 1 us before this one starts
        assert np.all(np.diff(t) >= 0)
        # the other sample is a real one, whole: its events with its own spacing
        matches = [j for j in range(len(real)) if j != k and len(real.t[j]) == len(before)
                   and np.array_equal(np.diff(real.t[j]), np.diff(before))]
        assert matches


def test_a_piece_is_a_stretch_from_inside_the_sample_of_the_asked_length(real):
    rng = np.random.default_rng(11)
    starts, spans = [], []
    for k in range(len(real)):
        idx, t = real.idx[k], real.t[k]
        for _ in range(20):
            pi, pt = piece(idx, t, (100_000, 200_000), rng, min_events=50)
            lo = int(np.searchsorted(t, pt[0], side="left"))
            np.testing.assert_array_equal(pt, t[lo:lo + len(pt)])  # consecutive events of the sample, none skipped
            np.testing.assert_array_equal(pi, idx[lo:lo + len(pi)])
            assert pt[-1] - pt[0] < 200_000
            starts.append((pt[0] - t[0]) / (t[-1] - t[0]))
            spans.append(pt[-1] - pt[0])
    starts, spans = np.asarray(starts), np.asarray(spans)
    # from anywhere inside: N-MNIST's 300 ms leave starts from 0 to about 2/3 of the sample
    assert (starts < 0.05).mean() < 0.2 and starts.max() > 0.5
    assert spans.min() > 80_000 and np.median(spans) > 120_000  # 100-200 ms asked (events thin out at the ends)


def test_a_piece_with_too_few_events_is_the_whole_sample(real):
    idx, t = real.idx[0], real.t[0]
    pi, pt = piece(idx, t, (1_000, 1_000), np.random.default_rng(0), min_events=len(t))
    assert len(pt) == len(t) and len(pi) == len(idx)


def test_prefix_crops_mix_pieces_prefixes_and_whole_samples_by_share(real):
    tr = PrefixCrops(prefix=0.5, after=0.0, piece=0.5)
    rng = np.random.default_rng(7)
    kinds = {"piece": 0, "prefix or whole": 0}
    for n in range(600):
        k = n % len(real)
        idx, t, label = tr(real, k, rng)
        assert label == real.labels[k] and len(idx) == len(t)
        kinds["prefix or whole" if t[0] == real.t[k][0] else "piece"] += 1
    assert 0.4 < kinds["piece"] / 600 < 0.6  # a piece may start at the sample's first event, rarely
    assert "50% pieces of 100-300 ms" in tr.describe() and "25% prefixes" in tr.describe()
    assert "pieces" not in PrefixCrops().describe()


def test_no_pieces_draws_the_items_as_before(real):
    """piece = 0 takes no draw of its own: the items are the ones the prefixes alone drew (one draw, then the cut),
    so models trained before the pieces came are trained the same way."""
    tr, ref = PrefixCrops(after=0.0), np.random.default_rng(4)
    rng = np.random.default_rng(4)
    for k in range(len(real)):
        i, t, _ = tr(real, k, rng)
        want_i, want_t = real.idx[k], real.t[k]
        if ref.random() < tr.prefix:
            want_i, want_t = prefix(want_i, want_t, tr.min_us, ref, tr.min_events)
        np.testing.assert_array_equal(t, want_t)
        np.testing.assert_array_equal(i, want_i)


@pytest.mark.parametrize("kw", [dict(prefix=1.5), dict(after=-0.1), dict(min_us=0), dict(min_events=-1),
                                dict(piece=1.1), dict(piece_us=(0, 10)), dict(piece_us=(300, 100)),
                                dict(min_piece_events=-1)])
def test_bad_shares_are_refused_with_one_line(kw):
    with pytest.raises(ConfigError):
        PrefixCrops(**kw)


def test_train_gives_a_temporal_model_prefixes_and_a_counting_one_crops():
    from streamsnn.learn.augment import StreamCrops, stream_items

    assert isinstance(stream_items(SpikingNetwork(arch="dense:4", learning="membrane", tau_us=50_000)), PrefixCrops)
    assert isinstance(stream_items(SpikingNetwork(arch="dense:4")), StreamCrops)
    assert stream_items(SpikingNetwork(arch="dense:4", learning="membrane", tau_us=50_000), pieces=0.5).piece == 0.5


def test_train_refuses_a_share_of_pieces_outside_0_to_1_in_one_line(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "streamsnn", "train", "--data", str(tmp_path), "--pieces", "1.5",
                          "--out", str(tmp_path / "m.npz")], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "--pieces is a share of training items in [0, 1], got 1.5" in out.stderr
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("argv, says", [
    (["--learning", "timing", "--delays", "3"], "learning 'timing' does not take input delays yet"),
    (["--learning", "timing", "--delay-ms", "100"], "learning 'timing' does not take input delays yet"),
    (["--delays", "1", "--delay-ms", "100"], "--delays 1 makes none: drop one of them"),
])
def test_train_refuses_delays_it_cannot_use_before_reading_data(tmp_path, capsys, argv, says):
    from streamsnn.cli import main

    assert main(["train", "--data", str(tmp_path / "nodata"), *argv, "--out", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and "\n" not in err and "nodata" not in err, err  # before the (missing) data are looked at


def test_pieces_for_a_temporal_model_with_choose_off_are_said_unused_and_not_recorded():
    from argparse import Namespace

    from streamsnn.commands._train_choose import temporal_stream_items

    net = SpikingNetwork(arch="dense:4", learning="membrane", tau_us=50_000)
    for choose, items, pieces, says in ((True, "prefixes and pieces", 0.5, "--choose tries prefixes"),
                                        (False, None, 0.0, "--choose off: no prefixes")):
        args = Namespace(stream_crops=True, pieces=0.5, epochs=1, layer_price=None)
        picked, said = {"choose": choose, "why": {"stream_crops": "samples last 300 ms"}}, []
        temporal_stream_items(args, net, {"epochs": 1}, "membrane", picked, {}, said.append)
        assert (picked["stream_items"], picked["pieces"], args.stream_crops) == (items, pieces, False)
        assert says in said[0], said


@pytest.mark.slow
def test_train_says_when_pieces_have_nothing_to_act_on(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "streamsnn", "train", "--data", str(need("nmnist_small")),
                          "--limit", "30", "--epochs", "1", "--learning", "counts", "--pieces", "0.5", "--choose",
                          "off", "--out", str(tmp_path / "m.npz")], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "--pieces 0.5 has no effect here" in out.stderr and (tmp_path / "m.npz").exists()


@pytest.mark.slow
@pytest.mark.parametrize("pieces", [0.0, 0.5])
def test_train_with_stream_crops_given_trains_a_temporal_model_on_prefixes(tmp_path, pieces):
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "streamsnn", "train", "--data", str(need("nmnist_small")),
                          "--limit", "60", "--epochs", "1", "--learning", "membrane", "--stream-crops", "--json",
                          "--choose", "off", "--pieces", str(pieces), "--out", str(tmp_path / "m.npz")],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["stream_crops"] is True and got["pieces"] == pieces
    assert got["stream_items"] == ("prefixes and pieces" if pieces else "prefixes")

    assert got["why"]["stream_crops"].startswith("--stream-crops")


def test_the_settings_search_trains_its_prefix_candidates_with_the_pieces_asked_for(monkeypatch):
    """`train --pieces` reaches the prefixes `--choose` tries: choose.search hands the share to run_candidate,
    which builds the temporal network's stream items with it (and none for a candidate without stream items)."""
    from streamsnn.learn import choose, training

    seen = []

    def epoch(net, rest, *, stream=None, **kw):
        seen.append(stream)
        return {"accuracy": 0.0}

    monkeypatch.setattr(training, "train_epoch", epoch)
    monkeypatch.setattr(choose, "hits", rigged_hits(lambda net, held: 0.5))
    make = lambda cand: SpikingNetwork(arch="dense:4", learning="membrane", tau_us=50_000)  # noqa: E731
    for cand in (choose.Candidate(stream=True), choose.Candidate(stream=False)):
        choose.run_candidate(make, cand, None, None, epochs=1, seed=0, fixed_epochs=True, pieces=0.5)
    assert isinstance(seen[0], PrefixCrops) and seen[0].piece == 0.5 and seen[1] is None

    got = []
    real_run = choose.run_candidate
    monkeypatch.setattr(choose, "run_candidate",
                        lambda *a, pieces=0.0, **kw: got.append(pieces) or real_run(*a, pieces=pieces, **kw))
    labels = np.repeat(np.arange(2), 4)
    data = training.SampleArrays([np.zeros(1, np.int32)] * 8, [np.zeros(1, np.int64)] * 8, labels,
                                 [str(k) for k in range(8)])
    choose.search(make, data, choose.Candidate(stream=False), epochs=1, vary_lr=False, vary_augment=False,
                  vary_stream=True, fixed_epochs=True, pieces=0.25)
    assert got and set(got) == {0.25}
    assert any(isinstance(s, PrefixCrops) and s.piece == 0.25 for s in seen[2:])
