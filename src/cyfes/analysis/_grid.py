"""The grid as a graph, shared by minima, basins and paths.

Points are joined to their face neighbours (2 per CV; a periodic CV's first and last points are neighbours).
Ties in F are broken by the point's flat index, so "lower" is a total order and every flat region still has one
lowest point. Points where F is not finite (+inf: no mass, NaN) belong to no basin and join nothing.

Each point's steepest-descent neighbour is its lowest neighbour when that is lower than the point itself; following
them ends at a local minimum, which gives the raw basins (one per local minimum). Between two raw basins the lowest
saddle is the lowest of max(F_p, F_q) over the grid edges (p, q) that cross from one to the other: inside a basin a
descending path reaches the minimum, so no path between the minima can stay lower. Kruskal's algorithm over these
basin edges (sorted by saddle) gives every minimum's depth by the elder rule (a basin ends where it first meets a
basin with a lower minimum; depth = that saddle's F minus its minimum's F) and, as its tree, the minimax paths.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import InputError

#: A point's rank when F is not finite there: above every finite point.
NO_RANK = np.iinfo(np.int64).max


def regular(result: Any, what: str) -> np.ndarray:
    """The surface's values as float64, refused when it is not a regular grid or has no finite point."""
    if result.axes is None:
        raise InputError(f"{what}: needs a regular grid (bins), not explicit points")
    values = np.asarray(result.values, dtype=np.float64)
    if not np.isfinite(values).any():
        raise InputError(f"{what}: the surface has no finite free energy")
    return values


def wraps(result: Any) -> list[bool]:
    """Per CV: does the grid wrap? Only a periodic CV whose points span one whole period without repeating the
    end (n * spacing = period, cyfes's and PLUMED's layout); a grid over part of a period has two real ends."""
    periods = result.periodic or [None] * result.dim
    return [bool(p) and len(a) > 1 and math.isclose(len(a) * spacing(a), float(p), rel_tol=1e-6)
            for a, p in zip(result.axes, periods)]


def neighbour_tables(shape: tuple[int, ...], wrap: Sequence[bool]) -> list[np.ndarray]:
    """Per CV and direction (+1, then -1) the flat index of each point's neighbour, -1 at a non-periodic edge."""
    idx = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    out = []
    for d, n in enumerate(shape):
        for step in (1, -1):
            nb = np.roll(idx, -step, axis=d)
            if not wrap[d] or n < 2:
                edge = [slice(None)] * len(shape)
                edge[d] = slice(n - 1, n) if step == 1 else slice(0, 1)
                nb[tuple(edge)] = -1
            out.append(nb.ravel())
    return out


def ranks(flat: np.ndarray) -> np.ndarray:
    """Each point's place in the order of (F, index); NO_RANK where F is not finite."""
    finite = np.isfinite(flat)
    order = np.argsort(np.where(finite, flat, np.inf), kind="stable")
    rank = np.empty(len(flat), dtype=np.int64)
    rank[order] = np.arange(len(flat), dtype=np.int64)
    rank[~finite] = NO_RANK
    return rank


@dataclass(frozen=True)
class Watershed:
    """The raw basins of a surface and the tree of their lowest saddles.

    values: F per flat point; rank: its order; parent: the steepest-descent neighbour (itself at a minimum and
    where F is not finite); raw: the raw basin of each point (-1 where F is not finite); minima: the flat index of
    each raw basin's minimum, lowest first (raw basin k has minima[k]). depth / saddle: per raw basin, its depth
    and the flat index of the saddle where it meets a lower basin (inf / -1 for none). tree: the Kruskal tree's
    edges as (basin a, basin b, point in a, point in b), the crossing grid edge of their lowest saddle."""

    shape: tuple[int, ...]
    values: np.ndarray
    rank: np.ndarray
    parent: np.ndarray
    raw: np.ndarray
    minima: np.ndarray
    depth: np.ndarray
    saddle: np.ndarray
    merged_into: np.ndarray
    tree: list[tuple[int, int, int, int]]
    #: The raw basins in the order they met a lower one (the order of their saddles).
    merges: np.ndarray

    def descent(self, point: int) -> list[int]:
        """The steepest-descent path from `point` to its minimum."""
        out = [int(point)]
        while self.parent[out[-1]] != out[-1]:
            out.append(int(self.parent[out[-1]]))
        return out


def _descent_parents(rank: np.ndarray, tables: list[np.ndarray]) -> np.ndarray:
    n = len(rank)
    parent = np.arange(n, dtype=np.int64)
    best = rank.copy()
    for nb in tables:
        r = np.where(nb >= 0, rank[np.maximum(nb, 0)], NO_RANK)
        lower = r < best
        parent[lower], best[lower] = nb[lower], r[lower]
    return parent


def _roots(parent: np.ndarray) -> np.ndarray:
    """Where each point's descent ends, by pointer doubling (log2 of the longest descent passes)."""
    root = parent.copy()
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            return root
        root = nxt


def _basin_edges(raw: np.ndarray, rank: np.ndarray, tables: list[np.ndarray], count: int) -> np.ndarray:
    """Per pair of touching raw basins its lowest crossing edge: rows (a, b, point in a, point in b, saddle rank),
    sorted by saddle rank."""
    parts = []
    for nb in tables[::2]:  # the +1 direction of every CV covers each grid edge once
        p = np.flatnonzero((nb >= 0) & (raw >= 0))
        q = nb[p]
        keep = (raw[q] >= 0) & (raw[q] != raw[p])
        p, q = p[keep], q[keep]
        swap = raw[p] > raw[q]
        p, q = np.where(swap, q, p), np.where(swap, p, q)
        parts.append(np.column_stack([raw[p], raw[q], p, q, np.maximum(rank[p], rank[q])]))
    edges = np.concatenate(parts) if parts else np.zeros((0, 5), dtype=np.int64)
    if not len(edges):
        return edges
    key = edges[:, 0] * count + edges[:, 1]
    order = np.lexsort((edges[:, 4], key))
    edges, key = edges[order], key[order]
    first = np.ones(len(edges), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    edges = edges[first]
    return edges[np.argsort(edges[:, 4], kind="stable")]


def _find(up: list[int], x: int) -> int:
    root = x
    while up[root] != root:
        root = up[root]
    while up[x] != root:  # path compression
        up[x], x = root, up[x]
    return root


def _kruskal(edges: np.ndarray, flat: np.ndarray, minima: np.ndarray) -> tuple:
    """Elder-rule depths over the basin edges; a component's root is its lowest basin (the smallest id)."""
    count = len(minima)
    up = list(range(count))
    depth = np.full(count, np.inf)
    saddle = np.full(count, -1, dtype=np.int64)
    into = np.full(count, -1, dtype=np.int64)
    tree, merges = [], []
    for a, b, p, q, _ in edges.tolist():
        ra, rb = _find(up, a), _find(up, b)
        if ra == rb:
            continue
        young, old = max(ra, rb), min(ra, rb)
        top = p if flat[p] >= flat[q] else q
        depth[young] = flat[top] - flat[minima[young]]
        saddle[young] = top
        into[young] = b if young == ra else a  # the basin across the saddle
        up[young] = old
        tree.append((a, b, p, q))
        merges.append(young)
    return depth, saddle, into, tree, np.array(merges, dtype=np.int64)


def watershed(values: np.ndarray, wrap: Sequence[bool]) -> Watershed:
    flat = values.ravel()
    tables = neighbour_tables(values.shape, wrap)
    rank = ranks(flat)
    parent = _descent_parents(rank, tables)
    root = _roots(parent)
    is_min = (parent == np.arange(len(flat))) & np.isfinite(flat)
    minima = np.flatnonzero(is_min)
    minima = minima[np.argsort(rank[minima], kind="stable")]
    ident = np.full(len(flat), -1, dtype=np.int64)
    ident[minima] = np.arange(len(minima))
    raw = np.where(np.isfinite(flat), ident[root], -1)
    edges = _basin_edges(raw, rank, tables, len(minima))
    depth, saddle, into, tree, merges = _kruskal(edges, flat, minima)
    return Watershed(values.shape, flat, rank, parent, raw, minima, depth, saddle, into, tree, merges)


@functools.lru_cache(maxsize=2)  # basins then path on one surface; a few arrays of its size each
def _cached(values_bytes: bytes, shape: tuple[int, ...], wrap: tuple[bool, ...]) -> Watershed:
    return watershed(np.frombuffer(values_bytes, dtype=np.float64).reshape(shape), wrap)


def watershed_of(result: Any, what: str) -> Watershed:
    """The watershed of a result's surface, cached on the surface's bytes (basins, basin_of and path on one
    surface share it; a changed surface has other bytes)."""
    values = np.ascontiguousarray(regular(result, what))
    return _cached(values.tobytes(), values.shape, tuple(wraps(result)))


def noise_threshold(result: Any, min_depth: float | None) -> float:
    """min_depth in the result's units: None is DEFAULT_DEPTH_KT kT."""
    if min_depth is None:
        return DEFAULT_DEPTH_KT * float(result.kT)
    try:
        value = float(min_depth)
    except (TypeError, ValueError):
        raise InputError(f"min_depth: expected a number >= 0 ({result.units}), got {min_depth!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise InputError(f"min_depth: expected a number >= 0 ({result.units}), got {min_depth!r}")
    return value


#: Default depth below which a minimum counts as noise and is merged, in kT.
DEFAULT_DEPTH_KT = 2.0


def kept_labels(ws: Watershed, min_depth: float) -> tuple[np.ndarray, np.ndarray]:
    """(label of each raw basin's merged basin, the raw basins kept): a raw basin shallower than min_depth (or of
    depth 0, a tie) joins the basin across its lowest saddle, in the order the saddles rise, so a chain of shallow
    basins ends in a kept one."""
    count = len(ws.minima)
    up = list(range(count))
    noise = (ws.depth < min_depth) | (ws.depth <= 0)
    for young in ws.merges.tolist():
        if noise[young]:
            up[_find(up, young)] = _find(up, int(ws.merged_into[young]))
    roots = np.array([_find(up, k) for k in range(count)], dtype=np.int64)
    return roots, np.flatnonzero(roots == np.arange(count))


def spacing(axis: np.ndarray) -> float:
    axis = np.asarray(axis, dtype=np.float64)
    return float((axis[-1] - axis[0]) / (len(axis) - 1)) if len(axis) > 1 else 1.0


def cell_volume(result: Any) -> float:
    """The volume of one grid cell (product of the spacings; 1 along a CV of one point)."""
    return float(np.prod([spacing(a) for a in result.axes]))


def nearest_cells(result: Any, samples: Any) -> np.ndarray:
    """The flat index of each sample's nearest grid point (-1 outside the grid by more than half a spacing along a
    non-periodic CV); a periodic CV wraps by its period."""
    x = np.asarray(samples, dtype=np.float64)
    x = x.reshape(len(x), -1) if x.ndim < 2 else x
    if x.shape[1] != result.dim:
        raise InputError(f"basin_of: expected samples with {result.dim} CVs, got {x.shape[1]}")
    shape = tuple(len(a) for a in result.axes)
    idx = np.zeros((len(x), result.dim), dtype=np.int64)
    inside = np.isfinite(x).all(axis=1)
    periods = result.periodic or [None] * result.dim
    for d, axis in enumerate(result.axes):
        h, n = spacing(axis), len(axis)
        u = x[:, d] - axis[0]
        gap = float(periods[d]) - (n - 1) * h if periods[d] else -1.0
        if gap >= 0:  # the period's images: the gap between the grid's ends is split at its middle
            u = np.mod(u + gap / 2, float(periods[d])) - gap / 2
        k = np.rint(np.where(np.isfinite(u), u, 0) / h).astype(np.int64)
        inside &= (k >= 0) & (k < n)
        idx[:, d] = np.clip(k, 0, n - 1)
    flat = np.ravel_multi_index(idx.T, shape) if len(x) else np.zeros(0, dtype=np.int64)
    return np.where(inside, flat, -1)


def coordinates(result: Any, point: int) -> tuple[float, ...]:
    where = np.unravel_index(int(point), tuple(len(a) for a in result.axes))
    return tuple(float(a[i]) for a, i in zip(result.axes, where))


def block_surfaces(result: Any) -> np.ndarray | None:
    """Each block's F as (blocks, points) float64, or None without blocks."""
    blocks = getattr(result, "block_values", None)
    if blocks is None:
        return None
    blocks = np.asarray(blocks, dtype=np.float64)
    return blocks.reshape(len(blocks), -1)


def standard_error(per_block: np.ndarray) -> float:
    """The standard error of a block mean (std with ddof 1 over sqrt(blocks)); inf where a block has no value."""
    per_block = np.asarray(per_block, dtype=np.float64)
    if not np.isfinite(per_block).all():
        return math.inf
    return float(per_block.std(ddof=1) / math.sqrt(len(per_block)))
