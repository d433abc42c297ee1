"""Sample tables in: PLUMED COLVAR (its `#! FIELDS`, `#! SET` lines), whitespace or CSV text, gzip, .npy, bounded.

Text is streamed through one fixed buffer and parsed by table_parse.h (docs/reader.md)."""
from __future__ import annotations

import contextlib
import gzip
import os
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np

from .._errors import InputError
from . import _tableparse
from .format_names import CHUNK_ROWS_DEFAULT
from .numbers import clip, parse_number

PathLike = Union[str, "os.PathLike[str]"]

#: Largest input read, as a fraction of physical memory (after decompression: a .gz is read with a bound, so a
#: small file that inflates to terabytes fails early). CYFES_MAX_INPUT_BYTES sets the bound in bytes instead.
INPUT_MEMORY_FRACTION = 0.125
#: Text held at once: the one buffer a file is read into, block after block (its complete lines are parsed, the
#: rest moves to the front). 16 MiB keeps every thread of a large machine busy for milliseconds per block.
BLOCK_BYTES = 16 << 20
#: A .gz is inflated this much per read into that buffer.
GZIP_READ_BYTES = 1 << 20
_NUMBER = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)", re.IGNORECASE | re.ASCII)

_FIELDS_LINE = re.compile(r"#!\s*FIELDS\b(.*)")
_SET_LINE = re.compile(r"#!\s*SET\s+(\S+)\s+(\S+)")


@dataclass
class _Directive:
    """A `#!` line of a PLUMED file: where it starts and ends in the text, and its content."""

    start: int
    end: int
    line: str


def directives(text: str) -> list[_Directive]:
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


def set_values(found: list[_Directive]) -> dict[str, str]:
    sets = (_SET_LINE.match(d.line) for d in found)
    return {m.group(1): m.group(2) for m in sets if m}



# ----------------------------------------------------------------------------------------------- tables
@dataclass
class Table:
    """Columns of samples read from a file.

    names: one per column (from `#! FIELDS` or a header line, else col0, col1, ...). data: (rows, columns).
    periodic: per column name the (low, high) domain declared by `#! SET min_X`/`max_X` lines (PLUMED writes
    them for periodic CVs). segments: how many `#! FIELDS` headers (restarts) were read. notes: what the reader
    forgave (a last row cut short by a crash before a restart), for the caller to tell the user."""

    names: list[str]
    data: np.ndarray
    source: str
    periodic: dict[str, tuple[float, float]] = field(default_factory=dict)
    segments: int = 1
    notes: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)
    file_names: list[str] = field(default_factory=list)  # every column of the file, when only some were read
    sets: dict[str, str] = field(default_factory=dict)   # every `#! SET key value`, as written (the last wins)

    def column_index(self, key: str) -> int:
        """The index of the column named `key`, or of the 0-based index `key`."""
        if key in self.names:
            return self.names.index(key)
        if key in self.dropped:
            raise InputError(f"{self.source}: column {key!r} is {self.dropped[key]}, so it was left out; "
                             f"columns every segment has: {', '.join(self.file_names or self.names)}")
        text = key.strip()
        if re.fullmatch(r"-?\d+", text):
            idx, every = int(text), self.file_names or self.names
            if -len(every) <= idx < len(every):
                if every is self.names:
                    return idx % len(self.names)
                if every[idx] in self.names:  # an index into the file's columns, when only some were read
                    return self.names.index(every[idx])
                raise InputError(f"{self.source}: column {key!r} ({every[idx]}) was not read")
            raise InputError(f"{self.source}: column index {idx} is out of range: the file has "
                             f"{len(every)} columns (0 to {len(every) - 1})")
        raise InputError(f"{self.source}: no column named {key!r}; available columns: {', '.join(self.names)}")

    def column(self, key: str) -> np.ndarray:
        return self.data[:, self.column_index(key)]


def read_table(path: PathLike, fmt: str | None = None, columns: Sequence[str] | None = None,
               threads: int = 0, fields_required: bool = False) -> Table:
    """Read samples: `.npy` (1-D or 2-D array), else text (PLUMED COLVAR, Colvars trajectory, GROMACS xvg,
    whitespace or CSV, optional header), gzip-compressed when the name ends in .gz. The format is told from the
    content unless `fmt` (one of input_formats.INPUT_FORMATS) names it.

    columns: the names (or 0-based indices) of the columns to convert; the others are only counted, so a wide
    file costs little more than the columns asked for (all columns when None; PLUMED, CSV and plain tables).
    threads: parser threads (0: all). Memory: the output arrays plus one buffer of BLOCK_BYTES (more only for a
    longer line); Colvars and xvg files are read whole (ChunkedTable reads them in blocks). fields_required:
    refuse text without a `#! FIELDS` header (PLUMED HILLS files)."""
    return _read(path, fmt, columns, threads, fields_required, None)[0]


def read_groups(path: PathLike, groups: Sequence[Sequence[str]], fmt: str | None = None,
                threads: int = 0) -> tuple[Table, list[np.ndarray] | None]:
    """read_table(path, fmt, columns=<every key of `groups`>), with a PLUMED, CSV or plain table parsed straight
    into one float64 C-ordered (rows, len(group)) array per group of keys (names or 0-based indices), its
    columns in the group's order: `cyfes fes` gets the samples (N, D) and the bias columns the engine takes with
    no copy after the parse. Returns (table, arrays): the table's names, domains and notes, no rows. Other
    formats, and restarts whose columns differ, give (read_table's table, None): the rows are in its data."""
    return _read(path, fmt, [k for g in groups for k in g], threads, False, [list(g) for g in groups])


def _read(path: PathLike, fmt: str | None, columns: Sequence[str] | None, threads: int, fields_required: bool,
          groups: list[list[str]] | None) -> tuple[Table, list[np.ndarray] | None]:
    from . import input_formats  # deferred: a cycle (input_formats imports this module)
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not a data file")
    input_formats.check_name(fmt)
    if fmt == "npy" or (fmt is None and (p.suffix.lower() == ".npy" or input_formats.is_npy(p))):
        return _read_npy(p), None
    limit = max_input_bytes()
    kind = _text_kind(p, fmt, limit, fields_required)
    if kind in ("colvars", "xvg"):
        return input_formats.parse_text(whole_text(p, limit), str(p), fmt, parse_table_text), None
    with _forced_format(fmt):
        return _stream_table(p, limit, kind, columns, threads, fields_required, groups)


def _text_kind(p: Path, fmt: str | None, limit: int, fields_required: bool) -> str | None:
    """The format of a text file, from --input-format (checked against the file's start) or its content."""
    from . import input_formats  # deferred: a cycle (input_formats imports this module)
    head = None if fields_required and fmt is None else text_head(p, limit)  # one read tells and checks the format
    if fmt is not None and head is not None and fmt not in ("colvars", "xvg"):
        with _forced_format(fmt):
            _check_forced(p, fmt, head)
    return fmt or (None if head is None else input_formats.detect(head)[0])


@contextlib.contextmanager
def _forced_format(fmt: str | None) -> Iterator[None]:
    """An error reading a file as --input-format asks says so."""
    from . import input_formats  # deferred: a cycle (input_formats imports this module)
    try:
        yield
    except InputError as exc:
        if fmt is None:
            raise
        raise InputError(f"{exc} (read as {input_formats.label(fmt)}, as --input-format {fmt} asks)") from None


class ChunkedTable:
    """A PLUMED, CSV or plain text table (.gz too) read chunk by chunk, each time it is iterated: every rule of
    read_table (FIELDS and SET lines, restarts, headers that change mid-file, the same errors with file:line),
    through the same C parser and its one buffer of BLOCK_BYTES, with no bound on the file's size. A Colvars
    trajectory or GROMACS xvg file goes through the same buffer, each block's lines fed to its whole-file reader
    (colvars.Reader, xvg.Reader: the same rules and errors); a .npy array is read in slices of its rows through
    np.load's memory map (the checks and errors of read_table's).

    Iterating yields (column names, rows) chunks of at most `rows` rows; the names are those of the part of the
    file the rows come from (restarts whose FIELDS or Colvars headers differ give parts of other columns). Once
    the file was read to its end, `table` is the Table read_table would give, with no rows (its names: the
    columns every part has; periodic domains, notes, dropped columns), and `block_rows` the most rows one block
    of text held (the parsed rows held at once: block_rows x columns x 8 bytes)."""

    def __init__(self, path: PathLike, fmt: str | None = None, columns: Sequence[str] | None = None,
                 rows: int = CHUNK_ROWS_DEFAULT, threads: int = 0) -> None:
        from . import input_formats  # deferred: a cycle (input_formats imports this module)
        p = Path(path)
        if p.is_dir():
            raise InputError(f"{p}: is a directory, not a data file")
        input_formats.check_name(fmt)
        self.path, self.fmt, self.columns, self.threads = p, fmt, columns, threads
        self.rows = max(1, int(rows))
        self.table: Table | None = None
        self.block_rows = 0
        self.npy: _NpyChunks | None = None
        if fmt == "npy" or (fmt is None and (p.suffix.lower() == ".npy" or input_formats.is_npy(p))):
            self.kind, self.npy = "npy", _NpyChunks(p, columns, self.rows)
            return
        self.kind = _text_kind(p, fmt, _NO_LIMIT, False)

    def __iter__(self) -> Iterator[tuple[list[str], np.ndarray]]:
        text = self.npy is None  # the C parser's rows are views into arrays it reuses: copied out
        source = self.npy if not text else self._lines() if self.kind in ("colvars", "xvg") else self._table_text()
        for names, data in source:
            self.block_rows = max(self.block_rows, len(data))
            for lo in range(0, len(data), self.rows):
                yield names, data[lo:lo + self.rows].copy() if text else data[lo:lo + self.rows]
        if self.npy is not None:
            self.table = self.npy.table

    def _table_text(self) -> Iterator[tuple[list[str], np.ndarray]]:
        """A PLUMED, CSV or plain table's rows, one block of text at a time."""
        reader = _TextReader(str(self.path), self.columns, self.threads, None, self.kind == "plumed")
        with _forced_format(self.fmt):
            for buf, stop, _ in _text_blocks(self.path, _NO_LIMIT):
                reader.feed(buf, stop)
                yield from reader.take()
            self.table = reader.described()

    def _lines(self) -> Iterator[tuple[list[str], np.ndarray]]:
        """A Colvars or xvg file's rows, one block of text at a time, through the whole-file reader's code (fed
        the block's lines); its errors name the format as read_table's do."""
        from . import input_formats  # deferred: a cycle (input_formats imports this module)
        p = self.path
        kind, how = input_formats.kind_of(text_head(p, _NO_LIMIT) or "", self.fmt)
        reader, line, offset, bom = input_formats.line_reader(kind, str(p)), 1, 0, 0
        for buf, stop, _ in _text_blocks(p, _NO_LIMIT):
            bom = 3 if offset == 0 and buf.startswith(b"\xef\xbb\xbf") else bom
            lines = _decoded(p, buf, stop, offset, bom).splitlines()
            with input_formats.errors_name(kind, how, self.fmt):
                got = reader.feed(lines, line)
            line, offset = line + len(lines), offset + stop
            yield from got
        with input_formats.errors_name(kind, how, self.fmt):
            got, self.table = reader.finish(), reader.table()
        yield from got


def _decoded(p: Path, buf: bytearray, stop: int, offset: int, bom: int) -> str:
    """A block of text (its bytes from `offset` of the file; `bom`: the length of the file's byte order mark,
    or 0) as str, as whole_text decodes the whole file (and counts a bad byte: after the mark)."""
    try:
        return bytes(buf[:stop]).decode("utf-8-sig" if offset == 0 else "utf-8")
    except UnicodeDecodeError as exc:
        at = exc.start + (offset - bom if offset else 0)
        raise InputError(f"{p}: not a text file (byte {at} is not UTF-8); "
                         "cyfes reads text tables and .npy arrays") from None


#: Piece.parse's targets when the rows are only checked and counted.
_NO_TARGETS = np.zeros(0, dtype=np.intc)

#: The size bound of a chunked read: none.
_NO_LIMIT = 1 << 62


def _stream_table(p: Path, limit: int, kind: str | None, columns: Sequence[str] | None, threads: int,
                  fields_required: bool, groups: list[list[str]] | None) -> tuple[Table, list[np.ndarray] | None]:
    """A PLUMED, CSV or plain table through the C parser, block by block."""
    reader = None
    for buf, stop, size in _text_blocks(p, limit):
        if reader is None:
            reader = _TextReader(str(p), columns, threads, size, fields_required or kind == "plumed", groups)
        reader.feed(buf, stop)
    return reader.finish()


def _check_forced(p: Path, fmt: str, head: str) -> None:
    """A format forced by --input-format must show in the file's start (detection only picks what shows)."""
    from . import input_formats  # deferred: a cycle (input_formats imports this module)
    if fmt == "plumed" and not input_formats.has_fields(head):
        raise InputError(f"{p}: no '#! FIELDS' header line")
    if fmt == "csv" and "," not in head:
        raise InputError(f"{p}: no comma in its first {input_formats.HEAD_CHARS} characters")


def text_head(p: Path, limit: int) -> str | None:
    """The first characters of a text file (inflated for .gz), enough to tell its format; None when it cannot
    be read (the reader then says why)."""
    from . import input_formats  # deferred: a cycle (input_formats imports this module)
    try:
        with (_open_gzip(p) if p.suffix.lower() == ".gz" else open(p, "rb")) as handle:
            head = handle.read(min(limit + 1, input_formats.HEAD_CHARS))
    except (OSError, EOFError, *_read_errors()):
        return None
    return head.decode("utf-8-sig", "replace")


def whole_text(p: Path, limit: int) -> str:
    """The whole file as text (formats parsed in Python), read through the same bounded blocks."""
    raw = b"".join(bytes(buf[:stop]) for buf, stop, _ in _text_blocks(p, limit))
    try:
        return raw.decode("utf-8-sig")  # a byte order mark is not part of the first column's name
    except UnicodeDecodeError as exc:
        raise InputError(f"{p}: not a text file (byte {exc.start} is not UTF-8); "
                         "cyfes reads text tables and .npy arrays") from None


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


def _open_gzip(p: Path):  # type: ignore[no-untyped-def]
    """The gzip stream, through ISA-L's inflate where python-isal is installed (cyfes[fast-gzip])."""
    try:
        from isal import igzip  # deferred: isal is optional (several times zlib's inflate speed)
    except ImportError:
        return gzip.open(p, "rb")
    return igzip.open(p, "rb")


def _read_errors() -> tuple[type, ...]:
    """What a corrupt gzip stream raises: zlib's error, and isal's when python-isal inflates."""
    try:
        from isal import isal_zlib  # deferred: isal is optional, as in _open_gzip
    except ImportError:
        return (zlib.error,)
    return (zlib.error, isal_zlib.error)


def _text_blocks(p: Path, limit: int) -> Iterator[tuple[bytearray, int, int | None]]:
    """The file's bytes (inflated for .gz) as (buffer, stop, file size) blocks, each ending at a line end:
    one buffer of BLOCK_BYTES is refilled (grown only to hold a longer line); refused once more than `limit`
    bytes were read."""
    gz = p.suffix.lower() == ".gz"
    corrupt = _read_errors() if gz else ()
    try:
        with (_open_gzip(p) if gz else open(p, "rb", buffering=0)) as handle:
            size = None if gz else os.fstat(handle.fileno()).st_size
            yield from _fill_blocks(handle, p, limit, size, gz)
    except OSError as exc:  # gzip's BadGzipFile is an OSError too
        raise InputError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except EOFError:
        raise InputError(f"{p}: cannot read: the gzip stream is cut short") from None
    except corrupt as exc:
        raise InputError(f"{p}: cannot read: corrupt gzip data ({exc})") from None


def _fill_blocks(handle: BinaryIO, p: Path, limit: int, size: int | None,
                 gz: bool) -> Iterator[tuple[bytearray, int, int | None]]:
    cap = min(BLOCK_BYTES, limit + 1, size + 1 if size is not None else BLOCK_BYTES)
    buf, filled, total = bytearray(cap), 0, 0
    while True:
        with memoryview(buf) as view:
            n = handle.readinto(view[filled:filled + GZIP_READ_BYTES] if gz else view[filled:])
        total += n
        if total > limit:
            raise InputError(f"{p}: is larger than {limit:,} bytes" + (" decompressed" if gz else "")
                             + "; cyfes reads inputs into memory (set CYFES_MAX_INPUT_BYTES to allow more, or "
                              "read it in chunks: cyfes fes --stream)")
        filled += n
        if n and filled < len(buf):
            continue
        cut = filled if not n else buf.rfind(b"\n", 0, filled) + 1
        if cut == 0 and n:  # one line longer than the buffer: make room for it
            grown = bytearray(min(2 * len(buf), limit + 1))
            grown[:filled] = buf
            buf = grown
            continue
        yield buf, cut, size
        buf[:filled - cut] = buf[cut:filled]
        filled -= cut
        if not n:
            return


def _npy_map(p: Path) -> tuple[np.ndarray, list[str] | None, int, int]:
    """The array mapped (np.load with mmap_mode: only the header is read), checked to be samples: (array, field
    names or None, rows, columns)."""
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
    if names:
        _check_unique(names, str(p), "field")
    return mapped, names, rows, width


def npy_bytes(p: Path) -> int:
    """What reading a .npy costs in memory: its data, or its rows as float64 where that is more."""
    mapped, _, rows, width = _npy_map(p)
    return _npy_cost(mapped, rows, width)


def _npy_cost(mapped: np.ndarray, rows: int, width: int) -> int:
    return max(mapped.nbytes, rows * width * 8)


def _read_npy(p: Path) -> Table:
    mapped, names, rows, width = _npy_map(p)
    limit = max_input_bytes()
    if _npy_cost(mapped, rows, width) > limit:
        raise InputError(f"{p}: {rows:,} x {width} values are more than {limit:,} bytes; "
                         "set CYFES_MAX_INPUT_BYTES to allow more, or read it in chunks: cyfes fes --stream")
    return Table(names or _npy_names(width), _npy_rows(p, mapped, names, None), str(p))


def _npy_names(width: int) -> list[str]:
    return [f"col{i}" for i in range(width)]


def _npy_rows(p: Path, mapped: np.ndarray, names: list[str] | None, picked: list[int] | None) -> np.ndarray:
    """The rows of `mapped` (all of it or a slice) as float64 (rows, columns), only the columns `picked`
    (indices; None: all), each checked as _npy_numbers checks it."""
    if names:
        return np.stack([_npy_column(p, mapped, names[i]) for i in (range(len(names)) if picked is None
                                                                     else picked)], axis=1)
    arr = _npy_numbers(p, mapped.dtype, mapped).reshape(len(mapped), -1)
    return arr if picked is None else arr[:, picked]


class _NpyChunks:
    """A .npy array read in slices of `rows` rows, each through a fresh mapping that is closed before the next
    (the pages read leave the process with it: memory holds one slice, however large the file). The columns
    asked for only are converted; `table` has every name and no rows, as read_table's has them."""

    def __init__(self, p: Path, columns: Sequence[str] | None, rows: int) -> None:
        mapped, self.names, self.total, width = _npy_map(p)
        self.p, self.rows = p, rows
        self.table = Table(self.names or _npy_names(width), np.empty((0, width)), str(p))
        self.columns = columns
        _npy_rows(p, mapped[:1], self.names, None)  # a dtype that is not numbers: the in-memory error, now

    def __iter__(self) -> Iterator[tuple[list[str], np.ndarray]]:
        t = self.table
        known = None if self.columns is None else [k for k in self.columns if _resolves(t, k)]
        picked = None if known is None else sorted({t.column_index(k) for k in known})
        names = t.names if picked is None else [t.names[i] for i in picked]
        for lo in range(0, self.total, self.rows):
            mapped = _npy_map(self.p)[0]
            chunk = _npy_rows(self.p, mapped[lo:lo + self.rows], self.names, picked)
            del mapped  # unmapped: its pages are the page cache's again, not this process's
            yield names, chunk
        for key in self.columns or []:
            t.column_index(key)  # a column asked for that is not there: its error after the rows, as for text


def _resolves(table: Table, key: str) -> bool:
    try:
        table.column_index(key)
    except InputError:
        return False
    return True


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


def parse_table_text(text: str, source: str = "<text>", columns: Sequence[str] | None = None) -> Table:
    """Parse a text table; see read_table. `source` names the input in error messages."""
    raw = bytearray(text.encode("utf-8"))
    reader = _TextReader(source, columns, threads=1 if len(raw) < BLOCK_BYTES else 0)
    reader.feed(raw, len(raw))
    return reader.table()


def _periodic_domains(sets: dict[str, str], source: str) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for key, value in sets.items():
        if key.startswith("min_") and "max_" + key[4:] in sets:
            name = key[4:]
            lo = parse_number(value, f"{source}: #! SET {key}")
            hi = parse_number(sets["max_" + name], f"{source}: #! SET max_{name}")
            if hi > lo:
                out[name] = (lo, hi)
    return out


def _merge_segments(parts: list[tuple[list[str], np.ndarray]],
                    source: str) -> tuple[list[str], np.ndarray, dict[str, str]]:
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


# ----------------------------------------------------------------------------------------------- text, streamed
@dataclass
class _Segment:
    """The rows under one header (`#! FIELDS` line, header line or none): which columns are converted, where."""

    names: list[str]
    delimiter: str | None
    colmap: np.ndarray            # per file column its place in the output row, -1: counted, not converted
    part: _Part
    cut_allowed: bool             # COLVAR segments: a last row cut short is dropped with a note
    rows: int = 0                 # data rows seen so far (a dropped one included)
    pending: tuple[int, str] | None = None  # (line, message) of a short row that is last so far

    @property
    def ncols(self) -> int:
        return len(self.names)


@dataclass
class _Part:
    """Output rows of consecutive segments that convert the same named columns, grown in place: one (rows, names)
    array, or (read_groups) one array per group of columns, every column of the groups in `names`."""

    names: list[str]
    arrays: list[np.ndarray]
    src: np.ndarray                   # per column of the arrays in turn: its place in `names` (the parser's targets)
    groups: list[list[str]] | None    # the names of each array's columns, when the arrays are groups
    rows: int = 0

    @classmethod
    def of(cls, names: list[str], groups: list[list[str]] | None) -> _Part:
        """The part for `names`, in groups when every column of the groups is among them."""
        if groups is None or any(n not in names for g in groups for n in g):
            return cls(names, [np.zeros((0, len(names)))], np.arange(len(names), dtype=np.intc), None)
        return cls(names, [np.zeros((0, len(g))) for g in groups],
                   np.array([names.index(n) for g in groups for n in g], dtype=np.intc), groups)

    def reserve(self, more: int, hint: float) -> None:
        """Room for `more` rows; on growth, for `hint` times what is needed (an estimate of the rest of the file).
        np.empty, not resize: resize zero-fills the new rows first (a tenth of a read's time)."""
        need = self.rows + more
        if need > len(self.arrays[0]):
            size = max(need, int(need * hint), len(self.arrays[0]) * 3 // 2)
            self.arrays = [_grown(a, self.rows, size) for a in self.arrays]

    def matrix(self) -> np.ndarray:
        """The rows parsed so far as one (rows, names) array (a view unless the part is in groups)."""
        if self.groups is None:
            return self.arrays[0][:self.rows]
        out, k = np.empty((self.rows, len(self.names))), 0
        for a in self.arrays:
            for c in range(a.shape[1]):
                out[:, self.src[k]] = a[:self.rows, c]
                k += 1
        return out

    def array(self) -> np.ndarray:
        return _trimmed(self.arrays[0], self.rows) if self.groups is None else self.matrix()

    def group_arrays(self) -> list[np.ndarray]:
        return [_trimmed(a, self.rows) for a in self.arrays]


def _grown(a: np.ndarray, rows: int, size: int) -> np.ndarray:
    grown = np.empty((size, a.shape[1]))
    grown[:rows] = a[:rows]
    return grown


def _trimmed(a: np.ndarray, rows: int) -> np.ndarray:
    if len(a) - rows > rows // 16:  # more than 6% unused: give it back
        return a[:rows].copy()
    return a[:rows]


class _TextReader:
    """A text table fed block by block (each block ends at a line end): `#!` directives are found first (memchr
    for '#', in C; they are few) and handled here, the text between them goes to the C parser (table_parse.h)
    in parallel chunks. How and why: docs/reader.md."""

    def __init__(self, source: str, columns: Sequence[str] | None, threads: int = 0,
                 size_hint: int | None = None, fields_required: bool = False,
                 groups: list[list[str]] | None = None) -> None:
        self.source, self.threads, self.size_hint = source, threads, size_hint
        self.fields_required = fields_required
        self.columns = list(columns) if columns else None
        self.groups = groups if columns else None  # read_groups: keys of the arrays the parser fills
        self.wanted: list[str] | None = None
        self.group_names: list[list[str]] | None = None
        self.file_names: list[str] = []
        self.mode: str | None = None      # None until the first header or data line: "colvar" or "plain"
        self.seg: _Segment | None = None
        self.segment_names: list[list[str]] = []  # every column of each segment with data rows
        self.parts: list[_Part] = []
        self.notes: list[str] = []
        self.sets: dict[str, str] = {}
        self.set_lines: dict[str, int] = {}
        self.heads = 0
        self.header = False                  # plain text: the first line held names
        self.first_data_line = 0
        self.nonblank = False
        self.line = 1                        # line number of the block's first byte
        self.offset = 0                      # bytes fed before this block
        self.part_names: list[list[str]] = []  # chunked: the columns of every part taken so far
        self.taken = False                   # chunked: whether any rows were taken

    # -- blocks
    def feed(self, buf: bytearray, stop: int) -> None:
        start = 3 if self.offset == 0 and buf.startswith(b"\xef\xbb\xbf") else 0  # BOM: not part of a name
        self._check_text(buf, start, stop)
        pos, mark, mark_line = start, start, self.line
        while True:
            bom_line = pos == start == 3 and buf.startswith(b"#!", 3)  # the first line, after a byte order mark
            at = 3 if bom_line else _tableparse.next_directive(buf, pos, stop)
            if at < 0:
                break
            self._body(buf, pos, at)
            mark_line += _tableparse.newlines(buf, mark, at, self.threads)
            mark = at
            end = buf.find(b"\n", at, stop)
            end = stop if end < 0 else end
            self._directive(buf[at:end].decode("utf-8").rstrip("\r"), mark_line)
            pos = end
        self._body(buf, pos, stop)
        self.line += _tableparse.newlines(buf, 0, stop, self.threads)
        self.offset += stop

    def _check_text(self, buf: bytearray, start: int, stop: int) -> None:
        bad = _tableparse.first_non_ascii(buf, start, stop, self.threads)
        if bad < 0:
            return
        try:
            str(memoryview(buf)[bad:stop], "utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{self.source}: not a text file (byte {self.offset + bad + exc.start} is not UTF-8); "
                             "cyfes reads text tables and .npy arrays") from None

    def _line_at(self, buf: bytearray, offset: int) -> tuple[int, str, int]:
        """(line number, text, end offset) of the line starting at `offset` of the current block."""
        end = buf.find(b"\n", offset)
        end = len(buf) if end < 0 else end
        return self.line + buf.count(b"\n", 0, offset), bytes(buf[offset:end]).decode("utf-8", "replace"), end

    # -- directives
    def _directive(self, text: str, line: int) -> None:
        self.nonblank = True
        head = _FIELDS_LINE.match(text)
        if head:
            if self.mode == "plain":
                raise InputError(f"{self.source}: line {self.first_data_line}: data before the first "
                                 "'#! FIELDS' header")
            self._end_segment()
            self.mode, self.heads = "colvar", self.heads + 1
            names = head.group(1).split()
            if not names:
                raise InputError(f"{self.source}: line {line}: '#! FIELDS' names no fields")
            _check_unique(names, f"{self.source}: line {line}")
            self.seg = self._segment(names, None, cut_allowed=True)
            return
        match = _SET_LINE.match(text)
        if match:
            key, value = match.group(1), match.group(2)
            old = self.sets.get(key)
            if old is not None and old != value and key.startswith(("min_", "max_")) and self.heads > 1:
                raise InputError(f"{self.source}: line {line}: '#! SET {key} {value}' changes the domain of "
                                 f"'{key[4:]}' set by '#! SET {key} {old}' at line {self.set_lines[key]}; one "
                                 "file's data must share one domain (split the file at the restart)")
            self.sets[key], self.set_lines[key] = value, line

    def _segment(self, names: list[str], delimiter: str | None, cut_allowed: bool) -> _Segment:
        if self.columns is None:
            picked = list(range(len(names)))
        else:
            if self.wanted is None:  # indices resolve against the first header; names may come in a later one
                probe = Table(names, np.empty((0, len(names))), self.source)
                resolved = {k: k if k in names or not re.fullmatch(r"\s*-?\d+\s*", k)
                            else names[probe.column_index(k)] for k in self.columns}
                self.wanted = list(dict.fromkeys(resolved[k] for k in self.columns))
                self.group_names = None if self.groups is None else [[resolved[k] for k in g] for g in self.groups]
                self.file_names = names
            picked = sorted(names.index(n) for n in self.wanted if n in names)
        colmap = np.full(len(names), -1, dtype=np.intc)
        colmap[picked] = np.arange(len(picked), dtype=np.intc)
        out_names = [names[i] for i in picked]
        if not self.parts or self.parts[-1].names != out_names:
            self.parts.append(_Part.of(out_names, self.group_names))
        return _Segment(names, delimiter, colmap, self.parts[-1], cut_allowed)

    def _end_segment(self) -> None:
        seg = self.seg
        if seg is not None and seg.rows:
            self.segment_names.append(seg.names)
        if seg is not None and seg.pending is not None:
            line, message = seg.pending
            self.notes.append(f"{self.source}: line {line}: dropped a row cut short{message}")
            seg.pending = None

    # -- bodies
    def _body(self, buf: bytearray, start: int, stop: int) -> None:
        if start >= stop:
            return
        if self.mode is None:
            start = self._first_data(buf, start, stop)
            if start >= stop:
                return
        seg = self.seg
        piece = _tableparse.Piece(buf, start, stop, self.threads)
        if piece.rows == 0:
            return
        if seg.pending is not None:
            line, message = seg.pending
            raise InputError(f"{self.source}: line {line}{message}")
        part = seg.part
        part.reserve(piece.rows, self._growth(stop))
        failed = piece.parse(part.arrays, part.src, part.rows, seg.delimiter or "", seg.ncols, seg.colmap)
        if failed is None:
            part.rows += piece.rows
            seg.rows += piece.rows
            return
        kind, at, row, found = failed
        part.rows += row
        seg.rows += row
        self._bad_row(buf, at, stop, kind, found)

    def _growth(self, stop: int) -> float:
        """Rows still to come per row in this block, estimated from the file size (1: unknown)."""
        if not self.size_hint:
            return 1.0
        return max(1.0, 1.02 * self.size_hint / max(1, self.offset + stop))

    def _bad_row(self, buf: bytearray, at: int, stop: int, kind: int, found: int) -> None:
        """Raise the error for the bad line at `at`, as the numpy-based reader worded it, or keep a short last
        row of a COLVAR segment aside (dropped with a note unless more rows follow)."""
        seg, src = self.seg, self.source
        line, text, end = self._line_at(buf, at)
        bad = _first_bad_line(text, seg.delimiter, seg.ncols)
        if bad is None or kind != _tableparse.COUNT or not bad[1].startswith(": "):
            raise InputError(f"{src}: line {line}" + (bad[1] if bad else f": cannot read the row ({clip(text)})"))
        message = bad[1]
        if seg.rows == 0:  # the first row: one count for every row is a header mismatch, else rows differ
            if _tableparse.Piece(buf, at, stop, self.threads).parse(
                    [], _NO_TARGETS, 0, seg.delimiter or "", found, np.full(found, -1, dtype=np.intc)) is None:
                raise InputError(f"{src}: line {line}: {found} columns but the header names {seg.ncols}")
        elif found < seg.ncols and seg.cut_allowed and _tableparse.Piece(buf, min(end + 1, stop), stop, 1).rows == 0:
            seg.pending = (line, message)
            seg.rows += 1
            return
        raise InputError(f"{src}: line {line}{message}")

    def _first_data(self, buf: bytearray, start: int, stop: int) -> int:
        """Before any header: skip comment lines; the first data line makes the file a plain table (its names
        when it is not all numbers, its commas make it CSV). Returns where the rows start."""
        pos = start
        while pos < stop:
            end = buf.find(b"\n", pos, stop)
            end = stop if end < 0 else end
            text = bytes(buf[pos:end]).decode("utf-8")
            if text.strip():
                self.nonblank = True
                if not text.lstrip().startswith("#"):
                    break
            pos = end + 1
        else:
            return stop
        if self.fields_required:
            raise InputError(self._no_fields())
        line = self.line + buf.count(b"\n", 0, pos)
        self.mode, self.first_data_line = "plain", line
        delimiter = "," if "," in text else None
        tokens = [t.strip() for t in (text.split(",") if delimiter else text.split())]
        self.header = not all(is_float(t) for t in tokens)
        if self.header:
            names = [t or f"col{i}" for i, t in enumerate(tokens)]
            _check_unique(names, f"{self.source}: line {line}")
            self.seg = self._segment(names, delimiter, cut_allowed=False)
            return min(end + 1, stop)
        self.seg = self._segment([f"col{i}" for i in range(len(tokens))], delimiter, cut_allowed=False)
        return pos

    def _no_fields(self) -> str:
        return f"{self.source}: no '#! FIELDS' header line; not a PLUMED HILLS/COLVAR file"

    # -- chunks (ChunkedTable)
    def take(self) -> list[tuple[list[str], np.ndarray]]:
        """The rows parsed since the last take, per part (their column names, a view valid until the next feed);
        the parts are emptied for the next block, their arrays kept."""
        out = [(p.names, p.matrix()) for p in self.parts if p.rows]
        for part in self.parts:
            if part.rows and part.names not in self.part_names:
                self.part_names.append(part.names)
            part.rows = 0
        self.taken = self.taken or bool(out)
        self.parts = self.parts[-1:]
        return out

    def described(self) -> Table:
        """After every chunk was taken: the Table the whole-file reader would give, with no rows."""
        self._end_segment()
        self._check_rows(self.taken)
        common = [n for n in self.part_names[0] if all(n in other for other in self.part_names)]
        return self._described(common, np.empty((0, len(common))))

    # -- the table
    def table(self) -> Table:
        return self.finish()[0]

    def finish(self) -> tuple[Table, list[np.ndarray] | None]:
        """The table; read in groups (one part, every column of the groups in it): its arrays, and no rows in
        the table (a restart whose columns differ joins its parts into the table's data instead)."""
        self._end_segment()
        full = [p for p in self.parts if p.rows]
        self._check_rows(bool(full))
        if len(full) == 1 and full[0].groups is not None:
            return self._described(full[0].names, np.empty((0, len(full[0].names)))), full[0].group_arrays()
        return self._described(*_join_parts([(p.names, p.array()) for p in full])), None

    def _check_rows(self, any_rows: bool) -> None:
        src = self.source
        if self.mode is None and self.fields_required:
            raise InputError(self._no_fields())
        if self.mode is None:
            raise InputError(f"{src}: has only comment lines, no data rows" if self.nonblank else f"{src}: is empty")
        if not any_rows:
            raise InputError(f"{src}: has a '#! FIELDS' header but no data rows" if self.mode == "colvar"
                             else f"{src}: has a header line but no data rows")

    def _described(self, names: list[str], data: np.ndarray) -> Table:
        src = self.source
        every, _, dropped = _merge_segments([(n, np.empty((0, len(n)))) for n in self.segment_names], src)
        for key in self.wanted or []:
            if key not in every and key not in dropped:  # as the whole table would say it
                Table(every, np.empty((0, len(every))), src, dropped=dropped).column_index(key)
        if self.mode == "plain":
            return Table(names, data, src, file_names=self.file_names, sets=dict(self.sets))
        notes = self.notes + [f"{src}: column {n!r} is {why}; it is left out" for n, why in dropped.items()]
        return Table(names, data, src, _periodic_domains(self.sets, src), segments=self.heads, notes=notes,
                     dropped=dropped, file_names=every if self.wanted is not None else [], sets=dict(self.sets))


def _join_parts(parts: list[tuple[list[str], np.ndarray]]) -> tuple[list[str], np.ndarray]:
    """The rows of every part, in the columns all parts have (none, when a column asked for was left out)."""
    if len(parts) == 1:
        return parts[0]
    common = [n for n in parts[0][0] if all(n in other for other, _ in parts)]
    return common, np.concatenate([d[:, [n_list.index(c) for c in common]] for n_list, d in parts])


def is_float(token: str) -> bool:
    """Whether numpy's text parser reads `token` as a number (Python's float() also takes `1_000` and
    non-ASCII digits, which numpy does not)."""
    return _NUMBER.fullmatch(token.strip()) is not None


def _first_bad_line(body: str, delimiter: str | None, ncols: int) -> tuple[int, str, bool] | None:
    """(index of the first bad line in `body`, what is wrong, whether it is merely short of columns)."""
    for i, line in enumerate(body.splitlines()):
        stripped = line.split("#", 1)[0]
        if not stripped.strip():
            continue
        tokens = [t.strip() for t in stripped.split(delimiter)] if delimiter else stripped.split()
        for c, tok in enumerate(tokens):
            if not is_float(tok):
                return i, f", column {c + 1}: {clip(tok)} is not a number", False
        if len(tokens) != ncols:
            return i, f": {len(tokens)} columns, expected {ncols} (rows of different lengths)", len(tokens) < ncols
    return None
