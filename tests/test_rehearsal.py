"""Teaching one class must not erase the others: the rehearsal memory (snn/memory.py), kept from training and
from taught windows, saved in checkpoints, replayed after each window taught by feedback (issue 22)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import need

from streamsnn.errors import CheckpointError
from streamsnn.learn.training import load_split, train_epoch
from streamsnn.pipeline import Pipeline
from streamsnn.pipeline.segment import Window
from streamsnn.snn import SpikingNetwork

OLD = (0, 2, 3)  # the classes the base model knows; digit 1 is taught live


@pytest.fixture(scope="module")
def digits():
    """(training SampleArrays of OLD, test SampleArrays, real training 1s as EventBatches)."""
    from streamsnn.io import open_dataset

    folder = need("nmnist_small")
    probe = SpikingNetwork(arch="dense:1")
    train = load_split(folder, "train", probe, quiet=True)
    test = load_split(folder, "test", probe, quiet=True)
    train = train.pick([k for k, y in enumerate(train.labels) if y in OLD])
    ones = [s.load() for s in open_dataset(folder).split("train").samples if s.label == 1][:40]
    return train, test, ones


def base_model(train, seed=0) -> SpikingNetwork:
    labels = np.asarray([OLD.index(int(y)) for y in train.labels])
    net = SpikingNetwork(arch="dense:64", classes=[str(c) for c in OLD], seed=seed)
    data = _relabelled(train, labels)
    for ep in range(3):
        train_epoch(net, data, epoch=ep, epochs=3, seed=seed, quiet=True)
    net.memory.fill(net, data)
    return net


def _relabelled(train, labels):
    import copy

    data = copy.copy(train)
    data.labels = labels
    return data


def accuracy(net, test, classes) -> float:
    keep = [k for k, y in enumerate(test.labels) if int(y) in classes]
    names = net.classes
    right = [names[net.predict_indices(test.idx[k], test.t[k]).label] == str(int(test.labels[k])) for k in keep]
    return float(np.mean(right))


async def teach_ones(net, ones, rehearse: int) -> Pipeline:
    # the replay itself (model.new_class_fit replaces it for a class added by feedback: test_fewshot_protect.py)
    pipe = Pipeline(None, net, [], feedback_per_s=0, new_classes=True, max_classes=8, rehearse=rehearse,
                    new_class_fit=False)
    try:
        for b in ones:
            w = Window(b, b.t_start, b.t_end, b.sample, None)
            d, _ = pipe._worker.submit(pipe._decide, w).result()  # on the worker, as the daemon decides
            w.predicted = d.label
            pipe.recent.add(w)
            assert await pipe.apply_feedback({"sample": b.sample, "label": "1"})
    finally:
        pipe._worker.shutdown(wait=True)
    return pipe


async def test_teaching_only_a_new_class_keeps_the_old_ones_with_rehearsal(digits):
    train, test, ones = digits
    base = base_model(train)
    before = accuracy(base, test, OLD)
    assert before >= 0.8
    lost, new = {}, {}
    for rehearse in (0, 3):
        net = base_model(train)
        pipe = await teach_ones(net, ones, rehearse)
        assert pipe.counters.rehearsed == rehearse * len(ones)
        lost[rehearse] = before - accuracy(net, test, OLD)
        new[rehearse] = accuracy(net, test, (1,))
    assert new[3] >= 0.5 and new[0] >= 0.5  # the new class is learned either way
    assert lost[0] >= 0.2  # without replay the new unit takes over ...
    assert lost[3] <= lost[0] - 0.15  # ... with it the old classes keep most of what they knew


def test_the_memory_is_saved_with_the_model_and_older_files_load_without_it(digits, tmp_path):
    train, test, _ = digits
    net = base_model(train)
    assert [net.memory.count(c) for c in range(3)] == [10, 10, 10]
    net.save(tmp_path / "m.npz")
    back = SpikingNetwork.load(tmp_path / "m.npz")
    assert back.memory.labels == net.memory.labels
    assert all(np.array_equal(a, b) for a, b in zip(back.memory.idx, net.memory.idx))
    assert all(t is None for t in back.memory.t)  # not leaky: no times kept
    net.memory.labels, net.memory.idx, net.memory.t, net.memory._h = [], [], [], []
    net.save(tmp_path / "old.npz")  # as an older streamsnn wrote it: no memory arrays
    assert len(SpikingNetwork.load(tmp_path / "old.npz").memory) == 0


def test_a_damaged_memory_refuses_the_checkpoint_with_one_line(digits, tmp_path):
    train, _, _ = digits
    net = base_model(train)
    net.save(tmp_path / "m.npz")
    arrays = dict(np.load(tmp_path / "m.npz"))
    for name, bad in (("memory_label", arrays["memory_label"] + 5), ("memory_idx", arrays["memory_idx"] + 10**6),
                      ("memory_len", arrays["memory_len"] * 2)):
        np.savez(tmp_path / "bad.npz", **{**arrays, name: bad})
        with pytest.raises(CheckpointError, match="rehearsal memory is unusable") as exc:
            SpikingNetwork.load(tmp_path / "bad.npz")
        assert "\n" not in str(exc.value)


def test_removing_a_class_drops_its_examples_and_renumbers_the_others(digits):
    train, _, _ = digits
    net = base_model(train)
    before = [(y, a) for y, a in zip(net.memory.labels, net.memory.idx) if y == 2]
    net.remove_class("0")
    assert sorted(set(net.memory.labels)) == [0, 1]
    after = [a for y, a in zip(net.memory.labels, net.memory.idx) if y == 1]
    assert all(np.array_equal(a, b) for (_, a), b in zip(before, after))


def test_rehearsal_is_not_scored_or_counted_and_taught_windows_are_kept(digits):
    train, _, ones = digits
    net = base_model(train)
    seen, total = net.samples_seen, net.progressive_total
    updates = net.updates
    done = net.memory.rehearse(net, 0, 4, 0.1)
    assert done == 4 and net.updates == updates + 4
    assert (net.samples_seen, net.progressive_total) == (seen, total)
    assert net.memory.picks(net, 0, 3) and all(net.memory.labels[k] != 0 for k in net.memory.picks(net, 0, 3))
    new = net.add_class("1")
    net.memory.per_class = 2
    idx, _ = net.input_events(ones[0])
    for _ in range(3):  # the third replaces one of the two
        net.memory.add(idx, None, new)
    assert net.memory.count(new) == 2
    net.memory.add(idx, None, 0)  # a class above the bound (it was 10) is trimmed to it
    assert net.memory.count(0) == 2


def test_a_leaky_network_keeps_its_running_state_through_rehearsal(digits):
    train, _, ones = digits
    net = SpikingNetwork(arch="dense:32", classes=["a", "b"], seed=0, tau_us=50_000.0)
    for k in range(4):
        net.memory.add(train.idx[k], train.t[k], k % 2)
    idx, t = net.input_events(ones[0])
    net.predict_indices(idx, t)  # a running state, as the daemon's continuous stream leaves it
    state = [None if a is None else a.copy() for a in net.hidden[0].save_state()]  # None: no synaptic current
    assert net.memory.rehearse(net, 0, 2, 0.1) == 2
    after = net.hidden[0].save_state()
    assert len(after) == len(state) and all(a is b is None or np.array_equal(a, b) for a, b in zip(state, after))


def test_train_keeps_examples_of_every_class(tmp_path):
    from streamsnn.cli import main

    folder = need("poker_dvs_inverted")
    assert main(["train", "--data", str(folder), "--out", str(tmp_path / "p.npz"), "--epochs", "1", "--choose", "off",
                 "--quiet"]) == 0
    net = SpikingNetwork.load(tmp_path / "p.npz")
    assert sorted(set(net.memory.labels)) == list(range(net.n_classes))
    assert all(0 < net.memory.count(c) <= 10 for c in range(net.n_classes))
