"""Metadynamics reweighting from HILLS files, for runs whose COLVAR has no rbias column.

Two biases per sample j (CVs s_j, time t_j), both in the energy unit of the hills:

- ``final``: V(s_j), the sum of every hill at s_j (the quasi-static regime, late in a well-tempered run).
- ``ct``: V(s_j, t_j) - c(t_j) (Tiwary and Parrinello, J. Phys. Chem. B 119, 736 (2015)), where V(s, t) sums the
  hills deposited strictly before t and

      c(t) = kT ln( sum_g exp(gamma/(gamma-1) V(g,t)/kT) / sum_g exp(V(g,t)/((gamma-1) kT)) )

  over the points g of a grid, as PLUMED's METAD CALC_RCT computes it (MetaD::computeReweightingFactor);
  without well-tempering (biasfactor <= 1) c(t) = kT ln( mean_g exp(V(g,t)/kT) ). Both sums are taken as
  log-sum-exps, so a bias of thousands of kT does not overflow.

PLUMED conventions followed (read in plumed/plumed2 src/bias/MetaD.cpp): a HILLS file holds a well-tempered
hill's height times gamma/(gamma-1) (so that sum_hills prints -F), and the bias is height (gamma-1)/gamma; the
kernel is the stretched Gaussian of cyfes.hills (cut at s = 6.25); periodic CVs use the minimum image; the
bias and rbias PLUMED prints at step t exclude the hill deposited at t. Several HILLS files (walkers,
restarts) are merged by time.

The bias at the samples is an exact sum of the hills at each sample's CVs (the compiled kernel of
engine/kernels/shared/hills_points.h, on the CPU with OpenMP or on the GPU), never an interpolation; only c(t), an
integral by definition, is computed on a grid, with the hills kernel of cyfes.hills (on the same device).
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import InputError
from ..engine import backends
from ..engine.stats import logsumexp
from ..io import formats
from ..io import hills as hills_io
from ..io.hills import Hills
from . import sum_hills as hillsum
from .metad_flags import MODES

#: Hills added to c(t)'s grid at once from which the GPU (when chosen) adds them instead of the CPU.
GPU_BLOCK_HILLS = 4096


@dataclass(frozen=True)
class MetadBias:
    """Per sample: v the metadynamics bias V(s_j, t_j) (ct) or V(s_j) (final); c the c(t_j) subtracted (zeros
    for final); bias = v - c, the bias to reweight with exp(bias/kT)."""

    v: np.ndarray
    c: np.ndarray
    bias: np.ndarray


@dataclass(frozen=True)
class TimedHills:
    """Hills sorted by deposition time (stable: a file's order is kept among equal times)."""

    hills: Hills
    times: np.ndarray
    gamma: float


# ----------------------------------------------------------------------------------------------- kernel at points
def _periods(hills: Hills) -> np.ndarray:
    return np.array([0.0 if d is None else float(formats.parse_number(d[1], "max")) -
                     float(formats.parse_number(d[0], "min")) for d in hills.domains])


def bias_at_points(points: np.ndarray, hills: Hills, heights: np.ndarray, counts: np.ndarray | None = None,
                   stretched: bool = True, device: backends.Device | None = None) -> np.ndarray:
    """V at each point: the sum of hills[:counts[j]] at points[j] (every hill when counts is None), exactly (no
    grid), by the compiled kernel of engine/kernels/shared/hills_points.h on `device` (default: the CPU).

    Points are visited in order of count, so the threads of a GPU block (or an OpenMP chunk) stop together."""
    n, m = len(points), len(hills)
    if hills.dim > backends.hills_module().POINTS_MAX_DIM:
        raise InputError(f"hills: the bias at the samples takes at most {backends.hills_module().POINTS_MAX_DIM} "
                         f"CVs, these have {hills.dim}")
    counts = np.full(n, m, dtype=np.int64) if counts is None else np.asarray(counts, dtype=np.int64)
    order = np.argsort(counts, kind="stable")
    shape = hills.metrics.reshape(m, -1) if hills.multivariate else 1.0 / hills.widths
    a, b = (hillsum.STRETCH_A, hillsum.STRETCH_B) if stretched else (1.0, 0.0)
    f64 = lambda x: np.ascontiguousarray(x, dtype=np.float64)  # noqa: E731
    args = (f64(points[order]), np.ascontiguousarray(counts[order]), f64(hills.centers), f64(shape), f64(heights),
            _periods(hills), hillsum.CUT, a, b, hills.multivariate)
    out = np.empty(n)
    if device is not None and device.kind == "cuda":
        backends.gpu_module().hills_at_points(*args, out, device.ids[0])
    else:
        backends.hills_module().hills_at_points(*args, out, device.threads if device is not None else 0)
    result = np.empty(n)
    result[order] = out
    return result


# ----------------------------------------------------------------------------------------------- c(t)
def rct_of(values: np.ndarray, kt: float, gamma: float) -> float:
    """c for a bias `values` on grid points, in log space (PLUMED's computeReweightingFactor)."""
    if gamma > 1:
        return kt * (logsumexp(values * (gamma / (gamma - 1.0) / kt)) - logsumexp(values / ((gamma - 1.0) * kt)))
    return kt * (logsumexp(values / kt) - math.log(len(values)))


def rct_grid(hills: Hills, gmin: Sequence[str] | None = None, gmax: Sequence[str] | None = None,
             bins: Sequence[str] | None = None) -> hillsum.HillsGrid:
    """The grid c(t) is integrated on: sum_hills' grid rules (a periodic CV spans its domain; by default the
    extreme centres -/+ the hills' support with a tenth of the narrowest support per bin)."""
    return hillsum.plan_grid(hills.names, hills.domains, hills.centers, hillsum.support(hills), gmin, gmax, bins,
                             None)


def rct_at_counts(hills: Hills, heights: np.ndarray, counts: np.ndarray, kt: float, gamma: float,
                  grid: hillsum.HillsGrid, kernel: str = "stretched", device: backends.Device | None = None
                  ) -> np.ndarray:
    """c after the first k hills, for each k in counts; the grid bias grows hill block by hill block, each
    block on `device` when it is large enough to pay for a GPU call (a few hills cost less on the CPU than the
    GPU's transfers and allocations)."""
    wanted = np.unique(counts)
    total = hillsum.empty_sum(grid, derivatives=False)
    extent, done, found = hillsum.support(hills), 0, {}
    for k in wanted:
        where = device if int(k) - done >= GPU_BLOCK_HILLS else None
        hillsum.add_hills(total, hills, grid, heights, extent, kernel, where, part=slice(done, int(k)))
        done = int(k)
        found[int(k)] = rct_of(total.values, kt, gamma) if k > 0 else 0.0
    return np.array([found[int(k)] for k in counts])


# ----------------------------------------------------------------------------------------------- one problem
def _gamma(hills: Hills, biasfactor: float | None, source: str) -> float:
    written = np.unique(hills.biasf)
    if len(written) > 1:
        raise InputError(f"{source}: hills with different biasf values ({', '.join(f'{g:g}' for g in written)})")
    in_file = float(written[0])
    if biasfactor is None:
        return in_file
    if not (biasfactor > 1 or biasfactor == -1):
        raise InputError(f"--biasfactor: must be > 1 (or -1: not well-tempered), got {biasfactor:g}")
    if in_file != 1 and in_file != biasfactor:
        raise InputError(f"--biasfactor {biasfactor:g}: differs from the biasf column of {source} ({in_file:g})")
    return float(biasfactor)


def bias_heights(hills: Hills, gamma: float) -> np.ndarray:
    """The deposited heights: a HILLS file holds height gamma/(gamma-1) for a well-tempered run (MetaD.cpp)."""
    return hills.heights * ((gamma - 1.0) / gamma) if gamma > 1 else hills.heights.astype(np.float64)


def sort_by_time(hills: Hills, times: np.ndarray, gamma: float) -> TimedHills:
    order = np.argsort(times, kind="stable")
    pick = lambda a: None if a is None else a[order]  # noqa: E731
    sorted_hills = Hills(hills.names, hills.centers[order], pick(hills.widths), pick(hills.metrics),
                         hills.heights[order], hills.biasf[order], hills.domains, hills.kernel, hills.sources)
    return TimedHills(sorted_hills, times[order], gamma)


def check_times(finite: bool, hill_times: np.ndarray, where: str, last: float) -> None:
    """The samples' times (`finite`: all of them are) and the hills' belong together: no hill after `last`, the
    time of the run's last row."""
    if not (finite and np.isfinite(hill_times).all()):
        raise InputError(f"{where}: a time is not finite")
    if len(hill_times) and hill_times.max() > last:
        raise InputError(f"{where}: a hill at time {hill_times.max():g} is later than the last sample "
                         f"({last:g}); the HILLS file does not belong to these samples")


def compute(points: np.ndarray, times: np.ndarray, timed: TimedHills, kt: float, mode: str,
            grid: hillsum.HillsGrid | None = None, where: str = "hills", last: float | None = None,
            device: backends.Device | None = None) -> MetadBias:
    """The reweighting bias of each sample (points (N, D) in the hills' CV order, times (N,)); last: the time
    of the run's last row, when samples were dropped (default: the last of `times`); device: where the hills
    are summed (sum_hills.hills_device; default the CPU)."""
    if mode not in MODES:
        raise InputError(f"--reweight {mode}: use one of {', '.join(MODES)}")
    check_times(bool(np.isfinite(times).all()), timed.times, where, float(times.max()) if last is None else last)
    counts = None if mode == "final" else hills_before(timed, times)
    prepared = prepare(timed, kt, mode, grid, None if counts is None else np.unique(counts), device)
    v = prepared.v_at(points, counts)
    c = np.zeros_like(v) if counts is None else prepared.c_after[counts]
    return MetadBias(v, c, v - c)


def hills_before(timed: TimedHills, times: np.ndarray) -> np.ndarray:
    """How many hills were deposited strictly before each time (PLUMED's bias at step t excludes t's hill)."""
    return np.searchsorted(timed.times, times, side="left")


@dataclass(frozen=True)
class HillsBias:
    """The bias of the hills at samples, ready for any subset of them (compute: all at once; cyfes fes --stream:
    chunk by chunk): the hills, their deposited heights, and c after k hills for every k a sample needs (ct;
    NaN for the others; None for final)."""

    timed: TimedHills
    heights: np.ndarray
    c_after: np.ndarray | None
    device: backends.Device | None

    def v_at(self, points: np.ndarray, counts: np.ndarray | None) -> np.ndarray:
        return bias_at_points(points, self.timed.hills, self.heights, counts,
                              self.timed.hills.kernel == "stretched-gaussian", self.device)

    def at(self, points: np.ndarray, times: np.ndarray) -> np.ndarray:
        """The reweighting bias (v - c) of samples at `points` (the hills' CV order) and `times`."""
        if self.c_after is None:
            return self.v_at(points, None)
        counts = hills_before(self.timed, times)
        return self.v_at(points, counts) - self.c_after[counts]


def prepare(timed: TimedHills, kt: float, mode: str, grid: hillsum.HillsGrid | None, needed: np.ndarray | None,
            device: backends.Device | None) -> HillsBias:
    """The HillsBias of `mode`; for ct, c after each count of hills in `needed` (sorted, unique), on `grid`
    (default rct_grid's)."""
    heights = bias_heights(timed.hills, timed.gamma)
    if mode == "final":
        return HillsBias(timed, heights, None, device)
    kernel = "stretched" if timed.hills.kernel == "stretched-gaussian" else "gaussian"
    c_after = np.full(len(timed.hills) + 1, np.nan)
    c_after[needed] = rct_at_counts(timed.hills, heights, needed, kt, timed.gamma, grid or rct_grid(timed.hills),
                                    kernel, device)
    return HillsBias(timed, heights, c_after, device)


def metad_weights(points: Any, times: Any, centers: Any, sigma: Any, height: Any, hill_times: Any, *,
                  kt: float, biasfactor: float, mode: str = "ct", periodic: Any = None,
                  grid_min: Any = None, grid_max: Any = None, bins: Any = None, device: Any = "auto",
                  threads: int | None = None) -> MetadBias:
    """The metadynamics reweighting bias of samples, from arrays.

    points (N, D) the samples' CVs and times (N,); centers (M, D), sigma (per CV or (M, D)), height (M,) as a
    PLUMED HILLS file holds them (well-tempered: the deposited height times biasfactor/(biasfactor-1)) and
    hill_times (M,); kt in the hills' energy unit; biasfactor gamma (> 1, or -1 for plain metadynamics);
    mode "ct" (V(s,t) - c(t)) or "final" (V of all hills); periodic: (min, max) or None per CV; grid_min,
    grid_max, bins: the grid of c(t) as for cyfes.hills (default: periodic CVs span their domain, others the
    hills' extent); device and threads as for cyfes.hills. Returns a MetadBias; weight sample j by
    exp(bias[j]/kt)."""
    hills = hillsum._hills_from_arrays(centers, sigma, height, None, None, periodic)
    pts = np.asarray(points, dtype=np.float64)
    pts = pts[:, None] if pts.ndim == 1 else pts
    if pts.ndim != 2 or pts.shape[1] != hills.dim:
        raise InputError(f"points: expected an (N, {hills.dim}) array, got shape {pts.shape}")
    t, ht = np.asarray(times, dtype=np.float64).ravel(), np.asarray(hill_times, dtype=np.float64).ravel()
    if len(t) != len(pts) or len(ht) != len(hills):
        raise InputError("times/hill_times: one time per sample and one per hill")
    if not (biasfactor > 1 or biasfactor == -1):
        raise InputError(f"biasfactor: must be > 1 (or -1: not well-tempered), got {biasfactor}")
    strings = hillsum._strings
    grid = None if mode == "final" else rct_grid(hills, strings(grid_min, "grid_min"),
                                                 strings(grid_max, "grid_max"), strings(bins, "bins"))
    return compute(pts, t, sort_by_time(hills, ht, float(biasfactor)), float(kt), mode, grid,
                   device=hillsum.hills_device(device, threads, hills.dim))


# ----------------------------------------------------------------------------------------------- files
def read_timed_hills(paths: Sequence[str], biasfactor: float | None) -> TimedHills:
    """HILLS files (walkers, restarts) merged by time."""
    tables = [hills_io.read_hills_table(p) for p in paths]
    for t in tables:
        if not t.has("time"):
            raise InputError(f"{t.source}: no 'time' column; reweighting needs each hill's deposition time")
    hills = hills_io.hills_from_tables(tables)
    times = np.concatenate([t.column("time") for t in tables])
    return sort_by_time(hills, times, _gamma(hills, biasfactor, ", ".join(paths)))


def match_cvs(timed: TimedHills, names: Sequence[str], domains: dict, source: str) -> TimedHills:
    """The hills with their CVs in the order of the chosen COLVAR CVs; refuse any mismatch."""
    hills = timed.hills
    if sorted(hills.names) != sorted(names):
        raise InputError(f"{source}: its CVs ({', '.join(hills.names)}) do not match the chosen CVs of the "
                         f"COLVAR ({', '.join(names)}); choose them with --cv")
    for name in names:
        dom = hills.domains[hills.names.index(name)]
        theirs = None if dom is None else tuple(formats.parse_number(x, name) for x in dom)
        ours = domains.get(name)
        if (theirs is None) != (ours is None) or (ours is not None and not np.allclose(theirs, ours)):
            raise InputError(f"{source}: periodicity of {name} ({theirs or 'none'}) differs from the COLVAR's "
                             f"({ours or 'none'})")
    idx = [hills.names.index(n) for n in names]
    pick = lambda a: None if a is None else a[:, idx] if a.ndim == 2 else a[:, idx][:, :, idx]  # noqa: E731
    moved = Hills(list(names), hills.centers[:, idx], pick(hills.widths), pick(hills.metrics), hills.heights,
                  hills.biasf, [hills.domains[i] for i in idx], hills.kernel, hills.sources)
    return TimedHills(moved, timed.times, timed.gamma)


# ----------------------------------------------------------------------------------------------- command line
def _split(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",")]


def _sample_times(args: argparse.Namespace) -> tuple[np.ndarray, float]:
    """The time column of every input, with the rows cyfes fes keeps (--skip, --stride), and the time of the
    last row of any input (dropped rows included)."""
    parts, last = [], -math.inf
    for path in args.inputs:
        table = formats.read_table(path, columns=["time"])  # only the time column converted
        if "time" not in table.names:
            raise InputError(f"{path}: no 'time' column; --hills needs each sample's time")
        column = table.data[:, table.names.index("time")]
        parts.append(column[args.skip::args.stride])
        last = max(last, float(column.max()))
    return np.concatenate(parts), last


def grid_of(args: argparse.Namespace, timed: TimedHills) -> hillsum.HillsGrid | None:
    """The grid of c(t) as --rct-min, --rct-max and --rct-bin ask (None for --reweight final: no c(t))."""
    if (args.reweight or "ct") == "final":
        return None
    return rct_grid(timed.hills, _split(args.rct_min), _split(args.rct_max), _split(args.rct_bin))


def reweight_samples(args: argparse.Namespace, samples: Any, kt: float) -> tuple[Any, MetadBias]:
    """samples with the metadynamics bias of --hills added to any --bias columns (walls)."""
    where = " ".join(args.hills)
    timed = match_cvs(read_timed_hills(args.hills, args.biasfactor), samples.names, samples.domains, where)
    mode = args.reweight or "ct"
    grid = grid_of(args, timed)
    times, last = _sample_times(args)
    device = hillsum.hills_device(getattr(args, "device", "cpu"), getattr(args, "threads", None), timed.hills.dim)
    got = compute(samples.values, times, timed, kt, mode, grid, where, last, device)
    samples.bias = got.bias if samples.bias is None else samples.bias + got.bias
    return samples, got
