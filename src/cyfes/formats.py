"""Files in and out: sample tables (PLUMED COLVAR, whitespace/CSV text, .npy) and FES grids.

Readers return plain arrays; every writer writes to a temporary name in the target directory and renames it,
so a failed run never leaves a partial file behind. Errors are `InputError`s whose message names the file
(and the line and column where that makes sense); only the CLI prints them.

Grid formats (`write_result`, chosen by extension or `fmt`):
  plumed  .grid .fes    PLUMED grid text as sum_hills writes it: `#! FIELDS cv... file.free der_cv...`,
                        `#! SET min_/max_/nbins_/periodic_` per CV, first CV fastest, a blank line after each row.
  dat     .dat .txt     columns `cv... free_energy [error]`, first CV slowest, a blank line between blocks.
  csv     .csv          the same columns, comma separated, one header line.
  cube    .cube .cub    Gaussian cube (3-D grids only), CV units written as they are (read as Bohr by viewers).
  npz     .npz          numpy archive: values, axis0.., names, error, units, temperature, kT, periodic.
"""
from __future__ import annotations

import ast
import gzip
import io
import math
import operator
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._errors import InputError

PathLike = Union[str, "os.PathLike[str]"]

#: Output formats and the file extensions that select them.
FORMATS: Dict[str, Tuple[str, ...]] = {
    "plumed": (".grid", ".fes"),
    "dat": (".dat", ".txt"),
    "csv": (".csv",),
    "cube": (".cube", ".cub"),
    "npz": (".npz",),
}
#: Angstrom to Bohr (CODATA 2018 Bohr radius 0.529177210903 A).
ANGSTROM_TO_BOHR = 1.0 / 0.529177210903
#: Name of the free energy field in PLUMED grids, as sum_hills writes it.
PLUMED_FREE_FIELD = "file.free"
DAT_FREE_FIELD = "free_energy"

_FIELDS_LINE = re.compile(r"#!\s*FIELDS\b(.*)")
_SET_LINE = re.compile(r"#!\s*SET\s+(\S+)\s+(\S+)")


# ----------------------------------------------------------------------------------------------- numbers
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.Pow: operator.pow}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}


def _eval_node(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _eval_node(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.Name) and node.id.lower() == "pi":
        return math.pi
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_eval_node(node.left), _eval_node(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval_node(node.operand))
    raise ValueError("not a number")


def parse_number(text: str, what: str = "value") -> float:
    """A number, or an arithmetic expression of numbers and `pi` (`-pi`, `2*pi`, `pi/2`, `1e-3`)."""
    try:
        value = _eval_node(ast.parse(text.strip(), mode="eval"))
    except (SyntaxError, ValueError, TypeError, ZeroDivisionError, OverflowError):
        raise InputError(f"{what}: {text!r} is not a number (numbers and pi expressions like -pi, 2*pi)") from None
    if not math.isfinite(value):
        raise InputError(f"{what}: {text!r} is not finite")
    return value


@dataclass
class _Directive:
    """A `#!` line of a PLUMED file: where it starts and ends in the text, and its content."""

    start: int
    end: int
    line: str


def _directives(text: str) -> List[_Directive]:
    """The `#!` lines at line starts, found with str.find (regexes with ^ scan every line: 5x slower)."""
    out, pos = [], 0
    while True:
        pos = text.find("#!", pos)
        if pos < 0:
            return out
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        if pos == 0 or text[pos - 1] == "\n":
            out.append(_Directive(pos, end, text[pos:end]))
        pos = end


def _set_values(directives: List[_Directive]) -> Dict[str, str]:
    sets = (_SET_LINE.match(d.line) for d in directives)
    return {m.group(1): m.group(2) for m in sets if m}


# ----------------------------------------------------------------------------------------------- tables
@dataclass
class Table:
    """Columns of samples read from a file.

    names: one per column (from `#! FIELDS` or a header line, else col0, col1, ...). data: (rows, columns).
    periodic: per column name the (low, high) domain declared by `#! SET min_X`/`max_X` lines (PLUMED writes
    them for periodic CVs). segments: how many `#! FIELDS` headers (restarts) were read. notes: what the reader
    forgave (a last row cut short by a crash before a restart), for the caller to tell the user."""

    names: List[str]
    data: np.ndarray
    source: str
    periodic: Dict[str, Tuple[float, float]] = field(default_factory=dict)
    segments: int = 1
    notes: List[str] = field(default_factory=list)

    def column_index(self, key: str) -> int:
        """The index of the column named `key`, or of the 0-based index `key`."""
        if key in self.names:
            return self.names.index(key)
        text = key.strip()
        if re.fullmatch(r"-?\d+", text):
            idx = int(text)
            if -len(self.names) <= idx < len(self.names):
                return idx % len(self.names)
            raise InputError(f"{self.source}: column index {idx} is out of range: the file has "
                             f"{len(self.names)} columns (0 to {len(self.names) - 1})")
        raise InputError(f"{self.source}: no column named {key!r}; available columns: {', '.join(self.names)}")

    def column(self, key: str) -> np.ndarray:
        return self.data[:, self.column_index(key)]


def read_table(path: PathLike) -> Table:
    """Read samples: `.npy` (1-D or 2-D array), else text (PLUMED COLVAR, whitespace or CSV, optional header),
    gzip-compressed when the name ends in .gz."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not a data file")
    if p.suffix.lower() == ".npy":
        return _read_npy(p)
    try:
        raw = p.read_bytes()
        if p.suffix.lower() == ".gz":
            raw = gzip.decompress(raw)
    except OSError as exc:  # gzip's BadGzipFile is an OSError too
        raise InputError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except EOFError:
        raise InputError(f"{p}: cannot read: the gzip stream is cut short") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{p}: not a text file (byte {exc.start} is not UTF-8); "
                         "cyfes reads text tables and .npy arrays") from None
    return parse_table_text(text, str(p))


def _read_npy(p: Path) -> Table:
    try:
        arr = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{p}: cannot read as a .npy array: {exc}") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.size == 0:
        raise InputError(f"{p}: expected a non-empty 1-D or 2-D array, got shape {arr.shape}")
    if arr.dtype.names is not None:
        names = list(arr.dtype.names)
        arr = np.stack([np.asarray(arr[n], dtype=np.float64) for n in names], axis=1)
        return Table(names, arr, str(p))
    if not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{p}: expected a numeric array, got dtype {arr.dtype}")
    return Table([f"col{i}" for i in range(arr.shape[1])], np.asarray(arr, dtype=np.float64), str(p))


def parse_table_text(text: str, source: str = "<text>") -> Table:
    """Parse a text table; see read_table. `source` names the input in error messages."""
    if not text.strip():
        raise InputError(f"{source}: is empty")
    directives = _directives(text)
    heads = [(d, m) for d in directives for m in [_FIELDS_LINE.match(d.line)] if m]
    if not heads:
        return _plain_table(text, source)
    periodic = _periodic_domains(_set_values(directives), source)
    parts: List[Tuple[List[str], np.ndarray]] = []
    notes: List[str] = []
    pre = text[:heads[0][0].start]
    if _has_data(pre):
        raise InputError(f"{source}: line {_first_data_line(pre, 1)}: data before the first '#! FIELDS' header")
    for k, (head, match) in enumerate(heads):
        names = match.group(1).split()
        if not names:
            raise InputError(f"{source}: line {text.count(chr(10), 0, head.start) + 1}: '#! FIELDS' names no fields")
        end = heads[k + 1][0].start if k + 1 < len(heads) else len(text)
        first_line = text.count("\n", 0, head.end) + 1  # body starts with the header line's own "\n"
        body = text[head.end:end]
        if _has_data(body):
            parts.append((names, _load_block(body, None, len(names), source, first_line, notes)))
    if not parts:
        raise InputError(f"{source}: has a '#! FIELDS' header but no data rows")
    names, data = _merge_segments(parts, source)
    return Table(names, data, source, periodic, segments=len(heads), notes=notes)


_DATA_LINE = re.compile(r"^[ \t]*[^#\s]", re.MULTILINE)


def _has_data(text: str) -> bool:
    """Whether `text` has a line that is neither blank nor a comment (stops at the first one)."""
    return _DATA_LINE.search(text) is not None


def _first_data_line(text: str, first_line: int) -> int:
    for i, line in enumerate(text.splitlines()):
        if line.strip() and not line.lstrip().startswith("#"):
            return first_line + i
    return first_line


def _periodic_domains(sets: Dict[str, str], source: str) -> Dict[str, Tuple[float, float]]:
    out: Dict[str, Tuple[float, float]] = {}
    for key, value in sets.items():
        if key.startswith("min_") and "max_" + key[4:] in sets:
            name = key[4:]
            lo = parse_number(value, f"{source}: #! SET {key}")
            hi = parse_number(sets["max_" + name], f"{source}: #! SET max_{name}")
            if hi > lo:
                out[name] = (lo, hi)
    return out


def _merge_segments(parts: List[Tuple[List[str], np.ndarray]], source: str) -> Tuple[List[str], np.ndarray]:
    """Concatenate restart segments; when their FIELDS differ keep the columns every segment has."""
    names = parts[0][0]
    if all(n == names for n, _ in parts):
        return names, np.concatenate([d for _, d in parts]) if len(parts) > 1 else parts[0][1]
    common = [n for n in names if all(n in other for other, _ in parts)]
    if not common:
        raise InputError(f"{source}: the '#! FIELDS' headers of its restarts have no column in common")
    blocks = [d[:, [n_list.index(c) for c in common]] for n_list, d in parts]
    return common, np.concatenate(blocks)


def _plain_table(text: str, source: str) -> Table:
    """Whitespace or CSV text; the first non-comment line is a header when it is not all numbers."""
    lines = text.splitlines()
    idx = next(i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#"))
    first = lines[idx]
    delimiter = "," if "," in first else None
    tokens = [t.strip() for t in (first.split(",") if delimiter else first.split())]
    header = not all(_is_float(t) for t in tokens)
    if header:
        names = [t or f"col{i}" for i, t in enumerate(tokens)]
        body = "\n".join(lines[idx + 1:])
        first_line = idx + 2
        if not _has_data(body):
            raise InputError(f"{source}: has a header line but no data rows")
    else:
        names, body, first_line = [f"col{i}" for i in range(len(tokens))], "\n".join(lines[idx:]), idx + 1
    data = _load_block(body, delimiter, len(names), source, first_line)
    return Table(names, data, source)


def _is_float(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def _load_block(body: str, delimiter: Optional[str], ncols: int, source: str, first_line: int,
                notes: Optional[List[str]] = None) -> np.ndarray:
    """Numbers of a block of lines through numpy's C parser; on failure find the exact line in Python.

    With `notes` (COLVAR segments), a last row cut short (a run killed while writing, then restarted) is dropped
    and said in `notes` instead of failing."""
    try:
        data = np.loadtxt(io.StringIO(body), comments="#", delimiter=delimiter, ndmin=2, dtype=np.float64)
    except ValueError:
        index, message, short = _first_bad_line(body, delimiter, ncols)
        lines = body.splitlines()
        if notes is not None and short and not _has_data("\n".join(lines[index + 1:])):
            notes.append(f"{source}: line {first_line + index}: dropped a row cut short{message}")
            rest = "\n".join(lines[:index])
            return _load_block(rest, delimiter, ncols, source, first_line) if _has_data(rest) \
                else np.empty((0, ncols))
        raise InputError(f"{source}: line {first_line + index}{message}") from None
    if data.shape[1] != ncols:
        line = _first_data_line(body, first_line)
        raise InputError(f"{source}: line {line}: {data.shape[1]} columns but the header names {ncols}")
    return data


def _first_bad_line(body: str, delimiter: Optional[str], ncols: int) -> Tuple[int, str, bool]:
    """(index of the first bad line in `body`, what is wrong, whether it is merely short of columns)."""
    for i, line in enumerate(body.splitlines()):
        stripped = line.split("#", 1)[0]
        if not stripped.strip():
            continue
        tokens = [t.strip() for t in stripped.split(delimiter)] if delimiter else stripped.split()
        for c, tok in enumerate(tokens):
            if not _is_float(tok):
                return i, f", column {c + 1}: {tok!r} is not a number", False
        if len(tokens) != ncols:
            return i, f": {len(tokens)} columns, expected {ncols} (rows of different lengths)", len(tokens) < ncols
    raise AssertionError("numpy rejected a block in which no bad line was found")  # pragma: no cover


# ----------------------------------------------------------------------------------------------- writing
def output_format(path: PathLike, fmt: Optional[str] = None) -> str:
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


def check_output_path(path: PathLike) -> Path:
    """`path` as a Path, after checking that its directory exists and is a directory."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{p}: output directory {str(parent)!r} does not exist")
    if p.is_dir():
        raise InputError(f"{p}: is a directory; give a file name")
    return p


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call `write` on a temporary file next to `path`, then rename it to `path` (no partial files)."""
    p = check_output_path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=str(p.parent or "."))
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: PathLike, text: str) -> Path:
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def cv_names(result: Any) -> List[str]:
    return list(result.names) if result.names else [f"cv{d + 1}" for d in range(result.dim)]


def write_result(result: Any, path: PathLike, fmt: Optional[str] = None) -> Path:
    """Write a FESResult to `path` in `fmt` (default: from the extension); returns the path written."""
    kind = output_format(path, fmt)
    check_output_path(path)
    if kind == "npz":
        return atomic_write(path, lambda fh: np.savez(fh, **npz_fields(result)))
    if result.axes is None:
        if kind not in ("dat", "csv"):
            raise InputError(f"{path}: the {kind} format needs a regular grid (bins), not explicit points")
        return write_text(path, points_text(result, "," if kind == "csv" else None))
    if kind == "plumed":
        return write_text(path, plumed_grid_text(result))
    if kind == "cube":
        return write_text(path, cube_text_for(result))
    return write_text(path, columns_text(result, "," if kind == "csv" else None))


def _header_lines(result: Any) -> List[str]:
    from . import __version__
    lines = [f"cyfes {__version__} free energy surface in {result.units} at {result.temperature:g} K "
             f"(kT = {result.kT:.10g} {result.units}); {result.n_samples} samples, backend {result.backend}"]
    if getattr(result, "ess", None) is not None:  # Kish; blocks: the same over the blocks' weights
        lines.append(f"effective sample size {result.ess:.6g}" + (
            f"; {result.blocks} blocks, effective number {result.blocks_effective:.6g}"
            if getattr(result, "blocks_effective", None) is not None else ""))
    return lines


def _fmt_block(arr: np.ndarray, delimiter: Optional[str]) -> str:
    buf = io.StringIO()
    np.savetxt(buf, arr, fmt="%.10g", delimiter=delimiter or " ")
    return buf.getvalue()


def columns_text(result: Any, delimiter: Optional[str] = None) -> str:
    """Columns `cv... free_energy [error]`, first CV slowest (C order); blank line between blocks (gnuplot)."""
    names = cv_names(result) + [DAT_FREE_FIELD] + (["error"] if result.error is not None else [])
    cols = [result.points(), result.values.reshape(-1, 1)]
    if result.error is not None:
        cols.append(result.error.reshape(-1, 1))
    table = np.hstack(cols)
    if delimiter:
        return ",".join(names) + "\n" + _fmt_block(table, delimiter)
    head = "".join(f"# {line}\n" for line in _header_lines(result)) + "# " + " ".join(names) + "\n"
    if result.dim < 2:
        return head + _fmt_block(table, None)
    blocks = np.split(table, len(result.axes[0]))
    return head + "\n".join(_fmt_block(b, None) for b in blocks)


def points_text(result: Any, delimiter: Optional[str] = None) -> str:
    names = cv_names(result) + [DAT_FREE_FIELD] + (["error"] if result.error is not None else [])
    cols = [result.grid, result.values.reshape(-1, 1)] + ([result.error.reshape(-1, 1)] if result.error is not None
                                                             else [])
    table = np.hstack(cols)
    if delimiter:
        return ",".join(names) + "\n" + _fmt_block(table, delimiter)
    return "".join(f"# {line}\n" for line in _header_lines(result)) + "# " + " ".join(names) + "\n" + \
        _fmt_block(table, None)


def _full_period(axis: np.ndarray, period: Optional[float]) -> bool:
    """True when `axis` samples one whole period without repeating its end point (a PLUMED periodic grid)."""
    if not period or len(axis) < 2:
        return False
    step = period / len(axis)
    return bool(np.allclose(np.diff(axis), step, rtol=1e-9, atol=1e-12 * period))


def _derivatives(values: np.ndarray, axes: List[np.ndarray], periodic: List[bool]) -> List[np.ndarray]:
    out = []
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


def plumed_grid_text(result: Any) -> str:
    """PLUMED grid text as sum_hills writes it (first CV fastest, blank line after each row)."""
    names, axes = cv_names(result), result.axes
    periodic = [_full_period(a, p) for a, p in zip(axes, result.periodic)]
    lines = ["#! FIELDS " + " ".join(names + [PLUMED_FREE_FIELD] + [f"der_{n}" for n in names])]
    for name, axis, per, period in zip(names, axes, periodic, result.periodic):
        hi = axis[0] + period if per else axis[-1]
        nbins = len(axis)  # PLUMED writes the number of points (its reader takes one off a non-periodic CV)
        lines += [f"#! SET min_{name} {axis[0]:.17g}", f"#! SET max_{name} {hi:.17g}",
                  f"#! SET nbins_{name} {nbins}", f"#! SET periodic_{name} {'true' if per else 'false'}"]
    ders = _derivatives(result.values, axes, periodic)
    mesh = np.meshgrid(*axes, indexing="ij")
    cols = [m.ravel(order="F") for m in mesh] + [result.values.ravel(order="F")] + [g.ravel(order="F") for g in ders]
    table = np.stack(cols, axis=1)
    buf = io.StringIO()
    np.savetxt(buf, table, fmt="%14.9f", delimiter=" ")
    rows = buf.getvalue().splitlines()
    n0 = len(axes[0])
    body: List[str] = []
    for start in range(0, len(rows), n0):  # PLUMED's Grid::writeToFile: a blank line before each new row
        if start and result.dim > 1:
            body.append("")
        body.extend(rows[start:start + n0])
    return "\n".join(lines + body) + "\n"


def cube_text(values: np.ndarray, origin: Sequence[float], steps: Sequence[float], comments: Tuple[str, str]) -> str:
    """Gaussian cube text of a 3-D array (x slowest, z fastest), one dummy atom (Z = 0) at the origin."""
    if values.ndim != 3:
        raise InputError(f"cube: the cube format holds 3-D grids; this grid is {values.ndim}-D")
    lines = [comments[0], comments[1], f"{1:5d} {origin[0]:12.6f} {origin[1]:12.6f} {origin[2]:12.6f}"]
    for d in range(3):
        vec = [0.0, 0.0, 0.0]
        vec[d] = float(steps[d])
        lines.append(f"{values.shape[d]:5d} {vec[0]:12.6f} {vec[1]:12.6f} {vec[2]:12.6f}")
    lines.append(f"{0:5d} {0.0:12.6f} {origin[0]:12.6f} {origin[1]:12.6f} {origin[2]:12.6f}")
    rows = values.reshape(-1, values.shape[2])
    out = io.StringIO()
    out.write("\n".join(lines) + "\n")
    for row in rows:  # one z column, 6 values a line, as Gaussian's cubegen writes
        for start in range(0, len(row), 6):
            out.write("".join(f" {v:12.5E}" for v in row[start:start + 6]) + "\n")
    return out.getvalue()


def _axis_step(axis: np.ndarray) -> float:
    return float(axis[1] - axis[0]) if len(axis) > 1 else 1.0


def cube_text_for(result: Any) -> str:
    if result.dim != 3:
        raise InputError(f"cube: the cube format holds 3-D grids; this FES has {result.dim} CVs")
    names = cv_names(result)
    return cube_text(result.values, [a[0] for a in result.axes], [_axis_step(a) for a in result.axes],
                     (f"cyfes free energy surface, {result.units} at {result.temperature:g} K",
                      f"axes {' '.join(names)} in CV units (as Bohr); x slowest, z fastest"))


def npz_fields(result: Any) -> Dict[str, Any]:
    fields: Dict[str, Any] = {"values": result.values, "names": np.array(cv_names(result)),
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


# ----------------------------------------------------------------------------------------------- reading grids
@dataclass
class Grid:
    """A free energy grid read back from a file: axes per CV, values shaped by the axes (matrix indexing)."""

    names: List[str]
    axes: List[np.ndarray]
    values: np.ndarray
    error: Optional[np.ndarray] = None
    periodic: List[bool] = field(default_factory=list)


def read_grid(path: PathLike, fmt: Optional[str] = None) -> Grid:
    """Read a grid written by write_result (or by PLUMED) back."""
    kind = output_format(path, fmt)
    p = Path(path)
    if kind == "npz":
        return _read_npz_grid(p)
    try:
        text = p.read_text()
    except OSError as exc:
        raise InputError(f"{p}: cannot read: {exc.strerror or exc}") from None
    if kind == "plumed":
        return parse_plumed_grid(text, str(p))
    if kind == "cube":
        return parse_cube(text, str(p))
    return _parse_columns(text, str(p))


def _read_npz_grid(p: Path) -> Grid:
    with np.load(p, allow_pickle=False) as z:
        names = [str(n) for n in z["names"]]
        axes = [z[f"axis{d}"] for d in range(len(names))]
        error = z["error"] if "error" in z.files else None
        periodic = [bool(np.isfinite(x)) for x in z["periodic"]]
        return Grid(names, axes, z["values"], error, periodic)


def parse_plumed_grid(text: str, source: str = "<grid>") -> Grid:
    table = parse_table_text(text, source)
    sets = _set_values(_directives(text))
    names = [n for n in table.names if f"nbins_{n}" in sets]
    dim = len(names)
    if dim == 0:
        raise InputError(f"{source}: no '#! SET nbins_' lines; not a PLUMED grid")
    periodic = [sets.get(f"periodic_{n}", "false") == "true" for n in names]
    shape = tuple(int(sets[f"nbins_{n}"]) for n in names)  # points per CV, as PLUMED writes them
    if int(np.prod(shape)) != len(table.data):  # cyfes before 1.0.1 wrote one less on a non-periodic CV
        shape = tuple(int(sets[f"nbins_{n}"]) + (0 if per else 1) for n, per in zip(names, periodic))
    free = next(i for i, n in enumerate(table.names) if n not in names and not n.startswith("der_"))
    values = table.data[:, free].reshape(shape, order="F")
    coords = [table.data[:, table.column_index(n)].reshape(shape, order="F") for n in names]
    axes = [np.moveaxis(c, d, 0)[(slice(None),) + (0,) * (dim - 1)] for d, c in enumerate(coords)]
    return Grid(names, axes, values, None, periodic)


def _parse_columns(text: str, source: str) -> Grid:
    lines = [line for line in text.splitlines() if line.strip()]
    header = [line for line in lines if line.startswith("#")]
    if header:
        names = header[-1].lstrip("#").split()
        body = "\n".join(line for line in lines if not line.startswith("#"))
        data = np.loadtxt(io.StringIO(body), ndmin=2)
    else:
        names = lines[0].split(",")
        data = np.loadtxt(io.StringIO("\n".join(lines[1:])), delimiter=",", ndmin=2)
    dim = names.index(DAT_FREE_FIELD)
    axes = [np.unique(data[:, d]) for d in range(dim)]
    shape = tuple(len(a) for a in axes)
    error = data[:, dim + 1].reshape(shape) if "error" in names else None
    return Grid(names[:dim], axes, data[:, dim].reshape(shape), error, [False] * dim)


def parse_cube(text: str, source: str = "<cube>") -> Grid:
    """A Gaussian cube's grid (orthogonal axes) in the file's own length unit."""
    lines = text.splitlines()
    try:
        natoms, *origin = lines[2].split()[:4]
        natoms_i = abs(int(natoms))
        counts, steps = [], []
        for d in range(3):
            tok = lines[3 + d].split()
            counts.append(int(tok[0]))
            steps.append(float(tok[1 + d]))
        values = np.array(" ".join(lines[6 + natoms_i:]).split(), dtype=float)
        values = values.reshape(counts)
    except (IndexError, ValueError) as exc:
        raise InputError(f"{source}: not a Gaussian cube file ({exc})") from None
    axes = [float(origin[d]) + steps[d] * np.arange(counts[d]) for d in range(3)]
    return Grid(["x", "y", "z"], axes, values, None, [False] * 3)
