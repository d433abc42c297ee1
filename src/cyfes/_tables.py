"""Sample tables in: PLUMED COLVAR (its `#! FIELDS`, `#! SET` lines), whitespace or CSV text, gzip, .npy, bounded."""
from __future__ import annotations

import gzip
import io
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._errors import InputError
from ._numbers import clip, parse_number

PathLike = Union[str, "os.PathLike[str]"]

#: Largest input read, as a fraction of physical memory (after decompression: a .gz is read with a bound, so a
#: small file that inflates to terabytes fails early). CYFES_MAX_INPUT_BYTES sets the bound in bytes instead.
INPUT_MEMORY_FRACTION = 0.125
_NUMBER = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)", re.IGNORECASE | re.ASCII)

_FIELDS_LINE = re.compile(r"#!\s*FIELDS\b(.*)")
_SET_LINE = re.compile(r"#!\s*SET\s+(\S+)\s+(\S+)")


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


def read_table(path: PathLike, fmt: Optional[str] = None) -> Table:
    """Read samples: `.npy` (1-D or 2-D array), else text (PLUMED COLVAR, Colvars trajectory, GROMACS xvg,
    whitespace or CSV, optional header), gzip-compressed when the name ends in .gz. The format is told from the
    content unless `fmt` (one of input_formats.INPUT_FORMATS) names it."""
    from . import input_formats
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not a data file")
    input_formats.check_name(fmt)
    if fmt == "npy" or (fmt is None and (p.suffix.lower() == ".npy" or input_formats.is_npy(p))):
        return _read_npy(p)
    raw = _read_bounded(p, max_input_bytes())
    try:
        text = raw.decode("utf-8-sig")  # a byte order mark is not part of the first column's name
    except UnicodeDecodeError as exc:
        raise InputError(f"{p}: not a text file (byte {exc.start} is not UTF-8); "
                         "cyfes reads text tables and .npy arrays") from None
    return input_formats.parse_text(text, str(p), fmt, parse_table_text)


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
        raise InputError(f"{p}: cannot read as a .npy array: {clip(str(exc), 120)}") from None
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
        raise InputError(f"{p}: cannot read as a .npy array: {clip(str(exc), 120)}") from None


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
                             f"{clip(' '.join(str(exc).split()), 160)}") from None
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
                return i, f", column {c + 1}: {clip(tok)} is not a number", False
        if len(tokens) != ncols:
            return i, f": {len(tokens)} columns, expected {ncols} (rows of different lengths)", len(tokens) < ncols
    return None
