"""The minimum free energy path between two minima and the barrier along it.

On the grid: the path whose highest point is lowest (minimax, the grid graph with face neighbours, periodic CVs
wrapping). It runs through the tree of lowest saddles between raw basins (see _grid): from the start minimum up
the steepest-descent line of the first crossing point, across the saddle, down the steepest-descent line of the
other side, and so on through any intermediate minima. That is the minimum energy path of the grid: steepest
descent on both sides of each saddle. saddle: the highest point on it; barrier = F(saddle) - F(a),
barrier_reverse = F(saddle) - F(b).

refine=True then relaxes the path as a zero-temperature string (E, Ren & Vanden-Eijnden 2002) on the surface
interpolated multilinearly between grid points: each image moves down the gradient of F, the images are spread
again at equal arc length, the ends stay at the two minima; F along the string and its highest point replace the
grid path's. Coordinates of a periodic CV are unwrapped along the string (they may leave the grid's range).

Block error of the barrier: F of each block at the final path's saddle minus F of that block at the start point,
the standard error over blocks. Recomputing the path on each block's noisier surface could pick another channel
and measure a different quantity; fixed points measure the spread of the same barrier.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import InputError
from . import _grid
from .basins import basins as _basins
from .basins import point_labels

#: String method defaults: images along the string, iterations, step as a fraction of the smallest grid spacing.
STRING_IMAGES = 60
STRING_STEPS = 400
STRING_STEP = 0.1


@dataclass(frozen=True)
class Path:
    """A minimum free energy path: points (K, D) from a to b, free_energy (K,) along it, the saddle (coordinates)
    and its F, barrier = F(saddle) - F(a) and barrier_reverse = F(saddle) - F(b) with their block errors (NaN
    without blocks), in the result's units; basins: the labels of the two ends' basins; refined: whether the
    string method relaxed it."""

    points: np.ndarray
    free_energy: np.ndarray
    saddle: tuple[float, ...]
    saddle_free_energy: float
    barrier: float
    barrier_reverse: float
    barrier_error: float
    barrier_reverse_error: float
    basins: tuple[int, int]
    refined: bool


def _end_point(result: Any, end: Any, labels: np.ndarray, minima: dict[int, int], name: str) -> tuple[int, int]:
    """(basin label, flat index of its minimum) of an end given as a basin label, a Minimum/Basin record or
    coordinates."""
    if isinstance(end, (int, np.integer)) and not isinstance(end, bool):
        if int(end) not in minima:
            raise InputError(f"path: {name} = basin {int(end)} does not exist (basins 0..{len(minima) - 1})")
        return int(end), minima[int(end)]
    coords = getattr(end, "coordinates", None) or getattr(end, "minimum", None) or end
    try:
        point = np.asarray(coords, dtype=np.float64).reshape(1, -1)
    except (TypeError, ValueError):
        raise InputError(f"path: {name}: expected a basin label or coordinates, got {end!r}") from None
    if point.shape[1] != result.dim:
        raise InputError(f"path: {name}: expected {result.dim} coordinates, got {point.shape[1]}")
    cell = int(_grid.nearest_cells(result, point)[0])
    label = int(labels.ravel()[cell]) if cell >= 0 else -1
    if label < 0:
        at = ", ".join(f"{v:g}" for v in point[0])
        raise InputError(f"path: {name} = ({at}) lies in no basin (outside the grid or where F is not finite)")
    return label, minima[label]


def _tree_route(ws: _grid.Watershed, start: int, end: int) -> list[tuple[int, int]]:
    """The crossing points (leaving, entering) of each tree edge on the tree path between two raw basins."""
    links: dict[int, list[tuple[int, int, int]]] = {}
    for a, b, p, q in ws.tree:
        links.setdefault(a, []).append((b, p, q))
        links.setdefault(b, []).append((a, q, p))
    back: dict[int, tuple[int, int, int]] = {start: (-1, -1, -1)}
    todo = deque([start])
    while todo and end not in back:
        u = todo.popleft()
        for v, p, q in links.get(u, ()):
            if v not in back:
                back[v] = (u, p, q)
                todo.append(v)
    if end not in back:
        raise InputError("path: no path of finite free energy joins the two minima")
    route, v = [], end
    while v != start:
        u, p, q = back[v]
        route.append((p, q))
        v = u
    return route[::-1]


def grid_path(ws: _grid.Watershed, start: int, end: int) -> list[int]:
    """Flat indices of the minimax path between the minima of raw basins `start` and `end`."""
    out = [int(ws.minima[start])]
    for leave, enter in _tree_route(ws, start, end):
        out += ws.descent(leave)[::-1][1:]  # up from the current minimum to the crossing point
        out += ws.descent(enter)
    return out


def path(result: Any, a: Any, b: Any, min_depth: float | None = None, refine: bool = False,
         images: int = STRING_IMAGES, steps: int = STRING_STEPS) -> Path:
    """The minimum free energy path from `a` to `b`: basin labels, minima or coordinates (snapped to the minimum
    of the basin they lie in)."""
    ws = point_labels(result, min_depth)[2]
    found = _basins(result, min_depth)
    minima = {r.label: int(np.ravel_multi_index(_index_of(result, r.minimum), ws.shape)) for r in found}
    la, pa = _end_point(result, a, found.labels, minima, "a")
    lb, pb = _end_point(result, b, found.labels, minima, "b")
    if la == lb:
        raise InputError(f"path: a and b lie in the same basin ({la}); give points in two different basins")
    route = grid_path(ws, int(ws.raw[pa]), int(ws.raw[pb]))
    flat = ws.values
    top = route[int(np.argmax(flat[route]))]
    ba, bb = _barrier_errors(result, top, pa, pb)
    points = np.array([_grid.coordinates(result, p) for p in route])
    energy = flat[route].astype(np.float64)
    saddle, f_top = _grid.coordinates(result, top), float(flat[top])
    if refine:
        points, energy = string(result, points, images, steps)
        k = int(np.argmax(energy))
        saddle, f_top = tuple(float(v) for v in points[k]), float(energy[k])
    return Path(points, energy, saddle, f_top, f_top - float(energy[0]), f_top - float(energy[-1]), ba, bb,
                (la, lb), bool(refine))


def _index_of(result: Any, coords: tuple[float, ...]) -> tuple[int, ...]:
    return tuple(int(np.argmin(np.abs(np.asarray(a) - c))) for a, c in zip(result.axes, coords))


def _barrier_errors(result: Any, top: int, pa: int, pb: int) -> tuple[float, float]:
    blocks = _grid.block_surfaces(result)
    if blocks is None:
        return math.nan, math.nan
    return _grid.standard_error(blocks[:, top] - blocks[:, pa]), _grid.standard_error(blocks[:, top] - blocks[:, pb])


# ----------------------------------------------------------------------------------------------- string method
class _Surface:
    """F and its gradient interpolated multilinearly between grid points; a periodic CV wraps, a bounded one is
    clamped to the grid."""

    def __init__(self, result: Any) -> None:
        self.values = np.asarray(result.values, dtype=np.float64)
        finite = np.isfinite(self.values)
        # points of no mass get a wall above the highest finite F, so the string keeps off them
        cap = float(self.values[finite].max()) + 10 * float(result.kT)
        self.values = np.where(finite, self.values, cap)
        self.axes = [np.asarray(a, dtype=np.float64) for a in result.axes]
        self.h = np.array([_grid.spacing(a) for a in self.axes])
        self.wrap = _grid.wraps(result)
        self.grad = [self._gradient(d) for d in range(len(self.axes))]

    def _gradient(self, d: int) -> np.ndarray:
        v = self.values
        if self.wrap[d]:
            return (np.roll(v, -1, axis=d) - np.roll(v, 1, axis=d)) / (2 * self.h[d])
        if v.shape[d] < 2:
            return np.zeros_like(v)
        return np.gradient(v, self.h[d], axis=d)

    def _corners(self, x: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        lo, hi, frac = [], [], []
        for d, axis in enumerate(self.axes):
            n = len(axis)
            u = (x[:, d] - axis[0]) / self.h[d]
            if self.wrap[d]:
                i = np.floor(u)
                t = u - i
                i = i.astype(np.int64) % n
                j = (i + 1) % n
            else:
                u = np.clip(u, 0, n - 1)
                i = np.minimum(np.floor(u).astype(np.int64), max(n - 2, 0))
                t = u - i
                j = np.minimum(i + 1, n - 1)
            lo.append(i), hi.append(j), frac.append(t)
        return lo, hi, frac

    def interpolate(self, table: np.ndarray, x: np.ndarray) -> np.ndarray:
        lo, hi, frac = self._corners(x)
        out = np.zeros(len(x))
        dim = len(self.axes)
        for corner in range(1 << dim):
            weight = np.ones(len(x))
            idx = []
            for d in range(dim):
                up = (corner >> d) & 1
                idx.append(hi[d] if up else lo[d])
                weight = weight * (frac[d] if up else 1 - frac[d])
            out += weight * table[tuple(idx)]
        return out


def _respaced(x: np.ndarray, count: int) -> np.ndarray:
    """`count` points at equal arc length along the polyline x."""
    seg = np.linalg.norm(np.diff(x, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] == 0:
        return np.repeat(x[:1], count, axis=0)
    t = np.linspace(0, s[-1], count)
    return np.column_stack([np.interp(t, s, x[:, d]) for d in range(x.shape[1])])


def _unwrapped(result: Any, points: np.ndarray) -> np.ndarray:
    """Grid path coordinates made continuous across a periodic CV's boundary."""
    x = points.copy()
    for d, p in enumerate(result.periodic or [None] * result.dim):
        if p:
            step = np.diff(x[:, d])
            x[1:, d] = x[0, d] + np.cumsum(step - p * np.round(step / p))
    return x


def string(result: Any, points: np.ndarray, images: int = STRING_IMAGES,
           steps: int = STRING_STEPS) -> tuple[np.ndarray, np.ndarray]:
    """Relax a path (K, D) as a zero-temperature string with fixed ends: (images (M, D), F at them)."""
    if int(images) < 3 or int(steps) < 0:
        raise InputError(f"path: the string needs images >= 3 and steps >= 0, got {images}, {steps}")
    surf = _Surface(result)
    x = _respaced(_unwrapped(result, np.asarray(points, dtype=np.float64)), int(images))
    step = STRING_STEP * float(surf.h.min())
    for _ in range(int(steps)):
        g = np.column_stack([surf.interpolate(t, x) for t in surf.grad])
        scale = float(np.abs(g[1:-1]).max()) if len(x) > 2 else 0.0
        if scale > 0:
            x[1:-1] -= step * g[1:-1] / scale  # the steepest image moves `step`: stable at any energy scale
        x = _respaced(x, int(images))
    return x, surf.interpolate(surf.values, x)
