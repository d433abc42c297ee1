"""cyfes.fes: the free energy surface from (biased) CV samples by reweighted Gaussian KDE.

    F(x) = -kT ln( sum_j w_j prod_d K(x_d - s_jd; sigma_d) / sum_j w_j ),   w_j = exp(V_j / kT) * weight_j

computed in log space by the backends (log-sum-exp with a running maximum).
"""
from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from .. import _units
from .._errors import BackendError, InputError
from . import backends as _backends
from . import binned as _binned
from . import gpu_truncated, streamed
from . import inputs as _inputs
from . import truncated as _truncated
from .result import FESResult
from .stats import kish, kish_of_sums, logsumexp

#: Kernel calls a run is split into at least when a progress callback is given.
PROGRESS_STEPS = 64
#: Sample-grid pairs per kernel call, per CPU thread or per GPU: a call ends within about a second, and Python
#: acts on SIGINT/SIGTERM between calls, so an interrupted run stops promptly.
CHUNK_PAIRS = {"cpu": 5e7, "cuda": 1e11}
#: |log density| from which a float type no longer resolves 1 kT (its spacing there reaches 1): such points are
#: computed again in float64 on the CPU, and past float64's limit (a grid point more than ~6.7e7 sigma from
#: every sample) F is +inf.
RESOLVED = {np.dtype(np.float32): 2.0**23, np.dtype(np.float64): 2.0**52}
ProgressCallback = Callable[[int, int], None]
PRECISIONS = ("float64", "float32")
METHODS = ("direct", "binned")
#: Default bound on how much the pairs left out of the sum may change any F, in kT.
TOLERANCE = 1e-6


def _log_gauss_norm(sigma: np.ndarray) -> float:
    return float(-np.sum(np.log(sigma * math.sqrt(2 * math.pi))))


@dataclass(frozen=True)
class _Layout:
    """What turns kernel sums into a surface: the thermal energy, the kernel, the grid (explicit points or the
    axes of a regular one), and per block [lo, hi) its weight statistics."""

    kT: float
    sigma: np.ndarray
    period: np.ndarray
    explicit: np.ndarray | None
    axes: list[np.ndarray] | None
    dtype: type
    method: str
    stats: dict[tuple[int, int], _inputs.BlockStats]


@dataclass(frozen=True)
class _Problem:
    """Validated inputs of one fes() call: nothing is computed before all of these exist."""

    data: np.ndarray
    sigma: np.ndarray
    #: The log-weights from the host's passes; None where the GPUs computed and keep them (see logw).
    host_logw: np.ndarray | None
    #: bias and weights (float64 arrays or None) and kT, for the host's log-weights when first needed.
    weight_inputs: tuple[np.ndarray | None, np.ndarray | None, float]
    period: np.ndarray
    #: Explicit query points (M, D), or None for the regular grid of `axes`.
    explicit: np.ndarray | None
    axes: list[np.ndarray] | None
    block_ranges: list[tuple[int, int]]
    dtype: type
    kT: float
    tolerance: float
    method: str
    #: Samples of weight zero (log-weight -inf) present: only then do blocks need filtering.
    zero_weights: bool
    #: Per CV the samples' (low, high), and per block [lo, hi) its log-weight statistics: from the passes that
    #: validated them, so no later step reads the samples again for these.
    data_range: tuple[np.ndarray, np.ndarray]
    #: Per CV the lowest and highest coordinate of the samples and the grid points together.
    joint_range: tuple[np.ndarray, np.ndarray]
    stats: dict[tuple[int, int], _inputs.BlockStats]
    #: The samples and log-weights held on the GPUs for the truncated sum (None: nothing staged).
    staged: gpu_truncated.Staged | None = None

    def __enter__(self) -> _Problem:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.staged is not None:
            self.staged.free()

    @functools.cached_property
    def logw(self) -> np.ndarray:
        """log w per sample on the host: from the host's passes, else computed on first use (the GPU's truncated
        sum never asks; the CPU's sums and fallbacks do)."""
        if self.host_logw is not None:
            return self.host_logw
        bias, weights, kT = self.weight_inputs
        return _inputs.log_weights(bias, weights, len(self.data), kT)

    @property
    def layout(self) -> _Layout:
        return _Layout(self.kT, self.sigma, self.period, self.explicit, self.axes, self.dtype, self.method,
                       self.stats)

    @functools.cached_property
    def points(self) -> np.ndarray:
        """The (M, D) query points; a regular grid's are built on first use (its truncated sum needs only the axes)."""
        return self.explicit if self.explicit is not None else _truncated.grid_rows(self.axes)


def _points(grid: Any, bins: Any, ranges: Any, data: np.ndarray, period: np.ndarray,
            data_range: tuple[np.ndarray, np.ndarray] | None = None
            ) -> tuple[np.ndarray | None, list[np.ndarray] | None]:
    """The (M, D) explicit query points, or the axes of a regular grid."""
    dim = data.shape[1]
    if grid is not None and (bins is not None or ranges is not None):
        raise InputError("grid: give either `grid` or `bins`/`ranges`, not both")
    if grid is None and bins is None:
        raise InputError("bins: give `bins` (regular grid) or `grid` (explicit points)")
    if grid is not None:
        points = _inputs.explicit_grid(grid, dim)
        _inputs.check_grid_fits(len(points), dim, "grid")
        return points, None
    return None, _inputs.regular_axes(bins, ranges, data, period, data_range)


def _block_ranges(n: int, nblocks: int) -> list[tuple[int, int]]:
    """[lo, hi) of each block: np.array_split's split."""
    sizes = [n // nblocks + (1 if k < n % nblocks else 0) for k in range(nblocks)]
    edges = np.cumsum([0] + sizes).tolist()
    return list(zip(edges[:-1], edges[1:]))


def _block_stats(blocks: list[tuple[int, int]], arrays: tuple) -> dict[tuple[int, int], _inputs.BlockStats]:
    """Each block's statistics; a block with only zero weights is refused up front."""
    stats = _inputs.stats_of(blocks, *arrays)
    if any(st.kept == 0 for st in stats.values()):
        raise InputError(f"blocks: a block of samples has only zero weights; use fewer than {len(blocks)} blocks")
    return stats


def _stage_on(dev: _backends.Device, method: Any, tolerance: Any) -> Sequence[int]:
    """The GPUs that take the passes over the samples and weights and keep them: those of a truncated sum on
    GPUs (the default there; cuda/stage.cu). None (empty) for the CPU, the binned method or every pair, whose
    kernels take cast or binned copies from the host."""
    try:
        truncated = method == "direct" and float(tolerance) > 0
    except (TypeError, ValueError):
        truncated = False  # _validate says what is wrong with it
    return dev.ids if dev.kind != "cpu" and truncated else ()


def _passes(data: np.ndarray, bias: np.ndarray | None, weights: np.ndarray | None, kT: float,
            edges: np.ndarray, stage_on: Sequence[int]) -> tuple[_inputs.Passes, gpu_truncated.Staged | None]:
    """The passes over the per-sample inputs: on the GPUs `stage_on`, which keep the samples and log-weights,
    else on the host."""
    if not stage_on:
        return _inputs.host_passes(data, bias, weights, kT, edges), None
    staged = gpu_truncated.stage(data, bias, weights, kT, edges, stage_on)
    bad, bad_bias, bad_weight, negative, positive, lo, hi = staged.scan
    return _inputs.Passes(bad, lo, hi, (bad_bias, bad_weight, negative, positive), None, staged.stats), staged


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
              names: Sequence[str] | None, tolerance: Any, method: str, stage_on: Sequence[int] = (),
              grid_range: tuple[np.ndarray, np.ndarray] | None = None) -> _Problem:
    """Every argument checked, the cheap ones before any pass over the samples. stage_on: the GPUs that take
    those passes (_stage_on); the problem then holds their copies (freed when its `with` block ends).
    grid_range: the data range a default grid spans, where it is not these samples' own (a chunk of a larger
    set lays out the whole set's grid)."""
    kT = _units.kT(temperature, units)
    data = _inputs.samples_array(samples)
    n, dim = data.shape
    sig = _inputs.sigma(sigma, dim)
    b, w = _inputs.weight_arrays(bias, weights, n)
    period = _inputs.periods(periodic, dim)
    block_ranges = _block_ranges(n, _inputs.positive_int(blocks, "blocks", upper=n))
    dtype = np.float64 if _inputs.choice(precision, "precision", PRECISIONS) == "float64" else np.float32
    tol = _tolerance(tolerance)
    method = _inputs.choice(method, "method", METHODS)
    if names is not None and (isinstance(names, str) or not hasattr(names, "__len__") or len(names) != dim):
        raise InputError(f"names: expected a list of {dim} CV names, got {names!r}")
    found, staged = _passes(data, b, w, kT, _inputs.block_edges(block_ranges), stage_on)
    try:
        return _checked(found, staged, data, sig, (b, w, kT), period, (grid, bins, ranges), block_ranges, dtype,
                        tol, method, grid_range)
    except BaseException:
        if staged is not None:
            staged.free()
        raise


def _checked(found: _inputs.Passes, staged: gpu_truncated.Staged | None, data: np.ndarray, sig: np.ndarray,
             weighing: tuple, period: np.ndarray, where: tuple, block_ranges: list[tuple[int, int]], dtype: type,
             tol: float, method: str, grid_range: tuple[np.ndarray, np.ndarray] | None = None) -> _Problem:
    """The problem from what the passes over the samples and weights found, and the checks that need it: the
    samples' and weights' values, the grid (`where`: grid, bins, ranges; a default range is the data's), the
    scaled range and the blocks' weights."""
    n = len(data)
    scanned = _inputs.checked_samples(data, found.bad_sample, found.lo, found.hi)
    data_range = (scanned.lo, scanned.hi)
    _inputs.check_weights(weighing[1], n, *found.weight_flags)
    explicit, axes = _points(*where, data, period, grid_range or data_range)
    joint = _inputs.joint_range(data_range, _inputs.points_range(explicit, axes))
    _inputs.check_scaled_range(*joint, sig, period, dtype)
    stats = _block_stats(block_ranges, found.block_arrays)
    zero = sum(st.kept for st in stats.values()) < n
    return _Problem(data, sig, found.logw, weighing, period, explicit, axes, block_ranges, dtype, weighing[2],
                    tol, method, zero, data_range, joint, stats, staged)


def _slices(count: int, parts: int) -> list[slice]:
    edges = np.linspace(0, count, max(1, min(count, parts)) + 1).astype(np.int64)
    return [slice(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:])]


def _grid_parts(count: int, blocks: int) -> list[slice]:
    """Parts of the truncated sum's tiles, one kernel call each: PROGRESS_STEPS calls in all, so a progress bar
    moves and Python acts on SIGINT/SIGTERM between calls."""
    return _slices(count, max(1, PROGRESS_STEPS // blocks))


def _kernel_tiles(points: int, samples: int, blocks: int, progress: ProgressCallback | None,
           dev: _backends.Device) -> tuple[list[slice], list[slice]]:
    """Grid parts and sample parts, each kernel call one (grid part, sample part) tile of about CHUNK_PAIRS pairs
    (and at least PROGRESS_STEPS calls in all when someone watches progress). Each call prepares its samples
    (O(N) work, worth about 50 pairs a sample), so a grid part has at least ~1000 points per thread; the CPU
    kernel is fastest with many samples per call (square tiles measured 25% slower than 1e5 x 2000)."""
    workers = max(1, dev.threads) if dev.kind == "cpu" else len(dev.ids)
    budget = CHUNK_PAIRS[dev.kind] * workers
    per_sample_part = min(samples, max(int(budget // max(1, points)), int(budget // (1024 * workers))))
    per_grid_part = max(64 * max(1, dev.threads) if dev.kind == "cpu" else 1, int(budget // per_sample_part))
    grid_parts = max(-(-points // per_grid_part), 1 if progress is None else PROGRESS_STEPS // blocks)
    return _slices(points, grid_parts), _slices(samples, -(-samples // per_sample_part))


def _log_density(s: np.ndarray, w: np.ndarray, pts: np.ndarray, scale: np.ndarray, per: np.ndarray,
                 dev: _backends.Device, tiles: tuple[list[slice], list[slice]],
                 tick: Callable[[], None] | None = None) -> np.ndarray:
    """The backend's log density, one tile per call; sample parts combine by log-add-exp. Python runs signal
    handlers between calls, so Ctrl-C stops a long run within about one call."""
    dens = np.full(len(pts), -np.inf)
    for part in tiles[0]:
        for chunk in tiles[1]:
            got = _backends.log_density(s[chunk], w[chunk], pts[part], scale, per, dev)
            dens[part] = np.logaddexp(dens[part], got) if len(tiles[1]) > 1 else got
        if tick is not None:
            tick()
    return dens


def _rows(arrays: list[np.ndarray]) -> np.ndarray:
    """Per-block arrays as the rows of one (blocks, M) array; one block's is a view (no copy of M values)."""
    return arrays[0][None] if len(arrays) == 1 else np.stack(arrays)


@dataclass
class _Densities:
    """Per block: log sum_j w_j K(x - s_j) (unnormalised kernel) on every point, and log sum_j w_j; with the
    truncation bound achieved (kT) and the pairs summed."""

    log_dens: np.ndarray
    log_z: np.ndarray
    bound: float
    pairs: int


def _block_samples(pb: _Problem, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Samples and log-weights of one block, zero weights left out (a view when there are none)."""
    lw = pb.logw[lo:hi]
    if not pb.zero_weights:
        return pb.data[lo:hi], lw
    keep = np.isfinite(lw)
    return pb.data[lo:hi][keep], lw[keep]


def _direct(pb: _Problem, dev: _backends.Device, progress: ProgressCallback | None) -> _Densities:
    """Every pair (tolerance 0, or nothing to leave out), one tile of about CHUNK_PAIRS pairs per kernel call."""
    cast = lambda a: np.ascontiguousarray(a, dtype=pb.dtype)  # noqa: E731
    scale, per, pts = cast(1.0 / pb.sigma), cast(pb.period), cast(pb.points)
    count = {"done": 0, "total": 0}

    def tick() -> None:
        count["done"] += 1
        if progress is not None:
            progress(min(count["done"], count["total"]), count["total"])

    log_dens, log_z, pairs = [], [], 0
    for lo, hi in pb.block_ranges:
        data, lw = _block_samples(pb, lo, hi)
        top = pb.stats[lo, hi].top  # shift so the kernels see logw <= 0 (float32 keeps its range); added back below
        s, w = cast(data), cast(lw - top)
        tiles = _kernel_tiles(len(pts), len(lw), len(pb.block_ranges), progress, dev)
        count["total"] = count["total"] or len(tiles[0]) * len(pb.block_ranges)
        with np.errstate(invalid="ignore"):  # logaddexp(-inf, -inf)
            dens = _log_density(s, w, pts, scale, per, dev, tiles, tick)
        _resolve(dens, pb, lo, hi, top, dev)
        _affine(dens, top, threads=dev.threads)  # in place: a pass over the points, no copy
        log_dens.append(dens)
        log_z.append(pb.stats[lo, hi].log_z)
        pairs += len(lw) * len(pts)
    return _Densities(_rows(log_dens), np.array(log_z), 0.0, pairs)


def _tiles(pb: _Problem, dev: _backends.Device) -> _truncated.Tiles:
    if pb.axes is not None:
        if dev.kind != "cpu":
            return _truncated.regular_tiles([len(a) for a in pb.axes], gpu_truncated.tile_points(len(pb.axes)))
        factor = _truncated.scaled_factor(pb.sigma)
        steps = [abs(float(a[1] - a[0])) * f if len(a) > 1 else 0.0 for a, f in zip(pb.axes, factor)]
        return _truncated.regular_tiles([len(a) for a in pb.axes], steps=steps)
    return _truncated.point_tiles(_truncated.scaled_points(pb.points, _truncated.scaled_factor(pb.sigma),
                                                           pb.period))


def _truncated_sum(pb: _Problem, dev: _backends.Device, progress: ProgressCallback | None) -> _Densities:
    """Only the cells of samples that can matter, per tile of grid points, within pb.tolerance."""
    tiles = _tiles(pb, dev)
    factor = _truncated.scaled_factor(pb.sigma)
    if pb.axes is not None:
        grid = _truncated.grid_in_tile_order(pb.axes, tiles, factor, pb.period, pb.dtype, dev.threads)
    else:
        grid = _truncated.in_tile_order(_truncated.scaled_points(pb.points, factor, pb.period), tiles, pb.dtype)
    # without a progress callback the parts are sized by time (fewer OpenMP regions, each ending in a barrier)
    parts = _grid_parts(len(tiles.start) - 1, len(pb.block_ranges)) if progress is not None else None
    total, done = len(parts or ()) * len(pb.block_ranges), [0]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    log_dens, log_z, bound, pairs = [], [], 0.0, 0
    for lo, hi in pb.block_ranges:
        top = pb.stats[lo, hi].top
        if dev.kind == "cpu":
            res = _truncated.cpu_log_density(pb.data, pb.logw, lo, hi, top, grid, tiles, pb.sigma, pb.period,
                                             pb.dtype, pb.tolerance, dev.threads, parts, tick)
        else:  # one call per block: the GPUs take every tile at once
            res = gpu_truncated.gpu_log_density(pb.data, lambda: pb.logw, lo, hi, top, grid, tiles, pb.sigma,
                                                 pb.period, pb.dtype, pb.tolerance, dev.ids,
                                                 _backends.cpu_threads(None), pb.staged)
            for _ in parts or ():
                tick()
        dens = _truncated.from_tile_order(res.log_density, tiles, dev.threads)
        _resolve(dens, pb, lo, hi, top, dev)
        _affine(dens, top, threads=dev.threads)  # in place: a pass over the points, no copy
        log_dens.append(dens)
        log_z.append(res.log_z + top)
        bound, pairs = max(bound, res.bound), pairs + res.pairs
    return _Densities(_rows(log_dens), np.array(log_z), bound, pairs)


def _binned_sum(pb: _Problem, dev: _backends.Device) -> tuple[_Densities, float]:
    """Per block the binned estimate (on the GPUs, else numpy); points where it is unreliable get the direct
    (truncated) sum.
    Returns the densities and the estimated largest |dF| (kT)."""
    log_dens, log_z, bound, pairs, estimate = [], [], 0.0, 0, 0.0
    for lo, hi in pb.block_ranges:
        data, lw = _block_samples(pb, lo, hi)
        top = pb.stats[lo, hi].top
        est = _binned.log_density(data, lw, pb.points, pb.sigma, pb.period, dev.ids if dev.kind != "cpu" else ())
        dens = est.log_density + top
        bad = _binned.unreliable(est)
        if bad.size:
            sub = replace(pb, explicit=pb.points[bad], axes=None, block_ranges=[(lo, hi)], method="direct")
            exact = _block_log_densities(sub, dev)
            dens[bad] = exact.log_dens[0]
            bound, pairs = max(bound, exact.bound), pairs + exact.pairs
        log_dens.append(dens)
        log_z.append(pb.stats[lo, hi].log_z)
        estimate = max(estimate, est.error_estimate)
    return _Densities(_rows(log_dens), np.array(log_z), bound, pairs), max(estimate, bound)


def _block_log_densities(pb: _Problem, dev: _backends.Device,
                         progress: ProgressCallback | None = None) -> _Densities:
    if pb.tolerance > 0 and _truncated.can_truncate(*pb.joint_range, pb.sigma, pb.period, pb.tolerance):
        return _truncated_sum(pb, dev, progress)
    return _direct(pb, dev, progress)


def _affine(values: np.ndarray, a: float = 0.0, b: float = 1.0, apply: bool = True,
            threads: int = 0) -> tuple[float, float, int]:
    """values = a + b * values in place (a 1-D float64 array; unless `apply` is False), in one threaded pass that
    also finds (lo, hi, other): the range of the finite values after it and the number of the others. threads: a
    CPU device's (0: OpenMP's default, as for GPU devices)."""
    return _backends.cpu_module().affine_range(values, a, b, apply, threads)


def _check_mass(values: np.ndarray, empty: int) -> None:
    """+inf points (`empty` of them) are documented (no mass float64 can represent); a surface of nothing else is
    an error."""
    if not empty:
        return
    if empty == len(values):
        raise InputError("sigma: every grid point is more than about 6.7e7 sigma from every sample (no mass in "
                         "float64); use a larger sigma or a grid over the data")
    if empty:
        warnings.warn(f"{empty} of {len(values)} grid points are more than about 6.7e7 sigma from every sample: "
                      "F = +inf there", RuntimeWarning, stacklevel=3)


def _unresolved(dens: np.ndarray, dtype: Any, count: int, threads: int = 0) -> np.ndarray:
    """Points whose log density is NaN, impossibly high (weights are <= 1 after the shift, so at most
    log(count)) or too low for `dtype` to resolve 1 kT."""
    high, low = math.log(count) + 1.0, -RESOLVED[np.dtype(dtype)]
    lo, hi, other = _affine(dens, apply=False, threads=threads)  # one threaded pass, no temporaries
    if not other and low <= lo and hi <= high:
        return np.zeros(0, dtype=np.intp)
    with np.errstate(invalid="ignore"):
        return np.flatnonzero(~((dens <= high) & (dens >= low)))


def _resolve(dens: np.ndarray, pb: _Problem, lo: int, hi: int, top: float, dev: _backends.Device) -> None:
    """Compute again in float64 on the CPU the points the kernel could not resolve (dens: relative to the top
    log-weight `top` of block [lo, hi)); -inf (F = +inf) where float64 cannot either."""
    count = pb.stats[lo, hi].kept
    bad = _unresolved(dens, pb.dtype, count, dev.threads)
    if bad.size and (dev.kind != "cpu" or np.dtype(pb.dtype) != np.float64):
        data, logw = _block_samples(pb, lo, hi)
        cpu = _backends.Device("cpu", threads=_backends.cpu_threads(None))
        f64 = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
        pts = f64(pb.points[bad])
        tiles = _kernel_tiles(len(pts), len(data), 1, None, cpu)
        dens[bad] = _log_density(f64(data), f64(logw - top), pts, f64(1.0 / pb.sigma), f64(pb.period), cpu, tiles)
        bad = _unresolved(dens, np.float64, len(data), dev.threads)
    dens[bad] = -np.inf


def _kernel_sums(pb: _Problem, dev: _backends.Device,
                 progress: ProgressCallback | None) -> tuple[_Densities, float | None]:
    """Per block, the log kernel sums of a validated problem, and the binned method's error estimate (else None)."""
    if pb.method == "binned":
        return _binned_sum(pb, dev)
    return _block_log_densities(pb, dev, progress), None


def log_kernel_sum(samples: Any, sigma: Any, *, grid: Any, bias: Any = None, weights: Any = None,
                   temperature: float = 300.0, units: str = "kJ/mol",
                   periodic: Sequence[float | None] | None = None, precision: str = "float64",
                   tolerance: float = TOLERANCE, device: Any = "auto") -> np.ndarray:
    """log sum_j w_j exp(-sum_d (x_d - s_jd)^2 / 2 sigma_d^2) on the points of `grid`, w_j = exp(V_j/kT) weight_j:
    the kernel sum that fes() turns into F (it normalises the kernel and divides by sum_j w_j), for callers that
    need the sum itself (CyFES 4.5's mode). Arguments as fes()'s."""
    dev = _backends.parse_device(device, None, None)
    with _validate(samples, sigma, bias, weights, temperature, units, grid, None, None, periodic, 1, precision,
                   None, tolerance, "direct", _stage_on(dev, "direct", tolerance)) as pb:
        return logsumexp(_kernel_sums(pb, dev, None)[0].log_dens, axis=0)


def fes(samples: Any, sigma: Any, *, bias: Any = None, weights: Any = None, temperature: float = 300.0,
        units: str = "kJ/mol", grid: Any = None, bins: Any = None, ranges: Any = None,
        periodic: Sequence[float | None] | None = None, blocks: int = 1, device: Any = "auto",
        precision: str = "float64", devices: Sequence[int] | None = None, threads: int | None = None,
        shift: bool = True, names: Sequence[str] | None = None,
        progress: ProgressCallback | None = None, tolerance: float = TOLERANCE,
        method: str = "direct") -> FESResult:
    """Free energy surface of CV samples by reweighted Gaussian kernel density estimation.

    F(x) = -kT ln( sum_j w_j prod_d K(x_d - s_jd; sigma_d) / sum_j w_j ), with w_j = exp(V_j / kT) * weight_j,
    K the normalised Gaussian and periodic CVs taken to the nearest image, computed in log space. Every
    argument is checked before any work starts.

    Parameters
    ----------
    samples : array_like
        The (N, D) CV values, or (N,) for one CV; 1 to 8 CVs.
    sigma : float or sequence of float
        Kernel width, one for all CVs or one per CV.
    bias : array_like, optional
        Per-sample bias potential V_j in `units`; the samples are reweighted by exp(V/kT).
    weights : array_like, optional
        Per-sample weights, on top of the bias.
    temperature : float, default 300.0
        In K.
    units : {"kJ/mol", "kcal/mol"}, default "kJ/mol"
        Energy unit of `bias` and of the result (PLUMED's default is kJ/mol).
    grid : array_like, optional
        Explicit (M, D) query points; the result's `values` then has shape (M,). Give `grid` or `bins`.
    bins : int or sequence of int, optional
        Grid points, for all CVs or one per CV (a regular grid, matrix indexing).
    ranges : sequence of (float, float), optional
        (low, high) per CV for `bins`; default: the data range. A periodic CV's default range is one period
        from the data minimum, without repeating the end point.
    periodic : sequence of float or None, optional
        Per CV its period, or None for a CV that is not periodic.
    blocks : int, default 1
        Split the samples into this many consecutive blocks; above 1 the result has a standard error per point.
    device : str or sequence of int, default "auto"
        ``"auto"`` (the GPU when usable, else the CPU), ``"cpu"``, ``"gpu"``, ``"cuda:N"``, or GPU ids.
    precision : {"float64", "float32"}, default "float64"
        The kernels' float type.
    devices : sequence of int, optional
        GPUs to split the grid over, e.g. ``[0, 1]``.
    threads : int, optional
        CPU threads (default: all CPUs); more than there are CPUs is lowered with a warning.
    shift : bool, default True
        Subtract the minimum of F.
    names : sequence of str, optional
        CV names, used by `FESResult.delta_f`, `FESResult.marginal`, the plots and the files.
    progress : callable, optional
        Called as ``progress(done, total)`` after each kernel call (the grid is then split into parts).
    tolerance : float, default 1e-6
        The samples left out of each grid point's sum change no F by more than this (kT). Samples are grouped
        into cells and a cell is left out only when its summed weight and nearest distance prove it negligible,
        whatever the weights; 0 sums every pair. The result's `bound` is the bound achieved, `pairs` the pairs
        summed.
    method : {"direct", "binned"}, default "direct"
        ``"direct"`` sums kernels (within `tolerance`); ``"binned"`` bins linearly and convolves by FFT, for many
        more samples than grid points, and reports its estimated largest abs(dF) in kT as `error_estimate`
        (points of very low density fall back to the direct sum).

    Returns
    -------
    FESResult
        The surface, its axes or points, its error bars (``blocks > 1``) and how it was computed.

    Raises
    ------
    InputError
        A bad argument (NaN or inf, empty, ragged, complex or mis-shaped arrays, mismatched lengths,
        ``sigma <= 0``, a period <= 0, unknown units, device or precision, a grid too large for memory),
        named in the message.
    BackendError
        The GPU was asked for and is not usable, or CUDA failed (with CUDA's own message).

    Examples
    --------
    One sample at 0 with sigma 1: F rises by kT/2 one sigma away (kT = 2.494 kJ/mol at 300 K).

    >>> import numpy as np
    >>> import cyfes
    >>> res = cyfes.fes(np.zeros((1, 1)), sigma=1.0, grid=[[0.0], [1.0]], device="cpu")
    >>> res.values.round(4)
    array([0.    , 1.2472])
    >>> round(res.kT / 2, 4)
    1.2472

    A biased 2-D run with error bars from 5 blocks:

    >>> rng = np.random.default_rng(1)
    >>> phi_psi = rng.uniform(-np.pi, np.pi, size=(2000, 2))
    >>> bias = rng.uniform(0, 5, size=2000)
    >>> res = cyfes.fes(phi_psi, 0.3, bias=bias, bins=(30, 20), periodic=[2 * np.pi, 2 * np.pi], blocks=5,
    ...                 device="cpu")
    >>> res.values.shape, res.error.shape, float(res.values.min())
    ((30, 20), (30, 20), 0.0)
    """
    if streamed.is_chunked(samples):
        spec = _ChunkSpec(sigma, temperature, units, grid, bins, ranges, periodic, precision, tolerance, method,
                          device, None if devices is None else tuple(devices), threads)
        return _chunked_fes(samples, bias, weights, spec, blocks, shift, names, progress)
    dev = _backends.parse_device(device, devices, threads)
    args = (samples, sigma, bias, weights, temperature, units, grid, bins, ranges, periodic, blocks, precision,
            names, tolerance, method)
    try:
        sums, estimate, layout = _sums_on(dev, args, progress)
    except BackendError as exc:
        if dev.kind == "cpu" or not _backends.is_auto(device, devices):
            raise
        # device="auto": a GPU that fails (its memory taken by another process, say) leaves the CPU
        warnings.warn(f"the GPU failed ({exc}); computing on the CPU instead", RuntimeWarning, stacklevel=2)
        dev = _backends.parse_device("cpu", None, threads)
        sums, estimate, layout = _sums_on(dev, args, progress)
    return surface(sums, estimate, layout, dev.describe(), units=units, temperature=temperature, shift=shift,
                   names=names, threads=dev.threads)


def _sums_on(dev: _backends.Device, args: tuple, progress: ProgressCallback | None
             ) -> tuple[_Densities, float | None, _Layout]:
    """fes()'s kernel sums on one device: args are fes()'s (samples ... method), validated here."""
    method, tolerance = args[-1], args[-2]
    with _validate(*args, _stage_on(dev, method, tolerance)) as pb:
        if progress is not None and not callable(progress):
            raise InputError(f"progress: expected a callable progress(done, total), got {progress!r}")
        sums, estimate = _kernel_sums(pb, dev, progress)
    return sums, estimate, pb.layout


@dataclass(frozen=True)
class _ChunkSpec:
    """fes()'s arguments that every chunk of chunked samples is summed with; grid_range: the whole set's data
    range (for a default grid), block_ranges: the whole set's blocks."""

    sigma: Any
    temperature: float
    units: str
    grid: Any
    bins: Any
    ranges: Any
    periodic: Any
    precision: str
    tolerance: Any
    method: str
    device: Any
    devices: tuple[int, ...] | None
    threads: int | None
    grid_range: tuple[np.ndarray, np.ndarray] | None = None
    block_ranges: tuple[tuple[int, int], ...] = ()


def _chunk_range(samples: Any, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """One chunk's per-CV range, its values checked (an error names the rows: global row `offset` on)."""
    try:
        found = _inputs.scanned_samples(samples)
    except InputError as exc:
        raise InputError(f"samples {offset} to {offset + len(samples) - 1}: {exc}") from None
    return found.lo, found.hi


def _chunk_partial(samples: Any, bias: Any, weights: Any, offset: int, spec: _ChunkSpec) -> streamed.Partial:
    """The partial sums of one chunk of samples (global rows offset..): per block it meets, the kernel sums of
    its rows there, computed as fes() computes one block's (where the chunk lives: a Dask worker, or here)."""
    data = _inputs.samples_array(samples)
    dev = _backends.parse_device(spec.device, spec.devices, spec.threads)
    out = None
    for b, lo, hi in streamed.pieces(offset, len(data), spec.block_ranges):
        sub_b = None if bias is None else np.asarray(bias)[lo:hi]
        sub_w = None if weights is None else np.asarray(weights)[lo:hi]
        if sub_w is not None and not np.any(sub_w > 0):
            continue  # no weight here: these rows add nothing (a block with none at all is refused on merging)
        try:
            with _validate(data[lo:hi], spec.sigma, sub_b, sub_w, spec.temperature, spec.units, spec.grid,
                           spec.bins, spec.ranges, spec.periodic, 1, spec.precision, None, spec.tolerance,
                           spec.method, _stage_on(dev, spec.method, spec.tolerance), spec.grid_range) as pb:
                sums, estimate = _kernel_sums(pb, dev, None)
        except InputError as exc:
            raise InputError(f"samples {offset + lo} to {offset + hi - 1}: {exc}") from None
        st = next(iter(pb.stats.values()))
        if out is None:
            out = streamed.empty(len(spec.block_ranges), sums.log_dens.shape[1])
        out.log_dens[b], out.log_z[b], out.log_z2[b] = sums.log_dens[0], sums.log_z[0], st.log_z2
        out.kept[b] = st.kept
        out = replace(out, bound=max(out.bound, sums.bound), pairs=out.pairs + sums.pairs,
                      estimate=max(out.estimate, estimate or 0.0), backends=(dev.describe(),))
    return out if out is not None else streamed.empty(len(spec.block_ranges), 0)


def _chunked_fes(samples: Any, bias: Any, weights: Any, spec: _ChunkSpec, blocks: int, shift: bool,
                 names: Sequence[str] | None, progress: ProgressCallback | None) -> FESResult:
    """fes() of samples in chunks (a Dask array, a list of arrays): each chunk's sums where it lives, merged
    exactly; the grid is laid out first (from the whole set's range unless `ranges` or `grid` is given)."""
    kT = _units.kT(spec.temperature, spec.units)
    chunks = streamed.chunks_of(samples, bias, weights)
    sig, period = _inputs.sigma(spec.sigma, chunks.dim), _inputs.periods(spec.periodic, chunks.dim)
    dtype = np.float64 if _inputs.choice(spec.precision, "precision", PRECISIONS) == "float64" else np.float32
    method = _inputs.choice(spec.method, "method", METHODS)
    block_ranges = _block_ranges(chunks.total, _inputs.positive_int(blocks, "blocks", upper=chunks.total))
    if progress is not None and not callable(progress):
        raise InputError(f"progress: expected a callable progress(done, total), got {progress!r}")
    grid_range = None
    if spec.grid is None and spec.ranges is None:
        grid_range = streamed.data_range(chunks, _chunk_range)
    explicit, axes = _points(spec.grid, spec.bins, spec.ranges, np.empty((0, chunks.dim)), period,
                             grid_range or (np.zeros(chunks.dim), np.ones(chunks.dim)))
    spec = replace(spec, grid_range=grid_range, block_ranges=tuple(block_ranges))
    total = streamed.reduce(chunks, functools.partial(_chunk_partial, spec=spec), progress)
    if total.log_dens.shape[1] == 0 or np.any(total.kept == 0):
        raise InputError(f"blocks: a block of samples has only zero weights; use fewer than {len(block_ranges)} "
                         "blocks" if len(block_ranges) > 1 else "weights: every sample has weight zero")
    stats = {blk: _inputs.BlockStats(float("nan"), int(k), float(a), float(a2))
             for blk, k, a, a2 in zip(block_ranges, total.kept, total.log_z, total.log_z2)}
    layout = _Layout(kT, sig, period, explicit, axes, dtype, method, stats)
    sums = _Densities(total.log_dens, total.log_z, total.bound, total.pairs)
    backend = f"{len(chunks.parts)} chunks on " + ", ".join(total.backends)
    return surface(sums, total.estimate if method == "binned" else None, layout, backend, units=spec.units,
                   temperature=spec.temperature, shift=shift, names=names, threads=_backends.cpu_threads(None))


def surface(sums: _Densities, estimate: float | None, layout: _Layout, backend: str, *, units: str,
            temperature: float, shift: bool, names: Sequence[str] | None, threads: int = 0) -> FESResult:
    """The FESResult of per-block kernel sums: F = -kT log of the normalised density, with block errors (one
    process's sums, or partial sums merged from chunks, GPUs or Dask workers: the same arithmetic)."""
    dens, log_z = sums.log_dens, sums.log_z
    norm = _log_gauss_norm(layout.sigma)
    # F = -kT log density, in place over the sum of the blocks (one block: its row, used no more)
    values = logsumexp(dens, axis=0)
    low, _, empty = _affine(values, layout.kT * (float(logsumexp(log_z, axis=0)) - norm), -layout.kT, threads=threads)
    _check_mass(values, empty)
    error = per_block = None
    nblocks = len(layout.stats)
    if nblocks > 1:
        with np.errstate(invalid="ignore"):
            per_block = -layout.kT * (dens - log_z[:, None] + norm)
            # a block whose weights are all 0 has no density anywhere (-inf - -inf): its F is +inf
            per_block[np.isnan(per_block)] = np.inf
            error = per_block.std(axis=0, ddof=1) / math.sqrt(nblocks)
        error[np.isinf(per_block).any(axis=0)] = np.inf  # a block without mass there: no finite error bar
    if shift:
        _affine(values, -low, threads=threads)
    axes = layout.axes
    shape = tuple(len(a) for a in axes) if axes is not None else (len(layout.explicit),)
    return FESResult(
        values=values.reshape(shape), axes=axes, grid=layout.explicit if axes is None else None,
        error=None if error is None else error.reshape(shape), kT=layout.kT, units=units,
        temperature=float(temperature), backend=backend, precision=str(np.dtype(layout.dtype)),
        sigma=layout.sigma, periodic=[float(p) if p > 0 else None for p in layout.period],
        n_samples=sum(st.kept for st in layout.stats.values()), blocks=nblocks,
        names=list(names) if names is not None else None, ess=kish_of_sums([s.log_z for s in layout.stats.values()], [s.log_z2 for s in layout.stats.values()]),
        blocks_effective=kish(log_z) if nblocks > 1 else None,
        block_values=None if per_block is None else per_block.reshape((nblocks,) + shape),
        block_log_weights=None if per_block is None else np.asarray(log_z),
        bound=sums.bound, pairs=sums.pairs, method=layout.method, error_estimate=estimate)
