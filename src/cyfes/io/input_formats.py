"""Which reader a sample file needs, told from its content (or forced by name), and errors that say which.

Formats (INPUT_FORMATS), tried in this order on the first 64 KiB of text:
  plumed   a `#! FIELDS` line (PLUMED COLVAR, HILLS, OPES STATE files)
  colvars  the first line is a Colvars `# step ...` header (.colvars.traj)
  xvg      the first line that is not a `#` comment is an xmgrace `@` command (GROMACS .xvg)
  csv      a comma on the first data line
  text     whitespace-separated columns, with or without a header line
  npy      numpy's `.npy` magic bytes (or the .npy extension)
A file that does not fit the format read gets one error line naming the file and the line; for a Colvars or
xvg file, and for any format forced by name, it also names the format and why it was chosen, so a wrong guess
is visible and `--input-format` can force another.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .._errors import InputError
from . import colvars as colvars_io
from . import xvg as xvg_io
from .format_names import INPUT_FORMATS

if TYPE_CHECKING:
    from .tables import Table

_NPY_MAGIC = b"\x93NUMPY"
#: How much of a file the content checks look at.
HEAD_CHARS = 1 << 16
#: Formats read before content detection existed: their errors, when detected, need no word on the format.
_CLASSIC = ("plumed", "csv", "text")
_LABELS = {"plumed": "a PLUMED file", "colvars": "a Colvars trajectory", "xvg": "a GROMACS xvg file",
           "csv": "a CSV table", "text": "a whitespace table", "npy": "a .npy array"}


def label(fmt: str) -> str:
    """How an error names a format: "a PLUMED file", "a Colvars trajectory", ..."""
    return _LABELS[fmt]


def check_name(fmt: str | None) -> str | None:
    if fmt is not None and fmt not in INPUT_FORMATS:
        raise InputError(f"--input-format: unknown format {fmt!r}; choose one of {', '.join(INPUT_FORMATS)}")
    return fmt


def is_npy(path: Path) -> bool:
    """Whether the file starts with numpy's magic bytes (a .gz never does: it is read as text)."""
    if path.suffix.lower() == ".gz":
        return False
    try:
        with open(path, "rb") as handle:
            return handle.read(len(_NPY_MAGIC)) == _NPY_MAGIC
    except OSError:
        return False  # the text path reports the reason


def detect(text: str) -> tuple[str, str]:
    """(format, why) from the start of a text file."""
    head = text[:HEAD_CHARS]
    if has_fields(head):
        return "plumed", "it has a '#! FIELDS' line"
    if colvars_io.looks_like(head):
        return "colvars", "its first line is a '# step' header"
    if xvg_io.looks_like(head):
        return "xvg", "it has '@' lines"
    first = next((line for line in head.splitlines() if line.strip() and not line.lstrip().startswith("#")), "")
    if "," in first:
        return "csv", "its first data line has commas"
    return "text", "no other format fits"


def has_fields(head: str) -> bool:
    return any(line.startswith("#!") and line[2:].split()[:1] == ["FIELDS"] for line in head.splitlines())


def kind_of(text: str, fmt: str | None) -> tuple[str, str]:
    """(format, how it was chosen, for errors) of a text that starts with `text`, read as `fmt` (None: detected)."""
    if fmt is None:
        kind, why = detect(text)
        return kind, f"guessed because {why}; --input-format chooses another"
    return fmt, f"as --input-format {fmt} asks"


@contextlib.contextmanager
def errors_name(kind: str, how: str, fmt: str | None) -> Iterator[None]:
    """An error reading a file as `kind` says which format was read, and why (kind_of)."""
    try:
        yield
    except InputError as exc:
        if fmt is None and kind in _CLASSIC:  # the messages cyfes always gave for its first formats stay as they were
            raise
        raise InputError(f"{exc} (read as {_LABELS[kind]}, {how})") from None


def line_reader(kind: str, source: str) -> colvars_io.Reader | xvg_io.Reader:
    """The reader of a Colvars or xvg file fed in blocks of lines (ChunkedTable)."""
    return colvars_io.Reader(source) if kind == "colvars" else xvg_io.Reader(source)


def parse_text(text: str, source: str, fmt: str | None, plumed_or_plain: Callable[[str, str], Table]) -> Table:
    """The Table of `text` read as `fmt` (None: detected); `plumed_or_plain` is the PLUMED/plain table parser."""
    kind, how = kind_of(text, fmt)
    with errors_name(kind, how, fmt):
        if kind == "colvars":
            return colvars_io.parse(text, source)
        if kind == "xvg":
            return xvg_io.parse(text, source)
        if kind == "plumed" and not has_fields(text):
            raise InputError(f"{source}: no '#! FIELDS' header line")
        if kind == "csv" and "," not in text[:HEAD_CHARS]:
            raise InputError(f"{source}: no comma in its first {HEAD_CHARS} characters")
        return plumed_or_plain(text, source)
