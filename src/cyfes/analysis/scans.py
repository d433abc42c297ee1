"""Convergence scans: how a surface's answers move with the number of error blocks and with the bandwidth.

    block scan   for each block count n (block size N/n): the surface with n blocks, and
                 f_error        the median over the grid of the standard error of F (points where it is finite)
                 delta_f        Delta F between the two lowest basins (basins), with its block standard error
                 barrier        the barrier from the lowest basin to the next (path), with its block error
                 A block error that still grows with the block size means correlated blocks; it levels off once
                 the blocks are longer than the correlation time. `on_plateau` marks the block sizes from which
                 every larger one agrees with it within the error of an error, SE / sqrt(2 (n - 1)).
    sigma scan   for each bandwidth: Delta F and barrier between the two lowest basins, as above.

Both call cyfes.fes once per point with the caller's other arguments; nothing here reads, writes or prints.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import InputError
from ..engine import fes, streamed

#: Block counts of a default scan (those above half the sample count are left out).
DEFAULT_BLOCK_COUNTS = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)


@dataclass(frozen=True)
class BlockScanPoint:
    """One block count: blocks, block_size (samples per block, the smallest), f_error (median SE of F), delta_f
    and barrier between the two lowest basins with their block errors (NaN with fewer than two basins), and
    on_plateau (see the module docstring)."""

    blocks: int
    block_size: int
    f_error: float
    delta_f: float
    delta_f_error: float
    barrier: float
    barrier_error: float
    on_plateau: bool = False


@dataclass(frozen=True)
class SigmaScanPoint:
    """One bandwidth (per CV): delta_f and barrier between the two lowest basins (NaN with fewer), basins found."""

    sigma: tuple[float, ...]
    delta_f: float
    barrier: float
    basins: int


def median_error(result: Any) -> float:
    """The median of the surface's standard error of F over the points where it is finite (NaN if none)."""
    if result.error is None:
        return math.nan
    err = np.asarray(result.error, dtype=np.float64).ravel()
    err = err[np.isfinite(err)]
    return float(np.median(err)) if len(err) else math.nan


def two_basin_answers(result: Any, min_depth: float | None = None) -> tuple[float, float, float, float, int]:
    """(delta_f, its error, barrier from basin 0 to 1, its error, number of basins); NaN where undefined."""
    found = result.basins(min_depth)
    if len(found) < 2:
        return math.nan, math.nan, math.nan, math.nan, len(found)
    route = result.path(0, 1, min_depth)
    return (found[1].delta_f, found[1].delta_f_error, route.barrier, route.barrier_error, len(found))


def _counts(counts: Sequence[int], n: int) -> list:
    bad = [c for c in counts if not isinstance(c, (int, np.integer)) or c < 2]
    if bad:
        raise InputError(f"block scan: block counts must be integers >= 2, got {bad[0]!r}")
    kept = sorted({int(c) for c in counts if 2 * int(c) <= n})
    if not kept:
        raise InputError(f"block scan: {n} samples are too few for blocks of at least 2 samples")
    return kept


def plateau_flags(counts: Sequence[int], errors: Sequence[float]) -> list:
    """Per block count, whether it and every larger block size agree within the error of the larger's error."""
    order = sorted(range(len(counts)), key=lambda i: -counts[i])  # smallest blocks (most of them) first
    flags = [False] * len(counts)
    for pos, i in enumerate(order):
        later = order[pos:]
        ref = errors[i]
        flags[i] = bool(np.isfinite(ref) and all(
            abs(errors[j] - ref) <= errors[j] / math.sqrt(2 * (counts[j] - 1)) for j in later))
    return flags


def _sample_count(samples: Any) -> int:
    """The number of samples, also of samples in chunks (a list of arrays, a Dask array, a streamed.Stream)."""
    if isinstance(samples, streamed.Stream):
        return int(sum(samples.sizes))
    if streamed.is_chunked(samples) and not streamed.is_dask(samples):
        return int(sum(len(s) for s in samples))
    return int(np.shape(samples)[0]) if np.ndim(samples) else 0


def block_scan(samples: Any, sigma: Any, counts: Sequence[int] = DEFAULT_BLOCK_COUNTS,
               min_depth: float | None = None, **options: Any) -> tuple[BlockScanPoint, ...]:
    """The block scan of the module docstring; `options` go to cyfes.fes (bins, bias, weights, ...)."""
    n = _sample_count(samples)
    points = []
    for c in _counts(counts, n):
        res = fes.fes(samples, sigma, blocks=c, **options)
        df, dfe, bar, bare, _ = two_basin_answers(res, min_depth)
        points.append(BlockScanPoint(c, n // c, median_error(res), df, dfe, bar, bare))
    flags = plateau_flags([p.blocks for p in points], [p.f_error for p in points])
    return tuple(BlockScanPoint(**{**p.__dict__, "on_plateau": f}) for p, f in zip(points, flags))


def sigma_scan(samples: Any, sigmas: Sequence[Any], min_depth: float | None = None,
               **options: Any) -> tuple[SigmaScanPoint, ...]:
    """Delta F and barrier between the two lowest basins for each bandwidth in `sigmas` (scalar or per CV)."""
    if len(sigmas) == 0:
        raise InputError("sigma scan: give at least one bandwidth")
    out = []
    for s in sigmas:
        res = fes.fes(samples, s, **options)
        df, _, bar, _, count = two_basin_answers(res, min_depth)
        out.append(SigmaScanPoint(tuple(float(v) for v in np.asarray(res.sigma).ravel()), df, bar, count))
    return tuple(out)
