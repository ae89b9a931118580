"""Pictures of events for the live view: event counts on a bounded canvas, and PNG rendering (ON green, OFF red)."""

from __future__ import annotations

import io

import numpy as np

MAX_CANVAS_SIDE = 640  # frames of larger sensors are binned down to this


def canvas_bin(width: int, height: int) -> int:
    """Sensor pixels per canvas pixel (per side) so that the canvas is at most MAX_CANVAS_SIDE a side."""
    return max(1, -(-max(int(width), int(height)) // MAX_CANVAS_SIDE))


def event_counts(ev: np.ndarray, shape: tuple[int, int, int], bin_: int) -> np.ndarray:
    """(2, h, w) float32 counts of the events `ev` (OFF in channel 0, ON in 1) on a canvas of `shape`."""
    _, h, w = shape
    p = (ev["p"] > 0).astype(np.int64)
    x = np.minimum(ev["x"].astype(np.int64) // bin_, w - 1)
    y = np.minimum(ev["y"].astype(np.int64) // bin_, h - 1)
    return np.bincount((p * h + y) * w + x, minlength=2 * h * w).reshape(2, h, w).astype(np.float32)


def window_png(batch) -> tuple[int, int, bytes]:
    """(width, height, PNG) of all the events of one window (what a decision was made on), unfaded."""
    b = canvas_bin(batch.width, batch.height)
    shape = (2, -(-int(batch.height) // b), -(-int(batch.width) // b))
    return shape[2], shape[1], render_png(event_counts(batch.events, shape, b))


def render_png(frame: np.ndarray) -> bytes:
    """(2, h, w) float ON/OFF activity -> RGB PNG bytes: ON green, OFF red (brighter: more events), dark background."""
    from PIL import Image  # noqa: PLC0415 - Pillow only when a frame is drawn

    seen = frame >= 0.3  # one event stays visible for 1.2 decay times
    scale = max(float(np.percentile(frame[seen], 99)) if seen.any() else 1.0, 1.0)
    level = np.where(seen, 50 + 205 * np.sqrt(np.clip(frame / scale, 0, 1)), 0)
    off, on = level.astype(np.uint8)  # channel 0: OFF (p = 0), 1: ON
    rgb = np.empty(on.shape + (3,), np.uint8)
    rgb[..., 0] = np.maximum(off, 20)
    rgb[..., 1] = np.maximum(on, 20)
    rgb[..., 2] = np.maximum(np.minimum(on, off), 28)
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, "PNG")
    return buf.getvalue()
