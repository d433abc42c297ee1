"""The truncated sum on GPUs: the host sorts the samples into cells (as for the CPU), the GPUs sum the tiles
(cuda/truncated.cu) and sum again, point by point, the tiles they could not settle, and the CPU sums the few
points left after that.

A tile goes point by point when its points' densities span more than the precision's exp range below the tile's
largest cell bound (far from the data, where a tile's density falls by e^80 across it), or when far samples could
matter. One point per tile removes the spread within the tile, and its cut is that point's own."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from . import _backends
from ._truncated import FIRST_CUT_GAP, Tiles, Truncated, reach, sorted_cells

#: Grid points per tile of a regular grid on the GPU, by the number of CVs (default 16): every tile is one thread
#: block and its points are summed from registers; the cut must hold at a tile's lowest point and tiles far from the
#: data are summed again point by point, so smaller tiles win where they are wide. Measured on an H100 (1e7 samples,
#: float32, kernel calls): 2-D 1e8 x 500^2 16 points 0.44 s, 64 points 0.88 s; 3-D 1e7 x 100^3 8 points 0.22 s,
#: 27 points 0.27 s, 64 points 0.37 s.
TILE_POINTS = {2: 16, 3: 8}


def tile_points(dim: int) -> int:
    return TILE_POINTS.get(dim, 16)


@dataclass
class _Pass:
    """One pass over tiles: per grid row the log density, per tile the bound, pairs and status (0: done)."""

    out: np.ndarray
    bound: np.ndarray
    pairs: np.ndarray
    status: np.ndarray


def _rows_of(start: np.ndarray, which: np.ndarray) -> np.ndarray:
    """The grid rows of the tiles `which` (tile t is rows start[t]:start[t + 1]), tile after tile."""
    begin, end = start[which], start[which + 1]
    lengths = end - begin
    offsets = np.repeat(begin - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
    return np.arange(int(lengths.sum())) + offsets


def _gpu_pass(gpu: Any, cells: tuple, args: tuple, grid: np.ndarray, start: np.ndarray,
              ids: Sequence[int]) -> _Pass:
    """The tiles of `start` (offsets into grid), split over the GPUs."""
    samples_t, lw, cstart, lmass, box, geometry, dense = cells
    ntiles = len(start) - 1
    res = _Pass(np.empty(len(grid)), np.zeros(ntiles), np.zeros(ntiles, dtype=np.int64),
                np.zeros(ntiles, dtype=np.intc))
    lall, first, tol = args

    def work(dev: int, t0: int, t1: int) -> None:
        gpu.truncated_tiles(samples_t, lw, cstart, lmass, box, geometry, dense, lall, first, FIRST_CUT_GAP, grid,
                            start[t0:t1 + 1], tol, res.out, res.bound[t0:t1], res.pairs[t0:t1],
                            res.status[t0:t1], dev)

    _backends.each_gpu(ids, ntiles, work)
    return res


def gpu_log_density(data: np.ndarray, logw: np.ndarray, lo: int, hi: int, top: float, grid: np.ndarray,
                    tiles: Tiles, sigma: np.ndarray, period: np.ndarray, dtype: type, tolerance: float,
                    ids: Sequence[int], threads: int, kept: Optional[int] = None) -> Truncated:
    """As _truncated.cpu_log_density, on the GPUs `ids`; `threads`: CPU threads for the cell build and the points
    sent back."""
    cpu = importlib.import_module("cyfes._cpu")
    gpu = _backends._load_gpu()
    sorted_ = sorted_cells(data, logw, lo, hi, top, sigma, period, dtype, threads, kept)
    cells, per, lall = sorted_.arrays, sorted_.period, sorted_.log_mass
    args = (lall, reach(tolerance), float(tolerance))
    res = _gpu_pass(gpu, cells, args, grid, tiles.start, ids)
    out, bound, pairs = res.out, float(res.bound.max(initial=0.0)), int(res.pairs.sum())
    left = np.flatnonzero(res.status)
    if left.size:  # tiles the GPU could not settle even point by point: the CPU sums with running maxima
        rows = _rows_of(tiles.start, left)
        sub_out, sub_bound = np.empty(len(rows)), np.zeros(len(rows))
        sub_pairs = np.zeros(len(rows), dtype=np.int64)
        samples_t, lw, cstart, lmass, box, geometry, dense = cells
        cpu.truncated_tiles(samples_t, lw, cstart, lmass, box, geometry, dense, lall, args[1], FIRST_CUT_GAP,
                            np.ascontiguousarray(grid[rows]), np.arange(len(rows) + 1, dtype=np.int64),
                            np.zeros((0, grid.shape[1]), dtype=np.int64), per.astype(dtype), args[2],
                            sub_out, sub_bound, sub_pairs, threads)
        out[rows] = sub_out
        bound, pairs = max(bound, float(sub_bound.max(initial=0.0))), pairs + int(sub_pairs.sum())
    return Truncated(out, bound, pairs, lall)
