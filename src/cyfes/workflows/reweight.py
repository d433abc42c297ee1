"""The free energy surface by reweighting, as the OPES post-processing script FES_from_Reweighting.py computes it.

    F(x) = -kT ln sum_j exp(V_j/kT - 1/2 sum_d ((x_d - s_jd)/sigma_d)^2)            (then shifted, min F = 0)

with V the summed bias columns; the kernel is not normalised and, without --nomintozero or blocks, not divided by
sum_j exp(V_j/kT) (the shift removes both). Running estimates (--stride) use every sample from the first kept one
up to the end of each stride; blocks (--blocks) are the same windows without history, combined with the weights
w_b = sum_{j in b} exp(V_j/kT) (effective number N_eff = (sum w_b)^2 / sum w_b^2), F = -kT ln(sum_b w_b e^{-F_b/kT}
/ sum_b w_b) and the uncertainty kT sqrt( sum_b w_b expm1(-(F_b - F)/kT)^2 / sum_b w_b / (N_eff - 1) ).
The kernel sums run through cyfes.fes (GPU or CPU). Any number of CVs; the script's grid, header lines and
number format are reproduced.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _units
from .._errors import InputError
from ..engine import inputs as _inputs
from ..engine.fes import fes
from ..engine.stats import kish
from ..io import formats
from .opes_defaults import DEFAULT_FMT
from .opes_defaults import REWEIGHT_OUTFILE as DEFAULT_OUTFILE

#: bias/kT beyond which the largest is subtracted from all before summing (below it the script's own numbers
#: are reproduced to the last digit).
LOGW_SHIFT_ABOVE = 1e6
# Sums of exp are np.logaddexp.reduce, as in the script, so that its numbers come out to the last digit.


# ----------------------------------------------------------------------------------------------- inputs
@dataclass
class Colvar:
    """What the script takes from a COLVAR: CV names and values, the summed bias in kT, periodic domains."""

    names: list[str]
    cvs: np.ndarray                 # (N, D)
    logw: np.ndarray                # bias / kT
    bias_names: list[str]
    domains: list[tuple[float, float] | None]


def _column(table: formats.Table, key: str, option: str) -> int:
    """A column by name, or by the script's 1-based number (1 is the first field, usually time)."""
    try:
        number = int(key)
    except ValueError:
        if key not in table.names:
            raise InputError(f"{option} {key}: no such column in {table.source}; fields: {' '.join(table.names)}") from None
        return table.names.index(key)
    if not 1 <= number <= len(table.names):
        raise InputError(f"{option} {key}: column numbers run from 1 to {len(table.names)} in {table.source}")
    return number - 1


def _bias_columns(table: formats.Table, spec: str) -> list[int]:
    if spec in ("NO", "no"):
        return []
    if spec == ".bias":  # the script's default: every column whose name contains .bias or .rbias
        return [i for i, n in enumerate(table.names) if ".bias" in n or ".rbias" in n]
    return [_column(table, key, "--bias") for key in spec.split(",")]


def read_colvar(path: str, cv_spec: str, bias_spec: str, kbt: float, skiprows: int, reverse: bool) -> Colvar:
    table = formats.read_table(path)
    cols = [_column(table, key, "--cv") for key in cv_spec.split(",")]
    names = [table.names[c] for c in cols]
    if len(set(names)) != len(names):
        raise InputError(f"--cv {cv_spec}: a CV is named twice")
    bias_cols = _bias_columns(table, bias_spec)
    if skiprows < 0:
        raise InputError(f"--skiprows: must be >= 0, got {skiprows}")
    data = table.data[skiprows:]
    if len(data) == 0:
        raise InputError(f"{path}: no rows left after --skiprows {skiprows} (the file has {len(table.data)})")
    if reverse:
        data = data[::-1]
    with np.errstate(all="ignore"):
        bias = data[:, bias_cols].sum(axis=1) if bias_cols else np.zeros(len(data))
        logw = bias / kbt
    _check_finite_rows(logw, path, "the summed bias / kT")
    top = float(np.max(logw))
    if abs(top) > LOGW_SHIFT_ABOVE:
        # every output is unchanged by one constant added to all bias/kT (it cancels between the kernel sums
        # and their normalisation), but a bias of 1e300 kT leaves F no digits: remove it first
        logw = logw - top
    _check_finite_rows(data[:, cols], path, "a CV value")
    domains = [table.periodic.get(n) for n in names]
    return Colvar(names, np.ascontiguousarray(data[:, cols]), logw, [table.names[c] for c in bias_cols],
                  domains)


def _check_finite_rows(values: np.ndarray, path: str, what: str) -> None:
    """Refuse NaN/inf (a bias past float64 once divided by kT, too), naming the first row after --skiprows."""
    bad = ~np.isfinite(values).reshape(len(values), -1).all(axis=1)
    if bad.any():
        j = int(np.argmax(bad))
        raise InputError(f"{path}: row {j + 1} of the kept rows: {what} is not finite")


# ----------------------------------------------------------------------------------------------- grid
@dataclass
class RewGrid:
    """Per CV: the grid points (the script's linspace with the periodic end dropped), the bounds written in
    the header and the period (0: not periodic)."""

    names: list[str]
    axes: list[np.ndarray]
    lows: list[float]
    highs: list[float]
    periods: list[float]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a) for a in self.axes)

    def points(self) -> np.ndarray:
        """(M, D) points in matrix order (first CV slowest), the order of values.ravel()."""
        mesh = np.meshgrid(*self.axes, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=1)


def _list(text: str | None, dim: int, option: str, parse: Any) -> list[Any] | None:
    if text is None:
        return None
    parts = text.split(",")
    if len(parts) < dim or (dim > 1 and len(parts) != dim):
        raise InputError(f"{option} {text}: expected {dim} comma-separated values (one per CV)")
    return [parse(p, option) for p in parts[:dim]]


def plan_grid(col: Colvar, gmin: str | None, gmax: str | None, gbin: str | None) -> RewGrid:
    dim = len(col.names)
    lows = _list(gmin, dim, "--min", formats.parse_number)
    highs = _list(gmax, dim, "--max", formats.parse_number)
    bins = _list(gbin, dim, "--bin", formats.parse_positive_int) if gbin is not None else [100] * dim
    points = math.prod(b + 1 for b in bins)
    # the points, a surface per window and the text of its rows: the bound cyfes fes keeps
    _inputs.check_grid_fits(points, dim, "--bin", extra=points * (dim + 3) * 16, advice="use fewer bins")
    axes, lo_out, hi_out, periods = [], [], [], []
    for d in range(dim):
        dom = col.domains[d]
        period = dom[1] - dom[0] if dom else 0.0
        lo = lows[d] if lows else (dom[0] if dom else float(col.cvs[:, d].min()))
        hi = highs[d] if highs else (dom[1] if dom else float(col.cvs[:, d].max()))
        if not hi > lo:
            raise InputError(f"grid of {col.names[d]}: max {hi:g} is not above min {lo:g} (give --min/--max)")
        if not math.isfinite(hi - lo):
            raise InputError(f"grid of {col.names[d]}: {lo:g} to {hi:g} spans more than the largest float64")
        axis = np.linspace(lo, hi, bins[d] + 1)  # +1 as in sum_hills
        if period == axis[-1] - axis[0]:  # the script drops the repeated end of a full period
            axis = axis[:-1]
        axes.append(axis)
        lo_out.append(lo)
        hi_out.append(hi)
        periods.append(period)
    return RewGrid(list(col.names), axes, lo_out, hi_out, periods)


# ----------------------------------------------------------------------------------------------- sums
@dataclass
class KernelSums:
    """Per grid point log sum_j exp(logw_j - d_j^2/2) (`log_density`), and for --der per CV the log of the same
    sum weighted by (s_jd - offset_d) (`log_first`)."""

    log_density: np.ndarray
    log_first: list[np.ndarray] | None = None


class Engine:
    """Unnormalised kernel sums of sample windows, through cyfes.fes (so on the GPU when there is one)."""

    def __init__(self, col: Colvar, grid: RewGrid, sigma: np.ndarray, device: str, threads: int | None,
                 derivatives: bool) -> None:
        self.col, self.grid, self.sigma = col, grid, sigma
        self.device, self.threads, self.derivatives = device, threads, derivatives
        self.points = grid.points()
        self.kt_ref = _units.kT(300.0, "kJ/mol")
        self.norm = float(-np.sum(np.log(sigma * math.sqrt(2 * math.pi))))
        self.offset = col.cvs.min(axis=0) - 1.0  # makes s - offset > 0 for the first-moment sums
        self.backend = ""

    def _log_sum(self, lo: int, hi: int, extra: np.ndarray | None = None) -> np.ndarray:
        logw = self.col.logw[lo:hi]
        res = fes(self.col.cvs[lo:hi], self.sigma, bias=logw * self.kt_ref, weights=extra,
                  temperature=300.0, units="kJ/mol", grid=self.points,
                  periodic=[p if p > 0 else None for p in self.grid.periods], device=self.device,
                  threads=self.threads, shift=False)
        self.backend = res.backend
        lz = np.logaddexp.reduce(logw if extra is None else logw + np.log(extra))
        return -res.values / self.kt_ref - self.norm + lz

    def sums(self, lo: int, hi: int) -> KernelSums:
        ld = self._log_sum(lo, hi)
        first = None
        if self.derivatives:
            first = [self._log_sum(lo, hi, self.col.cvs[lo:hi, d] - self.offset[d]) for d in range(len(self.sigma))]
        return KernelSums(ld, first)


def combine(a: KernelSums | None, b: KernelSums) -> KernelSums:
    """The sums over the union of two disjoint sample sets."""
    if a is None:
        return b
    first = None if a.log_first is None else [np.logaddexp(x, y) for x, y in zip(a.log_first, b.log_first)]
    return KernelSums(np.logaddexp(a.log_density, b.log_density), first)


# ----------------------------------------------------------------------------------------------- estimates
@dataclass
class Estimate:
    """One output file's content: F (unshifted unless stated), optional derivatives or uncertainty, and header
    numbers."""

    fes: np.ndarray
    size: int
    effsize: float
    der: list[np.ndarray] | None = None
    error: np.ndarray | None = None
    blocks_num: int | None = None
    blocks_neff: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


def windows(n: int, blocks: int, stride: int) -> tuple[int, int, list[tuple[int, int]], bool]:
    """The script's windows: (stride, first kept sample, [(lo, hi)], block mode). Samples before
    n % stride are dropped so that the strides fit."""
    block_mode = blocks != 1
    if blocks < 1:
        raise InputError(f"--blocks: must be >= 1, got {blocks}")
    if stride < 0:
        raise InputError(f"--stride: must be >= 0, got {stride}")
    if block_mode:
        if blocks > n:
            raise InputError(f"--blocks {blocks}: more blocks than samples ({n})")
        stride = n // blocks
    if stride > n:
        raise InputError(f"--stride {stride}: larger than the number of samples ({n})")
    if stride == 0:
        stride = n
    start = n % stride
    ends = list(range(start + stride, n + 1, stride))
    out, lo = [], start
    for hi in ends:
        out.append((lo if block_mode else start, hi))
        lo = hi
    return stride, start, out, block_mode


def delta_f(fes: np.ndarray, first_axis: np.ndarray, at: float, kbt: float) -> float:
    """F(right of `at`) - F(left of `at`) along the first CV: -kT ln of the summed e^{-F/kT} on each side
    (points exactly at `at` belong to neither)."""
    x = np.broadcast_to(first_axis.reshape((-1,) + (1,) * (fes.ndim - 1)), fes.shape)
    fes_a = -kbt * np.logaddexp.reduce(-fes[x < at] / kbt)
    fes_b = -kbt * np.logaddexp.reduce(-fes[x > at] / kbt)
    if not (np.isfinite(fes_a) or np.isfinite(fes_b)):  # inf - inf: no sample reaches the grid at all
        raise InputError(f"--deltaFat {at:g}: F is +inf on both sides (no sample reaches the grid)")
    return float(fes_b - fes_a)


def _derivatives(sums: KernelSums, engine: Engine, kbt: float) -> list[np.ndarray]:
    """dF/dx_d = kT/sigma_d^2 (x_d - <s_d>), <s_d> the kernel- and bias-weighted mean of the samples."""
    out = []
    for d, lf in enumerate(sums.log_first):
        mean = np.exp(lf - sums.log_density) + engine.offset[d]
        x = engine.points[:, d]
        out.append((kbt / engine.sigma[d] ** 2 * (x - mean)).reshape(engine.grid.shape))
    return out


@dataclass
class Options:
    """FES_from_Reweighting.py's options (names as its flags) plus cyfes's device and threads."""

    colvar: str = "COLVAR"
    outfile: str = DEFAULT_OUTFILE
    sigma: str = ""
    kbt: float = 1.0
    cv: str = "2"
    bias: str = ".bias"
    grid_min: str | None = None
    grid_max: str | None = None
    grid_bin: str = "100,100"
    blocks: int = 1
    stride: int = 0
    delta_f_at: float | None = None
    skiprows: int = 0
    reverse: bool = False
    mintozero: bool = True
    der: bool = False
    fmt: str = DEFAULT_FMT
    device: str = "auto"
    threads: int | None = None


def parse_sigma(text: str, dim: int) -> np.ndarray:
    parts = [p for p in text.split(",") if p.strip()]
    if len(parts) < dim or (dim > 1 and len(parts) != dim):
        raise InputError(f"--sigma {text}: expected {dim} comma-separated bandwidths (one per CV)")
    sig = np.array([formats.parse_number(p, "--sigma") for p in parts[:dim]])
    if not (sig > 0).all():
        raise InputError(f"--sigma {text}: every bandwidth must be > 0")
    return sig


def _bins_text(text: str, dim: int) -> str:
    """The script's default '100,100' means 100 per CV for any number of CVs."""
    return ",".join(["100"] * dim) if text == "100,100" and dim > 2 else text


@dataclass
class Plan:
    options: Options
    col: Colvar
    grid: RewGrid
    sigma: np.ndarray
    stride: int
    start: int
    windows: list[tuple[int, int]]
    block_mode: bool
    delta_f_at: float | None
    warnings: list[str]
    backend: str = ""


def plan(o: Options) -> Plan:
    """Read and check everything before any work."""
    if not (o.kbt > 0 and math.isfinite(o.kbt)):
        raise InputError(f"--kt/--temp: the temperature must be > 0, got kT = {o.kbt!r}")
    col = read_colvar(o.colvar, o.cv, o.bias, o.kbt, o.skiprows, o.reverse)
    dim = len(col.names)
    sigma = parse_sigma(o.sigma, dim)
    grid = plan_grid(col, o.grid_min, o.grid_max, _bins_text(o.grid_bin, dim))
    if o.der and any(p > 0 for p in grid.periods):
        raise InputError("--der: derivatives are not computed for periodic CVs (as in FES_from_Reweighting.py)")
    if o.der and o.blocks != 1:
        raise InputError("--der: not with --blocks (as in FES_from_Reweighting.py)")
    if o.blocks != 1 and o.stride:
        raise InputError("--blocks and --stride: give one of them")
    stride, start, wins, block_mode = windows(len(col.cvs), o.blocks, o.stride)
    warnings = []
    at = o.delta_f_at
    if at is not None and (at <= grid.lows[0] or at >= grid.highs[0]):
        warnings.append(f"--deltaFat {at:g} is outside the grid of {col.names[0]}; no DeltaF")
        at = None
    formats.check_output_path(o.outfile)
    formats.check_number_format(o.fmt)
    return Plan(o, col, grid, sigma, stride, start, wins, block_mode, at, warnings)


def iteration_names(outfile: str) -> str:
    """The script's name pattern for per-stride files: fes-rew.dat -> fes-rew_%d.dat (dir/ kept)."""
    if outfile.rfind("/") == -1:
        prefix, name = "", outfile
    else:
        prefix = outfile[:outfile.rfind("/")]
        if prefix + "/" == outfile:
            outfile += DEFAULT_OUTFILE
        name = outfile[outfile.rfind("/"):]
    suffix = ""
    if name.rfind(".") != -1:
        suffix = name[name.rfind("."):]
        name = name[:name.rfind(".")]
    return prefix + name.replace("%", "%%") + "_%d" + suffix.replace("%", "%%")


def estimates(p: Plan) -> Iterator[Estimate]:
    """One Estimate per window (running or per block), in order."""
    o, col = p.options, p.col
    engine = Engine(col, p.grid, p.sigma, o.device, o.threads, o.der)
    running: KernelSums | None = None
    prev = p.start
    for lo, hi in p.windows:
        if p.block_mode:
            sums = engine.sums(lo, hi)
        else:
            running = combine(running, engine.sums(prev, hi))
            sums = running
        prev = hi
        p.backend = engine.backend
        logw = col.logw[lo:hi]
        fes = (-o.kbt * sums.log_density).reshape(p.grid.shape)
        if p.block_mode or not o.mintozero:
            fes = fes + o.kbt * np.logaddexp.reduce(logw)
        der = _derivatives(sums, engine, o.kbt) if o.der else None
        yield Estimate(fes, hi - lo, kish(logw), der)


def block_average(p: Plan, blocks: list[Estimate]) -> Estimate:
    """The script's weighted block average and its uncertainty."""
    kbt = p.options.kbt
    logw = p.col.logw
    block_logw = np.array([np.logaddexp.reduce(logw[lo:hi]) for lo, hi in p.windows])
    w = np.exp(block_logw - block_logw.max())
    neff = float(np.sum(w) ** 2 / np.sum(w ** 2))
    stack = np.array([b.fes for b in blocks])
    with np.errstate(all="ignore"):
        fes = -kbt * np.log(np.average(np.exp(-stack / kbt), axis=0, weights=w))
        # where exp(-F_b/kT) over- or underflows the script's formula, the same mean in log space
        lost = ~np.isfinite(fes)
        if lost.any():
            lw = np.log(w)[:, None]
            fes[lost] = -kbt * (np.logaddexp.reduce(-stack[:, lost] / kbt + lw, axis=0) - np.logaddexp.reduce(lw))
    return Estimate(fes, len(logw) - p.start, kish(logw[p.start:]), None, block_error(stack, fes, w, neff, kbt),
                    len(blocks), neff)


def block_error(stack: np.ndarray, fes: np.ndarray, w: np.ndarray, neff: float, kbt: float) -> np.ndarray:
    """The script's uncertainty; +inf where it is undefined: one effective block (N_eff <= 1, the script
    divides by zero) and points where F or a block's F is not finite (no sample reaches them)."""
    if not neff > 1:
        return np.full(fes.shape, np.inf)
    with np.errstate(all="ignore"):
        err = kbt * np.sqrt(1 / (neff - 1) * np.average(np.expm1(-(stack - fes) / kbt) ** 2, axis=0, weights=w))
    return np.where(np.isnan(err), np.inf, err)


# ----------------------------------------------------------------------------------------------- writing
def _g(value: float) -> str:
    return f"{value:g}"


def header(p: Plan, est: Estimate, shifted: np.ndarray) -> list[str]:
    names = p.grid.names
    fields = names + ["file.free"]
    if est.error is not None:
        fields.append("uncertainty")
    elif est.der is not None:
        fields += [f"der_{n}" for n in names]
    lines = ["#! FIELDS " + " ".join(fields), f"#! SET sample_size {est.size}",
             f"#! SET effective_sample_size {_g(est.effsize)}"]
    if p.delta_f_at is not None:
        lines.append(f"#! SET DeltaF {_g(delta_f(shifted, p.grid.axes[0], p.delta_f_at, p.options.kbt))}")
    if est.error is not None:
        lines += [f"#! SET blocks_num {est.blocks_num}", f"#! SET blocks_effective_num {_g(est.blocks_neff)}"]
    for d, n in enumerate(names):
        lines += [f"#! SET min_{n} {_g(p.grid.lows[d])}", f"#! SET max_{n} {_g(p.grid.highs[d])}",
                  f"#! SET nbins_{n} {_g(len(p.grid.axes[d]))}",
                  f"#! SET periodic_{n} {'false' if p.grid.periods[d] == 0 else 'true'}"]
    return lines


def body(p: Plan, fes: np.ndarray, extra: list[np.ndarray]) -> str:
    """Rows with the first CV fastest; 1 CV: `x  F`, more: `x y ...  F`, then extra columns each after a space;
    with 2+ CVs a blank line after each run of the first CV (the script's 2-D layout)."""
    fmt, dim = p.options.fmt, fes.ndim
    order = tuple(range(dim - 1, -1, -1))  # transpose so that C order runs the first CV fastest
    coords = [m.transpose(order).ravel() for m in np.meshgrid(*p.grid.axes, indexing="ij")]
    cols = [fes.transpose(order).ravel()] + [e.transpose(order).ravel() for e in extra]
    row_fmt = " ".join([fmt] * dim) + "  " + fmt + "".join(" " + fmt for _ in extra)
    table = np.stack(coords + cols, axis=1)
    lines = [row_fmt % tuple(row) for row in table.tolist()]
    if dim == 1:
        return "".join(line + "\n" for line in lines)
    n0 = len(p.grid.axes[0])
    return "".join("".join(line + "\n" for line in lines[i:i + n0]) + "\n" for i in range(0, len(lines), n0))


def file_text(p: Plan, est: Estimate, final_block: bool = False) -> str:
    if final_block:
        fes = est.fes - est.fes.min() if p.options.mintozero else est.fes
        return "\n".join(header(p, est, fes)) + "\n" + body(p, fes, [est.error])
    shift = est.fes.min() if p.options.mintozero else 0.0
    text = "\n".join(header(p, est, est.fes)) + "\n"
    return text + body(p, est.fes - shift, est.der or [])
