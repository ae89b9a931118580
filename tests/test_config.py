"""Pipeline files: schema validation, --set overrides typed by the schema, --check output, masking."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streamsnn.config import SCHEMA, build_config, load_config, parse_override
from streamsnn.errors import ConfigError
from streamsnn.snn import DEFAULT_ARCH

ROOT = Path(__file__).resolve().parent.parent
PIPELINES = sorted((ROOT / "pipelines").glob("*.toml"))
CLI = [sys.executable, "-m", "streamsnn"]


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_shipped_pipelines_validate(path):
    cfg = load_config(path)
    assert cfg.source.kind in ("replay", "camera", "dvstream", "mqtt", "synthetic")
    assert set(cfg.data) == set(SCHEMA)


def test_expected_pipeline_files_exist():
    names = {p.name for p in PIPELINES}
    assert {"nmnist-replay.toml", "live-camera.toml", "dv-stream.toml", "mqtt-events.toml"} <= names


def test_defaults_fill_missing_keys():
    cfg = build_config({"source": {"kind": "dvstream"}})
    assert cfg.source.kind == "dvstream"
    assert cfg.mqtt.broker == "embedded" and cfg.mqtt.qos == 1
    assert cfg.pipeline.policy == "block"


def test_the_old_name_of_the_dv_stream_source_still_works_with_one_warning(caplog):
    cfg = build_config({"source": {"kind": "network"}}, "old.toml")
    assert cfg.source.kind == "dvstream"
    lines = [r.getMessage() for r in caplog.records if r.name == "streamsnn.config"]
    assert lines == ["old.toml: source.kind = 'network' is now called 'dvstream'; please rename it"]
    assert build_config({}, "p.toml", ["source.kind=network"]).source.kind == "dvstream"


@pytest.mark.parametrize("raw, words", [
    ({"source": {"pth": "x"}}, ["source.pth", "did you mean 'path'"]),
    ({"sorce": {}}, ["[sorce]", "did you mean 'source'"]),
    ({"source": {"speed": "fast"}}, ["source.speed", "a number"]),
    ({"source": {"loop": 1}}, ["source.loop", "true or false"]),
    ({"segment": {"window_us": True}}, ["segment.window_us", "an integer"]),
    ({"segment": {"window_us": 0}}, ["segment.window_us", "at least 1"]),
    ({"mqtt": {"qos": 3}}, ["mqtt.qos", "one of"]),
    ({"pipeline": {"policy": "drop"}}, ["pipeline.policy", "drop_oldest"]),
    ({"source": "replay"}, ["'source'", "table"]),
    ({"source": {"kind": "camera"}, "segment": {"mode": "sample"}}, ["segment.mode"]),
    ({"mqtt": {"tls_cert": "c.pem", "broker": "h"}}, ["mqtt.tls_ca"]),
])
def test_bad_values_name_the_key(raw, words):
    with pytest.raises(ConfigError) as e:
        build_config(raw, "p.toml")
    msg = str(e.value)
    assert msg.startswith("p.toml") and "\n" not in msg
    for w in words:
        assert w in msg


def test_overrides_are_typed_by_the_schema():
    assert parse_override("mqtt.port=1884") == ("mqtt", "port", 1884)
    assert parse_override("source.speed=2") == ("source", "speed", 2.0)
    assert parse_override("source.loop=yes") == ("source", "loop", True)
    assert parse_override("model.learn_from_feedback=false") == ("model", "learn_from_feedback", False)
    assert parse_override("source.path=/data/x y") == ("source", "path", "/data/x y")
    assert parse_override('mqtt.broker="host"') == ("mqtt", "broker", "host")
    cfg = build_config({"mqtt": {"port": 1}}, "p.toml", ["mqtt.port=2000", "mqtt.port=2001"])
    assert cfg.mqtt.port == 2001  # the last override wins


@pytest.mark.parametrize("text, words", [
    ("mqtt.port=x", ["mqtt.port", "an integer"]),
    ("mqtt.port", ["section.key=value"]),
    ("mqtt.prot=1", ["mqtt.prot", "did you mean 'port'"]),
    ("source.loop=maybe", ["source.loop", "true or false"]),
    ("mqtt.qos=5", ["mqtt.qos", "one of"]),
])
def test_bad_overrides(text, words):
    with pytest.raises(ConfigError) as e:
        parse_override(text)
    for w in words:
        assert w in str(e.value)


def test_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[source\nkind = 1\n")
    with pytest.raises(ConfigError, match="bad.toml is not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml")
    # a file read whole grew the daemon to 24 GB on /dev/zero: at most 1 MiB is read
    with pytest.raises(ConfigError, match="pipeline file /dev/zero is larger than 1024 KiB"):
        load_config("/dev/zero")
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * (1 << 20) + "\n")
    with pytest.raises(ConfigError, match="big.toml is larger than 1024 KiB"):
        load_config(big)


def test_check_prints_resolved_config_with_credentials_masked(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text('[mqtt]\nbroker = "broker.example"\nusername = "alice"\npassword = "hunter2"\n')
    out = subprocess.run(CLI + ["run", str(p), "--check", "--set", "mqtt.port=8883", "--set", "source.speed=4"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "hunter2" not in out.stdout + out.stderr and "alice" not in out.stdout
    assert 'password = "***"' in out.stdout
    assert "port = 8883" in out.stdout and "speed = 4.0" in out.stdout
    # the printed configuration is itself a valid pipeline file with the same values
    again = tmp_path / "again.toml"
    again.write_text(out.stdout.replace('"***"', '""'))
    cfg = load_config(again)
    assert cfg.mqtt.port == 8883 and cfg.mqtt.broker == "broker.example"


def test_cli_reports_config_errors_in_one_line(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text("[model]\nhiden = 10\n")
    out = subprocess.run(CLI + ["run", str(p), "--check"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"streamsnn: error: {p}: unknown key model.hiden (did you mean 'hidden'?); keys of [model] are "
        + ", ".join(SCHEMA["model"])]


def test_pipelines_readme_documents_every_key():
    text = (ROOT / "pipelines" / "README.md").read_text()
    for section, keys in SCHEMA.items():
        assert f"## [{section}]" in text
        for key in keys:
            assert f"| `{key}` |" in text, f"{section}.{key} is missing from pipelines/README.md"


def test_model_arch_as_string_or_toml_list_and_bad_arch_in_one_line(tmp_path):
    from streamsnn.daemon import load_network

    p = tmp_path / "p.toml"
    p.write_text('[model]\narch = ["conv:4:5:2:2", "dense:16"]\ncheckpoint = ""\n')
    cfg = load_config(p)
    assert cfg.model.arch == "conv:4:5:2:2,dense:16"
    net, path = load_network(cfg)
    assert net.arch == "conv:4:5:2:2,dense:16" and path is None
    cfg = load_config(p, ["model.arch=", "model.hidden=24"])  # hidden is the dense shorthand
    assert load_network(cfg)[0].arch == "dense:24"
    assert load_network(load_config(p, ["model.arch="]))[0].arch == DEFAULT_ARCH  # empty: the default
    for overrides, needle in ((["model.arch=conv:4:99"], "does not fit"), (["model.arch=conv:4:5,pool:2"], "pool:2"),
                              (["model.hidden=8"], "not both")):
        with pytest.raises(ConfigError, match=needle) as e:
            load_network(load_config(p, overrides))
        assert "\n" not in str(e.value) and "model." in str(e.value)


@pytest.mark.parametrize("sets, says", [
    (["mqtt.port=70000"], "mqtt.port must be 1..65535"),
    (["model.seed=-1"], "model.seed must be an integer 0..2**63-1"),
    (["mqtt.prefix=a/#/b"], "must be a non-empty topic without wildcards"),
    (["mqtt.prefix=$SYS/streamsnn"], "must not start with '$'"),  # Mosquitto drops what clients publish there
    (["mqtt.broker="], "mqtt.broker is empty"),
    (["segment.mode=window", "segment.hop_us=30000", "segment.overlap=chunks"], "needs window_us a multiple of hop_us"),
    (["liveview.host="], "liveview.host is empty"),
    # a fresh network that cannot be built, with the pipeline's own key in the advice (it gave train's option)
    (["model.checkpoint=", "model.learning=membrane"], "`--set model.tau_ms=100` in a pipeline"),
    (["model.checkpoint=", "model.arch=conv:4:99"], "does not fit"),
    (["model.checkpoint=/dev/null"], "/dev/null"),  # an existing file that is not a model
    (["model.rehearse=100"], "rehearse must be 0..64"),  # the pipeline's own bounds
    (["source.seed=-1"], "source.seed must be an integer 0..2**63-1"),  # a shuffled replay failed "a defect"
])
def test_check_refuses_what_run_would(sets, says):
    """`run --check` passed these, and `run` then refused them (the segmenter's only after the broker started)."""
    args = [a for s in sets for a in ("--set", s)]
    out = subprocess.run(CLI + ["run", str(ROOT / "pipelines" / "nmnist-replay.toml"), "--check", *args],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("streamsnn: error:") and says in lines[0], out.stderr

