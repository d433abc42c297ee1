"""Rows of numbers from one block of text lines, for the engine-specific readers (Colvars, GROMACS xvg).

numpy's C parser reads a block at once; only when it refuses one does a Python scan find the exact line and
column, so a bad file gets one message naming file:line and the fast path stays fast."""
from __future__ import annotations

import io
import re

import numpy as np

from .._errors import InputError
from .numbers import clip

#: What a number may look like (numpy's text parser also takes these; Python's float() takes more: `1_000`,
#: non-ASCII digits, which are refused here so that both paths agree).
NUMBER = re.compile(r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)", re.IGNORECASE | re.ASCII)


def load_rows(lines: list[str], first_line: int, ncols: int, source: str,
              notes: list[str] | None = None, names: list[str] | None = None) -> np.ndarray:
    """(rows, ncols) float64 from `lines` (already stripped of comments; blank lines allowed); `first_line` is
    the file line number of lines[0]. With `notes`, a last row cut short (a run killed while writing) is dropped
    and said there instead of failing."""
    if not any(line.strip() for line in lines):
        return np.empty((0, ncols))
    try:
        data = np.loadtxt(io.StringIO("\n".join(lines)), ndmin=2, dtype=np.float64, comments=None)
    except ValueError:
        data = None
    if data is not None and data.shape[1] == ncols:
        return data
    index, message, short = _first_bad(lines, ncols, names)
    if notes is not None and short and not any(line.strip() for line in lines[index + 1:]):
        notes.append(f"{source}: line {first_line + index}: dropped a row cut short{message}")
        return load_rows(lines[:index], first_line, ncols, source, None, names)
    raise InputError(f"{source}: line {first_line + index}{message}")


def _first_bad(lines: list[str], ncols: int, names: list[str] | None) -> tuple[int, str, bool]:
    """(index of the first bad line, what is wrong, whether it is merely short of values)."""
    for i, line in enumerate(lines):
        tokens = line.split()
        if not tokens:
            continue
        for c, tok in enumerate(tokens):
            if NUMBER.fullmatch(tok) is None:
                column = f" ({names[c]})" if names and c < len(names) else ""
                cut = c == len(tokens) - 1 and len(tokens) <= ncols  # the write stopped inside this number
                return i, f", value {c + 1}{column}: {clip(tok)} is not a number", cut
        if len(tokens) != ncols:
            return i, f": {len(tokens)} values, expected {ncols} (rows of different lengths)", len(tokens) < ncols
    # numpy refused a block this scan accepts (a character numpy splits on, such as NUL): name the first line
    # that holds one
    bad = next((i for i, line in enumerate(lines) if not line.isprintable()), 0)
    return bad, f": cannot read the numbers of {clip(lines[bad])}", False
