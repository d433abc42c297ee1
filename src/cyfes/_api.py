"""cyfes.fes: the free energy surface from (biased) CV samples by reweighted Gaussian KDE.

    F(x) = -kT ln( sum_j w_j prod_d K(x_d - s_jd; sigma_d) / sum_j w_j ),   w_j = exp(V_j / kT) * weight_j

computed in log space by the backends (log-sum-exp with a running maximum).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _backends, _inputs, _units
from ._errors import InputError

UNITS = tuple(_units.BOLTZMANN)
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


def fes(samples: Any, sigma: Any, *, bias: Any = None, weights: Any = None, temperature: float = 300.0,
        units: str = "kJ/mol", grid: Any = None, bins: Any = None, ranges: Any = None,
        periodic: Optional[Sequence[Optional[float]]] = None, blocks: int = 1, device: Any = "auto",
        precision: str = "float64", devices: Optional[Sequence[int]] = None, threads: Optional[int] = None,
        shift: bool = True, names: Optional[Sequence[str]] = None) -> FESResult:
    """Free energy surface of `samples` (N, D) by reweighted Gaussian kernel density estimation.

    sigma: kernel width, a scalar or one per CV. bias: per-sample bias potential V_j in `units`
    (reweighting by exp(V/kT)); weights: per-sample weights (on top of the bias). temperature in K;
    units "kJ/mol" (default, as PLUMED) or "kcal/mol". Give either `grid` (M, D) query points or `bins`
    (an int or one per CV) with optional `ranges` ((low, high) per CV; default: the data range).
    periodic: per CV a period or None. blocks > 1 splits the samples into that many blocks and gives a
    standard error per point. device: "auto" (GPU when usable), "cpu", "gpu", "cuda:N", or GPU ids;
    devices=[0, 1] splits the grid over GPUs. precision: "float64" or "float32". shift: subtract min F.
    """
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
    if grid is not None and (bins is not None or ranges is not None):
        raise InputError("grid: give either `grid` or `bins`/`ranges`, not both")
    if grid is None and bins is None:
        raise InputError("bins: give `bins` (regular grid) or `grid` (explicit points)")
    axes = None
    if grid is not None:
        points = _inputs.explicit_grid(grid, dim)
        _inputs.check_grid_fits(len(points), dim, "grid")
    else:
        axes = _inputs.regular_axes(bins, ranges, data)
        points = np.stack([m.ravel() for m in np.meshgrid(*axes, indexing="ij")], axis=1)
    dev = _backends.parse_device(device, devices, threads)

    keep = np.isfinite(logw)  # weight 0: the sample does not exist for the estimate
    block_ids = np.array_split(np.arange(n), nblocks)
    dtype = np.float64 if precision == "float64" else np.float32
    cast = lambda a: np.ascontiguousarray(a, dtype=dtype)  # noqa: E731
    scale, per, pts = cast(1.0 / sig), cast(period), cast(points)
    norm = _log_gauss_norm(sig)
    log_dens, log_z = [], []
    for ids in block_ids:
        ids = ids[keep[ids]]
        if len(ids) == 0:
            raise InputError(f"blocks: a block of samples has only zero weights; use fewer than {nblocks} blocks")
        lw = logw[ids]
        top = lw.max()  # shift so float32 kernels see logw <= 0
        log_dens.append(_backends.log_density(cast(data[ids]), cast(lw - top), pts, scale, per, dev) + top)
        log_z.append(_logsumexp(lw))
    dens = np.array(log_dens)
    total = _logsumexp(dens) - _logsumexp(np.array(log_z)) + norm
    values = -kT * total
    error = None
    if nblocks > 1:
        per_block = -kT * (dens - np.array(log_z)[:, None] + norm)
        error = per_block.std(axis=0, ddof=1) / math.sqrt(nblocks)
    if shift:
        values = values - values.min()
    shape = tuple(len(a) for a in axes) if axes is not None else (len(points),)
    return FESResult(
        values=values.reshape(shape), axes=axes, grid=points if grid is not None else None,
        error=None if error is None else error.reshape(shape), kT=kT, units=units,
        temperature=float(temperature), backend=dev.describe(), precision=precision, sigma=sig,
        periodic=[float(p) if p > 0 else None for p in period], n_samples=int(keep.sum()), blocks=nblocks,
        names=list(names) if names is not None else None)
