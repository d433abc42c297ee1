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
import zlib
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
#: Name of the free energy field in PLUMED grids, as sum_hills writes it.
PLUMED_FREE_FIELD = "file.free"
DAT_FREE_FIELD = "free_energy"

#: Longest text parse_number reads (an expression like `2*pi/3` is a few characters).
MAX_NUMBER_TEXT = 200
#: Largest input read, as a fraction of physical memory (after decompression: a .gz is read with a bound, so a
#: small file that inflates to terabytes fails early). CYFES_MAX_INPUT_BYTES sets the bound in bytes instead.
INPUT_MEMORY_FRACTION = 0.125
_NUMBER = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)", re.IGNORECASE | re.ASCII)

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


def parse_positive_int(text: str, what: str) -> int:
    """A command-line count (bins, a stride): a whole number >= 1, else one error naming the option."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise InputError(f"{what}: expected a positive integer, got {text!r}") from None
    if value < 1:
        raise InputError(f"{what}: expected a positive integer, got {text!r}")
    return value


def parse_number(text: str, what: str = "value") -> float:
    """A number, or an arithmetic expression of numbers and `pi` (`-pi`, `2*pi`, `pi/2`, `1e-3`)."""
    if len(text) > MAX_NUMBER_TEXT:  # the parser recurses once per operator: bound the depth
        raise InputError(f"{what}: {_clip(text)} is too long for a number (at most {MAX_NUMBER_TEXT} characters)")
    try:
        value = _eval_node(ast.parse(text.strip(), mode="eval"))
    except (SyntaxError, ValueError, TypeError, ZeroDivisionError, OverflowError, RecursionError, MemoryError):
        raise InputError(f"{what}: {_clip(text)} is not a number (numbers and pi expressions like -pi, 2*pi)") \
            from None
    if not math.isfinite(value):
        raise InputError(f"{what}: {_clip(text)} is not finite")
    return value


def _clip(text: str, width: int = 40) -> str:
    """`text` quoted for a one-line message, shortened when long."""
    return repr(text) if len(text) <= width else repr(text[:width]) + f"... ({len(text)} characters)"


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
    dropped: Dict[str, str] = field(default_factory=dict)

    def column_index(self, key: str) -> int:
        """The index of the column named `key`, or of the 0-based index `key`."""
        if key in self.names:
            return self.names.index(key)
        if key in self.dropped:
            raise InputError(f"{self.source}: column {key!r} is {self.dropped[key]}, so it was left out; "
                             f"columns every segment has: {', '.join(self.names)}")
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
    raw = _read_bounded(p, max_input_bytes())
    try:
        text = raw.decode("utf-8-sig")  # a byte order mark is not part of the first column's name
    except UnicodeDecodeError as exc:
        raise InputError(f"{p}: not a text file (byte {exc.start} is not UTF-8); "
                         "cyfes reads text tables and .npy arrays") from None
    return parse_table_text(text, str(p))


def max_input_bytes() -> int:
    """The bound on one input's (decompressed) size: CYFES_MAX_INPUT_BYTES, else a fraction of memory."""
    text = os.environ.get("CYFES_MAX_INPUT_BYTES", "").strip()
    if text:
        try:
            return max(1, int(text))
        except ValueError:
            raise InputError(f"CYFES_MAX_INPUT_BYTES: expected a number of bytes, got {text!r}") from None
    return int(physical_memory() * INPUT_MEMORY_FRACTION)


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 34


def _read_bounded(p: Path, limit: int) -> bytes:
    """The file's bytes (decompressed for .gz), refused once more than `limit` would be held in memory."""
    try:
        with (gzip.open(p, "rb") if p.suffix.lower() == ".gz" else open(p, "rb")) as handle:
            raw = handle.read(limit + 1)
    except OSError as exc:  # gzip's BadGzipFile is an OSError too
        raise InputError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except EOFError:
        raise InputError(f"{p}: cannot read: the gzip stream is cut short") from None
    except zlib.error as exc:
        raise InputError(f"{p}: cannot read: corrupt gzip data ({exc})") from None
    if len(raw) > limit:
        raise InputError(f"{p}: is larger than {limit:,} bytes" + (" decompressed" if p.suffix.lower() == ".gz"
                         else "") + "; cyfes reads inputs into memory (set CYFES_MAX_INPUT_BYTES to allow more)")
    return raw


def _read_npy(p: Path) -> Table:
    try:
        mapped = np.load(p, mmap_mode="r", allow_pickle=False)  # the header only: data is read after the checks
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{p}: cannot read as a .npy array: {_clip(str(exc), 120)}") from None
    if not isinstance(mapped, np.ndarray):
        raise InputError(f"{p}: is not a .npy array")
    names = list(mapped.dtype.names) if mapped.dtype.names else None
    width = len(names) if names else (mapped.shape[1] if mapped.ndim == 2 else 1)
    rows = mapped.shape[0] if mapped.ndim else 0
    if mapped.ndim not in (1, 2) or mapped.size == 0 or (names and mapped.ndim != 1):
        raise InputError(f"{p}: expected a non-empty 1-D or 2-D array (or a 1-D array with named fields), "
                         f"got shape {mapped.shape}")
    limit = max_input_bytes()
    if max(mapped.nbytes, rows * width * 8) > limit:
        raise InputError(f"{p}: {rows:,} x {width} values are more than {limit:,} bytes; "
                         "set CYFES_MAX_INPUT_BYTES to allow more")
    if names:
        columns = [_npy_column(p, mapped, n) for n in names]
        _check_unique(names, str(p), "field")
        return Table(names, np.stack(columns, axis=1), str(p))
    arr = _npy_numbers(p, mapped.dtype, mapped)
    return Table([f"col{i}" for i in range(width)], arr.reshape(rows, width), str(p))


def _npy_column(p: Path, mapped: np.ndarray, name: str) -> np.ndarray:
    sub = mapped.dtype.fields[name][0]
    if sub.shape or sub.names:
        raise InputError(f"{p}: field {name!r} holds {'an array' if sub.shape else 'fields'} ({sub}); "
                         "cyfes reads one number per field")
    return _npy_numbers(p, sub, mapped[name], f"field {name!r}: ")


def _npy_numbers(p: Path, dtype: np.dtype, values: np.ndarray, what: str = "") -> np.ndarray:
    """The values as float64: integers and floats only (complex numbers would lose their imaginary part)."""
    if dtype.kind not in "iuf":
        kind = "complex numbers" if dtype.kind == "c" else f"dtype {dtype}"
        raise InputError(f"{p}: {what}holds {kind}; cyfes reads real numbers (integer or float arrays)")
    try:
        return np.array(values, dtype=np.float64)
    except (OSError, ValueError) as exc:  # a file truncated after its header
        raise InputError(f"{p}: cannot read as a .npy array: {_clip(str(exc), 120)}") from None


def _check_unique(names: Sequence[str], source: str, what: str = "column") -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise InputError(f"{source}: {what} name {name!r} appears twice; names must be unique")
        seen.add(name)


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
        line = text.count(chr(10), 0, head.start) + 1
        if not names:
            raise InputError(f"{source}: line {line}: '#! FIELDS' names no fields")
        _check_unique(names, f"{source}: line {line}")
        end = heads[k + 1][0].start if k + 1 < len(heads) else len(text)
        first_line = text.count("\n", 0, head.end) + 1  # body starts with the header line's own "\n"
        body = text[head.end:end]
        if _has_data(body):
            parts.append((names, _load_block(body, None, len(names), source, first_line, notes)))
    if not parts:
        raise InputError(f"{source}: has a '#! FIELDS' header but no data rows")
    names, data, dropped = _merge_segments(parts, source)
    notes += [f"{source}: column {n!r} is {why}; it is left out" for n, why in dropped.items()]
    return Table(names, data, source, periodic, segments=len(heads), notes=notes, dropped=dropped)


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


def _merge_segments(parts: List[Tuple[List[str], np.ndarray]],
                    source: str) -> Tuple[List[str], np.ndarray, Dict[str, str]]:
    """Concatenate restart segments; when their FIELDS differ keep the columns every segment has, and say
    (per left-out column) which segments had it, so asking for one gives that reason."""
    names = parts[0][0]
    if all(n == names for n, _ in parts):
        return names, np.concatenate([d for _, d in parts]) if len(parts) > 1 else parts[0][1], {}
    common = [n for n in names if all(n in other for other, _ in parts)]
    if not common:
        raise InputError(f"{source}: the '#! FIELDS' headers of its restarts have no column in common")
    everything = dict.fromkeys(n for n_list, _ in parts for n in n_list)
    dropped = {n: "only in data segments " + ", ".join(str(k + 1) for k, (n_list, _) in enumerate(parts)
                                                       if n in n_list) + f" of {len(parts)}"
               for n in everything if n not in common}
    blocks = [d[:, [n_list.index(c) for c in common]] for n_list, d in parts]
    return common, np.concatenate(blocks), dropped


def _plain_table(text: str, source: str) -> Table:
    """Whitespace or CSV text; the first non-comment line is a header when it is not all numbers."""
    lines = text.splitlines()
    idx = next((i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")), None)
    if idx is None:
        raise InputError(f"{source}: has only comment lines, no data rows")
    first = lines[idx]
    delimiter = "," if "," in first else None
    tokens = [t.strip() for t in (first.split(",") if delimiter else first.split())]
    header = not all(_is_float(t) for t in tokens)
    if header:
        names = [t or f"col{i}" for i, t in enumerate(tokens)]
        _check_unique(names, f"{source}: line {idx + 1}")
        body = "\n".join(lines[idx + 1:])
        first_line = idx + 2
        if not _has_data(body):
            raise InputError(f"{source}: has a header line but no data rows")
    else:
        names, body, first_line = [f"col{i}" for i in range(len(tokens))], "\n".join(lines[idx:]), idx + 1
    data = _load_block(body, delimiter, len(names), source, first_line)
    return Table(names, data, source)


def _is_float(token: str) -> bool:
    """Whether numpy's text parser reads `token` as a number (Python's float() also takes `1_000` and
    non-ASCII digits, which numpy does not)."""
    return _NUMBER.fullmatch(token.strip()) is not None


def _load_block(body: str, delimiter: Optional[str], ncols: int, source: str, first_line: int,
                notes: Optional[List[str]] = None) -> np.ndarray:
    """Numbers of a block of lines through numpy's C parser; on failure find the exact line in Python.

    With `notes` (COLVAR segments), a last row cut short (a run killed while writing, then restarted) is dropped
    and said in `notes` instead of failing."""
    try:
        data = np.loadtxt(io.StringIO(body), comments="#", delimiter=delimiter, ndmin=2, dtype=np.float64)
    except ValueError as exc:
        found = _first_bad_line(body, delimiter, ncols)
        if found is None:  # numpy refused something this module's check accepts: report numpy's reason
            raise InputError(f"{source}: cannot read the table from line {first_line}: "
                             f"{_clip(' '.join(str(exc).split()), 160)}") from None
        index, message, short = found
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


def _first_bad_line(body: str, delimiter: Optional[str], ncols: int) -> Optional[Tuple[int, str, bool]]:
    """(index of the first bad line in `body`, what is wrong, whether it is merely short of columns)."""
    for i, line in enumerate(body.splitlines()):
        stripped = line.split("#", 1)[0]
        if not stripped.strip():
            continue
        tokens = [t.strip() for t in stripped.split(delimiter)] if delimiter else stripped.split()
        for c, tok in enumerate(tokens):
            if not _is_float(tok):
                return i, f", column {c + 1}: {_clip(tok)} is not a number", False
        if len(tokens) != ncols:
            return i, f": {len(tokens)} columns, expected {ncols} (rows of different lengths)", len(tokens) < ncols
    return None


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


def check_output_path(path: PathLike, inputs: Sequence[PathLike] = (), force: bool = False) -> Path:
    """`path` as a Path, after the refusal rules of cyfes._output (directory exists and takes files; not a
    FIFO, device, link, read-only file or input unless `force`)."""
    from . import _output
    return _output.check_target(path, inputs, force)


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], None], force: bool = False) -> Path:
    """Call `write` on a temporary file next to `path`, then rename it to `path` (no partial files)."""
    from . import _output
    p = check_output_path(path, force=force)
    return _output.write_all([(p, write)])[0]


def write_text(path: PathLike, text: str, force: bool = False) -> Path:
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")), force)


def cv_names(result: Any) -> List[str]:
    return list(result.names) if result.names else [f"cv{d + 1}" for d in range(result.dim)]


def result_writer(result: Any, path: PathLike, fmt: Optional[str] = None) -> Callable[[IO[bytes]], None]:
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
    return _text_writer(lambda out: write_columns(out, result, delimiter))


def write_result(result: Any, path: PathLike, fmt: Optional[str] = None, force: bool = False) -> Path:
    """Write a FESResult to `path` in `fmt` (default: from the extension); returns the path written."""
    from . import _output
    write = result_writer(result, path, fmt)
    p = check_output_path(path, force=force)
    points = int(np.prod(result.values.shape))
    _output.check_sizes([(p, estimated_bytes(output_format(path, fmt), points, result.dim,
                                             result.error is not None))])
    return _output.write_all([(p, write)])[0]


# ----------------------------------------------------------------------------------------------- budgets
#: Characters per value written by the text formats (the widest number a format string gives, + separator).
_TEXT_WIDTH = {"plumed": 15, "dat": 18, "csv": 18, "cube": 14}
#: Rows formatted at a time by the text writers: memory stays bounded whatever the grid size.
CHUNK_ROWS = 1 << 12


def estimated_bytes(kind: str, points: int, dim: int, error: bool = False) -> int:
    """An upper estimate of the file size of `points` grid points in format `kind` (checked before work)."""
    if kind == "npz":
        return points * 8 * (2 if error else 1) + 4096
    if kind == "plumed":
        per_point = (2 * dim + 1) * _TEXT_WIDTH[kind] + 1
    elif kind == "cube":
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


def _write_rows(out: IO[str], count: int, rows: Callable[[np.ndarray], List[np.ndarray]], fmt: str,
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


def _header_lines(result: Any) -> List[str]:
    from . import __version__
    lines = [f"cyfes {__version__} free energy surface in {result.units} at {result.temperature:g} K "
             f"(kT = {result.kT:.10g} {result.units}); {result.n_samples} samples, backend {result.backend}"]
    if getattr(result, "ess", None) is not None:  # Kish; blocks: the same over the blocks' weights
        lines.append(f"effective sample size {result.ess:.6g}" + (
            f"; {result.blocks} blocks, effective number {result.blocks_effective:.6g}"
            if getattr(result, "blocks_effective", None) is not None else ""))
    return lines


def _column_names(result: Any) -> List[str]:
    return cv_names(result) + [DAT_FREE_FIELD] + (["error"] if result.error is not None else [])


def _column_head(out: IO[str], result: Any, delimiter: Optional[str]) -> None:
    names = _column_names(result)
    if delimiter:
        out.write(",".join(names) + "\n")
    else:
        out.write("".join(f"# {line}\n" for line in _header_lines(result)) + "# " + " ".join(names) + "\n")


def _values_at(result: Any, index: np.ndarray, order: str = "C") -> List[np.ndarray]:
    """Free energy (and error) at flat grid indices `index` (C or Fortran order)."""
    shape = result.values.shape
    where = np.unravel_index(index, shape, order=order)
    cols = [result.values[where]]
    if result.error is not None:
        cols.append(result.error[where])
    return cols


def write_columns(out: IO[str], result: Any, delimiter: Optional[str] = None) -> None:
    """Columns `cv... free_energy [error]`, first CV slowest (C order); blank line between blocks (gnuplot)."""
    _column_head(out, result, delimiter)
    shape = result.values.shape
    group = 0 if delimiter or result.dim < 2 else int(np.prod(shape[1:]))

    def rows(index: np.ndarray) -> List[np.ndarray]:
        where = np.unravel_index(index, shape)
        return [a[i] for a, i in zip(result.axes, where)] + _values_at(result, index)

    _write_rows(out, int(np.prod(shape)), rows, "%.10g", delimiter or " ", group)


def write_points(out: IO[str], result: Any, delimiter: Optional[str] = None) -> None:
    """Columns `cv... free_energy [error]` of an explicit grid, in its order."""
    _column_head(out, result, delimiter)

    def rows(index: np.ndarray) -> List[np.ndarray]:
        return [result.grid[index]] + _values_at(result, index)

    _write_rows(out, len(result.grid), rows, "%.10g", delimiter or " ")


def _as_text(write: Callable[[IO[str]], None]) -> str:
    out = io.StringIO()
    write(out)
    return out.getvalue()


def columns_text(result: Any, delimiter: Optional[str] = None) -> str:
    return _as_text(lambda out: write_columns(out, result, delimiter))


def points_text(result: Any, delimiter: Optional[str] = None) -> str:
    return _as_text(lambda out: write_points(out, result, delimiter))


def _full_period(axis: np.ndarray, period: Optional[float]) -> bool:
    """True when `axis` samples one whole period without repeating its end point (a PLUMED periodic grid)."""
    if not period or len(axis) < 2:
        return False
    step = period / len(axis)
    return bool(np.allclose(np.diff(axis), step, rtol=1e-9, atol=1e-12 * period))


def _derivatives(values: np.ndarray, axes: List[np.ndarray], periodic: List[bool]) -> List[np.ndarray]:
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

    def rows(index: np.ndarray) -> List[np.ndarray]:
        where = np.unravel_index(index, shape, order="F")
        return [a[i] for a, i in zip(axes, where)] + [result.values[where]] + [g[where] for g in ders]

    # PLUMED's Grid::writeToFile: a blank line before each new row of the first CV
    _write_rows(out, int(np.prod(shape)), rows, "%14.9f", " ", len(axes[0]) if result.dim > 1 else 0)


def plumed_grid_text(result: Any) -> str:
    return _as_text(lambda out: write_plumed_grid(out, result))


def _cube_lines(shape: Sequence[int], origin: Sequence[float], steps: Sequence[float],
                comments: Tuple[str, str]) -> List[str]:
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


def cube_text(values: np.ndarray, origin: Sequence[float], steps: Sequence[float], comments: Tuple[str, str]) -> str:
    """Gaussian cube text of a 3-D array (x slowest, z fastest), one dummy atom (Z = 0) at the origin."""
    if values.ndim != 3:
        raise InputError(f"cube: the cube format holds 3-D grids; this grid is {values.ndim}-D")
    out = io.StringIO()
    out.write("\n".join(_cube_lines(values.shape, origin, steps, comments)) + "\n")
    _write_cube_values(out, values)
    return out.getvalue()


def _axis_step(axis: np.ndarray) -> float:
    return float(axis[1] - axis[0]) if len(axis) > 1 else 1.0


def cube_header(result: Any) -> List[str]:
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
