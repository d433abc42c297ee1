"""The truncated sum on GPUs: each GPU takes the block's raw samples, sorts them into cells itself (cuda/cells.cuh:
the same cells as the CPU's) and sums its share of the tiles (cuda/truncated.cu), then sums again, point by
point, the tiles it could not settle, then in float64 the points float32 could not; the CPU sums the few points
left after that.

A tile goes point by point when its points' densities span more than the precision's exp range below the tile's
largest cell bound (far from the data, where a tile's density falls by e^80 across it), or when far samples could
matter. One point per tile removes the spread within the tile, and its cut is that point's own."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import backends
from .truncated import (
    CELL_SIDE,
    FIRST_CUT_GAP,
    MAX_CELLS,
    SAMPLES_PER_CELL,
    Tiles,
    Truncated,
    reach,
    scaled_factor,
    sorted_cells,
)

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
    """One pass over tiles: per grid row the log density, per tile the bound, pairs and status (0: done), and the
    log of the block's summed weight that the GPUs' cells found (the same on every GPU: the same cells)."""

    out: np.ndarray
    bound: np.ndarray
    pairs: np.ndarray
    status: np.ndarray
    log_mass: list[float]


class Staged:
    """A call's samples and log-weights on each of its GPUs (cuda/stage.cu), and what the passes over them there
    found: scan = (bad_sample, bad_bias, bad_weight, negative, positive, lo, hi) and per block (top, kept, log_z,
    log_z2), as the host's passes (cyfes.engine._cpu) report them. free() gives the GPUs' memory back."""

    def __init__(self, handles: dict[int, Any], scan: tuple, stats: tuple) -> None:
        self.handles, self.scan, self.stats = handles, scan, stats

    def on(self, device: int) -> Any:
        return self.handles[device]

    def free(self) -> None:
        for handle in self.handles.values():
            handle.free()


def stage(data: np.ndarray, bias: np.ndarray | None, weights: np.ndarray | None, kT: float,
          edges: np.ndarray, ids: Sequence[int]) -> Staged:
    """Copies the samples and bias (and weights) to every GPU of `ids`, each of which checks them, computes the
    log-weights and keeps both: the host reads no sample. The arrays are page-locked for the copies."""
    gpu = backends.gpu_module()
    found: dict[int, tuple] = {}
    devices = list(dict.fromkeys(ids))  # once per device, however often it is listed

    def work(dev: int, lo: int, hi: int) -> None:
        found[dev] = gpu.stage(data, bias, weights, 1.0 / kT, edges, dev)

    try:
        with gpu.PinnedHost([a for a in (data, bias, weights) if a is not None], ids[0]):
            backends.each_gpu(devices, len(devices), work)
    except BaseException:
        for handle, _, _ in found.values():
            handle.free()
        raise
    _, scan, stats = found[ids[0]]  # the same on every GPU
    return Staged({dev: handle for dev, (handle, _, _) in found.items()}, scan, stats)


def _rows_of(start: np.ndarray, which: np.ndarray) -> np.ndarray:
    """The grid rows of the tiles `which` (tile t is rows start[t]:start[t + 1]), tile after tile."""
    begin, end = start[which], start[which + 1]
    lengths = end - begin
    offsets = np.repeat(begin - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
    return np.arange(int(lengths.sum())) + offsets


def _gpu_pass(gpu: Any, samples: tuple, args: tuple, grid: np.ndarray, start: np.ndarray,
              ids: Sequence[int], staged: Staged | None) -> _Pass:
    """The tiles of `start` (offsets into grid), split over the GPUs; samples: the build_cells arguments (of the
    samples staged on each GPU when `staged` is given)."""
    ntiles = len(start) - 1
    res = _Pass(np.empty(len(grid)), np.zeros(ntiles), np.zeros(ntiles, dtype=np.int64),
                np.zeros(ntiles, dtype=np.intc), [])
    first, tol = args

    def work(dev: int, t0: int, t1: int) -> None:
        _, _, lall = gpu.truncated_tiles(*samples, first, FIRST_CUT_GAP, grid, start[t0:t1 + 1], tol, res.out,
                                         res.bound[t0:t1], res.pairs[t0:t1], res.status[t0:t1], dev,
                                         None if staged is None else staged.on(dev))
        res.log_mass.append(lall)

    backends.each_gpu(ids, ntiles, work)
    return res


def gpu_log_density(data: np.ndarray, logw: Callable[[], np.ndarray], lo: int, hi: int, top: float,
                    grid: np.ndarray, tiles: Tiles, sigma: np.ndarray, period: np.ndarray, dtype: type,
                    tolerance: float, ids: Sequence[int], threads: int, staged: Staged | None = None) -> Truncated:
    """As _truncated.cpu_log_density, on the GPUs `ids`; `threads`: CPU threads for the points sent back. logw():
    the log-weights on the host (asked for only when the GPUs need a host copy or the CPU must sum points);
    staged: the samples and log-weights already on the GPUs (stage())."""
    gpu = backends.gpu_module()
    x = np.ascontiguousarray(data, dtype=np.float64)
    lw64 = None if staged is not None else np.ascontiguousarray(logw(), dtype=np.float64)
    factor = scaled_factor(sigma)
    per = np.ascontiguousarray(period * factor)
    samples = (x, lw64, lo, hi, factor, per, float(top), CELL_SIDE, SAMPLES_PER_CELL, MAX_CELLS)
    args = (reach(tolerance), float(tolerance))
    # every GPU copies the block unless staged: from page-locked memory, at the bus's speed
    with gpu.PinnedHost([] if staged is not None else [x[lo:hi], lw64[lo:hi]], ids[0]):
        res = _gpu_pass(gpu, samples, args, grid, tiles.start, ids, staged)
        left = np.flatnonzero(res.status)
        if left.size and grid.dtype != np.float64:
            left = _float64_points(gpu, samples, args, grid, tiles, left, res, ids, staged)
    lall = res.log_mass[0] if res.log_mass else float(np.logaddexp.reduce(
        sorted_cells(x, logw(), lo, hi, top, sigma, period, dtype, threads).arrays[3]))
    if left.size:  # tiles not settled even so: the CPU sums their points with running maxima
        _host_points(x, logw(), lo, hi, top, sigma, period, dtype, threads, grid, tiles, left, args, res)
    return Truncated(res.out, float(res.bound.max(initial=0.0)), int(res.pairs.sum()), lall)


def _merge_points(res: _Pass, tiles: Tiles, left: np.ndarray, rows: np.ndarray, out: np.ndarray,
                  bound: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Sums of the points `rows` (those of the tiles `left`, tile after tile) into res: their log densities, and
    per tile the largest bound and the pairs (every pass's pairs count: they were all summed). Returns each
    point's tile."""
    res.out[rows] = out
    owner = np.repeat(left, np.diff(tiles.start)[left])
    np.maximum.at(res.bound, owner, bound)
    np.add.at(res.pairs, owner, pairs)
    return owner


def _float64_points(gpu: Any, samples: tuple, args: tuple, grid: np.ndarray, tiles: Tiles, left: np.ndarray,
                    res: _Pass, ids: Sequence[int], staged: Staged | None) -> np.ndarray:
    """The points of the float32 tiles `left` summed again on the GPUs in float64, one point per tile: a point
    left unsettled because its sum fell out of float32's exp range below its largest cell bound (far from the
    data) is within float64's. The GPUs build their cells again in float64 (a few ms at 1e7 samples, against
    tens of ms for the CPU's build). Returns the tiles still not settled."""
    rows = _rows_of(tiles.start, left)
    sub = _gpu_pass(gpu, samples, args, np.ascontiguousarray(grid[rows], dtype=np.float64),
                    np.arange(len(rows) + 1, dtype=np.int64), ids, staged)
    owner = _merge_points(res, tiles, left, rows, sub.out, sub.bound, sub.pairs)
    return np.unique(owner[sub.status != 0])


def _host_points(x: np.ndarray, logw: np.ndarray, lo: int, hi: int, top: float, sigma: np.ndarray,
                 period: np.ndarray, dtype: type, threads: int, grid: np.ndarray, tiles: Tiles,
                 left: np.ndarray, args: tuple, res: _Pass) -> None:
    """The points of the tiles `left`, one tile each, on the CPU (its own cells: the same as the GPU's), into res."""
    cpu = backends.cpu_module()
    cells = sorted_cells(x, logw, lo, hi, top, sigma, period, dtype, threads)
    rows = _rows_of(tiles.start, left)
    sub_out, sub_bound = np.empty(len(rows)), np.zeros(len(rows))
    sub_pairs = np.zeros(len(rows), dtype=np.int64)
    samples_t, lw, cstart, lmass, box, geometry, dense = cells.arrays
    cpu.truncated_tiles(samples_t, lw, cstart, lmass, box, geometry, dense, cells.log_mass, args[0],
                        FIRST_CUT_GAP, np.ascontiguousarray(grid[rows]), np.arange(len(rows) + 1, dtype=np.int64),
                        np.zeros((0, grid.shape[1]), dtype=np.int64), cells.period.astype(dtype), args[1],
                        sub_out, sub_bound, sub_pairs, threads)
    _merge_points(res, tiles, left, rows, sub_out, sub_bound, sub_pairs)
