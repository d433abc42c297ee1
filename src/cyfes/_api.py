"""cyfes.fes: the free energy surface from (biased) CV samples by reweighted Gaussian KDE.

    F(x) = -kT ln( sum_j w_j prod_d K(x_d - s_jd; sigma_d) / sum_j w_j ),   w_j = exp(V_j / kT) * weight_j

computed in log space by the backends (log-sum-exp with a running maximum).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _backends, _binned, _inputs, _truncated, _units
from ._errors import InputError

UNITS = tuple(_units.BOLTZMANN)
#: Kernel calls a run is split into when a progress callback is given (one call otherwise).
PROGRESS_STEPS = 64
ProgressCallback = Callable[[int, int], None]
PRECISIONS = ("float64", "float32")
METHODS = ("direct", "binned")
#: Default bound on how much the pairs left out of the sum may change any F, in kT.
TOLERANCE = 1e-6


@dataclass
class FESResult:
    """A free energy surface.

    values: F on the grid, shape `bins` (regular grid, matrix indexing) or (M,) (explicit grid).
    axes: per CV the grid coordinates of a regular grid, else None.
    grid: the (M, D) query points of an explicit grid, else None.
    error: standard error of F per point from block averaging (blocks > 1), else None.
    kT, units, temperature: the thermal energy and its unit; backend: where it ran; precision: the kernel's.
    """

    values: np.ndarray
    axes: Optional[List[np.ndarray]]
    grid: Optional[np.ndarray]
    error: Optional[np.ndarray]
    kT: float
    units: str
    temperature: float
    backend: str
    precision: str
    sigma: np.ndarray
    periodic: List[Optional[float]]
    n_samples: int
    blocks: int = 1
    names: Optional[List[str]] = None
    #: The largest change of any F (kT) that the samples left out of the sum could cause (0: every pair summed).
    bound: float = 0.0
    #: Sample-point pairs evaluated by the kernels.
    pairs: int = 0
    #: "direct" (kernel sums) or "binned" (binning + FFT convolution).
    method: str = "direct"
    #: method="binned": estimated largest |dF| (kT) against the direct sum on the grid; None otherwise.
    error_estimate: Optional[float] = None

    @property
    def dim(self) -> int:
        return len(self.axes) if self.axes is not None else int(self.grid.shape[1])

    def points(self) -> np.ndarray:
        """All grid points as an (M, D) array, in the order of values.ravel()."""
        if self.grid is not None:
            return self.grid
        mesh = np.meshgrid(*self.axes, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=1)

    def save(self, path: Union[str, Path], fmt: Optional[str] = None) -> Path:
        """Write to `path`; the format follows the extension (see cyfes.formats) unless `fmt` is given."""
        from . import formats
        return formats.write_result(self, path, fmt)

    def plot(self, path: Union[str, Path], **options: Any) -> Path:
        """Draw the surface into an image file (needs matplotlib: pip install cyfes[plot])."""
        from . import plot
        return plot.plot_result(self, path, **options)


def _log_gauss_norm(sigma: np.ndarray) -> float:
    return float(-np.sum(np.log(sigma * math.sqrt(2 * math.pi))))


def _logsumexp(x: np.ndarray, axis: int = 0) -> np.ndarray:
    top = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(top, axis) + np.log(np.sum(np.exp(x - top), axis=axis))


@dataclass(frozen=True)
class _Problem:
    """Validated inputs of one fes() call: nothing is computed before all of these exist."""

    data: np.ndarray
    sigma: np.ndarray
    logw: np.ndarray
    period: np.ndarray
    points: np.ndarray
    axes: Optional[List[np.ndarray]]
    block_ranges: List[Tuple[int, int]]
    dtype: type
    kT: float
    tolerance: float
    method: str
    #: Samples of weight zero (log-weight -inf) present: only then do blocks need filtering.
    zero_weights: bool


def _points(grid: Any, bins: Any, ranges: Any, data: np.ndarray,
            period: np.ndarray) -> Tuple[np.ndarray, Optional[List[np.ndarray]]]:
    """The (M, D) query points and, for a regular grid, its axes."""
    dim = data.shape[1]
    if grid is not None and (bins is not None or ranges is not None):
        raise InputError("grid: give either `grid` or `bins`/`ranges`, not both")
    if grid is None and bins is None:
        raise InputError("bins: give `bins` (regular grid) or `grid` (explicit points)")
    if grid is not None:
        points = _inputs.explicit_grid(grid, dim)
        _inputs.check_grid_fits(len(points), dim, "grid")
        return points, None
    axes = _inputs.regular_axes(bins, ranges, data, period)
    return np.stack([m.ravel() for m in np.meshgrid(*axes, indexing="ij")], axis=1), axes


def _blocks(logw: np.ndarray, nblocks: int, zero_weights: bool) -> List[Tuple[int, int]]:
    """[lo, hi) of each block (np.array_split's split); a block with only zero weights is refused up front."""
    n = len(logw)
    sizes = [n // nblocks + (1 if k < n % nblocks else 0) for k in range(nblocks)]
    edges = np.cumsum([0] + sizes).tolist()
    blocks = list(zip(edges[:-1], edges[1:]))
    if zero_weights and any(not np.isfinite(logw[lo:hi]).any() for lo, hi in blocks):
        raise InputError(f"blocks: a block of samples has only zero weights; use fewer than {nblocks} blocks")
    return blocks


def _tolerance(value: Any) -> float:
    try:
        tol = float(value)
    except (TypeError, ValueError):
        raise InputError(f"tolerance: expected a number >= 0 (kT), got {value!r}") from None
    if not (math.isfinite(tol) and 0 <= tol < 1):
        raise InputError(f"tolerance: expected 0 (every pair) or a bound in kT below 1, got {value!r}")
    return tol


def _validate(samples: Any, sigma: Any, bias: Any, weights: Any, temperature: float, units: str, grid: Any,
              bins: Any, ranges: Any, periodic: Any, blocks: int, precision: str,
              names: Optional[Sequence[str]], tolerance: Any, method: str) -> _Problem:
    kT = _units.kT(temperature, units)
    data = _inputs.samples(samples)
    n, dim = data.shape
    sig = _inputs.sigma(sigma, dim)
    logw = _inputs.log_weights(bias, weights, n, kT)
    period = _inputs.periods(periodic, dim)
    nblocks = _inputs.positive_int(blocks, "blocks", upper=n)
    precision = _inputs.choice(precision, "precision", PRECISIONS)
    tol = _tolerance(tolerance)
    method = _inputs.choice(method, "method", METHODS)
    if names is not None and len(names) != dim:
        raise InputError(f"names: expected {dim} CV names, got {len(names)}")
    points, axes = _points(grid, bins, ranges, data, period)
    dtype = np.float64 if precision == "float64" else np.float32
    zero = weights is not None and not np.isfinite(logw).all()
    return _Problem(data, sig, logw, period, points, axes, _blocks(logw, nblocks, zero), dtype, kT, tol, method, zero)


def _grid_parts(points: int, blocks: int, progress: Optional[ProgressCallback]) -> List[slice]:
    """The whole grid in one kernel call, or in about PROGRESS_STEPS calls when someone watches progress."""
    parts = 1 if progress is None else max(1, min(points, PROGRESS_STEPS // blocks))
    edges = np.linspace(0, points, parts + 1).astype(np.int64)
    return [slice(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:])]


@dataclass
class _Densities:
    """Per block: log sum_j w_j K(x - s_j) (unnormalised kernel) on every point, and log sum_j w_j; with the
    truncation bound achieved (kT) and the pairs summed."""

    log_dens: np.ndarray
    log_z: np.ndarray
    bound: float
    pairs: int


def _block_samples(pb: _Problem, lo: int, hi: int) -> Tuple[np.ndarray, np.ndarray]:
    """Samples and log-weights of one block, zero weights left out (a view when there are none)."""
    lw = pb.logw[lo:hi]
    if not pb.zero_weights:
        return pb.data[lo:hi], lw
    keep = np.isfinite(lw)
    return pb.data[lo:hi][keep], lw[keep]


def _direct(pb: _Problem, dev: _backends.Device, progress: Optional[ProgressCallback]) -> _Densities:
    """Every pair (tolerance 0, or a GPU)."""
    cast = lambda a: np.ascontiguousarray(a, dtype=pb.dtype)  # noqa: E731
    scale, per, pts = cast(1.0 / pb.sigma), cast(pb.period), cast(pb.points)
    parts = _grid_parts(len(pts), len(pb.block_ranges), progress)
    total, done = len(parts) * len(pb.block_ranges), 0
    log_dens, log_z, pairs = [], [], 0
    for lo, hi in pb.block_ranges:
        data, lw = _block_samples(pb, lo, hi)
        top = lw.max()  # shift so the kernels see logw <= 0 (float32 keeps its range); added back below
        s, w = cast(data), cast(lw - top)
        dens = np.empty(len(pts))
        for part in parts:
            dens[part] = _backends.log_density(s, w, pts[part], scale, per, dev)
            done += 1
            if progress is not None:
                progress(done, total)
        log_dens.append(dens + top)
        log_z.append(_logsumexp(lw))
        pairs += len(lw) * len(pts)
    return _Densities(np.array(log_dens), np.array(log_z), 0.0, pairs)


def _tiles(pb: _Problem) -> _truncated.Tiles:
    if pb.axes is not None:
        return _truncated.regular_tiles([len(a) for a in pb.axes])
    return _truncated.point_tiles(_truncated.scaled_points(pb.points, _truncated.scaled_factor(pb.sigma),
                                                           pb.period))


def _truncated_sum(pb: _Problem, dev: _backends.Device, progress: Optional[ProgressCallback]) -> _Densities:
    """Only the cells of samples that can matter, per tile of grid points, within pb.tolerance (CPU)."""
    tiles = _tiles(pb)
    factor = _truncated.scaled_factor(pb.sigma)
    grid = _truncated.in_tile_order(_truncated.scaled_points(pb.points, factor, pb.period), tiles, pb.dtype)
    parts = _grid_parts(len(tiles.start) - 1, len(pb.block_ranges), progress)
    total, done = len(parts) * len(pb.block_ranges), [0]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    log_dens, log_z, bound, pairs = [], [], 0.0, 0
    for lo, hi in pb.block_ranges:
        lw = pb.logw[lo:hi]
        top = float(lw.max())
        res = _truncated.cpu_log_density(pb.data, pb.logw, lo, hi, top, grid, tiles, pb.sigma, pb.period,
                                         pb.dtype, pb.tolerance, dev.threads, parts, tick)
        log_dens.append(_truncated.from_tile_order(res.log_density, tiles) + top)
        log_z.append(res.log_z + top)
        bound, pairs = max(bound, res.bound), pairs + res.pairs
    return _Densities(np.array(log_dens), np.array(log_z), bound, pairs)


def _binned_sum(pb: _Problem, dev: _backends.Device) -> Tuple[_Densities, float]:
    """Per block the binned estimate (numpy FFT); points where it is unreliable get the direct (truncated) sum.
    Returns the densities and the estimated largest |dF| (kT)."""
    log_dens, log_z, bound, pairs, estimate = [], [], 0.0, 0, 0.0
    for lo, hi in pb.block_ranges:
        data, lw = _block_samples(pb, lo, hi)
        top = float(lw.max())
        est = _binned.log_density(data, lw, pb.points, pb.sigma, pb.period)
        dens = est.log_density + top
        bad = _binned.unreliable(est)
        if bad.size:
            sub = replace(pb, points=pb.points[bad], axes=None, block_ranges=[(lo, hi)], method="direct")
            exact = _block_log_densities(sub, dev)
            dens[bad] = exact.log_dens[0]
            bound, pairs = max(bound, exact.bound), pairs + exact.pairs
        log_dens.append(dens)
        log_z.append(_logsumexp(lw))
        estimate = max(estimate, est.error_estimate)
    return _Densities(np.array(log_dens), np.array(log_z), bound, pairs), max(estimate, bound)


def _block_log_densities(pb: _Problem, dev: _backends.Device,
                         progress: Optional[ProgressCallback] = None) -> _Densities:
    if pb.tolerance > 0 and dev.kind == "cpu" and _truncated.can_truncate(pb.data, pb.points, pb.sigma, pb.period,
                                                                         pb.tolerance):
        return _truncated_sum(pb, dev, progress)
    return _direct(pb, dev, progress)


def fes(samples: Any, sigma: Any, *, bias: Any = None, weights: Any = None, temperature: float = 300.0,
        units: str = "kJ/mol", grid: Any = None, bins: Any = None, ranges: Any = None,
        periodic: Optional[Sequence[Optional[float]]] = None, blocks: int = 1, device: Any = "auto",
        precision: str = "float64", devices: Optional[Sequence[int]] = None, threads: Optional[int] = None,
        shift: bool = True, names: Optional[Sequence[str]] = None,
        progress: Optional[ProgressCallback] = None, tolerance: float = TOLERANCE,
        method: str = "direct") -> FESResult:
    """Free energy surface of `samples` (N, D) by reweighted Gaussian kernel density estimation.

    sigma: kernel width, a scalar or one per CV. bias: per-sample bias potential V_j in `units`
    (reweighting by exp(V/kT)); weights: per-sample weights (on top of the bias). temperature in K;
    units "kJ/mol" (default, as PLUMED) or "kcal/mol". Give either `grid` (M, D) query points or `bins`
    (an int or one per CV) with optional `ranges` ((low, high) per CV; default: the data range).
    periodic: per CV a period or None. blocks > 1 splits the samples into that many blocks and gives a
    standard error per point. device: "auto" (GPU when usable), "cpu", "gpu", "cuda:N", or GPU ids;
    devices=[0, 1] splits the grid over GPUs. precision: "float64" or "float32". shift: subtract min F.
    A periodic CV's default range is one period from the data minimum, without repeating the end point.
    progress: called as progress(done, total) after each kernel call (the grid is then split into parts).
    tolerance: the samples left out of each grid point's sum change no F by more than this (kT); samples are
    grouped into cells and a cell is left out only when its summed weight and nearest distance prove it
    negligible, whatever the weights. 0 sums every pair. The result's `bound` is the bound achieved, `pairs`
    the pairs summed.
    method: "direct" (kernel sums, within `tolerance`) or "binned" (linear binning and an FFT convolution, for
    many more samples than grid points; `error_estimate` is its estimated largest |dF| in kT; points of very low
    density fall back to the direct sum).
    Every argument is checked before any work starts; a bad one raises InputError naming it.
    """
    dev = _backends.parse_device(device, devices, threads)
    pb = _validate(samples, sigma, bias, weights, temperature, units, grid, bins, ranges, periodic, blocks,
                   precision, names, tolerance, method)
    if progress is not None and not callable(progress):
        raise InputError(f"progress: expected a callable progress(done, total), got {progress!r}")
    estimate = None
    if pb.method == "binned":
        sums, estimate = _binned_sum(pb, dev)
    else:
        sums = _block_log_densities(pb, dev, progress)
    dens, log_z = sums.log_dens, sums.log_z
    norm = _log_gauss_norm(pb.sigma)
    values = -pb.kT * (_logsumexp(dens) - _logsumexp(log_z) + norm)
    error = None
    if len(pb.block_ranges) > 1:
        per_block = -pb.kT * (dens - log_z[:, None] + norm)
        error = per_block.std(axis=0, ddof=1) / math.sqrt(len(pb.block_ranges))
    if shift:
        values = values - values.min()
    shape = tuple(len(a) for a in pb.axes) if pb.axes is not None else (len(pb.points),)
    return FESResult(
        values=values.reshape(shape), axes=pb.axes, grid=pb.points if pb.axes is None else None,
        error=None if error is None else error.reshape(shape), kT=pb.kT, units=units,
        temperature=float(temperature), backend=dev.describe(), precision=str(np.dtype(pb.dtype)),
        sigma=pb.sigma, periodic=[float(p) if p > 0 else None for p in pb.period],
        n_samples=int(np.isfinite(pb.logw).sum()) if pb.zero_weights else len(pb.logw), blocks=len(pb.block_ranges),
        names=list(names) if names is not None else None, bound=sums.bound, pairs=sums.pairs, method=pb.method,
        error_estimate=estimate)
