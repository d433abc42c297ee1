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
    """The rows under one header: column names, the step of each row, the numbers, the header's line."""

    names: list[str]
    data: np.ndarray
    line: int


def parse(text: str, source: str = "<colvars>") -> Table:
    """The rows of a Colvars trajectory as a Table (first column `step`)."""
    lines = text.splitlines()
    heads = [i for i, line in enumerate(lines) if _HEADER.match(line)]
    if not heads:
        raise InputError(f"{source}: no '# step ...' header line; not a Colvars trajectory")
    first = next((i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")), None)
    if first is not None and first < heads[0]:
        raise InputError(f"{source}: line {first + 1}: data before the first '# step' header")
    notes: list[str] = []
    segments = []
    for k, head in enumerate(heads):
        end = heads[k + 1] if k + 1 < len(heads) else len(lines)
        segments.append(_segment(lines, head, end, source, notes))
    segments = _drop_repeated_steps(segments)
    kept = [s for s in segments if len(s.data)]
    if not kept:
        raise InputError(f"{source}: has '# step' headers but no data rows")
    names, data, dropped = _merge(kept, source)
    notes += [f"{source}: column {n!r} is {why}; it is left out" for n, why in dropped.items()]
    return Table(names, data, source, segments=len(heads), notes=notes, dropped=dropped)


def _segment(lines: list[str], head: int, end: int, source: str, notes: list[str]) -> _Segment:
    labels = lines[head].split("#", 1)[1].split()
    body = [("" if line.lstrip().startswith("#") else line) for line in lines[head + 1:end]]
    first_row = next((i for i, line in enumerate(body) if line.strip()), None)
    if first_row is None:
        return _Segment(labels, np.empty((0, len(labels))), head + 1)
    widths = _widths(body[first_row], labels, source, head + 2 + first_row, head + 1)
    names = [n if w == 1 else f"{n}_{c}" for n, w in zip(labels, widths) for c in range(1, w + 1)]
    _check_unique(names, source, head + 1)
    _check_parentheses(body, body[first_row].count("("), source, head + 2)
    flat = [line.translate(_VECTOR_SEPARATORS) for line in body]
    data = load_rows(flat, head + 2, len(names), source, notes, names)
    return _Segment(names, data, head + 1)


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


def _check_parentheses(body: list[str], vectors: int, source: str, first_line: int) -> None:
    """Every row has as many `(` and `)` as the first (counted over the block first: C speed when all is well);
    a last row that breaks off is left to the row reader, which drops it as cut short."""
    rows = sum(1 for line in body if line.strip())
    text = "\n".join(body)
    if text.count("(") == text.count(")") == rows * vectors:
        return
    data = [i for i, line in enumerate(body) if line.strip()]
    for i in data[:-1]:
        if body[i].count("(") != vectors or body[i].count(")") != vectors:
            raise InputError(f"{source}: line {first_line + i}: {body[i].count('(')} '(' and {body[i].count(')')} "
                             f"')' where the first row has {vectors} vectors")


def _check_unique(names: list[str], source: str, line: int) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise InputError(f"{source}: line {line}: column name {name!r} appears twice; names must be unique")
        seen.add(name)


def _drop_repeated_steps(segments: list[_Segment]) -> list[_Segment]:
    """At each new header the step before it is written again after it: keep the later row only."""
    last: tuple[int, float] | None = None  # (segment index, step) of the latest row so far
    for k, seg in enumerate(segments):
        if not len(seg.data):
            continue
        if last is not None and seg.data[0, 0] == last[1]:
            prev = segments[last[0]]
            prev.data = prev.data[:-1]
        last = (k, seg.data[-1, 0])
    return segments


def _merge(segments: list[_Segment], source: str) -> tuple[list[str], np.ndarray, dict[str, str]]:
    names = segments[0].names
    if all(s.names == names for s in segments):
        return names, np.concatenate([s.data for s in segments]), {}
    common = [n for n in names if all(n in s.names for s in segments)]
    if not common:
        raise InputError(f"{source}: the '# step' headers of its segments have no column in common")
    everything = dict.fromkeys(n for s in segments for n in s.names)
    dropped = {n: "only under the headers of lines " + ", ".join(str(s.line) for s in segments if n in s.names)
               for n in everything if n not in common}
    blocks = [s.data[:, [s.names.index(c) for c in common]] for s in segments]
    return common, np.concatenate(blocks), dropped


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
