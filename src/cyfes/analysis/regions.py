"""Free energy differences between regions of a surface, with block errors, and against simulation time.

    Delta F(A -> B) = -kT ln sum_{x in B} e^{-F/kT} + kT ln sum_{x in A} e^{-F/kT}

A region is one of:
  - a box: a dict {cv: (low, high)} (names or indices; None leaves a side open; CVs not named are unbounded);
    on a periodic CV low > high wraps across the boundary (x >= low or x <= high);
  - a basin label (an int, as basins() numbers them with `min_depth`);
  - a function of the CVs: called as f(x1, x2, ...) with each CV's coordinates on the grid (arrays shaped like
    the surface), returning a boolean array;
  - a boolean array shaped like the surface.
The one-threshold Delta F of `cyfes fes --delta-f CV=VALUE` is the case A = {CV < VALUE}, B = {CV > VALUE}
(points exactly at VALUE in neither).

The block error is the standard error of Delta F over the blocks' surfaces (std with ddof 1 over sqrt(blocks)).
delta_f_trace gives Delta F from the first k blocks of samples, k = 1..blocks (the running surfaces), for the
convergence picture.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import InputError
from . import _estimates, _grid
from ._estimates import cv_index, logsumexp
from .basins import basins


def delta_f_of(values: np.ndarray, axis_values: np.ndarray, d: int, at: float, kT: float) -> float:
    coord = np.broadcast_to(axis_values.reshape((1,) * d + (-1,) + (1,) * (values.ndim - d - 1)), values.shape)
    left, right = coord < at, coord > at
    if not left.any() or not right.any():
        raise InputError(f"delta_f: {at:g} does not split the grid (it spans {axis_values[0]:g} to {axis_values[-1]:g})")
    return _delta_of_masks(values, left, right, kT)


def _delta_of_masks(values: np.ndarray, a: np.ndarray, b: np.ndarray, kT: float) -> float:
    high, low = logsumexp(-values[b] / kT), logsumexp(-values[a] / kT)
    if high == low == -math.inf:  # inf - inf: neither region has a sample within reach
        raise InputError("delta_f: F is +inf on both sides (no sample reaches either region)")
    return float(-kT * high + kT * low)  # +-inf when one side has no sample within reach


def _block_delta(values: np.ndarray, a: np.ndarray, b: np.ndarray, kT: float) -> float:
    try:
        return _delta_of_masks(values, a, b, kT)
    except InputError:  # this block reaches neither side: no finite value, so no finite error bar
        return math.inf


def delta_f(result: Any, cv: Any, at: float) -> tuple[float, float | None]:
    """(F right of `at` - F left of `at` along `cv`, its block standard error or None)."""
    if result.axes is None:
        raise InputError("delta_f: needs a regular grid (bins), not explicit points")
    d = cv_index(result, cv)
    value = delta_f_of(result.values, result.axes[d], d, float(at), result.kT)
    blocks = getattr(result, "block_values", None)
    if blocks is None:
        return value, None
    coord = np.broadcast_to(result.axes[d].reshape((1,) * d + (-1,) + (1,) * (result.values.ndim - d - 1)),
                            result.values.shape)
    per = np.array([_block_delta(np.asarray(b), coord < float(at), coord > float(at), result.kT) for b in blocks])
    if not np.isfinite(per).all():  # a block with no sample on one side: no finite error bar
        return value, math.inf
    return value, float(per.std(ddof=1) / math.sqrt(len(per)))


@dataclass(frozen=True)
class RegionDeltaF:
    """F(B) - F(A) in the result's units; `error` its block standard error (NaN without blocks); `blocks` the
    value on each block's surface (empty without blocks)."""

    value: float
    error: float
    blocks: tuple[float, ...]


@dataclass(frozen=True)
class DeltaFTrace:
    """Delta F from the first k blocks of samples: `samples` (how many samples that is, k = 1..blocks) and
    `delta_f` (one value each)."""

    samples: tuple[int, ...]
    delta_f: tuple[float, ...]


def _grid_coordinates(result: Any) -> list:
    shape = tuple(len(a) for a in result.axes)
    return [np.broadcast_to(np.asarray(a, dtype=np.float64).reshape((1,) * d + (-1,) + (1,) * (len(shape) - d - 1)),
                            shape) for d, a in enumerate(result.axes)]


def _box(result: Any, box: dict, name: str) -> np.ndarray:
    coords = _grid_coordinates(result)
    mask = np.ones(coords[0].shape, dtype=bool)
    periods = result.periodic or [None] * result.dim
    for cv, bounds in box.items():
        d = cv_index(result, cv)
        try:
            lo, hi = bounds
            lo = -math.inf if lo is None else float(lo)
            hi = math.inf if hi is None else float(hi)
        except (TypeError, ValueError):
            raise InputError(f"{name}: box bounds of {cv!r} must be (low, high), got {bounds!r}") from None
        x = coords[d]
        if lo > hi and periods[d]:
            mask &= (x >= lo) | (x <= hi)
        elif lo > hi:
            raise InputError(f"{name}: box of {cv!r} has low > high ({lo:g} > {hi:g}) on a non-periodic CV")
        else:
            mask &= (x >= lo) & (x <= hi)
    return mask


def region_mask(result: Any, region: Any, name: str = "region", min_depth: float | None = None) -> np.ndarray:
    """The grid points of `region` (see the module's description) as a boolean array shaped like the surface."""
    shape = tuple(len(a) for a in result.axes)
    if isinstance(region, dict):
        mask = _box(result, region, name)
    elif isinstance(region, (int, np.integer)) and not isinstance(region, bool):
        labels = basins(result, min_depth).labels
        if not 0 <= int(region) < int(labels.max()) + 1:
            raise InputError(f"{name}: basin {int(region)} does not exist (basins 0..{int(labels.max())})")
        mask = labels == int(region)
    elif callable(region):
        mask = np.asarray(region(*_grid_coordinates(result)))
    else:
        mask = np.asarray(region)
    if mask.dtype != bool or mask.shape != shape:
        raise InputError(f"{name}: expected a box dict, a basin label, a function of the CVs or a boolean array "
                         f"shaped {shape}; got {type(region).__name__}"
                         + (f" giving shape {mask.shape}, dtype {mask.dtype}" if hasattr(mask, "shape") else ""))
    return mask


def _checked_masks(result: Any, a: Any, b: Any, min_depth: float | None) -> tuple[np.ndarray, np.ndarray]:
    _grid.regular(result, "delta_f_regions")
    ma, mb = region_mask(result, a, "region a", min_depth), region_mask(result, b, "region b", min_depth)
    finite = np.isfinite(result.values)
    for m, name in ((ma, "a"), (mb, "b")):
        if not (m & finite).any():
            raise InputError(f"region {name}: holds no grid point of finite free energy")
    return ma, mb


def delta_f_regions(result: Any, a: Any, b: Any, min_depth: float | None = None) -> RegionDeltaF:
    """F(b) - F(a) for two regions (see the module's description), with its block error."""
    ma, mb = _checked_masks(result, a, b, min_depth)
    kT = float(result.kT)
    value = _delta_of_masks(np.asarray(result.values, dtype=np.float64), ma, mb, kT)
    blocks = getattr(result, "block_values", None)
    if blocks is None:
        return RegionDeltaF(value, math.nan, ())
    per = np.array([_block_delta(np.asarray(f, dtype=np.float64), ma, mb, kT) for f in blocks])
    return RegionDeltaF(value, _grid.standard_error(per), tuple(float(v) for v in per))


def delta_f_trace(result: Any, a: Any, b: Any, min_depth: float | None = None) -> DeltaFTrace:
    """F(b) - F(a) on the surface of the first k blocks, k = 1..blocks (needs a surface with blocks > 1)."""
    ma, mb = _checked_masks(result, a, b, min_depth)
    surfaces = _estimates.running(result)
    counts = np.cumsum([len(c) for c in np.array_split(np.arange(result.n_samples), result.blocks)])
    return DeltaFTrace(tuple(int(n) for n in counts),
                       tuple(_delta_of_masks(s, ma, mb, float(result.kT)) for s in surfaces))
