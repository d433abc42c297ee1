"""Minimum free energy paths and barriers against a brute-force minimax written here (bisection on the level,
flood fill of the sublevel set) and the analytic Mueller-Brown saddle; block errors against numpy."""
from __future__ import annotations

import math
from collections import deque

import numpy as np
import pytest

import cyfes
from cyfes.engine.result import FESResult

KT = 2.5
MB = ((-200, -1, 0, -10, 1, 0), (-100, -1, 0, -10, 0, 0.5), (-170, -6.5, 11, -6.5, -0.5, 1.5),
      (15, 0.7, 0.6, 0.7, -1, 1))
#: Mueller-Brown's minima and the saddle between A and C (Mueller & Brown 1979; to 3 decimals).
MB_A, MB_B = (-0.558, 1.442), (0.623, 0.028)
MB_SADDLE_AC = ((-0.822, 0.624), -40.665)


def mueller_brown(x, y):
    return sum(A * np.exp(a * (x - x0) ** 2 + b * (x - x0) * (y - y0) + c * (y - y0) ** 2)
               for A, a, b, c, x0, y0 in MB)


def surface(values, axes, periodic=None, blocks=None):
    return FESResult(values=np.asarray(values, float), axes=[np.asarray(a, float) for a in axes], grid=None,
                     error=None, kT=KT, units="kJ/mol", temperature=300.0, backend="test", precision="float64",
                     sigma=np.full(len(axes), 0.1), periodic=list(periodic or [None] * len(axes)), n_samples=0,
                     blocks=1 if blocks is None else len(blocks), block_values=blocks)


def mb_surface(n=(151, 131)):
    x, y = np.linspace(-1.5, 1.2, n[0]), np.linspace(-0.4, 2.0, n[1])
    X, Y = np.meshgrid(x, y, indexing="ij")
    return x, y, np.minimum(mueller_brown(X, Y), 60.0)


def connected(values, level, a, b, periodic):
    """Is there a face-neighbour path from a to b through points with F <= level?"""
    ok = values <= level
    if not (ok[a] and ok[b]):
        return False
    seen, todo = {a}, deque([a])
    while todo:
        p = todo.popleft()
        if p == b:
            return True
        for d in range(values.ndim):
            for s in (-1, 1):
                q = list(p)
                q[d] += s
                if periodic[d]:
                    q[d] %= values.shape[d]
                elif not 0 <= q[d] < values.shape[d]:
                    continue
                q = tuple(q)
                if q not in seen and ok[q]:
                    seen.add(q)
                    todo.append(q)
    return False


def brute_minimax(values, a, b, periodic):
    levels = np.unique(values[np.isfinite(values)])
    lo, hi = 0, len(levels) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if connected(values, levels[mid], a, b, periodic):
            hi = mid
        else:
            lo = mid + 1
    return float(levels[lo])


def descend(values, p):
    """Steepest descent over face neighbours from grid index p to a local minimum (bounded grid)."""
    while True:
        around = [p] + [tuple(np.add(p, e)) for e in ((1, 0), (-1, 0), (0, 1), (0, -1))]
        around = [q for q in around if all(0 <= q[d] < values.shape[d] for d in range(2))]
        best = min(around, key=lambda q: values[q])
        if best == p:
            return p
        p = best


def nearest(axes, point):
    return tuple(int(np.argmin(np.abs(a - c))) for a, c in zip(axes, point))


def test_mueller_brown_barrier_equals_the_brute_force_minimax():
    x, y, f = mb_surface()
    res = surface(f, [x, y])
    basins = res.basins()
    assert len(basins) == 3
    ia, ib = descend(f, nearest([x, y], MB_A)), descend(f, nearest([x, y], MB_B))
    p = res.path(MB_A, MB_B)
    top = brute_minimax(f, ia, ib, [False, False])
    assert p.saddle_free_energy == pytest.approx(top, abs=1e-12)
    assert p.barrier == pytest.approx(top - f[ia], abs=1e-12)
    assert p.barrier_reverse == pytest.approx(top - f[ib], abs=1e-12)
    assert float(np.max(p.free_energy)) == pytest.approx(top, abs=1e-12)
    # a connected grid path from minimum to minimum, with F read off the grid
    idx = [nearest([x, y], q) for q in p.points]
    assert idx[0] == ia and idx[-1] == ib
    steps = np.abs(np.diff(np.array(idx), axis=0)).sum(axis=1)
    assert (steps == 1).all()
    np.testing.assert_allclose(p.free_energy, [f[i] for i in idx], atol=0)
    # the grid's saddle is the analytic one within a grid spacing
    assert p.saddle == pytest.approx(MB_SADDLE_AC[0], abs=0.03)
    assert p.saddle_free_energy == pytest.approx(MB_SADDLE_AC[1], abs=1.0)
    # the reverse path has the same saddle; its barrier is this one's reverse
    back = res.path(MB_B, MB_A)
    assert back.barrier == pytest.approx(p.barrier_reverse, abs=1e-12)
    assert math.isnan(p.barrier_error)


def test_string_refinement_finds_the_analytic_saddle():
    x, y, f = mb_surface()
    res = surface(f, [x, y])
    s = res.path(MB_A, nearest_minimum_c(), refine=True)
    assert s.refined
    # the interpolated surface's highest point along the relaxed string, against Mueller-Brown's saddle
    assert s.saddle == pytest.approx(MB_SADDLE_AC[0], abs=0.03)
    assert s.saddle_free_energy == pytest.approx(MB_SADDLE_AC[1], abs=1.0)
    ia = descend(f, nearest([x, y], MB_A))
    assert s.points[0] == pytest.approx([x[ia[0]], y[ia[1]]])


def nearest_minimum_c():
    return (-0.050, 0.467)


def test_periodic_path_crosses_the_boundary():
    n = 72
    a = np.arange(n) * 2 * np.pi / n - np.pi
    X, Y = np.meshgrid(a, a, indexing="ij")
    f = 6 * np.cos(X) + 5 * np.cos(4 * X) - 4 * np.cos(Y)  # wells at x = +-3 pi / 4, the low pass at x = pi
    res = surface(f, [a, a], periodic=[2 * np.pi, 2 * np.pi])
    p = res.path((-2.36, 0.0), (2.36, 0.0))
    start, end = nearest([a, a], p.points[0]), nearest([a, a], p.points[-1])
    top = brute_minimax(f, start, end, [True, True])
    assert p.saddle_free_energy == pytest.approx(top, abs=1e-12)
    assert p.barrier == pytest.approx(top - f[start], abs=1e-12)
    # through x = pi: the path's x jumps by about one period where it crosses the boundary
    assert abs(abs(p.saddle[0]) - np.pi) < 0.1
    assert np.abs(np.diff(p.points[:, 0])).max() > np.pi
    # without the wrap the pass (through x = 0) is higher
    assert brute_minimax(f, start, end, [False, False]) > top + 1.0
    refined = res.path((-2.36, 0.0), (2.36, 0.0), refine=True)
    assert refined.saddle_free_energy == pytest.approx(6 * math.cos(math.pi) + 5 - 4, abs=0.05)


def test_barrier_block_error_is_the_standard_error_at_the_saddle_and_the_start():
    rng = np.random.default_rng(11)
    x = np.concatenate([rng.normal(-1, 0.3, 6000), rng.normal(1, 0.3, 4000)])
    rng.shuffle(x)
    res = cyfes.fes(x, 0.12, bins=121, ranges=[(-2, 2)], blocks=4, device="cpu")
    p = res.path(0, 1)
    ax = res.axes[0]
    ia, ib = int(np.argmin(np.abs(ax - p.points[0][0]))), int(np.argmin(np.abs(ax - p.points[-1][0])))
    lo, hi = sorted((ia, ib))
    top = lo + int(np.argmax(res.values[lo:hi + 1]))
    assert p.saddle == pytest.approx((ax[top],))
    per = res.block_values[:, top] - res.block_values[:, ia]
    assert p.barrier_error == pytest.approx(np.std(per, ddof=1) / 2, rel=1e-9)
    per = res.block_values[:, top] - res.block_values[:, ib]
    assert p.barrier_reverse_error == pytest.approx(np.std(per, ddof=1) / 2, rel=1e-9)


def test_bad_paths_are_refused():
    x, y, f = mb_surface()
    res = surface(f, [x, y])
    with pytest.raises(cyfes.InputError, match="same basin"):
        res.path(MB_A, (MB_A[0] + 0.02, MB_A[1]))
    with pytest.raises(cyfes.InputError, match="no basin"):
        res.path(MB_A, (5.0, 5.0))
    with pytest.raises(cyfes.InputError, match="basin 7 does not exist"):
        res.path(0, 7)
    g = f.copy()
    g[70:72, :] = np.inf  # a wall of no mass between the two sides
    walled = surface(g, [x, y])
    labels = walled.basins().labels
    left, right = (x[20], y[100]), (x[140], y[10])
    assert labels[20, 100] != labels[140, 10] and min(labels[20, 100], labels[140, 10]) >= 0
    with pytest.raises(cyfes.InputError, match="no path"):
        walled.path(left, right)
