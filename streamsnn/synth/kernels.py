"""Numba kernel of the synthetic DVS sensor: a translated image seen by log-intensity change pixels."""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _intensity(img, x, y):
    """Intensity at image point (x, y): bilinear, black outside the image."""
    h, w = img.shape
    x0 = math.floor(x)
    y0 = math.floor(y)
    fx = x - x0
    fy = y - y0
    v = 0.0
    for dy in range(2):
        yy = y0 + dy
        if yy < 0 or yy >= h:
            continue
        wy = fy if dy else 1.0 - fy
        for dx in range(2):
            xx = x0 + dx
            if xx < 0 or xx >= w:
                continue
            wx = fx if dx else 1.0 - fx
            v += wx * wy * img[yy, xx]
    return v


@njit(cache=True, nogil=True)
def saccade_events(img, ox, oy, scale, t_us, c_on, c_off, phase, refractory_us, background,
                   out_t, out_x, out_y, out_p):
    """Fill out_* with the events of a width x height sensor (the shape of c_on) viewing `img`.

    img: linear intensity 0..1 (h x w). At step k, sensor pixel (u, v) sees image point
    ((u - ox[k]) / scale, (v - oy[k]) / scale). c_on / c_off: per-pixel contrast thresholds (log
    units); phase: per-pixel starting reference as a fraction of the threshold (-0.5..0.5). Each
    threshold crossing of the log intensity (of background + (1 - background) * intensity), relative
    to the pixel's reference, is one event at a time interpolated linearly within the step; the
    reference then moves one threshold. Events closer than refractory_us to the pixel's
    previous event are lost (the reference still moves). Returns the event count in pixel order, or
    -1 if the output arrays are too small.
    """
    height, width = c_on.shape
    cap = out_t.shape[0]
    n = 0
    steps = t_us.shape[0]
    h, w = img.shape
    ox_lo, ox_hi, oy_lo, oy_hi = ox.min(), ox.max(), oy.min(), oy.max()
    for v in range(height):
        for u in range(width):
            # A pixel whose whole swept patch of the image is uniform never changes: skip it.
            x0 = max(0, math.floor((u - ox_hi) / scale))
            x1 = min(w - 1, math.floor((u - ox_lo) / scale) + 1)
            y0 = max(0, math.floor((v - oy_hi) / scale))
            y1 = min(h - 1, math.floor((v - oy_lo) / scale) + 1)
            if x0 <= x1 and y0 <= y1 and x0 > 0 and y0 > 0 and x1 < w - 1 and y1 < h - 1:
                first = img[y0, x0]
                uniform = True
                for yy in range(y0, y1 + 1):
                    for xx in range(x0, x1 + 1):
                        if img[yy, xx] != first:
                            uniform = False
                            break
                    if not uniform:
                        break
                if uniform:
                    continue
            won = c_on[v, u]
            woff = c_off[v, u]
            i_prev = _intensity(img, (u - ox[0]) / scale, (v - oy[0]) / scale)
            l_prev = math.log(background + (1.0 - background) * i_prev)
            ref = l_prev + phase[v, u] * (won if phase[v, u] < 0 else woff)
            t_last = -1e18
            for k in range(1, steps):
                if ox[k] == ox[k - 1] and oy[k] == oy[k - 1]:
                    continue
                ik = _intensity(img, (u - ox[k]) / scale, (v - oy[k]) / scale)
                if ik == i_prev:
                    continue
                i_prev = ik
                lk = math.log(background + (1.0 - background) * ik)
                if lk == l_prev:
                    continue
                t0 = t_us[k - 1]
                dt = t_us[k] - t0
                while True:
                    if lk >= ref + won:
                        level = ref + won
                        pol = 1
                    elif lk <= ref - woff:
                        level = ref - woff
                        pol = 0
                    else:
                        break
                    te = t0 + dt * (level - l_prev) / (lk - l_prev)
                    ref = level
                    if te - t_last >= refractory_us:
                        if n >= cap:
                            return -1
                        out_t[n] = np.int64(te)
                        out_x[n] = u
                        out_y[n] = v
                        out_p[n] = pol
                        n += 1
                        t_last = te
                l_prev = lk
    return n
