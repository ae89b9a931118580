"""Shared fixtures: where the real event-camera data lives, and skipping cleanly when it is absent."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A command started in the background by a script (`cmd &` without job control, as CI runners and `nohup ... &`
# start the tests) has Ctrl-C ignored, and every process it starts inherits that: a Python child then never turns
# SIGINT into KeyboardInterrupt, so the tests that press Ctrl-C on a command would see it ignored (exit 0 after the
# sample was recorded, a stuck `info` not stopping). The tests' own commands start as from a terminal instead.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
#: Real data shared beside the repository (never copied into it); override with STREAMSNN_TEST_DATA.
DATA = Path(os.environ.get("STREAMSNN_TEST_DATA", ROOT.parent / "shared" / "data")).resolve()


def need(relpath: str) -> Path:
    """Path of a file or folder under the shared data, or skip the test saying what is missing."""
    p = DATA / relpath
    if not p.exists():
        pytest.skip(f"real data not found: {p} (tests read ../shared/data beside the repository)")
    return p


def rigged_hits(accuracy, n: int = 100):
    """A stand-in for ``choose.hits`` from one giving an accuracy: ``accuracy(net, held)`` as ``n`` held-out
    samples, the first round(accuracy * n) right (so two epochs' figures compare like two nested sets of hits)."""
    import numpy as np

    return lambda net, held: np.arange(n) < round(accuracy(net, held) * n)


@pytest.fixture
def data_dir() -> Path:
    return need("")


@pytest.fixture
def nmnist_dir() -> Path:
    return need("nmnist_small")


@pytest.fixture
def recordings_dir() -> Path:
    return need("recordings")


@pytest.fixture(scope="session")
def synth_folder(tmp_path_factory):
    """A small second dataset: 30 font digits filmed by the synthetic saccade camera (train split only)."""
    from streamsnn.cli import main

    out = tmp_path_factory.mktemp("synth") / "font"
    assert main(["synth", "--font", "--count", "30", "--out", str(out), "-q"]) == 0
    return out


@pytest.fixture(autouse=True)
def one_job(monkeypatch):
    """`train`'s settings search runs its candidates in this process, one at a time (`--jobs 1`): many tests spy on
    or rig what it does here, and two test processes each starting two workers would crowd two cores. The search
    with workers, and `train`'s default of two: tests/test_choose_pool.py."""
    from streamsnn.learn import choose_pool

    monkeypatch.setattr(choose_pool, "default_jobs", lambda: 1)
