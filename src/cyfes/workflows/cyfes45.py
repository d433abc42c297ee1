"""The CyFES 4.5 command line: `python -m cyfes -i data.txt -g 20,20,20 -o fes.cub`.

Checked against CyFES 4.5's own sources (its `__main__.py`, `utils.py`, the Cython wrapper source kept in
`wrapper.c` and the PTX of its `libcufes.so`):
  * input: `.txt`/`.xyz` (whitespace) or `.csv` (commas), no header; the first `-s` lines only (`lines[0:s]`);
    CVs `-ic` (3 columns, default 0,1,2), bias `-ib` (3), rbias `-ir` (4). The bias is the `-ib` column, zero
    with `-no_bias true`, and REPLACED by the `-ir` column with `-no_rbias false` (default true).
  * kT = 0.596128107 kcal/mol; sample weight exp(V/kT); isotropic `-sigma` (default 1.0);
    F(x) = -kT ln( sum_j w_j exp(-|x - s_j|^2 / 2 sigma^2) / (N (2 pi)^1.5 sigma^3) ), then F -= min F.
    4.5 evaluates every exp() in float32 (`expf` of a float32 argument), so a Gaussian term is exactly zero
    once |x - s_j|^2 / 2 sigma^2 >= 103.97 (about 14.42 sigma): a grid point that far from every sample has
    zero density, F = +inf, written as 450. cyfes reproduces that (see `void_points`). A weight whose
    V/kT <= -103.97 is zero too (the sample is dropped, as 4.5 drops it).
  * grid: `-g` intervals per axis (default 10,10,10), g+1 points from the data min - `-e` to the data max + `-e`,
    or `-cmin` - e to `-cmax` + e (parsed as float32, as 4.5 does); `-intg true` floors the low and ceils the
    high ends. Values written: clip(a*F + b, -450, 450) with `-a` (1) and `-b` (0).
  * `-o` CyFES 4.5's cube (its `save_cube`: Bohr, `%.6g`, its header and line breaking); `-odat` its `.dat`
    (the cube read back by `cube2xyz` and written by `save2dat`); `-oV`/`-oF` its sink-method bias and free
    energy `.dat` files (V = kT sum_j exp(-|x - s_j|^2 / 2 sigma^2), unweighted; F = max V - V).
Differences (deliberate): the grid order is right for any point counts (CyFES 4.5 scrambles it when the x and
y counts differ); bad input is one error line and exit status 2, files are written atomically; `-device` and
`-sink` (which 4.5 parsed but never used) are accepted with a warning; where 4.5's float32 weights overflow
(a bias above 52.89 kcal/mol), 4.5 writes NaN and cyfes computes the right surface, with a warning.
Only the commands print: warnings come back as strings.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import InputError
from .._units import BOLTZMANN
from ..engine import inputs as _inputs
from ..engine.truncated import grid_rows
from ..io import formats
from ..io import output as _output

#: CyFES 4.5's kT in kcal/mol (`cdef double kT = 0.596128107` in its wrapper).
KT45 = 0.596128107
LEGACY_UNITS = "kcal/mol"
#: CyFES 4.5's length conversions (its utils.py).
A_TO_BOHR = 1.889716164632
BOHR_TO_A = 0.5291772083
#: CyFES 4.5 clips the written values to [-CLIP, CLIP].
CLIP = 450.0
#: 4.5's device exp: ex2 of float32(x) * 0f3FB8AA3B; zero when trunc(...) <= -150 (below 2^-149), inf at >= 128.
_LOG2E_F32 = np.float32(1.44269502162933349609375)
#: |x - s|^2 / 2 sigma^2 from which 4.5's float32 Gaussian is exactly 0 (150 / log2e = 103.972...).
Q_VOID = 150.0 / float(_LOG2E_F32)
#: Narrowing of sigma in the pass that finds the nearest sample (see void_points).
_NARROW = 1000.0
#: The input file kinds CyFES 4.5 reads, by extension, and their column separator (None: whitespace).
INPUT_KINDS = {"txt": None, "xyz": None, "csv": ","}


@dataclass
class LegacyOptions:
    """A parsed CyFES 4.5 command line."""

    input: Path
    cv_columns: list[int]
    bias_column: int
    rbias_column: int
    no_bias: bool
    no_rbias: bool
    rows: int | None
    edge: float
    intervals: list[int]
    cmin: list[float] | None
    cmax: list[float] | None
    intg: bool
    sigma: float
    float32: bool
    a: float
    b: float
    cube: Path | None
    dat: Path | None
    bias_dat: Path | None = None
    free_dat: Path | None = None
    warnings: list[str] = field(default_factory=list)


#: Memory per grid point of a CyFES 4.5 run (its text writers hold every value as a Python string, and the
#: `.dat` reads the cube text back); measured peak about 1.6 kB per point with -o and -odat, rounded up.
LEGACY_BYTES_PER_POINT = 2000


def check_legacy_grid(intervals: Sequence[int], text: str) -> None:
    """Refuse a -g grid that cannot fit in memory before anything is read or allocated."""
    points = 1
    for g in intervals:
        points *= g + 1
    _inputs.check_grid_fits(points, 3, f"-g {text}", extra=points * LEGACY_BYTES_PER_POINT)


# ----------------------------------------------------------------------------------------------- input
def _input_lines(path: Path, rows: int | None) -> list[str]:
    """`open(path).readlines()[0:rows]` without the line ends, as 4.5's read_out takes them."""
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a data file")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a text file (byte {exc.start} is not UTF-8)") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = lines[0:rows] if rows is not None else lines
    if not lines:
        raise InputError(f"{path}: no data lines" + (f" in the first -s {rows}" if rows is not None else ""))
    return lines


def _columns(path: Path, lines: list[str], sep: str | None, wanted: list[tuple[int, str]]) -> list[np.ndarray]:
    """Columns by index per line (negative indices count from the end, as in 4.5), as float64."""
    fields = [line.split() for line in lines] if sep is None else [line.strip().split(sep) for line in lines]
    out = []
    for col, what in wanted:
        try:
            texts = [f[col] for f in fields]
        except IndexError:
            bad = next(k for k, f in enumerate(fields) if not -len(f) <= col < len(f))
            raise InputError(f"{path}: line {bad + 1} has {len(fields[bad])} fields: no {what} column {col}"
                             + ("" if bad else " (CyFES 4.5 inputs have no header line)")) from None
        try:
            values = np.array([float(t) for t in texts])
        except ValueError:
            bad = next(k for k, t in enumerate(texts) if not formats.is_float(t))
            raise InputError(f"{path}: line {bad + 1}, column {col}: {texts[bad].strip()!r} is not a number"
                             + ("" if bad else " (CyFES 4.5 inputs have no header line)")) from None
        if not np.isfinite(values).all():
            bad = int(np.flatnonzero(~np.isfinite(values))[0])
            raise InputError(f"{path}: line {bad + 1}, column {col}: {texts[bad].strip()!r} is not finite")
        out.append(values)
    return out


def legacy_inputs(opts: LegacyOptions) -> tuple[np.ndarray, np.ndarray]:
    """The CVs (N, 3) and the bias (N,) as CyFES 4.5 reads them, float64."""
    kind = opts.input.name.split(".")[-1]
    if kind not in INPUT_KINDS or "." not in opts.input.name:
        raise InputError(f"{opts.input}: CyFES 4.5 mode reads .txt, .xyz (whitespace) and .csv files, not "
                         f"{'.' + kind if '.' in opts.input.name else 'a name without extension'}")
    lines = _input_lines(opts.input, opts.rows)
    wanted = [(c, "CV (-ic)") for c in opts.cv_columns]
    if not opts.no_rbias:
        wanted.append((opts.rbias_column, "rbias (-ir)"))
    elif not opts.no_bias:
        wanted.append((opts.bias_column, "bias (-ib; -no_bias true to run without)"))
    cols = _columns(opts.input, lines, INPUT_KINDS[kind], wanted)
    cv = np.stack(cols[:3], axis=1)
    bias = cols[3] if len(cols) > 3 else np.zeros(len(cv))
    return cv, bias


# ----------------------------------------------------------------------------------------------- grid
def legacy_axes(opts: LegacyOptions, cv: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """cv_min, cv_max and the x, y, z grids, with CyFES 4.5's numpy expressions (and so its dtypes)."""
    edge = opts.edge
    grid_num = [g + 1 for g in opts.intervals]
    if opts.cmin is None:
        cv_min = cv.min(axis=-2) - edge
    else:
        cv_min = np.array(opts.cmin, dtype=np.float32) - edge
    if opts.cmax is None:
        cv_max = cv.max(axis=-2) + edge
    else:
        cv_max = np.array(opts.cmax, dtype=np.float32) + edge
    if opts.intg:
        cv_min = np.floor(cv_min)
        cv_max = np.ceil(cv_max)
    if not (np.isfinite(cv_min).all() and np.isfinite(cv_max).all()):
        raise InputError(f"grid: the range {cv_min.tolist()} to {cv_max.tolist()} is not finite (float32 -cmin/-cmax)")
    axes = [np.linspace(cv_min[d], cv_max[d], grid_num[d]) for d in range(3)]
    return cv_min, cv_max, axes


# ----------------------------------------------------------------------------------------------- math
def exp45_class(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CyFES 4.5's float32 device exp(x), the one copy of its rule here: (where it is exactly 0, where it is +inf).
    The float32 x is split as x * log2(e) = k + f with k = trunc(float32(x) * float32(log2 e)); the result is 0
    once k <= -150 and +inf once k >= 128 (and for |x| > 105, where the fast path gives up)."""
    x32 = np.asarray(x, dtype=np.float64).astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        k = np.trunc(x32 * _LOG2E_F32)
    return (k <= -150) | (x32 < -105), (k >= 128) | (x32 > 105)


def exp45(x: np.ndarray) -> np.ndarray:
    """exp(x) in float64, with CyFES 4.5's float32 device exp's zeros and infinities (exp45_class)."""
    zero, inf = exp45_class(x)
    with np.errstate(over="ignore"):
        out = np.exp(np.asarray(x, dtype=np.float64))
    out[zero] = 0.0
    out[inf] = np.inf
    return out


def _log_kernel_sum(samples: np.ndarray, sigma: float, points: np.ndarray, bias: np.ndarray | None,
                    precision: str) -> np.ndarray:
    """log sum_j exp(V_j/kT) exp(-|x - s_j|^2 / 2 sigma^2) on `points`, with 4.5's kT (log space)."""
    from ..engine.fes import log_kernel_sum  # deferred: `cyfes --help` (which imports this module) loads no engine
    return log_kernel_sum(samples, sigma, grid=points, bias=bias, units=LEGACY_UNITS,
                          temperature=KT45 / BOLTZMANN[LEGACY_UNITS], precision=precision)


def void_points(samples: np.ndarray, bias: np.ndarray, sigma: float, points: np.ndarray,
                log_sum: np.ndarray) -> np.ndarray:
    """Grid points where every 4.5 Gaussian term is exactly 0: q_min = min_j |x - s_j|^2 / 2 sigma^2 >= Q_VOID.

    From the weighted log sum L(x): log(w_min) - L <= q_min <= log(sum w) - L decides most points; the others
    get a second cyfes.fes pass with sigma / 1000 and no weights, whose log sum L' is within log(N) / 1000^2
    of -1000^2 q_min.
    """
    logw = bias / KT45
    top = logw.max()
    log_total = top + math.log(float(np.exp(logw - top).sum()))
    void = (logw.min() - log_sum) >= Q_VOID
    unsure = ~void & ((log_total - log_sum) >= Q_VOID)
    if unsure.any():
        narrow = _log_kernel_sum(samples, sigma / _NARROW, points[unsure], None, "float64")
        q_min = -narrow / _NARROW ** 2 - math.log(len(samples)) / (2 * _NARROW ** 2)
        void[np.flatnonzero(unsure)] = exp45_class(-q_min)[0]
    return void


def legacy_free_energy(samples: np.ndarray, bias: np.ndarray, sigma: float, points: np.ndarray,
                       precision: str = "float64") -> tuple[np.ndarray, list[str]]:
    """CyFES 4.5's FastPathFES on `points`: -kT ln(density), minus its minimum; +inf where 4.5's density is 0."""
    notes: list[str] = []
    logw = bias / KT45
    underflows, overflows = exp45_class(logw)
    if overflows.any():
        notes.append(f"a bias reaches {bias.max():.6g} kcal/mol: CyFES 4.5's float32 weight exp(V/kT) overflows "
                     "above 52.89 kcal/mol and it writes NaN; cyfes computes the surface (in log space)")
    keep = ~underflows
    if not keep.any():
        raise InputError("bias: every sample's weight exp(V/kT) underflows in CyFES 4.5 (V <= -61.98 kcal/mol), "
                         "which then writes NaN everywhere; shift the bias or use `cyfes fes`")
    samples, bias = samples[keep], bias[keep]
    log_sum = _log_kernel_sum(samples, sigma, points, bias, precision)
    void = void_points(samples, bias, sigma, points, log_sum)
    if void.all():
        raise InputError(f"grid: every grid point is farther than {math.sqrt(2 * Q_VOID):.4g} sigma from every "
                         "sample, where CyFES 4.5's float32 Gaussians are 0 and it writes NaN everywhere; "
                         "widen -sigma or move the grid (-cmin/-cmax/-e)")
    values = np.where(void, np.inf, -KT45 * log_sum)
    return values - values.min(), notes


def legacy_bias(samples: np.ndarray, sigma: float, points: np.ndarray) -> np.ndarray:
    """CyFES 4.5's FastBias: V(x) = kT sum_j exp(-|x - s_j|^2 / 2 sigma^2) (no weights)."""
    return KT45 * np.exp(_log_kernel_sum(samples, sigma, points, None, "float64"))


# ----------------------------------------------------------------------------------------------- writers
def _check_cube_header(ovec: np.ndarray, *counts_and_steps: Any) -> None:
    """Refuse a grid whose cube header (origin, spacing and centre in Bohr, 4.5's arithmetic and dtypes)
    overflows, before any work: CyFES 4.5 wrote `inf` there."""
    with np.errstate(over="ignore", invalid="ignore"):
        origin = ovec * A_TO_BOHR
        ends = [n * (step * A_TO_BOHR) / 2 + origin[d]
                for d, (n, step) in enumerate(zip(counts_and_steps[0::2], counts_and_steps[1::2]))]
    if not (np.isfinite(origin).all() and np.isfinite(ends).all()):
        raise InputError(f"-cmin/-cmax/-e: the grid from {ovec.tolist()} spans more than the cube header's "
                         f"{np.asarray(ovec).dtype} Bohr coordinates can hold; use a smaller range")


def cube_text(ovec: np.ndarray, x_grids: int, x_shift, y_grids: int, y_shift, z_grids: int, z_shift,
              Z: np.ndarray) -> str:
    """CyFES 4.5's utils.save_cube (use_bohr=True), to a string: same arithmetic, format and line breaking."""
    total_grids = x_grids * y_grids * z_grids
    origin_vec = ovec.copy()
    origin_vec *= A_TO_BOHR
    x_shift *= A_TO_BOHR
    y_shift *= A_TO_BOHR
    z_shift *= A_TO_BOHR
    center_x = x_grids * x_shift / 2 + origin_vec[0]
    center_y = y_grids * y_shift / 2 + origin_vec[1]
    center_z = z_grids * z_shift / 2 + origin_vec[2]
    out = ["Generated by CyFES\n",
           f"Total\t{total_grids}\tgrids\n",
           f"1\t{origin_vec[0]:.6g}\t{origin_vec[1]:.6g}\t{origin_vec[2]:.6g}\n",
           f"{x_grids}\t{x_shift:.6g}\t{0:.6g}\t{0:.6g}\n",
           f"{y_grids}\t{0:.6g}\t{y_shift:.6g}\t{0:.6g}\n",
           f"{z_grids}\t{0:.6g}\t{0:.6g}\t{z_shift:.6g}\n",
           f"{1}\t{1.0:.6f}\t{center_x:.6g}\t{center_y:.6g}\t{center_z:.6g}\n"]
    text = [f"{v:.6g}" for v in Z.tolist()] if Z.dtype == np.float64 else [f"{v:.6g}" for v in Z]
    write = out.append
    i = 0
    while i < total_grids:
        for j in range(min(6, total_grids - i)):
            if (i + j) % z_grids == 0 and (i + j) != 0:
                write(f"\n{text[i + j]}\t")
                i += j + 1
                break
            write(f"{text[i + j]}\t")
            if j == min(6, total_grids - i) - 1:
                write("\n")
                i += 6
    return "".join(out)


def cube2xyz(text: str) -> tuple[list[float], list[float], list[list[str]]]:
    """CyFES 4.5's utils.cube2xyz on the cube's text: origin, values, spacing lines (split)."""
    spacing_vec: list[list[str]] = []
    values: list[float] = []
    origin: list[float] = []
    nat = 0
    for nline, line in enumerate(text.splitlines(keepends=True), start=1):
        if nline == 3:
            nat = int(line.split()[0])
            origin = [float(line.split()[1]), float(line.split()[2]), float(line.split()[3])]
        elif 3 < nline <= 6:
            spacing_vec.append(line.split())
        elif 6 < nline <= 6 + nat:
            pass
        elif nline > 6 + nat:
            values.extend(float(t) for t in line.split())
    return origin, values, spacing_vec


def save2dat_text(spacing_vec: list[list[str]], origin: list[float], values: list[float]) -> str:
    """CyFES 4.5's utils.save2dat, to a string."""
    out = ["#! \tX\tY\tZ\tFES\n"]
    nx, ny, nz = (int(spacing_vec[d][0]) for d in range(3))
    dx, dy, dz = float(spacing_vec[0][1]), float(spacing_vec[1][2]), float(spacing_vec[2][3])
    xs = [f"{(origin[0] + i * dx) * BOHR_TO_A:.6g}" for i in range(nx)]
    ys = [f"{(origin[1] + j * dy) * BOHR_TO_A:.6g}" for j in range(ny)]
    zs = [f"{(origin[2] + k * dz) * BOHR_TO_A:.6g}" for k in range(nz)]
    idx = 0
    for i in range(nx):
        for j in range(ny):
            head = f"{xs[i]}\t{ys[j]}\t"
            for k in range(nz):
                out.append(f"{head}{zs[k]}\t{values[idx]:.6g}\n")
                idx += 1
    return "".join(out)


def dat_text(cube: str) -> str:
    """4.5's .dat: the cube written, read back and written as columns (its cube2xyz + save2dat)."""
    origin, values, spacing_vec = cube2xyz(cube)
    return save2dat_text(spacing_vec, origin, values)


# ----------------------------------------------------------------------------------------------- run
def run_legacy(opts: LegacyOptions) -> list[Path]:
    """Compute and write what the CyFES 4.5 command line asked for; returns the files written."""
    _output.check_targets([p for p in (opts.cube, opts.dat, opts.bias_dat, opts.free_dat) if p is not None],
                          [opts.input])
    dtype = np.float32 if opts.float32 else np.float64
    cv64, bias64 = legacy_inputs(opts)
    cv = cv64.astype(dtype)
    bias = bias64.astype(dtype)
    cv_min, _, axes = legacy_axes(opts, cv)
    points = grid_rows(axes, dtype).astype(np.float64)
    samples = cv.astype(np.float64)
    counts = [len(a) for a in axes]
    header = (cv_min, counts[0], axes[0][1] - axes[0][0], counts[1], axes[1][1] - axes[1][0],
              counts[2], axes[2][1] - axes[2][0])
    _check_cube_header(*header)
    texts: list[tuple[Path, str]] = []
    if opts.cube is not None or opts.dat is not None:
        values, notes = legacy_free_energy(samples, bias.astype(np.float64), opts.sigma, points,
                                           "float32" if opts.float32 else "float64")
        opts.warnings.extend(notes)
        with np.errstate(invalid="ignore", over="ignore"):
            z = values.astype(dtype)
            z_clip = np.clip(opts.a * z + opts.b, -CLIP, CLIP)
        cube = cube_text(*header, z_clip)
        if opts.cube is not None:
            texts.append((opts.cube, cube))
        if opts.dat is not None:
            texts.append((opts.dat, dat_text(cube)))
    if opts.bias_dat is not None:
        v = legacy_bias(samples, opts.sigma, points)
        texts.append((opts.bias_dat, dat_text(cube_text(*header, v))))
        if opts.free_dat is not None:
            f = -v
            f -= np.min(f)
            texts.append((opts.free_dat, dat_text(cube_text(*header, f))))
    # all files or none: a second output that cannot be written leaves no first one behind
    return _output.write_all([(path, lambda fh, t=text: fh.write(t.encode("utf-8"))) for path, text in texts],
                             [opts.input])
