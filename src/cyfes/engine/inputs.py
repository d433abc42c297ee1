"""Validation of fes() arguments: every check runs before any work starts, and each error names its argument."""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import InputError
from . import backends

MAX_DIM = 8
#: Largest grid accepted, as a fraction of physical memory (grid coordinates plus results, float64).
GRID_MEMORY_FRACTION = 0.5


def _array(value: Any, name: str, dtype: Any = None) -> np.ndarray:
    """np.asarray, with a ragged list or a non-number reported as an InputError naming the argument."""
    try:
        return np.asarray(value, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InputError(f"{name}: not a numeric array ({' '.join(str(exc).split())[:160]})") from None


def _ndim(value: Any, name: str) -> int:
    return 0 if np.isscalar(value) else _array(value, name, object).ndim




def _checked_array(value: Any, name: str, ndim: int) -> np.ndarray:
    """float64 array of `ndim` dimensions, not empty (no finiteness check)."""
    if isinstance(value, np.ndarray) and value.dtype.kind == "c":  # converting would drop the imaginary part
        raise InputError(f"{name}: complex numbers are not accepted")
    arr = _array(value, name, np.float64)
    if arr.ndim != ndim:
        raise InputError(f"{name}: expected a {ndim}-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name}: is empty (shape {arr.shape})")
    return arr


def _not_finite(name: str, flat: int, shape: tuple[int, ...]) -> InputError:
    first = np.unravel_index(flat, shape)
    where = tuple(int(i) for i in first) if len(shape) > 1 else int(first[0])
    return InputError(f"{name}: contains NaN or infinity (first at index {where})")


def _finite_array(value: Any, name: str, ndim: int) -> np.ndarray:
    arr = _checked_array(value, name, ndim)
    if ndim == 2:
        arr = np.ascontiguousarray(arr)  # the kernels read rows; a copy only for strided input
        bad = backends.cpu_module().scan_rows(arr)[2]
        if bad >= 0:
            raise _not_finite(name, bad, arr.shape)
        return arr
    if np.isfinite(arr.sum()):  # one pass, no temporary; a NaN or inf anywhere makes the sum non-finite
        return arr
    bad = ~np.isfinite(arr)  # or the sum overflowed: look element by element
    if bad.any():
        raise _not_finite(name, int(np.argmax(bad)), arr.shape)
    return arr


@dataclass(frozen=True)
class ValidSamples:
    """Validated samples (N, D), float64 and C-ordered, with each CV's range (from the same pass)."""

    data: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def samples_array(value: Any) -> np.ndarray:
    """The samples as a C-ordered float64 (N, D) array, its shape checked (its values are checked by a pass over
    them: scanned_samples here, or on the GPU)."""
    arr = _array(value, "samples") if not isinstance(value, np.ndarray) else value
    if arr.ndim == 1:
        arr = arr[:, None]
    arr = np.ascontiguousarray(_checked_array(arr, "samples", 2))
    if not 1 <= arr.shape[1] <= MAX_DIM:
        raise InputError(f"samples: expected 1 to {MAX_DIM} CVs (columns), got {arr.shape[1]}")
    return arr


def checked_samples(arr: np.ndarray, bad: int, lo: np.ndarray, hi: np.ndarray) -> ValidSamples:
    """ValidSamples whose pass found `bad` (flat index of the first non-finite value, -1: none) and the range lo, hi."""
    if bad >= 0:
        raise _not_finite("samples", bad, arr.shape)
    return ValidSamples(arr, lo, hi)


def scanned_samples(value: Any) -> ValidSamples:
    """The samples checked (shape, finiteness) and their per-CV range, in one threaded pass over them."""
    arr = samples_array(value)
    lo, hi, bad = backends.cpu_module().scan_rows(arr)
    return checked_samples(arr, bad, lo, hi)


def samples(value: Any) -> np.ndarray:
    return scanned_samples(value).data


def per_cv(value: Any, dim: int, name: str) -> np.ndarray:
    arr = _finite_array([value] if _ndim(value, name) == 0 else value, name, 1)
    if arr.size == 1:
        arr = np.repeat(arr, dim)
    if arr.size != dim:
        raise InputError(f"{name}: expected a scalar or {dim} values (one per CV), got {arr.size}")
    return arr


def sigma(value: Any, dim: int) -> np.ndarray:
    arr = per_cv(value, dim, "sigma")
    if (arr <= 0).any():
        raise InputError(f"sigma: every bandwidth must be > 0, got {arr.tolist()}")
    return arr


def per_sample(value: Any, n: int, name: str) -> np.ndarray:
    arr = _finite_array(value, name, 1)
    if arr.size != n:
        raise InputError(f"{name}: expected {n} values (one per sample), got {arr.size}")
    return arr


def _per_sample_unchecked(value: Any, n: int, name: str) -> np.ndarray:
    arr = np.ascontiguousarray(_checked_array(value, name, 1))
    if arr.size != n:
        raise InputError(f"{name}: expected {n} values (one per sample), got {arr.size}")
    return arr


def weight_arrays(bias: Any, weights: Any, n: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """bias and weights as C-ordered float64 arrays of n values (or None), their values not yet checked."""
    b = _per_sample_unchecked(bias, n, "bias") if bias is not None else None
    w = _per_sample_unchecked(weights, n, "weights") if weights is not None else None
    return b, w


def check_weights(weights: np.ndarray | None, n: int, bad_bias: int, bad_weight: int, negative: int,
                  positive: int) -> None:
    """What a pass over bias and weights found (first bad indices, -1: none; weights > 0), as one error."""
    if bad_bias >= 0:
        raise _not_finite("bias", bad_bias, (n,))
    if bad_weight >= 0:
        raise _not_finite("weights", bad_weight, (n,))
    if negative >= 0:
        raise InputError(f"weights: must be >= 0, found {weights.min()!r}")
    if positive == 0:
        raise InputError("weights: all weights are zero")


def log_weights(bias: Any, weights: Any, n: int, kT: float) -> np.ndarray:
    """log w_j = V_j / kT + log(weight_j); samples of weight 0 get -inf (the caller drops them). One threaded pass
    over both arrays, with their checks."""
    b, w = weight_arrays(bias, weights, n)
    logw, (bad_bias, bad_weight, negative), positive = backends.cpu_module().log_weights(b, w, 1.0 / kT, n)
    check_weights(w, n, bad_bias, bad_weight, negative, positive)
    return logw


@dataclass(frozen=True)
class BlockStats:
    """One block of samples: its largest finite log-weight, the samples of weight > 0, and the logs of sum w and
    sum w^2."""

    top: float
    kept: int
    log_z: float
    log_z2: float


@dataclass(frozen=True)
class Passes:
    """What the passes over the per-sample inputs found, on the host (host_passes) or on the GPUs (cuda/stage.cu):
    the flat index of the first non-finite sample value (-1: none) and per CV the samples' range; the findings on
    bias and weights (check_weights's arguments); the log-weights (None where the GPUs keep them); and per block
    the arrays (top, kept, log_z, log_z2) of stats_of."""

    bad_sample: int
    lo: np.ndarray
    hi: np.ndarray
    weight_flags: tuple[int, int, int, int]
    logw: np.ndarray | None
    block_arrays: tuple


def host_passes(data: np.ndarray, bias: np.ndarray | None, weights: np.ndarray | None, kT: float,
                edges: np.ndarray) -> Passes:
    """The host's threaded passes (cpu_scan.h): over the samples, over bias and weights, over the log-weights."""
    cpu = backends.cpu_module()
    lo, hi, bad = cpu.scan_rows(data)
    logw, (bad_bias, bad_weight, negative), positive = cpu.log_weights(bias, weights, 1.0 / kT, len(data))
    return Passes(bad, lo, hi, (bad_bias, bad_weight, negative, positive), logw, cpu.block_stats(logw, edges))


def block_edges(blocks: Sequence[tuple[int, int]]) -> np.ndarray:
    """The edges of contiguous blocks [lo, hi), in order: lo of the first, then each hi."""
    return np.array([blocks[0][0]] + [hi for _, hi in blocks], dtype=np.int64)


def stats_of(blocks: Sequence[tuple[int, int]], top: np.ndarray, kept: np.ndarray, lz: np.ndarray,
             lz2: np.ndarray) -> dict[tuple[int, int], BlockStats]:
    """BlockStats per block from the arrays of a pass (cyfes.engine._cpu.block_stats, or the GPU's)."""
    return {blk: BlockStats(float(t), int(k), float(a), float(a2))
            for blk, t, k, a, a2 in zip(blocks, top, kept, lz, lz2)}


def periods(value: Sequence[Any] | None, dim: int) -> np.ndarray:
    """Per CV the period, 0 where the CV is not periodic."""
    if value is None:
        return np.zeros(dim)
    items = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
    if len(items) != dim:
        raise InputError(f"periodic: expected {dim} entries (a period or None per CV), got {len(items)}")
    out = np.zeros(dim)
    for d, p in enumerate(items):
        if p is None or p is False:
            continue
        try:
            out[d] = float(p)
        except (TypeError, ValueError):
            raise InputError(f"periodic: entry {d} must be a period or None, got {p!r}") from None
        if not (np.isfinite(out[d]) and out[d] > 0):
            raise InputError(f"periodic: the period of CV {d} must be > 0 and finite, got {p!r}")
    return out


def choice(value: Any, name: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise InputError(f"{name}: unknown value {value!r}; use one of {', '.join(map(repr, allowed))}")
    return value


def positive_int(value: Any, name: str, upper: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name}: expected a positive integer, got {value!r}")
    if upper is not None and value > upper:
        raise InputError(f"{name}: {value} is more than {upper}")
    return int(value)


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 34


def check_grid_fits(points: int, dim: int, name: str, extra: int = 0,
                    advice: str = "use fewer bins or pass `grid` in parts") -> None:
    """Refuse a grid whose coordinates and results (plus `extra` bytes, e.g. for writing it) need more than
    GRID_MEMORY_FRACTION of physical memory."""
    need = points * (dim + 4) * 8 + extra
    limit = int(_memory_bytes() * GRID_MEMORY_FRACTION)
    if need > limit:
        count = f"{points:,}" if points < 10 ** 15 else f"{float(points):.3g}"
        size = f"{need / 2**30:.1f}" if need < 2 ** 80 else f"{need / 2**30:.3g}"
        raise InputError(f"{name}: a grid of {count} points needs about {size} GiB"
                         + (" with its outputs" if extra else "") + f", more than {limit / 2**30:.1f} GiB "
                         f"available; {advice}")


def explicit_grid(value: Any, dim: int) -> np.ndarray:
    arr = _array(value, "grid")
    if arr.ndim == 1 and dim == 1:
        arr = arr[:, None]
    arr = _finite_array(arr, "grid", 2)
    if arr.shape[1] != dim:
        raise InputError(f"grid: expected {dim} columns (one per CV), got {arr.shape[1]}")
    return arr


def _ranges(ranges: Any, dim: int) -> list[tuple[float, float]]:
    rng = np.asarray(ranges, dtype=object)
    if dim == 1 and rng.shape == (2,):
        rng = rng[None, :]
    if rng.shape != (dim, 2):
        raise InputError(f"ranges: expected {dim} (low, high) pairs, got shape {rng.shape}")
    bounds = []
    for d, (lo, hi) in enumerate(rng):
        try:
            lo, hi = float(lo), float(hi)
        except (TypeError, ValueError):
            raise InputError(f"ranges: pair {d} is not numeric: {(lo, hi)!r}") from None
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise InputError(f"ranges: pair {d} must be finite with low < high, got {(lo, hi)!r}")
        bounds.append((lo, hi))
    return bounds


def column_range(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column of an (N, D) array of finite values its lowest and highest value: one threaded pass (numpy's
    axis-0 reduction over a C-ordered (N, D) array with few columns is ~25x slower than a column at a time,
    itself one pass per column)."""
    arr = np.ascontiguousarray(values, dtype=np.float64)
    lo, hi, _ = backends.cpu_module().scan_rows(arr.reshape(len(arr), -1))
    return lo, hi


def _axis(lo: float, hi: float, bins: int) -> np.ndarray:
    """`bins` points from lo to hi inclusive; one point sits in the middle."""
    return np.linspace(lo, hi, bins) if bins > 1 else np.array([(lo + hi) / 2])


def _default_axis(lo: float, hi: float, period: float, bins: int) -> np.ndarray:
    """The data range [lo, hi]; for a periodic CV one period from the data minimum, the end point (the same
    point as the start) left out, as PLUMED lays out periodic grids."""
    if period > 0:
        return lo + period * np.arange(bins) / bins
    return _axis(lo, hi, bins)


def regular_axes(bins: Any, ranges: Any, data: np.ndarray, period: np.ndarray,
                 data_range: tuple[np.ndarray, np.ndarray] | None = None) -> list[np.ndarray]:
    """Per CV the grid coordinates: `bins` points from low to high inclusive (`ranges`, else the data's range,
    `data_range` when already known)."""
    dim = data.shape[1]
    nb = [bins] * dim if _ndim(bins, "bins") == 0 else list(bins)
    if len(nb) != dim:
        raise InputError(f"bins: expected an integer or {dim} integers (one per CV), got {len(nb)}")
    nb = [positive_int(b, "bins") for b in nb]
    bounds = None if ranges is None else _ranges(ranges, dim)
    check_grid_fits(int(np.prod(nb, dtype=np.float64)), dim, "bins")
    if bounds is not None:
        lims = bounds
    else:
        dlo, dhi = data_range if data_range is not None else column_range(data)
        lims = [(float(a), float(b)) for a, b in zip(dlo, dhi)]
    with np.errstate(over="ignore"):
        widths = [np.float64(hi) - np.float64(lo) for lo, hi in lims]
    for d, width in enumerate(widths):
        if not np.isfinite(width):
            raise InputError(f"{'ranges' if bounds else 'samples'}: CV {d} spans more than the largest float64 "
                             "(high - low overflows); rescale the CV")
    if bounds is None:
        return [_default_axis(lo, hi, period[d], nb[d]) for d, (lo, hi) in enumerate(lims)]
    return [_axis(lo, hi, b) for (lo, hi), b in zip(bounds, nb)]


def joint_range(data_range: tuple[np.ndarray, np.ndarray],
                points_range: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per CV the lowest and highest coordinate of the samples and the grid points together, from their ranges."""
    return np.minimum(data_range[0], points_range[0]), np.maximum(data_range[1], points_range[1])


def points_range(points: np.ndarray | None, axes: list[np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
    """Per CV the grid's lowest and highest coordinate: from the axes of a regular grid, else one pass."""
    if axes is not None:
        return np.array([a.min() for a in axes]), np.array([a.max() for a in axes])
    return column_range(points)


def check_scaled_range(lo: np.ndarray, hi: np.ndarray, sigma: np.ndarray, period: np.ndarray, dtype: Any) -> None:
    """Refuse before any work when coordinates in units of sigma, or squared distances between the grid and
    the samples, would overflow the kernel's float type (data near 1e308, sigma 1e-300); lo, hi: joint_range."""
    limit = float(np.finfo(dtype).max) / 16  # room for the sum over CVs and the weights
    with np.errstate(over="ignore", invalid="ignore"):
        span = np.where(period > 0, np.minimum(hi - lo, period), hi - lo) / sigma
        reach = np.maximum(np.abs(lo), np.abs(hi)) / sigma
        squared = float(np.sum(span * span))
    if not (np.all(reach < limit) and squared / 2 < limit):
        d = int(np.argmax(np.where(np.isfinite(span), span, np.inf)))
        raise InputError(f"sigma: the samples and grid span {hi[d] - lo[d]:.3g} in CV {d}, {span[d]:.3g} sigma "
                         f"(sigma {sigma[d]:.3g}): squared distances overflow {np.dtype(dtype).name}; use a larger "
                         "sigma or rescale the CV" + (", or precision float64" if np.dtype(dtype) != np.float64
                                                      else ""))
