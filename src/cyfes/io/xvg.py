"""GROMACS `.xvg` files (xmgrace format), as `gmx energy`, `gmx distance`, `gmx angle` ... write them.

Lines starting with `#` are comments; lines starting with `@` are xmgrace commands, of which two name the
columns: `@    xaxis  label "Time (ps)"` the first column, `@ s0 legend "Potential"` the second (s1 the third,
...; older files write `@ legend string 0 "..."`). Without legends a file with one data column takes the y axis
label for it. Columns without a name are `col0`, `col1`, ... A line `&` ends a data set; cyfes reads files with
one set whose columns stand side by side (GROMACS' default), and refuses a second set.
"""
from __future__ import annotations

import re

import numpy as np

from .._errors import InputError
from .tables import Table
from .text_rows import load_rows

_LEGEND = re.compile(r'^@\s*(?:s(\d+)\s+legend|legend\s+string\s+(\d+))\s+"(.*)"\s*$')
_AXIS = re.compile(r'^@\s*([xy])axis\s+label\s+"(.*)"\s*$')


def looks_like(head: str) -> bool:
    """Whether the first line that is neither blank nor a `#` comment is an xmgrace `@` command."""
    for line in head.splitlines():
        text = line.strip()
        if text and not text.startswith("#"):
            return text.startswith("@")
    return False


def parse(text: str, source: str = "<xvg>") -> Table:
    """The data columns of an xvg file as a Table, named by its axis label and legends."""
    reader = Reader(source)
    parts = reader.feed(text.splitlines(), 1)
    table = reader.table()
    table.data = parts[0][1]  # one block: one part
    return table


class Reader:
    """An xvg file fed in blocks of whole lines (parse: one block; ChunkedTable: one per read buffer): feed
    returns each block's rows as a (column names, rows) part, table() the Table with no rows once every line was
    fed. An `@` command that renames a column after rows were returned is refused: the rows went out under the
    old names (GROMACS writes every `@` line before the data)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.legends: dict[int, str] = {}
        self.axes: dict[str, str] = {}
        self.end: int | None = None      # the line of the '&' that ended the data set
        self.ncols: int | None = None    # from the first data row
        self.taken = False               # rows were returned

    def feed(self, lines: list[str], first_line: int) -> list[tuple[list[str], np.ndarray]]:
        body: list[str] = []
        for i, line in enumerate(lines):
            text_line = line.strip()
            if text_line.startswith("@"):
                self._directive(text_line, first_line + i)
                body.append("")
            elif text_line.startswith("&"):
                self.end = first_line + i if self.end is None else self.end
                body.append("")
            elif text_line.startswith("#") or not text_line:
                body.append("")
            elif self.end is not None:
                raise InputError(f"{self.source}: line {first_line + i}: a second data set after the '&' of line "
                                 f"{self.end}; cyfes reads xvg files with one set (columns side by side)")
            else:
                body.append(line)
        if self.ncols is None:
            first = next((line for line in body if line.strip()), None)
            if first is None:
                return []
            self.ncols = len(first.split())
        data = load_rows(body, first_line, self.ncols, self.source, None, self.names())
        self.taken = self.taken or len(data) > 0
        return [(self.names(), data)] if len(data) else []

    def finish(self) -> list[tuple[list[str], np.ndarray]]:
        """After the last block: no rows are held back."""
        return []

    def _directive(self, line: str, number: int) -> None:
        before = self.names() if self.taken else None
        _directive(line, self.legends, self.axes)
        if before is not None and self.names() != before:
            raise InputError(f"{self.source}: line {number}: renames a column after data rows that were read "
                             "under its old name; read this file whole (move its '@' lines before the data)")

    def names(self) -> list[str]:
        return _names(self.ncols or 0, self.legends, self.axes)

    def table(self) -> Table:
        """After the last block: the Table's names, no rows."""
        if self.ncols is None:
            raise InputError(f"{self.source}: has no data rows")
        return Table(self.names(), np.empty((0, self.ncols)), self.source)


def _directive(line: str, legends: dict[int, str], axes: dict[str, str]) -> None:
    legend = _LEGEND.match(line)
    if legend:
        index = legend.group(1) if legend.group(1) is not None else legend.group(2)
        legends[int(index)] = legend.group(3).strip()
        return
    axis = _AXIS.match(line)
    if axis:
        axes[axis.group(1)] = axis.group(2).strip()


def _names(ncols: int, legends: dict[int, str], axes: dict[str, str]) -> list[str]:
    """Axis label and legends; a missing or repeated one gives the column's `colN` name instead."""
    names = [axes.get("x") or "col0"]
    for c in range(1, ncols):
        name = legends.get(c - 1)
        if not name and ncols == 2 and not legends:
            name = axes.get("y")
        names.append(name if name and name not in names else f"col{c}")
    return names
