"""cyfes.fes: the free energy surface from (biased) CV samples by reweighted Gaussian KDE.

    F(x) = -kT ln( sum_j w_j prod_d K(x_d - s_jd; sigma_d) / sum_j w_j ),   w_j = exp(V_j / kT) * weight_j

computed in log space by the backends (log-sum-exp with a running maximum).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _backends, _inputs, _units, analysis
from ._errors import InputError

UNITS = tuple(_units.BOLTZMANN)
#: Kernel calls a run is split into when a progress callback is given (one call otherwise).
PROGRESS_STEPS = 64
ProgressCallback = Callable[[int, int], None]
PRECISIONS = ("float64", "float32")


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
    #: Kish's effective sample size (sum w)^2 / sum w^2 and the same over the blocks' total weights.
    ess: Optional[float] = None
    blocks_effective: Optional[float] = None
    #: F of each block (blocks > 1), each normalised on its own: shape (blocks,) + values.shape; and the log of
    #: each block's total weight sum_j w_j.
    block_values: Optional[np.ndarray] = None
    block_log_weights: Optional[np.ndarray] = None

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

    def delta_f(self, cv: Any, at: float) -> Tuple[float, Optional[float]]:
        """F on the high side of `cv` = `at` minus F on the low side, and its block standard error (or None)."""
        from . import analysis
        return analysis.delta_f(self, cv, at)

    def marginal(self, keep: Any) -> "FESResult":
        """The surface of the CVs in `keep` (names or indices) with the others integrated out."""
        from . import analysis
        return analysis.marginal(self, keep)

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
    block_ids: List[np.ndarray]
    dtype: type
    kT: float


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


def _blocks(logw: np.ndarray, nblocks: int) -> List[np.ndarray]:
    """Sample indices of each block, samples of weight zero left out; checked before any work starts."""
    keep = np.isfinite(logw)  # weight 0: the sample does not exist for the estimate
    blocks = [ids[keep[ids]] for ids in np.array_split(np.arange(len(logw)), nblocks)]
    if any(len(ids) == 0 for ids in blocks):
        raise InputError(f"blocks: a block of samples has only zero weights; use fewer than {nblocks} blocks")
    return blocks


def _validate(samples: Any, sigma: Any, bias: Any, weights: Any, temperature: float, units: str, grid: Any,
              bins: Any, ranges: Any, periodic: Any, blocks: int, precision: str,
              names: Optional[Sequence[str]]) -> _Problem:
    kT = _units.kT(temperature, units)
    data = _inputs.samples(samples)
    n, dim = data.shape
    sig = _inputs.sigma(sigma, dim)
    logw = _inputs.log_weights(bias, weights, n, kT)
    period = _inputs.periods(periodic, dim)
    nblocks = _inputs.positive_int(blocks, "blocks", upper=n)
    precision = _inputs.choice(precision, "precision", PRECISIONS)
    if names is not None and len(names) != dim:
        raise InputError(f"names: expected {dim} CV names, got {len(names)}")
    points, axes = _points(grid, bins, ranges, data, period)
    dtype = np.float64 if precision == "float64" else np.float32
    return _Problem(data, sig, logw, period, points, axes, _blocks(logw, nblocks), dtype, kT)


def _grid_parts(points: int, blocks: int, progress: Optional[ProgressCallback]) -> List[slice]:
    """The whole grid in one kernel call, or in about PROGRESS_STEPS calls when someone watches progress."""
    parts = 1 if progress is None else max(1, min(points, PROGRESS_STEPS // blocks))
    edges = np.linspace(0, points, parts + 1).astype(np.int64)
    return [slice(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:])]


def _block_log_densities(pb: _Problem, dev: _backends.Device,
                         progress: Optional[ProgressCallback] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Per block: log sum_j w_j K(x - s_j) (unnormalised kernel) on every point, and log sum_j w_j."""
    cast = lambda a: np.ascontiguousarray(a, dtype=pb.dtype)  # noqa: E731
    scale, per, pts = cast(1.0 / pb.sigma), cast(pb.period), cast(pb.points)
    parts = _grid_parts(len(pts), len(pb.block_ids), progress)
    total, done = len(parts) * len(pb.block_ids), 0
    log_dens, log_z = [], []
    for ids in pb.block_ids:
        lw = pb.logw[ids]
        top = lw.max()  # shift so the kernels see logw <= 0 (float32 keeps its range); added back below
        s, w = cast(pb.data[ids]), cast(lw - top)
        dens = np.empty(len(pts))
        for part in parts:
            dens[part] = _backends.log_density(s, w, pts[part], scale, per, dev)
            done += 1
            if progress is not None:
                progress(done, total)
        log_dens.append(dens + top)
        log_z.append(_logsumexp(lw))
    return np.array(log_dens), np.array(log_z)


def fes(samples: Any, sigma: Any, *, bias: Any = None, weights: Any = None, temperature: float = 300.0,
        units: str = "kJ/mol", grid: Any = None, bins: Any = None, ranges: Any = None,
        periodic: Optional[Sequence[Optional[float]]] = None, blocks: int = 1, device: Any = "auto",
        precision: str = "float64", devices: Optional[Sequence[int]] = None, threads: Optional[int] = None,
        shift: bool = True, names: Optional[Sequence[str]] = None,
        progress: Optional[ProgressCallback] = None) -> FESResult:
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
    Every argument is checked before any work starts; a bad one raises InputError naming it.
    """
    dev = _backends.parse_device(device, devices, threads)
    pb = _validate(samples, sigma, bias, weights, temperature, units, grid, bins, ranges, periodic, blocks,
                   precision, names)
    if progress is not None and not callable(progress):
        raise InputError(f"progress: expected a callable progress(done, total), got {progress!r}")
    dens, log_z = _block_log_densities(pb, dev, progress)
    norm = _log_gauss_norm(pb.sigma)
    values = -pb.kT * (_logsumexp(dens) - _logsumexp(log_z) + norm)
    error = per_block = None
    if len(pb.block_ids) > 1:
        per_block = -pb.kT * (dens - log_z[:, None] + norm)
        error = per_block.std(axis=0, ddof=1) / math.sqrt(len(pb.block_ids))
    if shift:
        values = values - values.min()
    shape = tuple(len(a) for a in pb.axes) if pb.axes is not None else (len(pb.points),)
    return FESResult(
        values=values.reshape(shape), axes=pb.axes, grid=pb.points if pb.axes is None else None,
        error=None if error is None else error.reshape(shape), kT=pb.kT, units=units,
        temperature=float(temperature), backend=dev.describe(), precision=str(np.dtype(pb.dtype)),
        sigma=pb.sigma, periodic=[float(p) if p > 0 else None for p in pb.period],
        n_samples=int(np.isfinite(pb.logw).sum()), blocks=len(pb.block_ids),
        names=list(names) if names is not None else None, ess=analysis.kish(pb.logw),
        blocks_effective=analysis.kish(log_z) if len(pb.block_ids) > 1 else None,
        block_values=None if per_block is None else per_block.reshape((len(pb.block_ids),) + shape),
        block_log_weights=None if per_block is None else np.asarray(log_z))
