"""PLUMED HILLS files in, sum_hills grid files out.

Reading follows PLUMED's sum_hills: the CVs are the `#! FIELDS` entries after `time` and before the first
`sigma_*` field; a CV is periodic when the header has `#! SET min_X` and `#! SET max_X` (kept as the strings
written there, since PLUMED prints them back verbatim); `#! SET multivariate true` means each hill carries the
lower triangle of a Cholesky factor (`sigma_X_Y`), `false` one sigma per CV. Several files (walkers, restarts)
must declare the same CVs and periodicity. The grid writer reproduces PLUMED's Grid::writeToFile byte for byte:
`#! FIELDS`, `#! SET min_/max_/nbins_/periodic_` lines, `" " + fmt` per number, a blank line where the second
index restarts.
"""
from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._errors import InputError
from . import colvars, formats
from . import tables as _tables
from .writers import check_number_format

#: PLUMED's default number format for grids.
PLUMED_FMT = "%14.9f"


@dataclass
class HillsTable:
    """One HILLS (or COLVAR) file as sum_hills sees it."""

    source: str
    names: list[str]                      # every column
    cvs: list[str]                        # the CV columns, in file order
    domains: dict[str, tuple[str, str]]   # periodic CV -> (min, max) as written in the header
    sets: dict[str, str]
    data: np.ndarray

    def column(self, name: str) -> np.ndarray:
        return self.data[:, self.names.index(name)]

    def has(self, name: str) -> bool:
        return name in self.names


@dataclass
class Hills:
    """Hills of one or more files, in reading order.

    centers (N, D); widths (N, D) sigmas of diagonal hills, or metrics (N, D, D) (the inverse covariance) of
    multivariate ones; heights (N,) as written (PLUMED already scales well-tempered heights); biasf (N,), 1 where
    the file has no biasf column; domains per CV: (min, max) strings of a periodic CV, else None; kernel: the
    kernel type the header names (PLUMED's default: stretched-gaussian)."""

    names: list[str]
    centers: np.ndarray
    widths: np.ndarray | None
    metrics: np.ndarray | None
    heights: np.ndarray
    biasf: np.ndarray
    domains: list[tuple[str, str] | None]
    kernel: str = "stretched-gaussian"
    sources: list[str] = field(default_factory=list)

    @property
    def multivariate(self) -> bool:
        return self.metrics is not None

    @property
    def dim(self) -> int:
        return self.centers.shape[1]

    def __len__(self) -> int:
        return len(self.heights)


def cv_fields(names: Sequence[str]) -> list[str]:
    """PLUMED's rule (CLToolSumHills::findCvsAndPeriodic): CVs follow `time` and precede the first field that
    contains sigma_, min_ or max_; fields containing `time` are never CVs."""
    cvs = []
    for name in names:
        if any(key in name for key in ("sigma_", "min_", "max_")):
            break
        if "time" not in name:
            cvs.append(name)
    return cvs


def read_hills_table(path: str) -> HillsTable:
    """One HILLS (or COLVAR) file through the table reader (bounded memory, .gz, restarts)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{path}: no such file")
    head = _tables.text_head(p, _tables.max_input_bytes())
    if head is not None and "#! FIELDS" not in head:
        if not colvars.looks_like_hills(head):
            raise InputError(f"{path}: no '#! FIELDS' header line; not a PLUMED HILLS/COLVAR file (nor a Colvars "
                             ".hills.traj)")
        table = colvars.parse_hills(_tables.whole_text(p, _tables.max_input_bytes()), str(path))
        return HillsTable(str(path), table.names, cv_fields(table.names), {}, {}, table.data)
    table = formats.read_table(p, fields_required=True)
    for note in table.notes:  # a row cut short before a restart, columns not in every segment
        warnings.warn(note, stacklevel=2)
    sets = table.sets
    cvs = cv_fields(table.names)
    if not cvs:
        raise InputError(f"{path}: no CV columns in '#! FIELDS {' '.join(table.names)}'")
    domains = {cv: (sets[f"min_{cv}"], sets[f"max_{cv}"]) for cv in cvs
               if f"min_{cv}" in sets and f"max_{cv}" in sets}
    for cv, (lo, hi) in domains.items():
        if not formats.parse_number(hi, f"{path}: max_{cv}") > formats.parse_number(lo, f"{path}: min_{cv}"):
            raise InputError(f"{path}: #! SET min_{cv} {lo} / max_{cv} {hi}: needs min < max")
    return HillsTable(str(path), table.names, cvs, domains, sets, table.data)


def _check_same_header(first: HillsTable, other: HillsTable) -> None:
    if other.cvs != first.cvs:
        raise InputError(f"{other.source}: its CVs ({', '.join(other.cvs)}) differ from those of {first.source} "
                         f"({', '.join(first.cvs)}); all files must share one header")
    if other.domains != first.domains:
        raise InputError(f"{other.source}: its periodicity (#! SET min_/max_) differs from that of {first.source}")
    if other.sets.get("multivariate") != first.sets.get("multivariate"):
        raise InputError(f"{other.source}: '#! SET multivariate' differs from that of {first.source}")


def _need(table: HillsTable, name: str, what: str) -> np.ndarray:
    if not table.has(name):
        raise InputError(f"{table.source}: no '{name}' column ({what}); fields are: {' '.join(table.names)}")
    return table.column(name)


def _multivariate(table: HillsTable) -> bool:
    flag = table.sets.get("multivariate", "false")
    if flag not in ("true", "false"):
        raise InputError(f"{table.source}: '#! SET multivariate {flag}': sum_hills reads only true or false")
    return flag == "true"


def _metrics(table: HillsTable) -> np.ndarray:
    """PLUMED stores L (lower Cholesky factor of the covariance) as sigma_<cv[j+i]>_<cv[j]>; the metric is
    (L L^T)^-1."""
    cvs, n = table.cvs, len(table.data)
    dim = len(cvs)
    lower = np.zeros((n, dim, dim))
    for i in range(dim):
        for j in range(dim - i):
            lower[:, j + i, j] = _need(table, f"sigma_{cvs[j + i]}_{cvs[j]}", "multivariate hill width")
    _check_finite(lower.reshape(n, -1), f"{table.source}: hill", "a multivariate width (sigma_X_Y)")
    cov = lower @ np.swapaxes(lower, 1, 2)
    # L L^T of a factor with a zero (or underflowing) diagonal entry is singular: no hill has that shape
    diag = np.abs(np.diagonal(lower, axis1=1, axis2=2))
    bad = ~((diag >= MIN_WIDTH) & (diag <= MAX_WIDTH)).all(axis=1)
    if bad.any():
        j = int(np.argmax(bad))
        raise InputError(f"{table.source}: hill {j + 1}: the diagonal of its width factor ({_values(diag[j])}) "
                         f"must lie within [{MIN_WIDTH:g}, {MAX_WIDTH:g}] in size")
    with np.errstate(all="ignore"):
        metrics = np.linalg.inv(cov)
    if not np.isfinite(metrics).all():
        raise InputError(f"{table.source}: a multivariate hill has a singular width matrix")
    return metrics


#: Sizes of a sigma whose square and inverse square are normal float64 numbers, so that the kernel's
#: exponent and derivatives neither overflow nor divide by zero.
MIN_WIDTH, MAX_WIDTH = 1e-150, 1e150
#: Largest centre coordinate and height accepted: far past any CV or energy of a real run, and small enough
#: that differences, sums over many hills and derivatives stay finite.
MAX_VALUE = 1e150


def _values(row: np.ndarray) -> str:
    return ", ".join(f"{v:g}" for v in np.ravel(row))


def _check_finite(values: np.ndarray, where: str, what: str) -> None:
    """Refuse NaN and inf in (N, K) `values`, naming the first hill (1-based) that has one."""
    if np.isfinite(values).all():  # the usual case, in one flat pass; rows are looked at only to name one
        return
    bad = ~np.isfinite(values).reshape(len(values), -1).all(axis=1)
    if bad.any():
        j = int(np.argmax(bad))
        raise InputError(f"{where} {j + 1}: {what} is not finite ({_values(values[j])})")


def _first_out_of(values: np.ndarray, lo: float, hi: float) -> int:
    """The first row (0-based) holding a value whose magnitude is outside [lo, hi], or -1."""
    if values.size and _magnitudes_within(values, lo, hi):  # the usual case, from two flat reductions
        return -1
    bad = ~((np.abs(values) >= lo) & (np.abs(values) <= hi)).reshape(len(values), -1).all(axis=1)
    return int(np.argmax(bad)) if bad.any() else -1


def _magnitudes_within(values: np.ndarray, lo: float, hi: float) -> bool:
    """Whether every |value| lies in [lo, hi], from the extremes alone (False for NaN: the caller then looks)."""
    low, high = float(values.min()), float(values.max())
    if lo <= 0.0:
        return -hi <= low and high <= hi
    return lo <= low and high <= hi  # values of one sign only where lo > 0: else the rows are looked at


def check_hill_values(hills: Hills, source: str) -> None:
    """Every hill's centre, width and height finite and representable (see MIN_WIDTH, MAX_VALUE), widths > 0.
    A periodic centre outside its domain is kept: the sum wraps it, as PLUMED's periodic differences do."""
    where = f"{source}: hill"
    _check_finite(hills.centers, where, "its centre")
    _check_finite(hills.heights[:, None], where, "its height")
    j = _first_out_of(hills.centers, 0.0, MAX_VALUE)
    if j >= 0:
        raise InputError(f"{where} {j + 1}: its centre ({_values(hills.centers[j])}) is beyond +-{MAX_VALUE:g}")
    j = _first_out_of(hills.heights[:, None], 0.0, MAX_VALUE)
    if j >= 0:
        raise InputError(f"{where} {j + 1}: its height {hills.heights[j]:g} is beyond +-{MAX_VALUE:g}")
    if hills.widths is not None:
        _check_finite(hills.widths, where, "its sigma")
        if not (hills.widths > 0).all():  # one flat pass; the rows only to name the first bad one
            j = int(np.argmax(~(hills.widths > 0).all(axis=1)))
            raise InputError(f"{where} {j + 1}: sigma must be > 0, got {_values(hills.widths[j])}")
        j = _first_out_of(hills.widths, MIN_WIDTH, MAX_WIDTH)
        if j >= 0:
            raise InputError(f"{where} {j + 1}: sigma ({_values(hills.widths[j])}) must lie within "
                             f"[{MIN_WIDTH:g}, {MAX_WIDTH:g}]")
    _check_finite(hills.biasf[:, None], where, "its biasf")


def hills_from_tables(tables: Sequence[HillsTable]) -> Hills:
    first = tables[0]
    for other in tables[1:]:
        _check_same_header(first, other)
    multi = _multivariate(first)
    centers, widths, metrics, heights, biasf = [], [], [], [], []
    for t in tables:
        centers.append(np.stack([t.column(cv) for cv in t.cvs], axis=1))
        heights.append(_need(t, "height", "hill height"))
        biasf.append(t.column("biasf") if t.has("biasf") else np.ones(len(t.data)))
        if multi:
            metrics.append(_metrics(t))
        else:
            widths.append(np.stack([_need(t, f"sigma_{cv}", "hill width") for cv in t.cvs], axis=1))
    w = None if multi else np.concatenate(widths)
    if "lower_int" in first.sets or "upper_int" in first.sets:
        raise InputError(f"{first.source}: INTERVAL hills (#! SET lower_int/upper_int) are not supported")
    kernel = first.sets.get("kerneltype", "stretched-gaussian").lower()
    if kernel not in ("stretched-gaussian", "gaussian", "truncated-gaussian"):
        raise InputError(f"{first.source}: '#! SET kerneltype {kernel}': sum_hills of this kernel is not supported")
    hills = Hills(list(first.cvs), np.concatenate(centers), w, np.concatenate(metrics) if multi else None,
                  np.concatenate(heights), np.concatenate(biasf), [first.domains.get(cv) for cv in first.cvs],
                  kernel, [t.source for t in tables])
    check_hill_values(hills, ", ".join(hills.sources))
    return hills


def read_hills(paths: Sequence[str]) -> Hills:
    """The hills of `paths`, concatenated in order (PLUMED reads them one after the other)."""
    return hills_from_tables([read_hills_table(p) for p in paths])


@dataclass
class Points:
    """CV values of COLVAR-like files for --histo: positions (N, D), CV names, domains as in Hills."""

    names: list[str]
    positions: np.ndarray
    domains: list[tuple[str, str] | None]


def read_points(paths: Sequence[str], keep: Sequence[str] | None = None) -> Points:
    tables = [read_hills_table(p) for p in paths]
    first = tables[0]
    for other in tables[1:]:
        _check_same_header(first, other)
    names = list(keep) if keep else list(first.cvs)
    for name in names:
        if name not in first.cvs:
            raise InputError(f"--idw {name}: not one of the CVs of {first.source} ({', '.join(first.cvs)})")
    pos = np.concatenate([np.stack([t.column(n) for n in names], axis=1) for t in tables])
    _check_finite(pos, f"{', '.join(t.source for t in tables)}: row", "a CV value")
    j = _first_out_of(pos, 0.0, MAX_VALUE)
    if j >= 0:
        raise InputError(f"{', '.join(t.source for t in tables)}: row {j + 1}: a CV value ({_values(pos[j])}) is "
                         f"beyond +-{MAX_VALUE:g}")
    return Points(names, pos, [first.domains.get(n) for n in names])


# ----------------------------------------------------------------------------------------------- writing
def c_format(fmt: str, value: float) -> str:
    """printf-style formatting as PLUMED's OFile does it (nan printed as nan)."""
    if math.isnan(value):
        value = float("nan")
    return fmt % value


def check_fmt(fmt: str) -> str:
    """`fmt` with its leading space (as PLUMED prints a grid cell): one float conversion, bounded text."""
    check_number_format(fmt[1:] if fmt.startswith(" ") else fmt)
    return fmt


@dataclass
class GridHeader:
    """What sum_hills writes in a grid's `#! SET` lines, per CV: name, min and max strings, number of
    points, periodic."""

    names: list[str]
    mins: list[str]
    maxs: list[str]
    nbins: list[int]
    periodic: list[bool]


def grid_text(header: GridHeader, coords: list[np.ndarray], columns: list[np.ndarray], value_name: str,
              der_names: Sequence[str], fmt: str = PLUMED_FMT) -> str:
    """PLUMED grid text: `coords` per CV and `columns` (values, then derivatives) flat in PLUMED's order
    (first CV fastest)."""
    dim = len(header.names)
    out = io.StringIO()
    out.write("#! FIELDS " + " ".join(header.names + [value_name] + list(der_names)) + "\n")
    for n, lo, hi, nb, per in zip(header.names, header.mins, header.maxs, header.nbins, header.periodic):
        out.write(f"#! SET min_{n} {lo}\n#! SET max_{n} {hi}\n#! SET nbins_{n}  {nb}\n"
                  f"#! SET periodic_{n} {'true' if per else 'false'}\n")
    cell = " " + fmt
    table = np.stack(coords + columns, axis=1)
    second = _second_index(header.nbins, len(table)) if dim > 1 else None
    rows = _format_rows(table, cell)
    edges = [0, *np.flatnonzero(second == 0)[1:].tolist(), len(rows)] if second is not None else [0, len(rows)]
    if rows:  # a blank line between blocks, as PLUMED writes them
        out.write("\n\n".join("\n".join(rows[a:b]) for a, b in zip(edges[:-1], edges[1:])) + "\n")
    return out.getvalue()


def _second_index(nbins: Sequence[int], size: int) -> np.ndarray:
    """Per flat index, the index along CV D-2: PLUMED writes a blank line before every point where it is 0."""
    dim = len(nbins)
    inner = int(np.prod(nbins[:dim - 2], dtype=np.int64))
    return (np.arange(size) // inner) % nbins[dim - 2]


def _format_rows(table: np.ndarray, cell: str) -> list[str]:
    if np.isnan(table).any() or not _fast_format_ok(cell):
        return ["".join(c_format(cell, float(v)) for v in row) for row in table]
    line = cell * table.shape[1]  # what np.savetxt does per row, without its per-row overhead
    return [line % row for row in map(tuple, table.tolist())]


def _fast_format_ok(cell: str) -> bool:
    """Python's %-formatting of a whole row is c_format's per number, except for a literal '%%'."""
    return "%%" not in cell
