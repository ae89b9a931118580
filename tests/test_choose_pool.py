"""`train --jobs`: the settings search's candidates run side by side in worker processes, started before the outcome
of the candidate waited for is known (streamsnn/learn/choose_pool.py), and the search still tries, scores and
chooses exactly what it does one candidate after another."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal

import pytest
from conftest import need

from streamsnn.cli import build_parser, main
from streamsnn.commands._train_choose import NetMaker
from streamsnn.commands.train import plan
from streamsnn.errors import InputError
from streamsnn.learn import choose, choose_pool
from streamsnn.learn.training import load_split
from streamsnn.snn import SpikingNetwork

REAL_DEFAULT = choose_pool.default_jobs


def poker(epochs=4):
    """(make_net, training split) for POKER-DVS as `train` builds them (`NetMaker`: it pickles for the workers)."""
    data = need("poker_dvs_inverted")
    args = build_parser().parse_args(["train", "--data", str(data), "--out", "/tmp/x.npz", "--epochs", str(epochs)])
    net, s, _, _ = plan(args, lambda *a: None)
    rates = (s["lr"], s["lr_out"])
    return NetMaker(net, {False: rates, True: rates}, 0), load_split(data, "train", net, quiet=True)


def poker_search(jobs):
    """A search on POKER-DVS whose first candidate (lr x0.001) loses to the next (x1): the candidates started as built
    from the first one (augmentation toggled at x0.001) are of no use, and the search must build them again."""
    make_net, train = poker()
    said = []
    c = choose.search(make_net, train, choose.Candidate(), epochs=4, multipliers=(0.001, 1.0), seed=1, jobs=jobs,
                      progress=said.append)
    return c, said


def test_candidates_in_worker_processes_give_the_search_it_makes_alone():
    alone, said_alone = poker_search(1)
    side, said_side = poker_search(2)
    assert [r.candidate for r in side.results] == [r.candidate for r in alone.results]
    assert [r.candidate.lr_scale for r in alone.results] == [0.001, 1.0, 1.0]  # the winner of x1 toggled augment
    assert not alone.results[2].candidate.augment
    for a, b in zip(alone.results, side.results):
        assert (b.curve, b.best, b.epochs, b.accuracy) == (a.curve, a.best, a.epochs, a.accuracy)
    assert side.winner.candidate == alone.winner.candidate and side.record() == alone.record()
    assert said_side == said_alone and len(said_alone) == 3


def held_out(train):
    rest, held = choose.hold_out(train.labels)
    return train.pick(rest), train.pick(held)


def test_the_pool_runs_a_candidate_once_and_no_more_at_a_time_than_its_jobs():
    make_net, train = poker()
    rest, held = held_out(train)
    kw = dict(epochs=2, seed=0, fixed_epochs=True)
    cands = [choose.Candidate(lr_scale=m) for m in (1.0, 0.5, 0.25, 0.125)]
    with choose_pool.CandidatePool(2, choose.run_candidate, make_net, rest, held, kw) as pool:
        pool.ahead(cands)
        assert len(pool.started) == 2  # two started, the others wait for a free worker
        got = pool.result(cands[3])  # one not started yet starts when asked for
        first = pool.started[cands[0]]
        pool.ahead(cands)
        assert pool.started[cands[0]] is first and pool.result(cands[0]).candidate == cands[0]
    alone = choose.run_candidate(make_net, cands[3], rest, held, **kw)
    assert (got.candidate, got.curve, got.accuracy) == (alone.candidate, alone.curve, alone.accuracy)


def test_a_worker_that_dies_does_not_stop_the_search():
    make_net, train = poker()
    rest, held = held_out(train)
    kw = dict(epochs=2, seed=0, fixed_epochs=True)
    cand = choose.Candidate(lr_scale=0.5)
    with choose_pool.CandidatePool(1, choose.run_candidate, make_net, rest, held, kw) as pool:
        pool.ahead([cand])
        os.kill(pool.started[cand][0].pid, signal.SIGKILL)  # as the kernel's out-of-memory killer would
        got = pool.result(cand)
        assert pool.broken
        again = pool.result(choose.Candidate(lr_scale=0.25))  # the rest run here too
    alone = choose.run_candidate(make_net, cand, rest, held, **kw)
    assert (got.curve, got.accuracy) == (alone.curve, alone.accuracy) and again.candidate.lr_scale == 0.25


class Broken:
    """A network builder that fails as bad data would (it pickles: the workers import this module)."""

    def __call__(self, cand):
        raise InputError(f"sample 7 of {cand.lr_scale:g} is unreadable; record it again")


def test_an_error_in_a_worker_is_raised_here_as_the_search_alone_raises_it(capfd):
    make_net, train = poker()
    rest, held = held_out(train)
    kw = dict(epochs=1, seed=0, fixed_epochs=True)
    with choose_pool.CandidatePool(2, choose.run_candidate, Broken(), rest, held, kw) as pool:
        with pytest.raises(InputError, match="sample 7 of 0.5 is unreadable"):
            pool.result(choose.Candidate(lr_scale=0.5))
        assert not pool.broken
    assert "Traceback" not in capfd.readouterr().err  # the worker printed nothing of its own


@pytest.mark.parametrize("bad", ["0", "-1", "two"])
def test_train_says_a_bad_jobs_count_in_one_line(bad, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", str(need("poker_dvs_inverted")), "--jobs", bad])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and "--jobs" in err[-1] and "1 or more" in err[-1] and repr(bad) in err[-1]


def test_train_searches_with_two_workers_by_default_on_two_cpus(tmp_path, monkeypatch):
    """The default command on two CPUs (this machine's) runs the search with two jobs, and writes the same model as
    --jobs 1."""
    monkeypatch.setattr(choose_pool, "default_jobs", REAL_DEFAULT)  # (conftest's one_job sets 1 for other tests)
    monkeypatch.setattr(choose_pool, "usable_cpus", lambda: 2)
    seen = []
    real = choose_pool.CandidatePool.__init__

    def spy(self, jobs, *a):
        seen.append(jobs)
        real(self, jobs, *a)

    monkeypatch.setattr(choose_pool.CandidatePool, "__init__", spy)
    outs = {}
    for jobs in (None, "1"):
        out = tmp_path / f"m{jobs}.npz"
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert main(["train", "--data", str(need("poker_dvs_inverted")), "--choose", "on", "--epochs", "2",
                         "--out", str(out), "--json", *(["--jobs", jobs] if jobs else [])]) == 0
        outs[jobs] = json.loads(buf.getvalue())["chosen"]
        assert out.is_file()
    assert seen == [2]  # the default made a pool of two; --jobs 1 none
    assert outs[None] == outs["1"]
    a, b = SpikingNetwork.load(tmp_path / "mNone.npz"), SpikingNetwork.load(tmp_path / "m1.npz")
    assert (a.out_weight == b.out_weight).all()
    assert all((x.weight == y.weight).all() for x, y in zip(a.hidden, b.hidden))
