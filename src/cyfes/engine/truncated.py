"""The truncated sum: only the groups of samples that can change F by more than a tolerance are summed.

Samples are sorted into cells and grid points into tiles (small boxes); per tile, cells are included by the upper
bound of their kernel mass until what is left is provably at most `tolerance` times the included sum at every
point of the tile (cpu_truncated.h has the bound). F then moves by at most ln(1 + tolerance) <= tolerance kT.
Coordinates here are pre-scaled by 1 / (sigma sqrt(2)), so a pair's exponent is logw - |dist|^2.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import backends

#: Grid points per tile of a regular grid (8 x 8, 4 x 4 x 4): with the separable sums' recurrence a sample costs
#: two exps per CV and tile whatever the tile's side, so larger tiles than the 16 points of per-point sums pay;
#: the cut, though, must hold at a tile's lowest-density point. 2-D 1e6 x 200^2 / 3-D 1e6 x 64^3 (sigma 0.1, CPU
#: seconds): 16 points 0.41 / 1.88, 36 0.35, 64 0.33 / 1.39, 100 0.36.
TILE_POINTS = 64
#: On the CPU, 2 CVs: tiles of about this side in pre-scaled units (a tile's cut covers its own width plus the
#: reach around it; a wider tile shares each sample's exps among more points), at most SEP_SIDE points per CV
#: and TILE_MAX in all (the C kernels' limits, read from cyfes.engine._cpu). 2-D 1e6 samples, sigma 0.1, 2 cores
#: (surface seconds): 200^2 points, 8 x 8 tiles (side 1.8) 0.24, 10 x 10 (2.2) 0.16-0.18, 12 x 12 (2.7) 0.20;
#: 240^2 points, 10 x 10 (1.9) 0.24, 12 x 12 (2.2) 0.19. 3 CVs keep TILE_POINTS: 4 x 4 x 4 tiles took 1.09 s on
#: 64^3 points and 0.52 s on 48^3 (sides 2.8 and 3.7), against 1.35 s (5^3, 3.5) and 0.85 s (3^3, 2.8).
TILE_SIDE = 2.2
#: Explicit points (per-point sums, no recurrence): points per tile.
POINT_TILE_POINTS = 16
#: Wanted cell side in pre-scaled units (1 = sigma * sqrt(2)); cells grow when there would be too many.
#: 1.5 against 2: -5% time in 2-D and 3-D (fewer pairs, more cells per tile).
CELL_SIDE = 1.5
#: At most one cell per SAMPLES_PER_CELL samples kept, and at most MAX_CELLS cells: each tile looks at every cell
#: (src/cyfes/cell_grid.h applies both, on the CPU and the GPU).
SAMPLES_PER_CELL = 16
MAX_CELLS = 1 << 15
#: The first cut of a tile assumes its density is at least exp(largest cell bound - FIRST_CUT_GAP); the check after
#: summing (against the true included sum) adds cells when that was optimistic, so this only trades passes for pairs.
#: A gap of 1 took 10-25% less CPU time, but F's error then approached the bound (2.6e-7 against 1.4e-8 kT at 1e-6)
#: and moved the sixth digit of outputs that must match other tools byte for byte.
FIRST_CUT_GAP = 6.0
#: Without a progress callback the tiles run in parts of about this many seconds, the first a small probe and each
#: next at most PART_GROWTH times the last: Python acts on SIGINT between parts, and every part is an OpenMP region
#: whose end the threads spin-wait at (64 fixed parts took 2.5x as long as one on a busy 2-core machine).
PART_SECONDS = 0.3
PART_GROWTH = 4


@dataclass
class Tiles:
    """Grid points grouped into tiles: `order` lists point indices tile by tile, tile t is order[start[t]:start[t+1]]."""

    start: np.ndarray
    #: (ntiles, D) extents when every tile is a box of a regular grid (its points in matrix order), else (0, D).
    shape: np.ndarray
    #: Explicit points: the order. A regular grid: None, its order follows from `grid_shape` and the tile sides.
    explicit_order: np.ndarray | None = None
    grid_shape: tuple[int, ...] | None = None

    def _split(self) -> tuple[list[int], list[int], list[int]]:
        """A regular grid's shape, tile sides and tiles per axis."""
        shape = list(self.grid_shape or ())
        sides = [int(v) for v in self.shape[0]]
        return shape, sides, [-(-n // s) for n, s in zip(shape, sides)]

    @functools.cached_property
    def order(self) -> np.ndarray:
        if self.explicit_order is not None:
            return self.explicit_order
        shape, sides, ntiles = self._split()
        # pad every axis to whole tiles with -1, split each axis into (tile, within tile), tile axes first
        index = np.full([t * s for t, s in zip(ntiles, sides)], -1, dtype=np.int64)
        index[tuple(slice(0, n) for n in shape)] = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
        dim = len(shape)
        split = index.reshape([v for t, s in zip(ntiles, sides) for v in (t, s)])
        order = split.transpose(list(range(0, 2 * dim, 2)) + list(range(1, 2 * dim, 2))).ravel()
        return order[order >= 0]

    def _layout(self) -> tuple[np.ndarray, np.ndarray]:
        """A regular grid's shape and tile sides, as the C loops of tile_order.h take them."""
        shape, sides, _ = self._split()
        return np.array(shape, dtype=np.int64), np.array(sides, dtype=np.int64)

    def to_matrix_order(self, values: np.ndarray, threads: int = 0) -> np.ndarray:
        """Per-point values in tile order, back in the grid's order (a regular grid's in one threaded pass, from
        the tile layout alone)."""
        if self.grid_shape is None:
            out = np.empty_like(values)
            out[self.order] = values
            return out
        cpu = backends.cpu_module()
        shape, sides = self._layout()
        return cpu.from_tile_order(np.ascontiguousarray(values, dtype=np.float64), shape, sides, self.start, threads)


@dataclass
class Truncated:
    """log sum_j w_j K(x - s_j) per point (unnormalised, relative to the block's top log-weight), the bound on the
    change of F that the truncation allows (kT), and the sample-point pairs summed."""

    log_density: np.ndarray
    bound: float
    pairs: int
    #: log sum_j w_j over the block (relative to its top log-weight), from the cells' sums: no second pass.
    log_z: float


def scaled_factor(sigma: np.ndarray) -> np.ndarray:
    return 1.0 / (np.asarray(sigma, dtype=np.float64) * np.sqrt(2.0))


def reach(tolerance: float) -> float:
    """Pre-scaled distance beyond which a sample of average weight is negligible at `tolerance` (a first guess;
    the kernel widens it when weights say otherwise)."""
    return float(np.sqrt(-np.log(tolerance) + FIRST_CUT_GAP))


def can_truncate(lo: np.ndarray, hi: np.ndarray, sigma: np.ndarray, period: np.ndarray, tolerance: float) -> bool:
    """False when every sample is within reach of every grid point on every CV (kernels as wide as the data):
    nothing could be left out, and the plain sum is cheaper than sorting into cells. lo, hi: per CV the lowest
    and highest coordinate of the samples and the grid together."""
    factor = scaled_factor(sigma)
    span = np.where(period > 0, np.minimum(hi - lo, period / 2), hi - lo) * factor
    return bool((span > reach(tolerance)).any())


def _tile_sides(shape: Sequence[int], points: int | None = None, steps: Sequence[float] | None = None) -> list[int]:
    """Per axis the tile side. 2 CVs on the CPU, given `steps` (the axes' spacings in pre-scaled units): about
    TILE_SIDE across, at most SEP_SIDE points per axis and TILE_MAX per tile. Otherwise about `points` points, by
    default TILE_POINTS (2 or 3 CVs: separable sums) or POINT_TILE_POINTS (other dimensions: per-point sums), split
    evenly over the axes."""
    dim = len(shape)
    if points is None and steps is not None and dim == 2:
        cpu = backends.cpu_module()
        sides = [min(cpu.SEP_SIDE, max(1, round(TILE_SIDE / s))) if s > 0 else cpu.SEP_SIDE for s in steps]
        while int(np.prod(sides)) > cpu.TILE_MAX:
            sides[int(np.argmax(sides))] -= 1
        return [min(side, n) for side, n in zip(sides, shape)]
    if points is None:
        points = TILE_POINTS if dim in (2, 3) else POINT_TILE_POINTS
    side = max(1, int(round(points ** (1.0 / dim))))
    return [min(side, n) for n in shape]


def regular_tiles(shape: Sequence[int], points: int | None = None, steps: Sequence[float] | None = None) -> Tiles:
    """Boxes of grid indices (matrix order) as tiles of about `points` points or, given the axes' pre-scaled
    `steps`, of the CPU's width (_tile_sides), tiles in matrix order of their corners. Built from the shape alone:
    no per-point sort (a stable argsort of 1e6 keys took 0.05-0.14 s); `order` is computed only when asked for."""
    sides = _tile_sides(shape, points, steps)
    ntiles = [-(-n // s) for n, s in zip(shape, sides)]
    # per axis the extent of each tile (the last one may be short), then every combination in matrix order
    # (by broadcasting and outer products: np.prod over rows of 3 took 2 ms for 125,000 tiles)
    per_axis = [np.minimum(s, n - s * np.arange(t, dtype=np.int64)) for n, s, t in zip(shape, sides, ntiles)]
    start = np.zeros(int(np.prod(ntiles)) + 1, dtype=np.int64)
    np.cumsum(functools.reduce(np.multiply.outer, per_axis).ravel(), out=start[1:])
    return Tiles(start, grid_rows(per_axis, np.int64), grid_shape=tuple(int(n) for n in shape))


def grid_rows(axes: Sequence[np.ndarray], dtype: type | None = None) -> np.ndarray:
    """Every combination of the axes' values as (M, D) rows in matrix order (dtype: the axes' common one unless
    given), written by broadcasting (no meshgrid copies)."""
    dim = len(axes)
    rows = np.empty([len(a) for a in axes] + [dim], dtype=dtype or np.result_type(*axes))
    for d, axis in enumerate(axes):
        rows[..., d] = np.asarray(axis).reshape([len(axis) if k == d else 1 for k in range(dim)])
    return rows.reshape(-1, dim)


def point_tiles(scaled: np.ndarray) -> Tiles:
    """Explicit points: sorted into boxes of side 2 (pre-scaled units), each box cut into tiles of
    POINT_TILE_POINTS."""
    cells = np.floor((scaled - scaled.min(axis=0)) / 2.0).astype(np.int64)
    key = np.ravel_multi_index(tuple(cells.T), tuple(cells.max(axis=0) + 1)) if len(scaled) else cells[:, 0]
    order = np.argsort(key, kind="stable")
    key = key[order]
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    rank = np.arange(len(key)) - np.repeat(first, np.diff(np.r_[first, len(key)]))
    start = np.r_[np.flatnonzero(rank % POINT_TILE_POINTS == 0), len(key)]
    return Tiles(start.astype(np.int64), np.zeros((0, scaled.shape[1]), dtype=np.int64),
                 explicit_order=order.astype(np.int64))


def scaled_points(points: np.ndarray, factor: np.ndarray, period: np.ndarray) -> np.ndarray:
    """Pre-scaled points, periodic CVs wrapped into [0, P')."""
    u = points * factor
    per = period * factor
    for d in np.flatnonzero(per > 0):  # only the periodic columns: np.mod over every value was 0.1 s at 1e6 x 3
        u[:, d] = np.mod(u[:, d], per[d])
    return u


@dataclass
class Cells:
    """The samples of one block sorted into cells (cyfes.engine._cpu.build_cells: samples, log-weights, cell starts, log
    masses, boxes, geometry, dense ids), the pre-scaled periods and the block's log sum of weights (relative to
    its top log-weight)."""

    arrays: tuple
    period: np.ndarray
    log_mass: float


def sorted_cells(data: np.ndarray, logw: np.ndarray, lo: int, hi: int, top: float, sigma: np.ndarray,
                 period: np.ndarray, dtype: type, threads: int) -> Cells:
    """Samples [lo, hi) of finite log-weight in cells of about CELL_SIDE."""
    cpu = backends.cpu_module()
    data, logw = np.ascontiguousarray(data, dtype=np.float64), np.ascontiguousarray(logw, dtype=np.float64)
    factor = scaled_factor(sigma)
    per = np.ascontiguousarray(period * factor)
    arrays = cpu.build_cells(data, logw, lo, hi, factor, per, top, CELL_SIDE, SAMPLES_PER_CELL, MAX_CELLS, dtype,
                             threads)
    return Cells(arrays, per, float(np.logaddexp.reduce(arrays[3])))


def cpu_log_density(data: np.ndarray, logw: np.ndarray, lo: int, hi: int, top: float, grid: np.ndarray,
                    tiles: Tiles, sigma: np.ndarray, period: np.ndarray, dtype: type, tolerance: float,
                    threads: int, parts: Sequence[slice] | None = None,
                    progress: Callable[[], None] | None = None) -> Truncated:
    """The truncated sum over samples [lo, hi) (those of finite log-weight) on the CPU; `grid` is pre-scaled and
    wrapped (scaled_points) and already in tile order. parts: slices of the tiles run one after another,
    `progress` called after each; None: parts sized by time (timed_parts)."""
    cpu = backends.cpu_module()
    cells = sorted_cells(data, logw, lo, hi, top, sigma, period, dtype, threads)
    samples_t, lw, start, lmass, box, geometry, dense = cells.arrays
    per, lall = cells.period, cells.log_mass
    ntiles = len(tiles.start) - 1
    out = np.empty(len(grid))
    bound = np.zeros(ntiles)
    pairs = np.zeros(ntiles, dtype=np.int64)
    per_t = per.astype(dtype)

    def run(lo_t: int, hi_t: int) -> None:
        shape = tiles.shape[lo_t:hi_t] if len(tiles.shape) else tiles.shape
        cpu.truncated_tiles(samples_t, lw, start, lmass, box, geometry, dense, lall, reach(tolerance), FIRST_CUT_GAP,
                            grid, tiles.start[lo_t:hi_t + 1], shape, per_t, float(tolerance), out,
                            bound[lo_t:hi_t], pairs[lo_t:hi_t], threads)

    if parts is None:
        timed_parts(ntiles, run)
    for part in parts or ():
        run(*part.indices(ntiles)[:2])
        if progress is not None:
            progress()
    return Truncated(out, float(bound.max(initial=0.0)), int(pairs.sum()), lall)


def timed_parts(count: int, run: Callable[[int, int], None], seconds: float = PART_SECONDS) -> None:
    """run(lo, hi) over [0, count) in consecutive parts of about `seconds` each: the first is 1/64 of the work,
    each next one sized by the rate measured so far (at most PART_GROWTH times the last)."""
    lo, size, done_s = 0, max(1, count // 64), 0.0
    while lo < count:
        hi = min(count, lo + size)
        t0 = time.perf_counter()
        run(lo, hi)
        done_s += time.perf_counter() - t0
        rate = hi / max(done_s, 1e-6)
        size = max(1, min(size * PART_GROWTH, int(rate * seconds)))
        lo = hi


def grid_in_tile_order(axes: Sequence[np.ndarray], tiles: Tiles, factor: np.ndarray, period: np.ndarray,
                       dtype: type, threads: int = 0) -> np.ndarray:
    """The points of the regular grid `axes`, pre-scaled and wrapped as scaled_points, in the order of
    regular_tiles(shape): each axis scaled once, then written point by point in one threaded pass (tile_order.h;
    threads 0: OpenMP's default)."""
    cpu = backends.cpu_module()
    columns = [scaled_points(np.asarray(axis, dtype=np.float64)[:, None], factor[d:d + 1], period[d:d + 1])[:, 0]
               for d, axis in enumerate(axes)]
    shape, sides = tiles._layout()
    return cpu.grid_in_tile_order(np.ascontiguousarray(np.concatenate(columns)), shape, sides, tiles.start, dtype,
                                  threads)


def in_tile_order(points_scaled: np.ndarray, tiles: Tiles, dtype: type) -> np.ndarray:
    return np.ascontiguousarray(points_scaled[tiles.order], dtype=dtype)


def from_tile_order(values: np.ndarray, tiles: Tiles, threads: int = 0) -> np.ndarray:
    return tiles.to_matrix_order(values, threads)
