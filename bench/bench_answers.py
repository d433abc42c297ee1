"""Basins and the barrier path on a 500 x 500 surface: cyfes.analysis against plain Python baselines timed in the
same run (and checked to give the same answers).

    python bench/bench_answers.py [--n 500] [--repeats 3]

Surface: Mueller-Brown (three minima, two saddles) plus a periodic ripple so there are noise minima to merge,
capped at 60 kJ/mol. Baselines, written the textbook way in pure Python over the same grid graph (face
neighbours): basins by a union-find watershed over the points sorted by F (elder rule, merging minima shallower
than 2 kT), the barrier by a minimax Dijkstra (key = the highest F on the way) from one minimum to the other.
Timings are the best of `repeats` runs; the ratio is baseline / cyfes.
"""
from __future__ import annotations

import argparse
import heapq
import math
import platform
import time
from typing import Callable, List, Tuple

import numpy as np

from cyfes.engine.result import FESResult

KT = 0.0083144626181532 * 300.0
MB = ((-200, -1, 0, -10, 1, 0), (-100, -1, 0, -10, 0, 0.5), (-170, -6.5, 11, -6.5, -0.5, 1.5),
      (15, 0.7, 0.6, 0.7, -1, 1))


def surface(n: int) -> FESResult:
    x, y = np.linspace(-1.5, 1.2, n), np.linspace(-0.4, 2.0, n)
    X, Y = np.meshgrid(x, y, indexing="ij")
    f = sum(A * np.exp(a * (X - x0) ** 2 + b * (X - x0) * (Y - y0) + c * (Y - y0) ** 2) for A, a, b, c, x0, y0 in MB)
    f = np.minimum(f + 1.5 * np.sin(40 * X) * np.sin(40 * Y), 60.0)
    return FESResult(values=f - f.min(), axes=[x, y], grid=None, error=None, kT=KT, units="kJ/mol",
                     temperature=300.0, backend="bench", precision="float64", sigma=np.array([0.1, 0.1]),
                     periodic=[None, None], n_samples=0)


def neighbours(k: int, nx: int, ny: int) -> List[int]:
    i, j = divmod(k, ny)
    out = []
    if i > 0:
        out.append(k - ny)
    if i < nx - 1:
        out.append(k + ny)
    if j > 0:
        out.append(k - 1)
    if j < ny - 1:
        out.append(k + 1)
    return out


def python_basins(values: np.ndarray, min_depth: float) -> int:
    """Union-find watershed in pure Python: the number of basins left after merging shallow minima."""
    nx, ny = values.shape
    flat = values.ravel().tolist()
    order = sorted(range(len(flat)), key=lambda k: (flat[k], k))
    up = [-1] * len(flat)
    low = {}  # root -> its minimum's F

    def find(a: int) -> int:
        while up[a] != a:
            up[a] = up[up[a]]
            a = up[a]
        return a

    kept = 0
    for k in order:
        up[k] = k
        low[k] = flat[k]
        roots = {find(q) for q in neighbours(k, nx, ny) if up[q] >= 0}
        for r in sorted(roots, key=lambda r: low[r]):
            rk = find(k)
            if r == rk:
                continue
            young, old = (r, rk) if low[r] > low[rk] else (rk, r)
            if flat[k] - low[young] >= min_depth:
                kept += 1  # a basin that ends here deep enough to keep
            up[young] = old
    return kept + 1


def python_barrier(values: np.ndarray, a: int, b: int) -> float:
    """Minimax Dijkstra in pure Python: the lowest possible highest F on a path from a to b."""
    nx, ny = values.shape
    flat = values.ravel().tolist()
    best = {a: flat[a]}
    heap = [(flat[a], a)]
    while heap:
        top, k = heapq.heappop(heap)
        if k == b:
            return top - flat[a]
        if top > best.get(k, math.inf):
            continue
        for q in neighbours(k, nx, ny):
            t = max(top, flat[q])
            if t < best.get(q, math.inf):
                best[q] = t
                heapq.heappush(heap, (t, q))
    return math.inf


def best_of(fn: Callable[[], object], repeats: int) -> Tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    res = surface(args.n)
    from cyfes.analysis import _grid

    def cyfes_basins() -> object:
        _grid._cached.cache_clear()  # time the whole computation, not the cache
        return res.basins()

    t_basins, found = best_of(cyfes_basins, args.repeats)
    t_py_basins, count = best_of(lambda: python_basins(res.values, 2 * KT), 1)
    a, b = found[0], found[1]

    def cyfes_path() -> object:
        _grid._cached.cache_clear()
        return res.path(a.label, b.label)

    t_path, path = best_of(cyfes_path, args.repeats)
    shape = res.values.shape
    ia = int(np.ravel_multi_index(tuple(int(np.argmin(np.abs(ax - c))) for ax, c in zip(res.axes, a.minimum)), shape))
    ib = int(np.ravel_multi_index(tuple(int(np.argmin(np.abs(ax - c))) for ax, c in zip(res.axes, b.minimum)), shape))
    t_py_path, barrier = best_of(lambda: python_barrier(res.values, ia, ib), 1)
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}; grid {shape[0]}x{shape[1]}")
    print(f"basins: cyfes {t_basins:.3f} s ({len(found)} basins), pure Python union-find {t_py_basins:.3f} s "
          f"({count} basins): ratio {t_py_basins / t_basins:.1f}x")
    print(f"path:   cyfes {t_path:.3f} s (barrier {path.barrier:.6g}), pure Python minimax Dijkstra {t_py_path:.3f} s "
          f"(barrier {barrier:.6g}): ratio {t_py_path / t_path:.1f}x")
    if len(found) != count or abs(path.barrier - barrier) > 1e-9:
        raise SystemExit("bench_answers: cyfes and the baseline disagree")


if __name__ == "__main__":
    main()
