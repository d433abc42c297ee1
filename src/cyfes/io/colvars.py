"""Colvars trajectories (`.colvars.traj`, written by the Colvars module in NAMD, GROMACS, LAMMPS and VMD).

The layout (Colvars' colvarmodule writes it so): a header line `# step  name1  name2 ...`, then one row per
output step: the step, then each variable's value; a vector variable (distanceVec, cartesian, orientation...)
is written as `( x , y , z )`. Its components become columns `name_1, name_2, ...` (numbered from 1, as
Colvars numbers them in its documentation). Forces and energies (`ft_`, `fa_`, `E_`) are columns like any other.

Every (re)start of the run, and every change of the set of variables, writes a new header line, and the step at
which it happens is written twice: once as the last row before the header, once as the first row after it.
The earlier row is dropped, so each step is counted once; rows of segments whose variables differ are kept in
the columns every non-empty segment has (the others are named in `Table.dropped`, with the reason).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .._errors import InputError
from .tables import Table
from .text_rows import load_rows

_HEADER = re.compile(r"^[ \t]*#[ \t]*step(?:[ \t]|$)")
#: One value of a row: a parenthesised vector or a scalar.
_VALUE = re.compile(r"\(([^()]*)\)|([^\s()]+)")
_VECTOR_SEPARATORS = str.maketrans({"(": " ", ")": " ", ",": " "})


def looks_like(head: str) -> bool:
    """Whether the text starts (after blank lines) with a Colvars `# step ...` header."""
    for line in head.splitlines():
        if line.strip():
            return _HEADER.match(line) is not None
    return False


@dataclass
class _Segment:
    """The rows under one header: its labels and line, the columns (known from its first row: a vector variable
    gives several) and how many vectors a row has."""

    labels: list[str]
    line: int
    names: list[str] | None = None
    vectors: int = 0


def parse(text: str, source: str = "<colvars>") -> Table:
    """The rows of a Colvars trajectory as a Table (first column `step`)."""
    reader = Reader(source)
    parts = reader.feed(text.splitlines(), 1) + reader.finish()
    table = reader.table()
    table.data = np.concatenate([d[:, [names.index(c) for c in table.names]] for names, d in parts])
    return table


class Reader:
    """A Colvars trajectory fed in blocks of whole lines (parse: one block; ChunkedTable: one per read buffer).
    feed and finish return (column names, rows) parts, the names those of the segment the rows come from; table()
    the Table with no rows once every line was fed. Two rows are held back: a segment's last data line (only the
    segment's last row may be cut short, and which row is last shows only when the segment ends) and its last
    row (dropped when the next segment starts with its step, the repeat written at a restart)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.heads = 0
        self.early: int | None = None            # a data line before any header
        self.seg: _Segment | None = None
        self.pending: list[str] = []               # lines of the open segment not parsed yet (comments blanked)
        self.pending_line = 0                      # the file line of pending[0]
        self.held: tuple[np.ndarray, _Segment] | None = None  # the last row of the latest segment with rows
        self.kept: list[_Segment] = []           # the segments rows were returned from
        self.notes: list[str] = []

    def feed(self, lines: list[str], first_line: int) -> list[tuple[list[str], np.ndarray]]:
        out: list[tuple[list[str], np.ndarray]] = []
        start = 0
        for i, line in enumerate(lines):
            if _HEADER.match(line):
                self._body(lines[start:i], first_line + start)
                self._parse(out, final=True)
                self._open(line, first_line + i)
                start = i + 1
        self._body(lines[start:], first_line + start)
        self._parse(out, final=False)
        return out

    def finish(self) -> list[tuple[list[str], np.ndarray]]:
        """After the last block: the rest of the rows."""
        if not self.heads:
            raise InputError(f"{self.source}: no '# step ...' header line; not a Colvars trajectory")
        out: list[tuple[list[str], np.ndarray]] = []
        self._parse(out, final=True)
        if self.held is not None:
            self._emit(self.held[1], self.held[0], out)
            self.held = None
        if not self.kept:
            raise InputError(f"{self.source}: has '# step' headers but no data rows")
        return out

    def table(self) -> Table:
        names, dropped = _common(self.kept, self.source)
        notes = self.notes + [f"{self.source}: column {n!r} is {why}; it is left out" for n, why in dropped.items()]
        return Table(names, np.empty((0, len(names))), self.source, segments=self.heads, notes=notes,
                     dropped=dropped)

    def _open(self, header: str, line: int) -> None:
        if self.early is not None:
            raise InputError(f"{self.source}: line {self.early}: data before the first '# step' header")
        self.heads += 1
        self.seg, self.pending = _Segment(header.split("#", 1)[1].split(), line), []

    def _body(self, lines: list[str], first_line: int) -> None:
        """Lines of the open segment into pending; its first row tells the columns."""
        body = ["" if line.lstrip().startswith("#") else line for line in lines]
        first = next((i for i, line in enumerate(body) if line.strip()), None)
        if self.seg is None:
            if first is not None and self.early is None:
                self.early = first_line + first
            return
        if not self.pending:
            self.pending_line = first_line
        self.pending += body
        seg = self.seg
        if seg.names is None and first is not None:
            widths = _widths(body[first], seg.labels, self.source, first_line + first, seg.line)
            seg.names = [n if w == 1 else f"{n}_{c}" for n, w in zip(seg.labels, widths) for c in range(1, w + 1)]
            _check_unique(seg.names, self.source, seg.line)
            seg.vectors = body[first].count("(")

    def _parse(self, out: list[tuple[list[str], np.ndarray]], final: bool) -> None:
        """The carried lines' rows; unless the segment ends (final), all but its last data line so far."""
        seg = self.seg
        if seg is None or seg.names is None:
            return
        last = len(self.pending) if final else next(
            (i for i in range(len(self.pending) - 1, -1, -1) if self.pending[i].strip()), 0)
        batch, line = self.pending[:last], self.pending_line
        self.pending, self.pending_line = self.pending[last:], self.pending_line + last
        if not any(b.strip() for b in batch):
            return
        _check_parentheses(batch, seg.vectors, self.source, line, last_exempt=final)
        flat = [b.translate(_VECTOR_SEPARATORS) for b in batch]
        self._take(load_rows(flat, line, len(seg.names), self.source, self.notes if final else None, seg.names),
                   out, final)

    def _take(self, data: np.ndarray, out: list[tuple[list[str], np.ndarray]], final: bool) -> None:
        """Rows of the open segment out; a segment's last row held until the next one's first row shows whether
        it was written again there."""
        if not len(data):
            return
        if self.held is not None:
            row, seg = self.held
            self.held = None
            if data[0, 0] != row[0, 0]:
                self._emit(seg, row, out)
        if final:
            self._emit(self.seg, data[:-1], out)
            self.held = (data[-1:], self.seg)
        else:
            self._emit(self.seg, data, out)

    def _emit(self, seg: _Segment, data: np.ndarray, out: list[tuple[list[str], np.ndarray]]) -> None:
        if len(data):
            out.append((seg.names, data))
            if not self.kept or self.kept[-1] is not seg:
                self.kept.append(seg)


def _widths(row: str, labels: list[str], source: str, line: int, header_line: int) -> list[int]:
    """Components of each variable, from the first row of a segment: 1 for a scalar, n for `( a , b , ... )`."""
    values = [m.group(0) for m in _VALUE.finditer(row)]
    vectors = [v for v in values if v.startswith("(")]
    if row.count("(") != len(vectors) or row.count(")") != len(vectors):
        raise InputError(f"{source}: line {line}: unbalanced parentheses in {row.strip()[:60]!r}")
    widths = [len(v.strip("()").replace(",", " ").split()) if v.startswith("(") else 1 for v in values]
    if len(widths) != len(labels):
        raise InputError(f"{source}: line {line}: {len(widths)} values (scalars or vectors) but the header on "
                         f"line {header_line} names {len(labels)} ({' '.join(labels)[:80]})")
    if 0 in widths:
        raise InputError(f"{source}: line {line}: an empty vector '( )'")
    return widths


def _check_parentheses(body: list[str], vectors: int, source: str, first_line: int, last_exempt: bool = True) -> None:
    """Every row has as many `(` and `)` as the first (counted over the block first: C speed when all is well);
    a segment's last row (last_exempt) that breaks off is left to the row reader, which drops it as cut short."""
    rows = sum(1 for line in body if line.strip())
    text = "\n".join(body)
    if text.count("(") == text.count(")") == rows * vectors:
        return
    data = [i for i, line in enumerate(body) if line.strip()]
    for i in data[:-1] if last_exempt else data:
        if body[i].count("(") != vectors or body[i].count(")") != vectors:
            raise InputError(f"{source}: line {first_line + i}: {body[i].count('(')} '(' and {body[i].count(')')} "
                             f"')' where the first row has {vectors} vectors")


def _check_unique(names: list[str], source: str, line: int) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise InputError(f"{source}: line {line}: column name {name!r} appears twice; names must be unique")
        seen.add(name)


def _common(segments: list[_Segment], source: str) -> tuple[list[str], dict[str, str]]:
    """The columns every segment with rows has, and why each other one is left out."""
    names = segments[0].names
    if all(s.names == names for s in segments):
        return names, {}
    common = [n for n in names if all(n in s.names for s in segments)]
    if not common:
        raise InputError(f"{source}: the '# step' headers of its segments have no column in common")
    everything = dict.fromkeys(n for s in segments for n in s.names)
    dropped = {n: "only under the headers of lines " + ", ".join(str(s.line) for s in segments if n in s.names)
               for n in everything if n not in common}
    return common, dropped


# ----------------------------------------------------------------------------------------------- hills
#: A hill Colvars removed later is written again as a comment with this prefix (colvarbias_meta.cpp).
_DELETED = "# DELETED this hill:"


def looks_like_hills(text: str) -> bool:
    """Whether `text` reads as a Colvars `.hills.traj`: no header, rows `step centers... sigmas... W` (an even
    number of at least 4 values, the first an integer step)."""
    for line in text[:1 << 16].splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            tokens = line.split()
            return len(tokens) >= 4 and len(tokens) % 2 == 0 and tokens[0].isdigit()
    return False


def parse_hills(text: str, source: str = "<hills>") -> Table:
    """The hills of a Colvars metadynamics `.hills.traj` as a Table with PLUMED's HILLS field names
    (`time cv1... sigma_cv1... height`): Colvars' hill is W exp(-sum_i (x_i - c_i)^2 / (2 sigma_i^2)) with the
    sigmas as this file writes them, PLUMED's convention. The file names no variables and no periodicity: the CVs
    are cv1, cv2, ... and not periodic. A file where Colvars removed a hill (`# DELETED this hill:`) is refused."""
    lines = text.splitlines()
    if "(" in text:
        raise InputError(f"{source}: hills of vector variables ('( ... )') are not supported")
    first = next((i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")), None)
    if first is None:
        raise InputError(f"{source}: has no hills")
    ncols = len(lines[first].split())
    dim = (ncols - 2) // 2
    if ncols < 4 or ncols % 2:
        raise InputError(f"{source}: line {first + 1}: {ncols} values; a Colvars hill is 'step centers... "
                         "sigmas... height' (an even number, at least 4)")
    names = ["time"] + [f"cv{d + 1}" for d in range(dim)] + [f"sigma_cv{d + 1}" for d in range(dim)] + ["height"]
    body = ["" if line.lstrip().startswith("#") else line for line in lines]
    data = load_rows(body, 1, ncols, source, None, names)
    deleted = next((i for i, line in enumerate(lines) if line.startswith(_DELETED)), None)
    if deleted is not None:  # Colvars writes its last hill there, whichever it removed: the line is no guide
        raise InputError(f"{source}: line {deleted + 1}: Colvars removed a hill during the run; which one cannot "
                         "be told from this file, so its hills are not summed")
    return Table(names, data, source)
