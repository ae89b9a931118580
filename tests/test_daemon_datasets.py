"""Dataset discovery for the replay pipeline: explicit path, $STREAMSNN_DATA, cache, ../shared/data, download."""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from streamsnn.errors import InputError
from streamsnn.io import nmnist_fetch
from streamsnn.io.nmnist_fetch import cache_dir, find_nmnist

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """No $STREAMSNN_DATA, an empty cache, a working directory without ../shared, no repository fallback."""
    monkeypatch.delenv("STREAMSNN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(nmnist_fetch, "REPO", tmp_path / "repo")
    (tmp_path / "work").mkdir()
    return tmp_path / "work"


def _fake_dataset_with(folder: Path, nmnist_dir: Path) -> Path:
    """A folder holding two real N-MNIST files (copied into tmp, never into the repository)."""
    folder.mkdir(parents=True)
    for name in ("1.bs2", "2.bs2"):
        shutil.copy(nmnist_dir / name, folder / name)
    return folder


def test_explicit_path_wins_and_must_exist(clean_env, nmnist_dir):
    assert find_nmnist(nmnist_dir, cwd=clean_env) == nmnist_dir
    with pytest.raises(InputError, match="does not exist"):
        find_nmnist(clean_env / "absent", cwd=clean_env)


def test_search_order(clean_env, tmp_path, nmnist_dir, monkeypatch):
    shared = _fake_dataset_with(clean_env.parent / "shared" / "data" / "nmnist_small", nmnist_dir)
    assert find_nmnist(cwd=clean_env, download=False) == shared
    cached = _fake_dataset_with(cache_dir(), nmnist_dir)
    assert cached == tmp_path / "cache" / "streamsnn" / "nmnist"
    assert find_nmnist(cwd=clean_env, download=False) == cached
    env_root = tmp_path / "env"
    env_data = _fake_dataset_with(env_root / "nmnist_small", nmnist_dir)
    monkeypatch.setenv("STREAMSNN_DATA", str(env_root))
    assert find_nmnist(cwd=clean_env, download=False) == env_data
    monkeypatch.setenv("STREAMSNN_DATA", str(env_data))  # the dataset folder itself works too
    assert find_nmnist(cwd=clean_env, download=False) == env_data


def test_nothing_found_without_network_says_where_to_put_the_files(clean_env, monkeypatch):
    # no network, also on a connected laptop: every download goes to a proxy on a closed loopback port,
    # so it fails at once (instead of fetching 1 GB) and the user gets the one line
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    try:
        with pytest.raises(InputError) as e:
            find_nmnist(cwd=clean_env, progress=False)
    finally:
        # urlopen builds its global opener (with the proxies of that moment) on first use: drop it,
        # or every later urlopen of the session (the live view tests) would go through the dead proxy
        urllib.request.install_opener(None)
    msg = str(e.value)
    assert str(cache_dir()) in msg and "STREAMSNN_DATA" in msg and "\n" not in msg


def test_replay_without_data_exits_2_with_one_line(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "streamsnn", "run", str(ROOT / "pipelines" / "nmnist-replay.toml"),
                          "--set", "source.path=" + str(tmp_path / "nowhere"), "--set", "mqtt.enabled=false"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("streamsnn: error: dataset path") and "nowhere" in last
    assert "Traceback" not in out.stderr
