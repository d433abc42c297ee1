"""Sums of metadynamics hills on a grid, as PLUMED's `sum_hills` computes them (and `cyfes.hills`).

    V(x) = sum_j h_j (A exp(-s_j(x)) + B)  for s_j(x) < 6.25, else 0;   s_j = 1/2 sum_d ((x_d - c_jd) / sigma_jd)^2

with A = 1/(1 - e^-6.25), B = -A e^-6.25 (PLUMED's stretched Gaussian, zero at the cut), each hill added only on
the box of +-ceil(sqrt(12.5) sigma / dx) grid steps around its centre's grid cell, F = -V. The grid, its default
bounds and bin counts, the derivatives, --idw projections, --negbias, --stride and --histo follow PLUMED 2.11's
FuncSumHills, BiasRepresentation, KernelFunctions and Grid (as read in plumed/plumed2's sources). The hills
are summed by the CPU kernel in _hills.pyx (work per hill: its box, not the whole grid) or the GPU kernel of
libcufes (cuda/hills.cu: tiles of grid points keep the hills whose box meets them), on the same boxes.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .._errors import InputError
from ..engine import backends, inputs
from ..engine.result import FESResult
from ..io import formats
from ..io import hills as hills_io
from ..io.hills import GridHeader, Hills, Points

#: PLUMED's cut of the stretched Gaussian, in s = r^2/2 (Tools.h dp2cutoff).
CUT = 6.25
STRETCH_A = 1.00193418799744762399
STRETCH_B = -.00193418799744762399
#: Bins per kernel support when sum_hills chooses the grid itself (BiasRepresentation::getMinMaxBin).
DIVISIONS_PER_SUPPORT = 10
KERNELS = ("stretched", "gaussian", "untruncated")
#: Kernel evaluations (grid points of the hills' boxes) per call of the CPU kernel: Python acts on SIGINT and
#: SIGTERM between calls, so a sum stops within a fraction of a second of a signal.
SLICE_WORK = 20_000_000
#: A periodic hill's box may wrap the axis (PLUMED's Grid::getNeighbors visits a point once per image); one
#: longer than this many times its axis is a width error, not a surface, and would loop for hours.
MAX_BOX_AXES = 100
#: Grid steps from the grid beyond which a centre's cell index loses its integer precision.
MAX_CELL = float(2 ** 52)


# ----------------------------------------------------------------------------------------------- grid plan
@dataclass
class HillsGrid:
    """PLUMED's Grid as sum_hills builds it: per CV the header strings, first point, step and point count."""

    names: list[str]
    mins: list[str]
    maxs: list[str]
    gmin: np.ndarray
    dx: np.ndarray
    nbin: list[int]          # points per CV (non-periodic: bins + 1)
    period: np.ndarray       # 0: not periodic

    @property
    def periodic(self) -> list[bool]:
        return [bool(p > 0) for p in self.period]

    @property
    def size(self) -> int:
        return int(np.prod(self.nbin, dtype=np.int64))

    def axes(self) -> list[np.ndarray]:
        return [self.gmin[d] + np.arange(n, dtype=np.float64) * self.dx[d] for d, n in enumerate(self.nbin)]

    def coords(self) -> list[np.ndarray]:
        """Coordinates of every point, flat in PLUMED's order (first CV fastest)."""
        mesh = np.meshgrid(*self.axes(), indexing="ij")
        return [m.ravel(order="F") for m in mesh]

    def header(self) -> GridHeader:
        return GridHeader(list(self.names), list(self.mins), list(self.maxs), list(self.nbin), self.periodic)


def _number(text: str, what: str) -> float:
    return formats.parse_number(text, what)


def support(hills: Hills) -> np.ndarray:
    """(N, D) half-extent of each hill per CV (KernelFunctions::getContinuousSupport)."""
    cut = math.sqrt(2.0 * CUT)
    if not hills.multivariate:
        return cut * hills.widths
    cov = np.linalg.inv(hills.metrics)
    values, vectors = np.linalg.eigh(cov)
    top = np.argmax(values, axis=1)
    vec = np.take_along_axis(vectors, top[:, None, None], axis=2)[:, :, 0]
    return cut * np.abs(np.sqrt(values[np.arange(len(top)), top])[:, None] * vec)


def _auto_bounds(centers: np.ndarray, extent: np.ndarray, domains: Sequence[tuple[float, float] | None]
                 ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """BiasRepresentation::getMinMaxBin: extreme centres -/+ their extent, a tenth of the narrowest extent per bin,
    clipped to a periodic CV's domain."""
    # one column at a time: numpy's axis-0 reductions of an (N, D) array are several times slower
    vmin = np.array([(centers[:, d] - extent[:, d]).min() for d in range(len(domains))])
    vmax = np.array([(centers[:, d] + extent[:, d]).max() for d in range(len(domains))])
    # min(e / 10) is min(e) / 10 exactly: a correctly rounded division keeps the order
    binsize = np.array([extent[:, d].min() / float(DIVISIONS_PER_SUPPORT) for d in range(len(domains))])
    bins = []
    for d, dom in enumerate(domains):
        if dom is not None:
            vmin[d] = max(vmin[d], dom[0])
            vmax[d] = min(vmax[d], dom[1])
        with np.errstate(all="ignore"):
            count = (vmax[d] - vmin[d]) / binsize[d]
        if not binsize[d] > 0 or not math.isfinite(count):
            raise InputError(f"grid of CV {d + 1}: cannot choose its bins (a tenth of the narrowest hill, "
                             f"{binsize[d]:g}, over a span of {vmax[d] - vmin[d]:g}); give --min, --max and --bin")
        bins.append(max(1, int(math.ceil(count))))
    return vmin, vmax, bins


def _per_cv(values: Sequence[str] | None, dim: int, option: str) -> list[str] | None:
    if values is None:
        return None
    if len(values) != dim:
        raise InputError(f"{option}: expected {dim} comma-separated values (one per CV), got {len(values)}")
    return list(values)


def _bins(values: list[str] | None, option: str) -> list[int] | None:
    if values is None:
        return None
    return [formats.parse_positive_int(v, option) for v in values]


def plan_grid(names: list[str], domains: Sequence[tuple[str, str] | None], centers: np.ndarray,
              extent: np.ndarray, gmin: Sequence[str] | None = None, gmax: Sequence[str] | None = None,
              gbin: Sequence[str] | None = None, spacing: Sequence[str] | None = None) -> HillsGrid:
    """The grid sum_hills uses: --min/--max/--bin/--spacing as given (strings, as PLUMED keeps them), else
    the bounds and bins BiasRepresentation::getMinMaxBin derives from the kernels' extents."""
    dim = len(names)
    gmin, gmax = _per_cv(gmin, dim, "--min"), _per_cv(gmax, dim, "--max")
    bins, spacing = _bins(_per_cv(gbin, dim, "--bin"), "--bin"), _per_cv(spacing, dim, "--spacing")
    dom = [None if d is None else (_number(d[0], f"min_{n}"), _number(d[1], f"max_{n}")) for n, d in zip(names, domains)]
    if (gmin is None) != (gmax is None):
        raise InputError("--min and --max: give both or neither")
    if spacing is not None:
        if gmin is None:
            raise InputError("--spacing: needs --min and --max")
        bins = list(bins or [1] * dim)
        for d in range(dim):
            step = _number(spacing[d], "--spacing")
            if not step > 0:
                raise InputError(f"--spacing: must be > 0, got {spacing[d]}")
            with np.errstate(all="ignore"):
                n = (_number(gmax[d], "--max") - _number(gmin[d], "--min")) / step
            if not math.isfinite(n):
                raise InputError(f"--spacing {spacing[d]}: gives more bins than a float64 holds")
            bins[d] = max(bins[d], int(math.ceil(n)))
    if gmin is None:
        vmin, vmax, auto = _auto_bounds(centers, extent, dom)
        gmin, gmax = [f"{v:g}" for v in vmin], [f"{v:g}" for v in vmax]
        bins = bins or auto
    elif bins is None:
        raise InputError("--min/--max: give the number of bins too (--bin or --spacing)")
    else:
        _check_periodic_bounds(names, domains, dom, gmin, gmax)
    what = "--spacing" if spacing is not None else "--bin" if gbin is not None else "the grid's bins"
    check_grid_size(names, dom, bins, what)
    return _grid(names, domains, dom, gmin, gmax, bins)


def check_grid_size(names: list[str], dom: list[tuple[float, float] | None], bins: list[int], what: str) -> None:
    """Refuse, before any work, a grid that does not fit in memory: the same bound cyfes.fes applies, counting
    the values, derivatives, their running copies and the text of the rows."""
    points = math.prod(b if dom[d] is not None else b + 1 for d, b in enumerate(bins))
    dim = len(names)
    inputs.check_grid_fits(points, dim, what, extra=points * (2 * dim + 2) * 16, advice="use fewer bins")


def _check_span(name: str, lo: float, hi: float, lo_text: str, hi_text: str) -> None:
    if not math.isfinite(hi - lo):
        raise InputError(f"--min/--max of {name}: {lo_text} to {hi_text} spans more than the largest float64")


def _check_periodic_bounds(names: list[str], domains: Sequence[tuple[str, str] | None],
                           dom: list[tuple[float, float] | None], gmin: list[str], gmax: list[str]) -> None:
    for d, name in enumerate(names):
        lo, hi = _number(gmin[d], "--min"), _number(gmax[d], "--max")
        if dom[d] is not None and lo < dom[d][0]:
            raise InputError(f"--min {gmin[d]}: below the periodic domain of {name} ({domains[d][0]})")
        if dom[d] is not None and hi > dom[d][1]:
            raise InputError(f"--max {gmax[d]}: above the periodic domain of {name} ({domains[d][1]})")
        if dom[d] is None and not hi > lo:
            raise InputError(f"--min/--max of {name}: needs min < max, got {gmin[d]} and {gmax[d]}")
        _check_span(name, lo, hi, gmin[d], gmax[d])


def _grid(names: list[str], domains: Sequence[tuple[str, str] | None],
          dom: list[tuple[float, float] | None], gmin: list[str], gmax: list[str], bins: list[int]) -> HillsGrid:
    mins, maxs, first, step, points, period = [], [], [], [], [], []
    for d in range(len(names)):
        if dom[d] is not None:  # a periodic grid always spans the domain (GridBase::Init)
            mins.append(domains[d][0])
            maxs.append(domains[d][1])
            lo, hi = dom[d]
        else:
            mins.append(gmin[d])
            maxs.append(gmax[d])
            lo, hi = _number(gmin[d], "--min"), _number(gmax[d], "--max")
            if not hi > lo:
                raise InputError(f"grid of {names[d]}: maximum {gmax[d]} is not above minimum {gmin[d]}")
            _check_span(names[d], lo, hi, gmin[d], gmax[d])
        first.append(lo)
        step.append((hi - lo) / float(bins[d]))
        points.append(bins[d] if dom[d] is not None else bins[d] + 1)
        period.append(hi - lo if dom[d] is not None else 0.0)
    return HillsGrid(names, mins, maxs, np.array(first), np.array(step), points, np.array(period))


# ----------------------------------------------------------------------------------------------- summing
@dataclass
class HillSum:
    """V and dV/dx on a grid, flat in PLUMED's order; derivatives (D, M), or None when not asked for."""

    values: np.ndarray
    der: np.ndarray | None


def _cells(centers: np.ndarray, grid: HillsGrid) -> np.ndarray:
    """Each centre's grid cell per CV, as the kernels compute it (floor((c - min) / dx)), in float64."""
    with np.errstate(all="ignore"):
        return np.floor((centers - grid.gmin[None, :]) / grid.dx[None, :])


def check_boxes(hills: Hills, grid: HillsGrid, extent: np.ndarray, kernel: str) -> None:
    """Refuse hills the kernels cannot place on this grid: a centre so many grid steps away that its cell
    index is no longer an exact integer, or a box (as the kernels loop over it) longer than MAX_BOX_AXES
    times its axis: a sigma spanning a hundred periods, or a wide hill far off a small grid.

    The cell index and the box are monotonic in the centre and the extent, so the extremes of each column
    settle the usual case; only when they fail are the rows looked at, to name the first one."""
    if _boxes_fit(hills.centers, grid, extent, kernel):
        return
    cells = _cells(hills.centers, grid)
    bad = ~(np.abs(cells) <= MAX_CELL).all(axis=1)
    if bad.any():
        j = int(np.argmax(bad))
        raise InputError(f"hill {j + 1}: its centre ({hills_io._values(hills.centers[j])}) lies more than "
                         f"{MAX_CELL:.3g} grid steps from the grid; check the HILLS file or the grid bounds")
    if kernel == "untruncated":
        return
    steps = _box_steps(extent, grid, hills.centers)
    for d in range(len(grid.nbin)):
        over = ~(2 * steps[:, d] + 1 <= MAX_BOX_AXES * grid.nbin[d])
        if over.any():
            j = int(np.argmax(over))
            raise InputError(f"hill {j + 1}: its kernel along {grid.names[d]} (support {extent[j, d]:g} around "
                             f"{hills.centers[j, d]:g}) spans more than {MAX_BOX_AXES} times the grid's axis; "
                             "check its sigma and the grid bounds")


def _boxes_fit(centers: np.ndarray, grid: HillsGrid, extent: np.ndarray, kernel: str) -> bool:
    """check_boxes' rules from the columns' extremes: True when no hill can break them (False when one may)."""
    if len(centers) == 0:
        return True
    # column by column: numpy's axis-0 reductions of an (N, D) array are ten times slower
    dims = range(centers.shape[1])
    ends = _cells(np.array([[centers[:, d].min() for d in dims], [centers[:, d].max() for d in dims]]), grid)
    if not (np.abs(ends) <= MAX_CELL).all():
        return False
    if kernel == "untruncated":
        return True
    with np.errstate(all="ignore"):
        widest = np.ceil(np.array([extent[:, d].max() for d in dims]) / grid.dx)  # a box is never longer than its uncut steps
    return bool((2 * widest + 1 <= MAX_BOX_AXES * np.asarray(grid.nbin, dtype=np.float64)).all())


def _box_steps(extent: np.ndarray, grid: HillsGrid, centers: np.ndarray) -> np.ndarray:
    """(N, D) box half-widths in grid steps, as floats (inf for a sigma past the grid's resolution)."""
    with np.errstate(all="ignore"):
        steps = np.ceil(extent / grid.dx[None, :])
    # off a non-periodic axis the kernels skip every offset, so a box reaching past both ends is the same box
    # cut to the farther end (the same points in the same order), and one that misses the axis adds nothing
    for d in np.flatnonzero(grid.period <= 0):
        with np.errstate(all="ignore"):
            cells = np.floor((centers[:, d] - grid.gmin[d]) / grid.dx[d])
        last = float(grid.nbin[d] - 1)
        reach = np.maximum(np.abs(cells), np.abs(last - cells)) + 1
        col = np.where(~(steps[:, d] <= reach), reach, steps[:, d])
        steps[:, d] = np.where((cells + col < 0) | (cells - col > last), 0.0, col)
    return steps


def _neighbours(extent: np.ndarray, grid: HillsGrid, kernel: str, centers: np.ndarray) -> np.ndarray:
    if kernel == "untruncated":
        return np.full(extent.shape, -1, dtype=np.int64)
    return _box_steps(extent, grid, centers).astype(np.int64)


def _box_work(nneigh: np.ndarray, grid: HillsGrid) -> np.ndarray:
    """Kernel evaluations per hill (at most): its box's points, the whole axis where the box is -1."""
    sizes = np.where(nneigh < 0, np.asarray(grid.nbin, dtype=np.float64)[None, :], 2.0 * nneigh + 1)
    return np.prod(sizes, axis=1)


def work_slices(work: np.ndarray, budget: float | None = None) -> list[slice]:
    """Consecutive runs of hills of about `budget` (SLICE_WORK) evaluations each (at least one hill per run)."""
    budget = SLICE_WORK if budget is None else budget
    ends = np.searchsorted(np.cumsum(work), np.arange(1, int(work.sum() // budget) + 1) * budget, side="right")
    edges = sorted({0, len(work), *(int(e) for e in ends if 0 < e < len(work))})
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


def _coefficients(heights: np.ndarray, kernel: str) -> tuple[np.ndarray, np.ndarray, bool]:
    if kernel == "stretched":
        return heights * STRETCH_A, heights * STRETCH_B, True
    return heights.astype(np.float64), np.zeros(len(heights)), False


def hills_device(device: Any, threads: int | None, dim: int) -> backends.Device:
    """Where the hills are summed: `device` as cyfes.fes reads it ("auto", "cpu", "gpu", "cuda:N"; the first
    GPU of a list). The GPU kernel takes up to HILLS_MAX_DIM CVs; "auto" uses the CPU beyond that."""
    dev = backends.parse_device(device, None, threads)
    if dev.kind == "cuda":
        top = backends.gpu_module().HILLS_MAX_DIM
        if dim > top:
            if isinstance(device, str) and device.strip().lower() == "auto":
                return backends.Device("cpu", threads=backends.cpu_threads(threads))
            raise InputError(f"device: the GPU sums hills of at most {top} CVs, these have {dim}; use the CPU")
        return backends.Device("cuda", dev.ids[:1])
    return dev


def add_hills(total: HillSum, hills: Hills, grid: HillsGrid, heights: np.ndarray, extent: np.ndarray,
              kernel: str, device: backends.Device | None = None, part: slice = slice(None)) -> None:
    """Add hills[part] (with these heights) to `total`, in order, on `device` (default: the CPU)."""
    h_a, h_b, use_cut = _coefficients(heights[part], kernel)
    centers = np.ascontiguousarray(hills.centers[part], dtype=np.float64)
    if len(centers) == 0:
        return
    shape = hills.metrics[part] if hills.multivariate else hills.widths[part]
    shape = np.ascontiguousarray(shape, dtype=np.float64).reshape(len(centers), -1)
    nneigh = np.ascontiguousarray(_neighbours(extent[part], grid, kernel, centers))
    if device is not None and device.kind == "cuda":
        backends.gpu_module().add_hills(total.values, total.der, np.asarray(grid.nbin, dtype=np.int64), grid.gmin,
                                        grid.dx, grid.period, centers, shape.ravel(), np.ascontiguousarray(h_a),
                                        np.ascontiguousarray(h_b), nneigh, CUT, use_cut, hills.multivariate,
                                        device.ids[0])
        return
    # hills are added to every grid point in hill order, so runs of hills give the sum of one call exactly
    for run in work_slices(_box_work(nneigh, grid)):
        backends.hills_module().add_hills(total.values, total.der, grid.nbin, grid.gmin, grid.dx, grid.period, centers[run],
                         np.ascontiguousarray(shape[run]).ravel(), np.ascontiguousarray(h_a[run]),
                         np.ascontiguousarray(h_b[run]), np.ascontiguousarray(nneigh[run]), CUT, use_cut,
                         hills.multivariate, device.threads if device is not None else 0)


def empty_sum(grid: HillsGrid, derivatives: bool = True) -> HillSum:
    return HillSum(np.zeros(grid.size), np.zeros((len(grid.nbin), grid.size)) if derivatives else None)


def dump_parts(n: int, stride: int | None) -> list[slice]:
    """The hills each output covers, as PLUMED's FilesHandler::readBunch reads them: one part without a stride,
    else floor(n/stride) + 1 parts of `stride` hills (the last one the rest, possibly none)."""
    if not stride:
        return [slice(0, n)]
    if stride < 1:
        raise InputError(f"--stride: must be >= 1, got {stride}")
    if stride > n:
        raise InputError(f"--stride {stride}: larger than the number of hills/points ({n})")
    return [slice(min(k * stride, n), min((k + 1) * stride, n)) for k in range(n // stride + 1)]


def running_sums(hills: Hills, grid: HillsGrid, heights: np.ndarray, kernel: str, stride: int | None,
                 nohistory: bool, device: backends.Device | None = None, derivatives: bool = True,
                 extent: np.ndarray | None = None) -> Iterator[HillSum]:
    """One HillSum per output: cumulative over the parts, or each part alone (--nohistory)."""
    extent = support(hills) if extent is None else extent
    total = empty_sum(grid, derivatives)
    for part in dump_parts(len(hills), stride):
        if nohistory:
            total = empty_sum(grid, derivatives)
        add_hills(total, hills, grid, heights, extent, kernel, device, part)
        yield HillSum(total.values.copy(), None if total.der is None else total.der.copy())


def negbias_heights(hills: Hills) -> np.ndarray:
    """Heights scaled by (biasf - 1)/biasf: the bias of a well-tempered run instead of -F."""
    bad = ~(hills.biasf > 1)
    if bad.any():
        j = int(np.argmax(bad))
        raise InputError(f"--negbias: needs well-tempered hills (biasf > 1); hill {j + 1} has biasf "
                         f"{hills.biasf[j]:g}" + (" (no biasf column)" if (hills.biasf == 1).all() else ""))
    return hills.heights * ((hills.biasf - 1.0) / hills.biasf)


# ----------------------------------------------------------------------------------------------- outputs
def project(values: np.ndarray, grid: HillsGrid, keep: Sequence[str], kt: float) -> tuple[np.ndarray, HillsGrid]:
    """Grid::project with BiasWeight: -kT ln sum over the other CVs of exp(V/kT), on the grid of `keep` (in
    that order). Returns the flat values (first kept CV fastest) and the small grid."""
    dims = [grid.names.index(k) for k in keep]
    beta = 1.0 / kt
    invbeta = 1.0 / beta
    cube = values.reshape(tuple(reversed(grid.nbin)))  # C order: axis a is CV D-1-a
    bv = beta * cube
    other = tuple(len(grid.nbin) - 1 - d for d in range(len(grid.nbin)) if d not in dims)
    if other:
        top = bv.max(axis=other, keepdims=True)
        with np.errstate(divide="ignore"):
            small = -invbeta * (np.log(np.exp(bv - top).sum(axis=other)) + np.squeeze(top, axis=other))
    else:
        small = -invbeta * bv
    # the axes left are the kept CVs by decreasing position; put them as `keep`, its first CV fastest
    left = sorted(dims, reverse=True)
    small = np.transpose(small, [left.index(d) for d in reversed(dims)])
    sub = HillsGrid([grid.names[d] for d in dims], [grid.mins[d] for d in dims], [grid.maxs[d] for d in dims],
                    grid.gmin[dims], grid.dx[dims], [grid.nbin[d] for d in dims], grid.period[dims])
    return np.ascontiguousarray(small).ravel(), sub


@dataclass
class GridFile:
    """One file sum_hills writes: its grid, the value column and derivative columns (flat, PLUMED order)."""

    grid: HillsGrid
    value_name: str
    values: np.ndarray
    der: list[np.ndarray]

    def text(self, fmt: str = hills_io.PLUMED_FMT) -> str:
        der_names = [f"der_{n}" for n in self.grid.names] if self.der else []
        return hills_io.grid_text(self.grid.header(), self.grid.coords(), [self.values] + self.der,
                                  self.value_name, der_names, fmt)


def free_energy_file(s: HillSum, grid: HillsGrid, mintozero: bool, proj: Sequence[str] | None,
                     kt: float | None) -> GridFile:
    """F = -V with its derivatives, or with `proj` the projection of V onto those CVs (no derivatives)."""
    if proj:
        small, sub = project(s.values, grid, proj, kt)
        if mintozero:
            small = small - small.min()
        return GridFile(sub, "projection", small, [])
    values = np.negative(s.values)
    if mintozero:
        values = values - values.min()
    return GridFile(grid, "file.free", values, [] if s.der is None else list(np.negative(s.der)))


def histogram_file(s: HillSum, grid: HillsGrid, mintozero: bool, kt: float) -> GridFile:
    """--histo: -kT ln(sum of kernels); the derivative columns are what PLUMED writes there (-kT / dsum/dx)."""
    scale = -1.0 / (1.0 / kt)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.log(s.values) * scale
        der = [(1.0 / d) * scale for d in s.der]
    if mintozero and np.isfinite(values).any():  # no kernel reaches the grid: +inf stays (inf - inf is NaN)
        values = values - values[np.isfinite(values)].min()
    return GridFile(grid, "file.free", values, der)


# ----------------------------------------------------------------------------------------------- runs
@dataclass
class SumHillsRun:
    """Everything one sum_hills run needs, validated: the hills (or histogram points) and how to grid them."""

    hills: Hills
    grid: HillsGrid
    heights: np.ndarray
    kernel: str
    stride: int | None = None
    nohistory: bool = False
    mintozero: bool = False
    proj: list[str] | None = None
    kt: float | None = None
    histogram: bool = False
    device: backends.Device | None = None   # None: the CPU, OpenMP's thread count
    derivatives: bool = True    # the files' der_ columns; the API and projections need none
    extent: np.ndarray | None = None         # support(hills), when already computed

    def files(self) -> Iterator[GridFile]:
        der = self.derivatives and (self.histogram or not self.proj)
        for s in running_sums(self.hills, self.grid, self.heights, self.kernel, self.stride, self.nohistory,
                              self.device, der, self.extent):
            if self.histogram:
                yield histogram_file(s, self.grid, self.mintozero, self.kt)
            else:
                yield free_energy_file(s, self.grid, self.mintozero, self.proj, self.kt)


def check_kt(kt: Any, why: str) -> float:
    if kt is None:
        raise InputError(f"--kt: the temperature in energy units is {why}")
    try:
        value = float(kt) if not isinstance(kt, str) else _number(kt, "--kt")
    except (TypeError, ValueError):
        raise InputError(f"--kt: not a number: {kt!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise InputError(f"--kt: must be > 0 ({why}), got {kt!r}")
    return value


def check_idw(idw: Sequence[str] | None, names: list[str]) -> list[str] | None:
    if idw is None:
        return None
    if isinstance(idw, str) or not all(isinstance(n, str) for n in idw):
        raise InputError(f"idw: expected a list of CV names, got {idw!r}")
    if not idw:
        raise InputError(f"--idw: names no CV; give some of {', '.join(names)}")
    for name in idw:
        if name not in names:
            raise InputError(f"--idw {name}: not one of the CVs ({', '.join(names)})")
    if len(set(idw)) != len(idw):
        raise InputError(f"--idw {','.join(idw)}: a CV is named twice")
    return list(idw)


def hills_run(hills: Hills, *, gmin: Sequence[str] | None = None, gmax: Sequence[str] | None = None,
              bins: Sequence[str] | None = None, spacing: Sequence[str] | None = None,
              kernel: str = "stretched", negbias: bool = False, idw: Sequence[str] | None = None,
              kt: Any = None, stride: int | None = None, nohistory: bool = False, mintozero: bool = False,
              threads: int | None = None, project_all: bool = False, device: Any = "cpu") -> SumHillsRun:
    """Validate a hills sum (sum_hills --hills) before any work."""
    if kernel not in KERNELS:
        raise InputError(f"kernel: unknown kernel {kernel!r}; use one of {', '.join(KERNELS)}")
    if kernel == "stretched" and hills.kernel in ("gaussian", "truncated-gaussian"):
        kernel = "gaussian"  # the file says so: PLUMED then evaluates a plain Gaussian on the same box
    proj = check_idw(idw, hills.names)
    if proj is not None and len(proj) == hills.dim:
        raise InputError(f"--idw {','.join(proj)}: names every CV; leave it out to keep them all")
    if project_all:
        proj = list(hills.names)
    kt_value = check_kt(kt, "needed by --idw" if proj else "the temperature --idw uses") \
        if proj or kt is not None else None
    heights = negbias_heights(hills) if negbias else hills.heights
    dump_parts(len(hills), stride)
    extent = support(hills)
    grid = plan_grid(hills.names, hills.domains, hills.centers, extent, gmin, gmax, bins, spacing)
    check_boxes(hills, grid, extent, kernel)
    return SumHillsRun(hills, grid, heights, kernel, stride, nohistory, mintozero, proj, kt_value, False,
                       hills_device(device, threads, hills.dim), extent=extent)


def histogram_run(points: Points, sigma: Sequence[str], kt: Any, *, gmin: Sequence[str] | None = None,
                  gmax: Sequence[str] | None = None, bins: Sequence[str] | None = None,
                  spacing: Sequence[str] | None = None, stride: int | None = None, nohistory: bool = False,
                  mintozero: bool = False, threads: int | None = None,
                  grid: HillsGrid | None = None, device: Any = "cpu") -> SumHillsRun:
    """Validate a kernel histogram of COLVAR points (sum_hills --histo): height-1 stretched Gaussians of width
    --sigma, F = -kT ln(sum); the default bounds are the extreme points -/+ one sigma."""
    dim = len(points.names)
    if sigma is None or len(sigma) != dim:
        raise InputError(f"--sigma: --histo needs one bandwidth per histogrammed CV ({dim}: "
                         f"{', '.join(points.names)}), got {0 if sigma is None else len(sigma)}")
    sig = np.array([_number(s, "--sigma") for s in sigma])
    if not (sig > 0).all():
        raise InputError(f"--sigma: every bandwidth must be > 0, got {','.join(sigma)}")
    if not ((sig >= hills_io.MIN_WIDTH) & (sig <= hills_io.MAX_WIDTH)).all():
        raise InputError(f"--sigma {','.join(sigma)}: every bandwidth must lie within "
                         f"[{hills_io.MIN_WIDTH:g}, {hills_io.MAX_WIDTH:g}]")
    kt_value = check_kt(kt, "needed by --histo")
    n = len(points.positions)
    hills = Hills(list(points.names), points.positions, np.tile(sig, (n, 1)), None, np.ones(n), np.ones(n),
                  list(points.domains))
    dump_parts(n, stride)
    if grid is None:
        grid = plan_grid(points.names, points.domains, points.positions, np.tile(sig, (n, 1)), gmin, gmax, bins,
                         spacing)
    check_boxes(hills, grid, np.tile(sig * math.sqrt(2.0 * CUT), (n, 1)), "stretched")
    return SumHillsRun(hills, grid, hills.heights, "stretched", stride, nohistory, mintozero, None, kt_value,
                       True, hills_device(device, threads, dim))


# ----------------------------------------------------------------------------------------------- API
def _strings(values: Any, what: str) -> list[str] | None:
    if values is None:
        return None
    items = [values] if np.ndim(values) == 0 else list(np.ravel(np.asarray(values, dtype=object)))
    out = []
    for v in items:
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise InputError(f"{what}: expected numbers (or number strings), got {v!r}")
        elif isinstance(v, (int, np.integer)):
            out.append(str(int(v)))
        else:
            out.append(repr(float(v)))
    return out


def _real_array(value: Any, name: str) -> np.ndarray:
    """A float64 array; complex values are refused, not cut to their real part."""
    raw = inputs._array(value, name)
    if np.iscomplexobj(raw):
        raise InputError(f"{name}: complex values are not accepted")
    return inputs._array(raw, name, np.float64)


def _per_hill(value: Any, n: int, dim: int, name: str) -> np.ndarray:
    """`value` per CV (D,), per hill (N, D) or one number, as an (N, D) array."""
    arr = _real_array(value, name)
    if arr.ndim == 0 or arr.shape in ((dim,), (1, dim), (n, dim)) or (dim == 1 and arr.shape == (n,)):
        return np.broadcast_to(arr.reshape(-1, dim) if arr.ndim else arr, (n, dim)).copy()
    raise InputError(f"{name}: expected one value, {dim} (one per CV) or an ({n}, {dim}) array, got shape "
                     f"{arr.shape}")


def _per_row(value: Any, n: int, name: str) -> np.ndarray:
    arr = _real_array(value, name)
    if arr.ndim > 1 or (arr.ndim == 1 and len(arr) not in (1, n)):
        raise InputError(f"{name}: expected one value or {n} (one per hill), got shape {arr.shape}")
    return np.broadcast_to(arr, (n,)).copy()


def _domain(entry: Any, d: int) -> tuple[str, str] | None:
    """periodic[d]: None, or the domain (min, max) of CV d; a bare period is refused (a hill sum's periodic
    grid spans the domain, so where it starts matters)."""
    if entry is None:
        return None
    if np.ndim(entry) == 0:
        raise InputError(f"periodic[{d}]: cyfes.hills needs the domain (min, max) of a periodic CV, got {entry!r} "
                         "(e.g. (-3.141592653589793, 3.141592653589793))")
    bounds = _strings(entry, f"periodic[{d}]")
    if len(bounds) != 2:
        raise InputError(f"periodic[{d}]: expected (min, max), got {entry!r}")
    lo, hi = (_number(b, f"periodic[{d}]") for b in bounds)
    if not hi > lo or not math.isfinite(hi - lo):
        raise InputError(f"periodic[{d}]: needs finite min < max, got {entry!r}")
    return bounds[0], bounds[1]


def _hills_from_arrays(centers: Any, sigma: Any, height: Any, biasf: Any, names: Sequence[str] | None,
                       periodic: Any) -> Hills:
    c = _real_array(centers, "hills")
    c = c[:, None] if c.ndim == 1 else c
    if c.ndim != 2 or c.size == 0:
        raise InputError(f"hills: expected an (N, D) array of hill centres, got shape {c.shape}")
    n, dim = c.shape
    if sigma is None or height is None:
        raise InputError("hills: with arrays of centres, give sigma (per CV or per hill) and height (per hill)")
    s, h = _per_hill(sigma, n, dim, "sigma"), _per_row(height, n, "height")
    b = np.ones(n) if biasf is None else _per_row(biasf, n, "biasf")
    doms = [None] * dim if periodic is None else periodic
    if not isinstance(doms, (list, tuple)) or len(doms) != dim:
        raise InputError(f"periodic: expected {dim} entries ((min, max) or None per CV), got {periodic!r}")
    domains = [_domain(p, d) for d, p in enumerate(doms)]
    if names is not None and (isinstance(names, str) or len(names) != dim
                              or not all(isinstance(x, str) and x for x in names)):
        raise InputError(f"names: expected {dim} CV names (strings), got {names!r}")
    if names is not None and len(set(names)) != dim:
        raise InputError(f"names: a CV is named twice in {list(names)!r}")
    hills = Hills(list(names) if names else [f"cv{d + 1}" for d in range(dim)], c, s, None, h, b, domains)
    hills_io.check_hill_values(hills, "hills")
    return hills


def to_result(f: GridFile, n_hills: int, kt: float | None, backend: str) -> Any:
    """A GridFile as the FESResult cyfes.fes returns (values in matrix indexing, CV 0 first)."""

    grid = f.grid
    values = f.values.reshape(tuple(reversed(grid.nbin))).T
    return FESResult(values=np.ascontiguousarray(values), axes=grid.axes(), grid=None, error=None,
                     kT=float(kt) if kt else float("nan"), units="energy units of the input",
                     temperature=float("nan"), backend=backend, precision="float64",
                     sigma=np.full(len(grid.nbin), np.nan),
                     periodic=[float(p) if p > 0 else None for p in grid.period], n_samples=n_hills,
                     names=list(grid.names))


def hills(source: Any, *, sigma: Any = None, height: Any = None, biasf: Any = None,
          names: Sequence[str] | None = None, periodic: Any = None, grid_min: Any = None, grid_max: Any = None,
          bins: Any = None, spacing: Any = None, kernel: str = "stretched", negbias: bool = False,
          idw: Sequence[str] | None = None, kt: float | None = None, stride: int | None = None,
          nohistory: bool = False, mintozero: bool = False, threads: int | None = None,
          device: Any = "auto") -> Any:
    """The free energy -V of metadynamics hills, as `plumed sum_hills` computes it.

    Each hill adds ``h (A exp(-s) + B)`` with ``s = 1/2 sum_d ((x_d - c_d) / sigma_d)^2``, cut at s = 6.25 and
    shifted so it reaches 0 there (PLUMED's stretched Gaussian), on the box of grid points around its centre.

    Parameters
    ----------
    source : str, path, list of them, or array_like
        A HILLS file, a list of them (walkers, read one after the other), or an (N, D) array of hill centres.
    sigma : float or array_like, optional
        With an array `source`: the widths, per CV or (N, D).
    height : float or array_like, optional
        With an array `source`: the heights (N,), as written in HILLS files (already well-tempered).
    biasf : float or array_like, optional
        With an array `source`: the bias factor, per hill (for `negbias`).
    names : sequence of str, optional
        With an array `source`: the CV names.
    periodic : sequence of (float, float) or None, optional
        With an array `source`: per CV its (min, max) domain, or None.
    grid_min, grid_max : float or sequence of float, optional
        The grid's ends per CV. Default: the extreme centres -/+ sqrt(12.5) sigma.
    bins : int or sequence of int, optional
        Bins per CV: N bins are N + 1 points (N on a periodic CV). Default: a tenth of the narrowest support.
    spacing : float or sequence of float, optional
        Grid spacing per CV (needs `grid_min` and `grid_max`); the finer of it and `bins` wins.
    kernel : {"stretched", "untruncated"}, default "stretched"
        PLUMED's kernel, or plain Gaussians over the whole grid.
    negbias : bool, default False
        Return the bias ``V (biasf - 1) / biasf`` instead of F (needs biasf > 1).
    idw : sequence of str, optional
        CVs to keep, in this order; the others are integrated out at temperature `kt`.
    kt : float, optional
        kT in the hills' energy unit, for `idw`.
    stride : int, optional
        Return a list of running surfaces, one after every `stride` hills.
    nohistory : bool, default False
        With `stride`: each surface from its own hills only.
    mintozero : bool, default False
        Shift the minimum to 0.
    threads : int, optional
        CPU threads (default: all CPUs).
    device : str, default "auto"
        As `cyfes.fes`: ``"auto"`` (the GPU when usable), ``"cpu"``, ``"gpu"``, ``"cuda:N"``; the GPU and CPU
        kernels sum the same hills on the same boxes (GPU: up to 4 CVs).

    Returns
    -------
    FESResult or list of FESResult
        The surface on the grid (a list of them with `stride`), without derivatives.

    Raises
    ------
    InputError
        A HILLS file without sigma or height columns, files with different CVs or periodicity, an unknown CV in
        `idw`, a `stride` larger than the number of hills, `negbias` without biasf > 1, a grid end outside a
        periodic domain, or a bad value of any argument.
    BackendError
        The GPU was asked for and is not usable.

    Examples
    --------
    One hill of height 1 at 0: F is -1 at its centre and ``-(exp(-s) - exp(-6.25)) / (1 - exp(-6.25))`` at
    ``s = 1/2`` (one sigma away).

    >>> import math
    >>> import numpy as np
    >>> import cyfes
    >>> res = cyfes.hills(np.zeros((1, 1)), sigma=1.0, height=1.0, grid_min=-2, grid_max=2, bins=4, device="cpu")
    >>> res.axes[0]
    array([-2., -1.,  0.,  1.,  2.])
    >>> res.values.round(5)
    array([-0.13366, -0.60577, -1.     , -0.60577, -0.13366])
    >>> round(-(math.exp(-0.5) - math.exp(-6.25)) / (1 - math.exp(-6.25)), 5)
    -0.60577
    """
    if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
        data = hills_io.read_hills([str(source)])
    elif isinstance(source, (list, tuple)) and source and all(isinstance(s, str) or hasattr(s, "__fspath__")
                                                              for s in source):
        data = hills_io.read_hills([str(s) for s in source])
    else:
        data = _hills_from_arrays(source, sigma, height, biasf, names, periodic)
    run = hills_run(data, gmin=_strings(grid_min, "grid_min"), gmax=_strings(grid_max, "grid_max"),
                    bins=_strings(bins, "bins"), spacing=_strings(spacing, "spacing"), kernel=kernel,
                    negbias=negbias, idw=idw, kt=kt, stride=stride, nohistory=nohistory, mintozero=mintozero,
                    threads=threads, device=device)
    run = replace(run, derivatives=False)  # an FESResult has no derivative columns
    results = [to_result(f, len(data), run.kt, run.device.describe()) for f in run.files()]
    return results if stride else results[0]
