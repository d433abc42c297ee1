"""The free energy estimate of an OPES run from its state file, as OPES' FES_from_State.py computes it.

For kernels k with centers c_k, widths s_k and heights h_k, at each grid point x:

    prob(x) = sum_k h_k max(exp(-d_k^2/2) - exp(-cutoff^2/2), 0) / Zed + epsilon,   d_k = |x - c_k| / s_k

(per CV the minimum image on a periodic CV), with Zed = zed * sum_weights for OPES_METAD and zed * counter for
OPES_METAD_EXPLORE, and F(x) = -kT sf ln(prob(x) / max prob), sf = biasfactor for EXPLORE (1 otherwise). The
grid has bins+1 points per CV from min to max (the kernel centers' range, or a periodic CV's domain), less the
repeated end point of a full period, as plumed sum_hills. Any number of CVs; the sums are numpy arrays over
blocks of grid points (memory bounded by BLOCK_PAIRS).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._errors import InputError
from ..io.numbers import parse_number, parse_positive_int
from ..io.opes import OpesState
from .opes_defaults import DEFAULT_FMT
from .opes_defaults import STATE_OUTFILE as DEFAULT_OUTFILE

DEFAULT_BINS = 100
#: Grid points x kernels evaluated at once (float64 temporaries of this many values: ~4 x 8 bytes each).
BLOCK_PAIRS = 1 << 22


@dataclass
class Options:
    """FES_from_State.py's flags (same names and defaults)."""

    kbt: float
    outfile: str = DEFAULT_OUTFILE
    grid_min: str | None = None
    grid_max: str | None = None
    grid_bin: str | None = None
    fmt: str = DEFAULT_FMT
    delta_f_at: float | None = None
    all_stored: bool = False
    mintozero: bool = True
    der: bool = False


@dataclass
class StateGrid:
    names: list[str]
    axes: list[np.ndarray]
    lows: list[float]
    highs: list[float]
    periods: list[float]


@dataclass
class StateFes:
    """The surface of one state: F on the grid (matrix indexing), dF/dx per CV with --der, DeltaF if asked."""

    grid: StateGrid
    fes: np.ndarray
    der: list[np.ndarray]
    delta_f: float | None


def _values(text: str | None, dim: int, option: str, parse) -> list | None:
    """A comma list with one value per CV (the script reads the first value only when there is one CV)."""
    if text is None:
        return None
    parts = text.split(",")
    if dim == 1:
        parts = parts[:1]
    elif len(parts) == 1:
        parts = parts * dim
    if len(parts) != dim:
        raise InputError(f"{option} {text}: expected {dim} comma-separated values (one per CV)")
    return [parse(p.strip(), option) for p in parts]


def plan_grid(state: OpesState, o: Options) -> StateGrid:
    dim = len(state.names)
    lows = _values(o.grid_min, dim, "--min", parse_number)
    highs = _values(o.grid_max, dim, "--max", parse_number)
    bins = _values(o.grid_bin, dim, "--bin", parse_positive_int) or [DEFAULT_BINS] * dim
    axes, lo_out, hi_out, periods = [], [], [], []
    for d, name in enumerate(state.names):
        dom = state.domains[d]
        period = dom[1] - dom[0] if dom else 0.0
        lo = lows[d] if lows else (dom[0] if dom else float(state.centers[:, d].min()))
        hi = highs[d] if highs else (dom[1] if dom else float(state.centers[:, d].max()))
        if hi < lo:
            raise InputError(f"grid of {name}: max {hi:g} is below min {lo:g} (see --min/--max)")
        axis = np.linspace(lo, hi, bins[d] + 1)
        if period == axis[-1] - axis[0]:  # a full period: the end point is the start point again
            axis = axis[:-1]
        axes.append(axis)
        lo_out.append(lo)
        hi_out.append(hi)
        periods.append(period)
    return StateGrid(list(state.names), axes, lo_out, hi_out, periods)


def normalisation(state: OpesState) -> tuple[float, float]:
    """(Zed, sf): the normalisation of the kernel sum and the scale of F (biasfactor in EXPLORE mode)."""
    zed = state.number("zed")
    if state.explore:
        return zed * state.number("counter"), state.number("biasfactor")
    return zed * state.number("sum_weights"), 1.0


def probability(state: OpesState, grid: StateGrid, der: bool) -> tuple[np.ndarray, list[np.ndarray]]:
    """prob on the grid and, with `der`, its derivative per CV (without the epsilon), in blocks of points."""
    zed, _ = normalisation(state)
    epsilon = state.number("epsilon")
    at_cutoff = np.exp(-0.5 * state.number("kernel_cutoff") ** 2)
    mesh = np.meshgrid(*grid.axes, indexing="ij")
    points = np.stack([m.ravel() for m in mesh], axis=1)
    kernels = len(state.heights)
    block = max(1, BLOCK_PAIRS // max(kernels, 1))
    prob = np.empty(len(points))
    ders = [np.empty(len(points)) for _ in grid.names] if der else []
    for start in range(0, len(points), block):
        part = points[start:start + block]
        dist = [_distance(part[:, d], state.centers[:, d], state.sigmas[:, d], grid.periods[d])
                for d in range(len(grid.names))]
        d2 = sum(x * x for x in dist)
        values = state.heights * np.maximum(np.exp(-0.5 * d2) - at_cutoff, 0)
        prob[start:start + block] = np.sum(values, axis=1) / zed + epsilon
        for d, out in enumerate(ders):
            out[start:start + block] = np.sum(-dist[d] / state.sigmas[:, d] * values, axis=1) / zed
    shape = tuple(len(a) for a in grid.axes)
    return prob.reshape(shape), [x.reshape(shape) for x in ders]


def _distance(x: np.ndarray, centers: np.ndarray, sigmas: np.ndarray, period: float) -> np.ndarray:
    """(points, kernels) distances in units of sigma: signed, or the unsigned minimum image on a periodic CV."""
    diff = x[:, None] - centers[None, :]
    if period:
        diff = np.abs(diff)
        diff = np.minimum(diff, period - diff)
    return diff / sigmas[None, :]


def delta_f(fes: np.ndarray, first_axis: np.ndarray, at: float, kbt: float) -> float:
    """F right of `at` minus F left of it along the first CV (points exactly at `at` belong to neither)."""
    x = np.broadcast_to(first_axis.reshape((-1,) + (1,) * (fes.ndim - 1)), fes.shape)
    fes_a = -kbt * np.logaddexp.reduce(-1 / kbt * fes[x < at])
    fes_b = -kbt * np.logaddexp.reduce(-1 / kbt * fes[x > at])
    return float(fes_b - fes_a)


def compute(state: OpesState, o: Options, warnings: list[str]) -> StateFes:
    if o.der and any(d is not None for d in state.domains):
        raise InputError(f"--der: derivatives are not supported with periodic CVs (as in FES_from_State.py); "
                         f"{state.source} declares " + ", ".join(n for n, d in zip(state.names, state.domains) if d)
                         + " periodic")
    grid = plan_grid(state, o)
    prob, der_prob = probability(state, grid, o.der)
    _, sf = normalisation(state)
    top = prob.max() if o.mintozero else 1.0
    fes = -o.kbt * sf * np.log(prob / top)
    der = [-o.kbt * sf / prob * d for d in der_prob]
    shift = None
    if o.delta_f_at is not None:
        if o.delta_f_at <= grid.lows[0] or o.delta_f_at >= grid.highs[0]:
            warnings.append(f"--deltaFat {o.delta_f_at:g} is out of the grid of {grid.names[0]}; no DeltaF")
        else:
            shift = delta_f(fes, grid.axes[0], o.delta_f_at, o.kbt)
    return StateFes(grid, fes, der, shift)


# ----------------------------------------------------------------------------------------------- writing
def file_text(result: StateFes, fmt: str) -> str:
    g = result.grid
    lines = ["#! FIELDS " + " ".join(g.names + ["file.free"] + [f"der_{n}" for n in g.names if result.der])]
    if result.delta_f is not None:
        lines.append(f"#! SET DeltaF {result.delta_f:g}")
    for d, n in enumerate(g.names):
        lines += [f"#! SET min_{n} {g.lows[d]:g}", f"#! SET max_{n} {g.highs[d]:g}",
                  f"#! SET nbins_{n} {len(g.axes[d]):g}",
                  f"#! SET periodic_{n} {'true' if g.periods[d] else 'false'}"]
    return "\n".join(lines) + "\n" + _body(result, fmt)


def _body(result: StateFes, fmt: str) -> str:
    """Rows with the first CV fastest: `x  F` for one CV, `x y ...  F` for more, then each derivative after a
    space; with 2+ CVs a blank line after each run of the first CV (the script's 2-D layout)."""
    axes, dim = result.grid.axes, result.fes.ndim
    order = tuple(range(dim - 1, -1, -1))  # transposed, C order runs the first CV fastest
    coords = [m.transpose(order).ravel() for m in np.meshgrid(*axes, indexing="ij")]
    cols = [result.fes.transpose(order).ravel()] + [d.transpose(order).ravel() for d in result.der]
    row = " ".join([fmt] * dim) + "  " + fmt + "".join(" " + fmt for _ in result.der)
    try:
        lines = [row % tuple(r) for r in np.stack(coords + cols, axis=1).tolist()]
    except (TypeError, ValueError) as exc:
        raise InputError(f"--fmt {fmt!r}: not a format for one number ({exc})") from None
    if dim == 1:
        return "".join(line + "\n" for line in lines)
    n0 = len(axes[0])
    return "".join("".join(line + "\n" for line in lines[i:i + n0]) + "\n" for i in range(0, len(lines), n0))


def stored_names(outfile: str, count: int) -> list[str]:
    """--all_stored: `fes.dat` -> fes_1.dat, fes_2.dat, ... (the number before the extension of the name)."""
    if outfile.endswith("/"):
        outfile += DEFAULT_OUTFILE
    slash, dot = outfile.rfind("/"), outfile.rfind(".")
    stem, suffix = (outfile[:dot], outfile[dot:]) if dot > slash else (outfile, "")
    return [f"{stem}_{n}{suffix}" for n in range(1, count + 1)]


def outputs(states: Sequence[OpesState], o: Options, warnings: list[str]) -> list[tuple[str, str]]:
    """(file name, text) of each surface to write: the last state, or every one with --all_stored."""
    chosen = list(states) if o.all_stored else [states[-1]]
    names = stored_names(o.outfile, len(chosen)) if o.all_stored else [o.outfile]
    return [(name, file_text(compute(s, o, warnings), o.fmt)) for name, s in zip(names, chosen)]
