"""GROMACS `.xvg` files (xmgrace format), as `gmx energy`, `gmx distance`, `gmx angle` ... write them.

Lines starting with `#` are comments; lines starting with `@` are xmgrace commands, of which two name the
columns: `@    xaxis  label "Time (ps)"` the first column, `@ s0 legend "Potential"` the second (s1 the third,
...; older files write `@ legend string 0 "..."`). Without legends a file with one data column takes the y axis
label for it. Columns without a name are `col0`, `col1`, ... A line `&` ends a data set; cyfes reads files with
one set whose columns stand side by side (GROMACS' default), and refuses a second set.
"""
from __future__ import annotations

import re

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
    lines = text.splitlines()
    legends: dict[int, str] = {}
    axes: dict[str, str] = {}
    body: list[str] = []
    end: int | None = None
    for i, line in enumerate(lines):
        text_line = line.strip()
        if text_line.startswith("@"):
            _directive(text_line, legends, axes)
            body.append("")
        elif text_line.startswith("&"):
            end = i if end is None else end
            body.append("")
        elif text_line.startswith("#") or not text_line:
            body.append("")
        elif end is not None:
            raise InputError(f"{source}: line {i + 1}: a second data set after the '&' of line {end + 1}; "
                             "cyfes reads xvg files with one set (columns side by side)")
        else:
            body.append(line)
    first = next((i for i, line in enumerate(body) if line.strip()), None)
    if first is None:
        raise InputError(f"{source}: has no data rows")
    ncols = len(body[first].split())
    names = _names(ncols, legends, axes)
    data = load_rows(body, 1, ncols, source, None, names)
    return Table(names, data, source)


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
