"""bench_live's verdict on one daemon run (`judge`): a run keeps up only when its windows were all decided."""

from __future__ import annotations

import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT))
from benchmarks.bench_live import judge  # noqa: E402

HOP_US = 50_000


def raw_run(t_ends: list[int]) -> dict:
    """Decisions of windows ending at `t_ends` (µs), built and received at real time, and the daemon's metrics."""
    dec = []
    for t_end in t_ends:
        built = 100.0 + t_end / 1e6
        dec.append((built + 0.001, {"time": built, "latency_ms": 2.0, "t_end_us": t_end, "queue_ms": 0.1,
                                    "feed_ms": 0.2, "compute_ms": 0.2}))
    metrics = [{"drops": 0, "decisions": len(dec), "source": {"late": 0}, "queues": {"windows": 0}}]
    return {"decisions": dec, "metrics": metrics}


def test_every_window_decided_keeps_up():
    r = judge(raw_run([k * HOP_US for k in range(100)]), 1.0, 1e6)
    assert r["ok"] and r["why"] == "kept up" and r["windows_expected"] == r["windows_decided"] == 99


def test_decisions_that_thin_out_do_not_keep_up_though_nothing_was_dropped():
    # 100 windows' time span, but only every other window from the middle on decided: 75 decisions, no drop
    t_ends = [k * HOP_US for k in range(50)] + [k * HOP_US for k in range(50, 100, 2)]
    r = judge(raw_run(t_ends), 1.0, 1e6)
    assert not r["ok"] and r["drops"] == 0 and "decisions for 98 windows" in r["why"], r["why"]


def test_decisions_that_reach_the_subscriber_ever_later_do_not_keep_up():
    # every window decided at real time, but delivered over twice the time (a publishing backlog)
    raw = raw_run([k * HOP_US for k in range(100)])
    raw["decisions"] = [(100.0 + 2 * k * HOP_US / 1e6, p) for k, (_, p) in enumerate(raw["decisions"])]
    r = judge(raw, 1.0, 1e6)
    assert not r["ok"] and r["drops"] == 0 and "decisions/s reached the subscriber, 20.0 due" in r["why"], r["why"]
    assert judge(raw_run([k * HOP_US for k in range(100)]), 2.0, 2e6)["why"].endswith("40.0 due")  # twice as fast
