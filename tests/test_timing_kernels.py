"""The dense `timing` kernels' shortcuts against the plain computation: the closed-form crossing (tau_s = tau_m / 2)
against Newton, the flag that picks the units whose crossings are solved against the crossings themselves, the
batched forward pass against every unit moved through every span event by event, and the backward pass, which holds
its sums at a shared time, against a NumPy pass that decays each unit on its own."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamsnn.snn import timing as tk
from streamsnn.snn import timing_dense as td

TAU_M = 5_000.0
THETA = 0.5


def states(rng, n=4000):
    """Random unit states (a, b) below theta at the start, and spans: half of any sign and size, half as input
    leaves them (a current still to come, b > 0, on a potential a - b just below theta)."""
    a = rng.normal(0, 1, n) * 10.0 ** rng.uniform(-1, 1, n)
    b = rng.normal(0, 1, n) * 10.0 ** rng.uniform(-1, 1, n)
    b[n // 2:] = 10.0 ** rng.uniform(-1, 1.3, n - n // 2)
    a[n // 2:] = b[n // 2:] + rng.uniform(-1.0, THETA, n - n // 2)
    keep = a - b < THETA
    span = TAU_M * 10.0 ** rng.uniform(-3, 0.7, n)
    return a[keep], b[keep], span[keep]


def sampled_max(a, b, span, inv_m, inv_s, points=20001):
    u = np.linspace(0.0, span, points)
    return float(np.max(a * np.exp(-u * inv_m) - b * np.exp(-u * inv_s)))


def test_the_closed_form_crossing_is_newtons():
    inv_m = 1.0 / TAU_M
    inv_s = 2.0 * inv_m
    a, b, span = states(np.random.default_rng(0))
    found = 0
    for ai, bi, si in zip(a, b, span):
        xa, xb = math.exp(-si * inv_m), math.exp(-si * inv_s)
        want = tk.crossing_any(ai, bi, si, xa, xb, THETA, inv_m, inv_s)
        got = tk.crossing_half(ai, bi, xa, THETA, inv_m)
        assert (got < 0) == (want < 0), (ai, bi, si, got, want)
        if want >= 0:
            found += 1
            assert abs(got - want) <= 1e-6 * TAU_M * (1.0 + 1e3 * (abs(ai * ai - 4 * bi * THETA) < 1e-6))
            assert got == tk.first_crossing(ai, bi, si, xa, xb, THETA, inv_m, inv_s)
    assert found > 200, "enough states must cross for the test to mean anything"


@pytest.mark.parametrize("ratio", [0.5, 0.3])
def test_the_flag_misses_no_crossing_and_is_exact_at_half(ratio):
    inv_m = 1.0 / TAU_M
    inv_s = inv_m / ratio
    half = ratio == 0.5
    a, b, span = states(np.random.default_rng(1), n=1500)
    near = THETA * (1.0 - 1e-12)
    crossing = flagged = 0
    for ai, bi, si in zip(a, b, span):
        ea, eb = math.exp(-si * inv_m), math.exp(-si * inv_s)
        flag = tk.may_cross(ai, bi, ea, eb, near, half)
        if tk.crossing_any(ai, bi, si, ea, eb, THETA, inv_m, inv_s) >= 0:
            crossing += 1
            assert flag, (ai, bi, si)
        flagged += flag
        if half and flag:  # exact: the potential really reaches theta in the span (up to the sampling)
            assert sampled_max(ai, bi, si, inv_m, inv_s) >= THETA - 1e-6
    assert crossing > 100
    if half:
        assert flagged <= crossing + 3  # only grazing states beside the crossings
    else:
        assert flagged > crossing  # the general bound is loose


def backward_reference(in_i, in_t, sp_i, sp_t, sp_d, sp_g, W, theta, inv_m, inv_s, c):
    """The backward pass with each unit's adjoint sums decayed on their own, by the book: (dL/dt of each spike,
    dL/dW by input unit, dL/dt of each input event)."""
    no = W.shape[1]
    P, Q = np.zeros(no), np.zeros(no)
    when = np.full(no, max(in_t[-1], sp_t[-1] if len(sp_t) else -np.inf))
    g = sp_g.copy()
    grad = np.zeros(W.shape)
    g_in = np.zeros(len(in_i))
    p = len(sp_i) - 1
    for k in range(len(in_i) - 1, -1, -1):
        s = in_t[k]
        while p >= 0 and sp_t[p] > s:
            j = sp_i[p]
            P[j] *= math.exp(-(when[j] - sp_t[p]) * inv_m)
            Q[j] *= math.exp(-(when[j] - sp_t[p]) * inv_s)
            when[j] = sp_t[p]
            g[p] += theta * inv_m * P[j]
            P[j] += g[p] / sp_d[p]
            Q[j] += g[p] / sp_d[p]
            p -= 1
        P *= np.exp(-(when - s) * inv_m)
        Q *= np.exp(-(when - s) * inv_s)
        when[:] = s
        grad[in_i[k]] -= c * (P - Q)
        g_in[k] = c * W[in_i[k]].astype(np.float64) @ (Q * inv_s - P * inv_m)
    return g, grad, g_in


@pytest.mark.parametrize("gap", [0.0, 3e6])  # 3 s of silence, 1,200 synaptic time constants: exp(1200) would overflow
def test_the_backward_pass_is_the_reference(gap):
    rng = np.random.default_rng(2)
    n_in, n_out = 12, 20
    W = rng.normal(0.1, 0.2, (n_in, n_out)).astype(np.float32)
    idx = rng.integers(0, n_in, 120).astype(np.int32)
    t = np.sort(rng.uniform(0, 30_000, 120))
    t[60:] += gap
    inv_m, inv_s = 1.0 / TAU_M, 2.0 / TAU_M
    c = tk.psp_norm(inv_m, inv_s)
    A, B = np.zeros(n_out), np.zeros(n_out)
    si, st, sd = td.cuba_forward(idx, t, float(t[-1]), W, A, B, np.zeros(n_out, np.float32), THETA, inv_m, inv_s, c,
                              np.array([np.nan]), np.empty(8, np.int32), np.empty(8), np.empty(8))
    first = st < t[60]
    assert 10 <= first.sum() <= len(st) - 10, "both halves must spike for the test to mean anything"
    sp_g = rng.normal(0, 1e-3, len(si))
    act = np.unique(idx)
    row_of = np.zeros(n_in, np.int32)
    row_of[act] = np.arange(len(act))
    g = sp_g.copy()
    grad = np.zeros((len(act), n_out))
    g_in = tk.cuba_backward(idx, t, si, st, sd, g, W, row_of, grad, THETA, inv_m, inv_s, c, True)
    want_g, want_grad, want_in = backward_reference(idx, t, si, st, sd, sp_g, W, THETA, inv_m, inv_s, c)
    np.testing.assert_allclose(g, want_g, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(grad, want_grad[act], rtol=1e-9, atol=1e-12 * np.abs(want_grad).max())
    np.testing.assert_allclose(g_in, want_in, rtol=1e-9, atol=1e-12 * np.abs(want_in).max())
    assert np.abs(g_in[:60]).max() > 1e-3 * np.abs(g_in).max()  # the first burst's events matter to the test


def forward_reference(idx, t, t_end, W, theta, inv_m, inv_s, c, A, B, t0):
    """Every unit moved through every span between events on its own (``spans_spikes``, the exact crossing, on
    every unit and span: no flag, no batch), each event's weight added after its span: (spikes, A, B, counts)."""
    no = W.shape[1]
    counts = np.zeros(no, np.float32)
    oi, ot, od = np.empty(200_000, np.int32), np.empty(200_000), np.empty(200_000)
    floor = tk.MIN_SLOPE * theta * inv_m
    m, now = 0, t0
    for k in range(len(idx) + 1):
        te = t[k] if k < len(idx) else t_end
        if te > now:
            ea, eb = math.exp(-(te - now) * inv_m), math.exp(-(te - now) * inv_s)
            m0 = m
            for j in range(no):
                m = tk.spans_spikes(j, te - now, now, ea, eb, A, B, counts, theta, inv_m, inv_s, floor, oi, ot, od, m)
            order = m0 + np.argsort(ot[m0:m], kind="stable")
            oi[m0:m], ot[m0:m], od[m0:m] = oi[order], ot[order], od[order]
            now = te
        if k < len(idx):
            A += c * W[idx[k]].astype(np.float64)
            B += c * W[idx[k]].astype(np.float64)
    return oi[:m], ot[:m], od[:m], A, B, counts


@pytest.mark.parametrize("ratio", [0.5, 0.3])
def test_the_batched_forward_fires_the_spikes_of_every_unit_moved_event_by_event(ratio):
    rng = np.random.default_rng(3)
    n_in, n_out, n = 40, 150, 700  # three blocks of units, the last one short; 44 batches, the last one short
    W = rng.normal(0.05, 0.25, (n_in, n_out)).astype(np.float32)
    idx = rng.integers(0, n_in, n).astype(np.int32)
    t = np.sort(rng.integers(0, 60_000, n)).astype(np.float64)  # whole µs: events that share a time
    t[400:] += 200_000.0  # a long silence inside a batch
    inv_m = 1.0 / TAU_M
    inv_s = inv_m / ratio
    c = tk.psp_norm(inv_m, inv_s)
    A, B, counts, ref = np.zeros(n_out), np.zeros(n_out), np.zeros(n_out, np.float32), np.array([np.nan])
    got = []
    for part in (slice(0, 250), slice(250, n)):  # two calls: the state carries over
        end = float(t[part][-1]) + 3_000.0 * (part.start == 250)  # the second reads out after its last event
        si, st, sd = td.cuba_forward(idx[part], t[part], end, W, A, B, counts, THETA, inv_m, inv_s, c, ref,
                                     np.empty(8, np.int32), np.empty(8), np.empty(8))
        got.append((si, st, sd))
    assert ref[0] == float(t[-1]) + 3_000.0
    si, st, sd = (np.concatenate(x) for x in zip(*got))
    want = forward_reference(idx, t, float(t[-1]) + 3_000.0, W, THETA, inv_m, inv_s, c, np.zeros(n_out),
                             np.zeros(n_out), float(t[0]))
    assert len(want[0]) > 2 * n, "the layer must spike busily for the test to mean anything"
    assert len(np.unique(want[0])) > n_out // 2
    np.testing.assert_array_equal(si, want[0])
    np.testing.assert_allclose(st, want[1], rtol=0, atol=1e-6)  # µs
    np.testing.assert_allclose(sd, want[2], rtol=1e-6)
    np.testing.assert_allclose(A, want[3], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(B, want[4], rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(counts, want[5])
