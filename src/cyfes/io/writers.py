"""Surfaces out: the grid formats (PLUMED grid, dat, csv, cube, npz), written to a temporary name and renamed."""
from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Callable

import numpy as np

from .._errors import InputError
from . import output as _output
from .format_names import FORMATS, cv_names
from .tables import PathLike

#: Name of the free energy field in PLUMED grids, as sum_hills writes it.
PLUMED_FREE_FIELD = "file.free"
DAT_FREE_FIELD = "free_energy"
PERIODIC_HEAD = "periodic"  # the .dat header line `periodic CV=PERIOD ...` (formats.read_grid reads it back)


#: A printf number format cyfes accepts (--fmt): one floating-point conversion (e, f, g in either case) with
#: optional flags, width and precision, and any text around it that has no other conversion.
_NUMBER_FORMAT = re.compile(r"^(?:[^%]|%%)*%[-+ #0]*(\d*)(?:\.(\d*))?[eEfFgG](?:[^%]|%%)*$")
#: Width and precision above which a format is refused: the text of one number grows with both, and a
#: precision of 100000 writes 100 kB per value (float64 holds 17 significant digits).
MAX_FORMAT_DIGITS = 100


def check_number_format(fmt: str, option: str = "--fmt") -> str:
    """Refuse a printf format that cannot print every float64 (inf and nan included) in bounded text: %d
    and %x fail on inf/nan, two conversions need two numbers, a huge width or precision fills the disk."""
    match = _NUMBER_FORMAT.match(fmt) if isinstance(fmt, str) else None
    if match is None:
        raise InputError(f"{option} {fmt!r}: not a printf format for one floating-point number "
                         "(one %e, %f or %g conversion, e.g. %14.9f)")
    for part in match.groups():
        if part and int(part) > MAX_FORMAT_DIGITS:
            raise InputError(f"{option} {fmt!r}: width and precision must be at most {MAX_FORMAT_DIGITS}")
    return fmt


# ----------------------------------------------------------------------------------------------- writing
def output_format(path: PathLike, fmt: str | None = None) -> str:
    """The grid format for `path`: `fmt` when given, else the one its extension selects."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise InputError(f"format: unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(path).suffix.lower()
    for name, suffixes in FORMATS.items():
        if suffix in suffixes:
            return name
    known = ", ".join(s for group in FORMATS.values() for s in group)
    raise InputError(f"{path}: unknown output extension {suffix or '(none)'!r}; use one of {known} "
                     "or give the format explicitly")


def check_output_path(path: PathLike, inputs: Sequence[PathLike] = (), force: bool = False) -> Path:
    """`path` as a Path, after the refusal rules of cyfes.io.output (directory exists and takes files; not a
    FIFO, device, link, read-only file or input unless `force`)."""
    return _output.check_target(path, inputs, force)


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], None], force: bool = False) -> Path:
    """Call `write` on a temporary file next to `path`, then rename it to `path` (no partial files)."""
    p = check_output_path(path, force=force)
    return _output.write_all([(p, write)])[0]


def write_text(path: PathLike, text: str, force: bool = False) -> Path:
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")), force)


def result_writer(result: Any, path: PathLike, fmt: str | None = None) -> Callable[[IO[bytes]], None]:
    """A function writing `result` in the format of `path` (or `fmt`) to a binary file, in bounded memory."""
    kind = output_format(path, fmt)
    if kind == "npz":
        return lambda fh: np.savez(fh, **npz_fields(result))
    delimiter = "," if kind == "csv" else None
    if result.axes is None:
        if kind not in ("dat", "csv"):
            raise InputError(f"{path}: the {kind} format needs a regular grid (bins), not explicit points")
        return _text_writer(lambda out: write_points(out, result, delimiter))
    if kind == "plumed":
        return _text_writer(lambda out: write_plumed_grid(out, result))
    if kind == "cube":
        cube_header(result)  # fails now, before anything is written, for a grid that is not 3-D
        return _text_writer(lambda out: write_cube(out, result))
    if kind in ("colvars", "dx"):
        from . import program_grids  # deferred: a cycle (program_grids imports this module)
        if kind == "dx" and result.dim != 3:
            raise InputError(f"{path}: OpenDX maps here hold 3-D grids; this FES has {result.dim} CVs")
        write = program_grids.write_colvars_grid if kind == "colvars" else program_grids.write_dx
        return _text_writer(lambda out: write(out, result))
    return _text_writer(lambda out: write_columns(out, result, delimiter))


def write_result(result: Any, path: PathLike, fmt: str | None = None, force: bool = False) -> Path:
    """Write a FESResult to `path` in `fmt` (default: from the extension); returns the path written."""
    write = result_writer(result, path, fmt)
    p = check_output_path(path, force=force)
    points = int(np.prod(result.values.shape))
    _output.check_sizes([(p, estimated_bytes(output_format(path, fmt), points, result.dim,
                                             result.error is not None))])
    return _output.write_all([(p, write)])[0]


# ----------------------------------------------------------------------------------------------- budgets
#: Characters per value written by the text formats (the widest number a format string gives, + separator).
_TEXT_WIDTH = {"plumed": 15, "dat": 18, "csv": 18, "cube": 14, "colvars": 22, "dx": 17}
#: Rows formatted at a time by the text writers: memory stays bounded whatever the grid size.
CHUNK_ROWS = 1 << 12


def estimated_bytes(kind: str, points: int, dim: int, error: bool = False) -> int:
    """An upper estimate of the file size of `points` grid points in format `kind` (checked before work)."""
    if kind == "npz":
        return points * 8 * (2 if error else 1) + 4096
    if kind == "plumed":
        per_point = (2 * dim + 1) * _TEXT_WIDTH[kind] + 1
    elif kind in ("cube", "dx"):
        per_point = _TEXT_WIDTH[kind]
    else:
        per_point = (dim + 2 + int(error)) * _TEXT_WIDTH[kind]
    return points * per_point + 4096


def writer_memory(kind: str, points: int, dim: int) -> int:
    """Memory a writer needs beyond the result itself: derivatives for PLUMED grids, chunks for all."""
    chunk = CHUNK_ROWS * (2 * dim + 2) * 48  # float arrays plus their formatted text
    return (points * dim * 8 if kind == "plumed" else 0) + chunk


# ----------------------------------------------------------------------------------------------- text writers
def _text_writer(body: Callable[[IO[str]], None]) -> Callable[[IO[bytes]], None]:
    def write(handle: IO[bytes]) -> None:
        out = io.TextIOWrapper(handle, encoding="utf-8", newline="\n", write_through=False)
        try:
            body(out)
            out.flush()
        finally:
            out.detach()
    return write


def _write_rows(out: IO[str], count: int, rows: Callable[[np.ndarray], list[np.ndarray]], fmt: str,
                delimiter: str, group: int = 0) -> None:
    """Rows 0..count-1, CHUNK_ROWS at a time: rows(index) gives the columns of those rows; with `group`, a
    blank line between each `group` rows (gnuplot blocks, PLUMED grid rows)."""
    for lo in range(0, count, CHUNK_ROWS):
        index = np.arange(lo, min(count, lo + CHUNK_ROWS))
        block = np.column_stack(rows(index))
        line = delimiter.join([fmt] * block.shape[1]) + "\n"
        text = []
        for k, row in enumerate(block.tolist(), start=lo):
            if group and k and k % group == 0:
                text.append("\n")
            text.append(line % tuple(row))
        out.write("".join(text))


def _header_lines(result: Any) -> list[str]:
    from .. import __version__  # deferred: its lookup (importlib.metadata) costs more than `import cyfes`
    lines = [f"cyfes {__version__} free energy surface in {result.units} at {result.temperature:g} K "
             f"(kT = {result.kT:.10g} {result.units}); {result.n_samples} samples, backend {result.backend}"]
    if getattr(result, "ess", None) is not None:  # Kish; blocks: the same over the blocks' weights
        lines.append(f"effective sample size {result.ess:.6g}" + (
            f"; {result.blocks} blocks, effective number {result.blocks_effective:.6g}"
            if getattr(result, "blocks_effective", None) is not None else ""))
    periods = [(n, p) for n, p in zip(cv_names(result), result.periodic or []) if p]
    if periods:  # read back by formats.read_grid, so basins and paths on this file wrap as the surface did
        lines.append(f"{PERIODIC_HEAD} " + " ".join(f"{n}={float(p)!r}" for n, p in periods))
    return lines


def _column_names(result: Any) -> list[str]:
    return cv_names(result) + [DAT_FREE_FIELD] + (["error"] if result.error is not None else [])


def _column_head(out: IO[str], result: Any, delimiter: str | None) -> None:
    names = _column_names(result)
    if delimiter:
        out.write(",".join(names) + "\n")
    else:
        out.write("".join(f"# {line}\n" for line in _header_lines(result)) + "# " + " ".join(names) + "\n")


def _values_at(result: Any, index: np.ndarray, order: str = "C") -> list[np.ndarray]:
    """Free energy (and error) at flat grid indices `index` (C or Fortran order)."""
    shape = result.values.shape
    where = np.unravel_index(index, shape, order=order)
    cols = [result.values[where]]
    if result.error is not None:
        cols.append(result.error[where])
    return cols


def write_columns(out: IO[str], result: Any, delimiter: str | None = None) -> None:
    """Columns `cv... free_energy [error]`, first CV slowest (C order); blank line between blocks (gnuplot)."""
    _column_head(out, result, delimiter)
    shape = result.values.shape
    group = 0 if delimiter or result.dim < 2 else int(np.prod(shape[1:]))

    def rows(index: np.ndarray) -> list[np.ndarray]:
        where = np.unravel_index(index, shape)
        return [a[i] for a, i in zip(result.axes, where)] + _values_at(result, index)

    _write_rows(out, int(np.prod(shape)), rows, "%.10g", delimiter or " ", group)


def write_points(out: IO[str], result: Any, delimiter: str | None = None) -> None:
    """Columns `cv... free_energy [error]` of an explicit grid, in its order."""
    _column_head(out, result, delimiter)

    def rows(index: np.ndarray) -> list[np.ndarray]:
        return [result.grid[index]] + _values_at(result, index)

    _write_rows(out, len(result.grid), rows, "%.10g", delimiter or " ")


def _as_text(write: Callable[[IO[str]], None]) -> str:
    out = io.StringIO()
    write(out)
    return out.getvalue()


def columns_text(result: Any, delimiter: str | None = None) -> str:
    return _as_text(lambda out: write_columns(out, result, delimiter))


def points_text(result: Any, delimiter: str | None = None) -> str:
    return _as_text(lambda out: write_points(out, result, delimiter))


def _full_period(axis: np.ndarray, period: float | None) -> bool:
    """True when `axis` samples one whole period without repeating its end point (a PLUMED periodic grid)."""
    if not period or len(axis) < 2:
        return False
    step = period / len(axis)
    return bool(np.allclose(np.diff(axis), step, rtol=1e-9, atol=1e-12 * period))


def _derivatives(values: np.ndarray, axes: list[np.ndarray], periodic: list[bool]) -> list[np.ndarray]:
    out = []
    with np.errstate(invalid="ignore", over="ignore"):  # +inf points (no mass) give inf/nan slopes
        for d, axis in enumerate(axes):
            if len(axis) < 2:
                out.append(np.zeros_like(values))
                continue
            if periodic[d]:
                step = axis[1] - axis[0]
                out.append((np.roll(values, -1, d) - np.roll(values, 1, d)) / (2 * step))
            else:
                out.append(np.gradient(values, axis, axis=d))
    return out


def write_plumed_grid(out: IO[str], result: Any) -> None:
    """PLUMED grid text as sum_hills writes it (first CV fastest, blank line after each row)."""
    names, axes = cv_names(result), result.axes
    periodic = [_full_period(a, p) for a, p in zip(axes, result.periodic)]
    lines = ["#! FIELDS " + " ".join(names + [PLUMED_FREE_FIELD] + [f"der_{n}" for n in names])]
    for name, axis, per, period in zip(names, axes, periodic, result.periodic):
        hi = axis[0] + period if per else axis[-1]
        nbins = len(axis)  # PLUMED writes the number of points (its reader takes one off a non-periodic CV)
        lines += [f"#! SET min_{name} {axis[0]:.17g}", f"#! SET max_{name} {hi:.17g}",
                  f"#! SET nbins_{name} {nbins}", f"#! SET periodic_{name} {'true' if per else 'false'}"]
    out.write("\n".join(lines) + "\n")
    ders = _derivatives(result.values, axes, periodic)
    shape = result.values.shape

    def rows(index: np.ndarray) -> list[np.ndarray]:
        where = np.unravel_index(index, shape, order="F")
        return [a[i] for a, i in zip(axes, where)] + [result.values[where]] + [g[where] for g in ders]

    # PLUMED's Grid::writeToFile: a blank line before each new row of the first CV
    _write_rows(out, int(np.prod(shape)), rows, "%14.9f", " ", len(axes[0]) if result.dim > 1 else 0)


def plumed_grid_text(result: Any) -> str:
    return _as_text(lambda out: write_plumed_grid(out, result))


def _cube_lines(shape: Sequence[int], origin: Sequence[float], steps: Sequence[float],
                comments: tuple[str, str]) -> list[str]:
    lines = [comments[0], comments[1], f"{1:5d} {origin[0]:12.6f} {origin[1]:12.6f} {origin[2]:12.6f}"]
    for d in range(3):
        vec = [0.0, 0.0, 0.0]
        vec[d] = float(steps[d])
        lines.append(f"{shape[d]:5d} {vec[0]:12.6f} {vec[1]:12.6f} {vec[2]:12.6f}")
    lines.append(f"{0:5d} {0.0:12.6f} {origin[0]:12.6f} {origin[1]:12.6f} {origin[2]:12.6f}")
    return lines


def _write_cube_values(out: IO[str], values: np.ndarray) -> None:
    """One z column after the other, 6 values a line, as Gaussian's cubegen writes."""
    rows = values.reshape(-1, values.shape[2])
    per_chunk = max(1, CHUNK_ROWS // max(1, values.shape[2]))
    for lo in range(0, len(rows), per_chunk):
        text = []
        for row in rows[lo:lo + per_chunk].tolist():
            for start in range(0, len(row), 6):
                text.append("".join(f" {v:12.5E}" for v in row[start:start + 6]) + "\n")
        out.write("".join(text))


def cube_text(values: np.ndarray, origin: Sequence[float], steps: Sequence[float], comments: tuple[str, str]) -> str:
    """Gaussian cube text of a 3-D array (x slowest, z fastest), one dummy atom (Z = 0) at the origin."""
    if values.ndim != 3:
        raise InputError(f"cube: the cube format holds 3-D grids; this grid is {values.ndim}-D")
    out = io.StringIO()
    out.write("\n".join(_cube_lines(values.shape, origin, steps, comments)) + "\n")
    _write_cube_values(out, values)
    return out.getvalue()


def _axis_step(axis: np.ndarray) -> float:
    return float(axis[1] - axis[0]) if len(axis) > 1 else 1.0


def cube_header(result: Any) -> list[str]:
    if result.dim != 3:
        raise InputError(f"cube: the cube format holds 3-D grids; this FES has {result.dim} CVs")
    names = cv_names(result)
    return _cube_lines(result.values.shape, [a[0] for a in result.axes], [_axis_step(a) for a in result.axes],
                       (f"cyfes free energy surface, {result.units} at {result.temperature:g} K",
                        f"axes {' '.join(names)} in CV units (as Bohr); x slowest, z fastest"))


def write_cube(out: IO[str], result: Any) -> None:
    out.write("\n".join(cube_header(result)) + "\n")
    _write_cube_values(out, result.values)


def cube_text_for(result: Any) -> str:
    return _as_text(lambda out: write_cube(out, result))


def npz_fields(result: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"values": result.values, "names": np.array(cv_names(result)),
                              "units": np.array(result.units), "temperature": np.array(result.temperature),
                              "kT": np.array(result.kT),
                              "periodic": np.array([p if p else np.nan for p in result.periodic], dtype=float)}
    if result.axes is not None:
        fields.update({f"axis{d}": a for d, a in enumerate(result.axes)})
    else:
        fields["grid"] = result.grid
    if result.error is not None:
        fields["error"] = result.error
    return fields
