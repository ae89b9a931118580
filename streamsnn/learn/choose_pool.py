"""The settings search's candidates trained side by side (`train --jobs`): worker processes, and speculation.

`choose.search` is a coordinate search: each step's candidate is built from the best so far, so its runs follow
one another. With `jobs` worker processes it still decides exactly as it would alone, one candidate after another
in the same order, but it starts the next candidates before it knows the outcome of the one it waits for, built
from the best so far as if no candidate in between wins (the default wins most steps). When one does win, the
started candidates built from the old best are not used (a worker still on one is stopped when the search ends)
and the next ones are built from the new best. A candidate's run depends only on itself, the seed and the data
(`choose.run_candidate`), not on the process that ran it or on what ran before, so the search tries, scores and
chooses the same candidates, with the same held-out curves, as with one job (a test checks it).

Each candidate runs in a process of its own, started fresh ("spawn", not forked from a process that may hold other
threads' locks), which gets the network builder (it must pickle: `train` gives a `NetMaker`), the training and held-out
samples, and sends back its Result: a few seconds to start against minutes of training. A worker that dies (out of
memory, killed) does not stop the search: that candidate runs in this process, and so do the rest.
"""

from __future__ import annotations

import multiprocessing
import os


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_jobs() -> int:
    """`train --jobs`'s default: the usable CPUs, at most 2 (a third worker would mostly run candidates the search
    does not use: a step waits on one candidate and the next is built from its outcome)."""
    return max(1, min(2, usable_cpus()))


def _child(conn, job, cand) -> None:
    """A worker: runs `cand` and sends back ("ok", its Result), or ("error", what it raised) for this process to
    raise as the search alone would have. Ctrl-C is the parent's to handle (it stops the workers)."""
    import pickle
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    run, make_net, rest, held, kw = job
    try:
        out = ("ok", run(make_net, cand, rest, held, **kw))
    except Exception as exc:  # noqa: BLE001 (sent back whole)
        try:
            pickle.dumps(exc)
            out = ("error", exc)
        except Exception:  # noqa: BLE001
            out = ("error", RuntimeError(f"{type(exc).__name__}: {exc}"))
    conn.send(out)
    conn.close()


class CandidatePool:
    """Candidates run by `run` (`choose.run_candidate`, handed over: choose imports this module) in worker processes,
    at most `jobs` at a time, each once (kept by candidate), one process per candidate. `ahead(cands)`: start the
    first of `cands` not started yet while fewer than `jobs` run; `result(cand)`: its Result (started now if it was
    not), waiting for it. Close it (`with`) to stop the workers still running."""

    def __init__(self, jobs: int, run, make_net, rest, held, kw: dict):
        self.jobs, self.job = jobs, (run, make_net, rest, held, kw)
        self.ctx = multiprocessing.get_context("spawn")
        self.started: dict = {}  # candidate -> (process, its end of the pipe)
        self.done: dict = {}     # candidate -> Result
        self.broken = False

    def running(self) -> int:
        return sum(c not in self.done and p.is_alive() for c, (p, _) in self.started.items())

    def _start(self, cand) -> None:
        get, put = self.ctx.Pipe(duplex=False)
        p = self.ctx.Process(target=_child, args=(put, self.job, cand), daemon=True)
        p.start()
        put.close()  # the child's end: when the child is gone, get.recv() ends instead of waiting
        self.started[cand] = (p, get)

    def ahead(self, cands) -> None:
        for cand in cands:
            if self.broken or self.running() >= self.jobs:
                return
            if cand not in self.started:
                self._start(cand)

    def result(self, cand):
        if cand in self.done:
            return self.done[cand]
        if cand not in self.started and not self.broken:
            self._start(cand)
        if cand in self.started:
            p, get = self.started[cand]
            try:
                tag, got = get.recv()
            except (EOFError, OSError):  # the worker died (out of memory, killed): this one and the rest run here
                self.broken = True
            else:
                p.join()
                if tag == "error":
                    raise got
                self.done[cand] = got
                return got
        run, make_net, rest, held, kw = self.job
        self.done[cand] = run(make_net, cand, rest, held, **kw)
        return self.done[cand]

    def close(self) -> None:
        for p, get in self.started.values():
            if p.is_alive():  # a speculative candidate still running is of no use now
                p.terminate()
            p.join()
            get.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
