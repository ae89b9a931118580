"""Memory: the daemon's RSS over a long looping replay of the DVS128 recordings (psutil sampling, PNG)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from .bench_e2e import _require, daemon_command, mosquitto, shown, subscribed
from .common import Context, NotMeasurable, Result

MIB = 2**20


def peak_rss(pid: int) -> int | None:
    """The kernel's high-water mark of the process's resident set (VmHWM), in bytes."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


async def soak(ctx: Context, port: int, tmp: Path, recordings: Path) -> dict:
    import psutil

    overrides = [f"source.path={recordings}", "source.split=", "source.loop=true", "source.speed=0",
                 "segment.mode=window", "model.checkpoint=", "model.hidden=800", "model.learn_from_labels=false",
                 "model.learn_from_feedback=false", "model.save_every_s=0", "pipeline.metrics_every_s=2"]
    cmd = daemon_command("pipelines/nmnist-replay.toml", port, overrides)
    async with subscribed(port) as sub:
        proc = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        ps = psutil.Process(proc.pid)
        t0 = time.monotonic()
        samples = []  # (seconds since start, RSS bytes)
        hwm = None
        while (t := time.monotonic() - t0) < ctx.soak_seconds:
            if proc.poll() is not None:
                raise NotMeasurable(f"`{shown(cmd, tmp)}` exited {proc.returncode} after {t:.0f} s: "
                                    f"{proc.stderr.read().strip()[-300:]}")
            samples.append((t, ps.memory_info().rss))
            hwm = peak_rss(proc.pid) or hwm
            await asyncio.sleep(1.0)
        hwm = peak_rss(proc.pid) or hwm
        stop = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        while proc.poll() is None and time.monotonic() - stop < 60:
            await asyncio.sleep(0.1)
        if proc.poll() is None:
            proc.kill()
        exit_s = time.monotonic() - stop
        await asyncio.sleep(0.5)
    metrics = (sub.metrics() or [(0, {})])[-1][1]
    return {"cmd": shown(cmd, tmp), "samples": samples, "hwm": hwm, "exit_code": proc.returncode,
            "exit_s": exit_s, "decisions": len(sub.decisions()), "metrics": metrics}


def run(ctx: Context) -> Result:
    _require("streamsnn.daemon", "streamsnn.sources.files", "psutil", "aiomqtt")
    folder = ctx.data / "recordings" / "dvs128_aedat2"
    files = sorted(folder.glob("*.aedat"), key=lambda p: p.stat().st_size) if folder.is_dir() else []
    if not files:
        raise NotMeasurable(f"real data not found: {folder}")
    recordings = folder  # ReplaySource plays a folder of recordings file after file, looping
    r = Result("memory", f"Memory: daemon RSS over {ctx.soak_seconds:.0f} s of looping DVS128 replay")
    with tempfile.TemporaryDirectory(prefix="streamsnn-bench-") as name:
        tmp = Path(name)
        broker = mosquitto(tmp / "mosquitto")
        try:
            res = asyncio.run(soak(ctx, broker.port, tmp, recordings))
        finally:
            broker.stop()
    t = np.array([s[0] for s in res["samples"]])
    rss = np.array([s[1] for s in res["samples"]], dtype=float) / MIB
    warm = t >= min(60.0, max(10.0, 0.2 * ctx.soak_seconds))  # after start-up (imports, kernels, buffers)
    if not warm.any():
        warm = t >= t[len(t) // 2]
    half = t >= t[-1] / 2 if len(t) else t
    slope = float(np.polyfit(t[half] / 60.0, rss[half], 1)[0]) if half.sum() >= 3 else float("nan")
    m = res["metrics"]
    r.metric(f"RSS after start-up (at {t[warm][0]:.0f} s)", float(rss[warm][0]), "MiB")
    r.metric("RSS at the end", float(rss[-1]), "MiB")
    r.metric("peak RSS (kernel high-water mark, VmHWM)", (res["hwm"] or 0) / MIB, "MiB")
    r.metric("RSS growth from after start-up to the end", float(rss[-1] - rss[warm][0]), "MiB")
    r.metric("RSS trend over the second half", slope, "MiB/min", target="flat (about 0)")
    r.metric("events processed (daemon metrics)", m.get("events"), "")
    r.metric("decisions received by the subscriber", res["decisions"], "")
    r.metric("exit after SIGTERM", f"code {res['exit_code']} in {res['exit_s']:.1f} s", "")
    r.note(f"Replays the {len(files)} DVS128 recordings of {folder.name}/ one after the other, in a loop.")
    r.note(f"`{res['cmd']}`, sampled every second with psutil for {ctx.soak_seconds:.0f} s (fresh "
           "2312-800-10 network, learning off, sliding windows, MQTT to a local Mosquitto).")
    try:
        r.files.append(plot(ctx, t, rss))
    except ImportError as exc:
        r.note(f"no plot: {exc}")
    return r


def plot(ctx: Context, t, rss) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.4))
    ax.plot(t / 60.0, rss, "-", color="tab:blue")
    ax.set_xlabel("minutes of looping replay")
    ax.set_ylabel("daemon RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.set_title("streamsnn run, a DVS128 recording looped (" + ctx.cache.get("machine_line", "") + ")",
                 fontsize=8)
    fig.tight_layout()
    name = "memory-quick.png" if ctx.quick else "memory.png"
    ctx.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(ctx.out / name, dpi=110)
    plt.close(fig)
    return name
