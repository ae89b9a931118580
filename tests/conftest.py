"""Shared fixtures: where the real event-camera data lives, and skipping cleanly when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Real data shared beside the repository (never copied into it); override with STREAMSNN_TEST_DATA.
DATA = Path(os.environ.get("STREAMSNN_TEST_DATA", ROOT.parent / "shared" / "data")).resolve()


def need(relpath: str) -> Path:
    """Path of a file or folder under the shared data, or skip the test saying what is missing."""
    p = DATA / relpath
    if not p.exists():
        pytest.skip(f"real data not found: {p} (tests read ../shared/data beside the repository)")
    return p


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
