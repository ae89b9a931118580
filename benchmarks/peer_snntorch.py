"""The time-stepped peer: an snnTorch LIF network (2312-800-10, or any streamsnn architecture with
convolutions) on 1 ms frames made by tonic's ToFrame."""

from __future__ import annotations

import time

import numpy as np

#: N-MNIST sensor as tonic names it: (width, height, polarities).
SENSOR_SIZE = (34, 34, 2)
#: One frame per millisecond of sensor time.
FRAME_US = 1000


def _torch():
    """torch, limited to one thread (the comparison is one core against one core)."""
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once in this process
        pass
    return torch


def to_frames(events: np.ndarray) -> np.ndarray:
    """Events (fields t, x, y, p) -> float32 frames (T, 2312), one per 1 ms, with tonic.

    `include_incomplete=True` keeps the last partial millisecond, so the peer sees every event.
    """
    from tonic.transforms import ToFrame

    frames = ToFrame(sensor_size=SENSOR_SIZE, time_window=FRAME_US, include_incomplete=True)(events)
    return frames.reshape(frames.shape[0], -1).astype(np.float32, copy=False)


def make_peer(sizes=(2312, 800, 10), *, arch: str | None = None, beta: float = 0.9, seed: int = 0):
    """The snnTorch network: per layer Linear or Conv2d + Leaky; weights are PyTorch's random initialisation.

    ``sizes`` (inputs, hidden..., classes) makes dense layers; ``arch`` (streamsnn's spec, e.g.
    ``conv:16:5:2:2,conv:32:3:2:1,dense:128``, on the 34x34x2 input, 10 classes) the same
    architecture as a streamsnn network, convolutions included.
    Untrained on purpose: a time-stepped network does the same dense work at every step whatever
    its weights are, so its cost does not depend on them (its accuracy is not what is compared).
    """
    torch = _torch()
    import snntorch as snn
    from torch import nn

    layers = []
    if arch is None:
        layers = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
        n_out = sizes[-1]
    else:
        from streamsnn.snn.arch import parse_arch, place

        geos = place(parse_arch(arch), (SENSOR_SIZE[0], SENSOR_SIZE[1], SENSOR_SIZE[2]))
        for g in geos:
            if g.layer.kind == "conv":
                layers.append(nn.Conv2d(g.in_shape[0], g.layer.units, g.layer.kernel, stride=g.layer.stride,
                                        padding=g.layer.padding))
            else:
                layers.append(nn.Sequential(nn.Flatten(), nn.Linear(g.n_in, g.n_out)))
        n_out = 10
        layers.append(nn.Sequential(nn.Flatten(), nn.Linear(geos[-1].n_out, n_out)))
    image = arch is not None

    class Peer(nn.Module):
        def __init__(self):
            super().__init__()
            self.fcs = nn.ModuleList(layers)
            self.lifs = nn.ModuleList(snn.Leaky(beta=beta) for _ in layers)

        def forward(self, frames):
            """frames (T, B, n_in) -> output spike counts (B, n_out)."""
            mems = [lif.init_leaky() for lif in self.lifs]
            counts = torch.zeros(frames.shape[1], n_out)
            w, h, p = SENSOR_SIZE
            for step in range(frames.shape[0]):
                x = frames[step].reshape(-1, p, h, w) if image else frames[step]
                for i, (fc, lif) in enumerate(zip(self.fcs, self.lifs)):
                    x, mems[i] = lif(fc(x), mems[i])
                counts += x
            return counts

    torch.manual_seed(seed)
    return Peer().eval()


def run_streaming(net, samples) -> dict:
    """Batch 1, one sample after the other, as a streaming user runs it; frame making included.

    Returns total seconds, seconds spent making frames, events, frames and predicted labels.
    """
    torch = _torch()
    total = framing = 0.0
    events = n_frames = 0
    labels = []
    with torch.no_grad():
        for batch in samples:
            t0 = time.perf_counter()
            frames = to_frames(batch.events)
            t1 = time.perf_counter()
            counts = net(torch.from_numpy(frames).unsqueeze(1))
            t2 = time.perf_counter()
            labels.append(int(counts[0].argmax()))
            total += t2 - t0
            framing += t1 - t0
            events += len(batch)
            n_frames += frames.shape[0]
    return {"seconds": total, "frame_seconds": framing, "events": events, "frames": n_frames,
            "labels": labels}


def run_batched(net, samples) -> dict:
    """All samples in one batch, padded with empty frames to the longest; frame making included."""
    torch = _torch()
    t0 = time.perf_counter()
    frames = [to_frames(b.events) for b in samples]
    longest = max(f.shape[0] for f in frames)
    stacked = np.zeros((longest, len(frames), frames[0].shape[1]), dtype=np.float32)
    for i, f in enumerate(frames):
        stacked[: f.shape[0], i] = f
    t1 = time.perf_counter()
    with torch.no_grad():
        counts = net(torch.from_numpy(stacked))
    t2 = time.perf_counter()
    return {"seconds": t2 - t0, "frame_seconds": t1 - t0, "events": sum(len(b) for b in samples),
            "frames": longest * len(frames), "batch": len(frames), "steps": longest,
            "labels": [int(c) for c in counts.argmax(dim=1)]}


def describe(beta: float = 0.9, arch: str | None = None) -> str:
    """One line saying what the peer is, for the result notes."""
    v = versions()
    what = (f"Conv2d/Linear+Leaky per layer, {arch} then 10 outputs" if arch else "Linear+Leaky 2312-800-10")
    return (f"snnTorch {v['snntorch']} on torch {v['torch']}, {what} (Leaky beta={beta}, threshold 1, "
            "subtractive reset), random PyTorch initialisation (cost does not depend on the "
            "weights), inputs tonic ToFrame(sensor_size=(34, 34, 2), time_window=1000)")


def versions() -> dict:
    """Versions of the peer's libraries, or None where one is not installed."""
    out = {}
    for name in ("torch", "snntorch"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = None
    return out
