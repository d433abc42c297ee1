"""Files in and out, cyfes's one place to import them from: sample tables, number expressions, surface files.

The jobs live in their own modules: `numbers` (numbers and pi expressions), `tables` (sample tables in: PLUMED
COLVAR, whitespace/CSV text, gzip, .npy), `writers` (surfaces out). This module gives their public names and
reads surfaces back: `read_grid(path)` returns the `Grid` (names, axes, values, error, periodic) of any file
`write_result` writes, and of PLUMED's own grids (public API, for checking and post-processing a run).

Readers return plain arrays; every writer writes to a temporary name in the target directory and renames it,
so a failed run never leaves a partial file behind. Errors are `InputError`s whose message names the file
(and the line and column where that makes sense); only the CLI prints them.

Grid formats (`write_result`, chosen by extension or `fmt`):
  plumed  .grid .fes    PLUMED grid text as sum_hills writes it: `#! FIELDS cv... file.free der_cv...`,
                        `#! SET min_/max_/nbins_/periodic_` per CV, first CV fastest, a blank line after each row.
  dat     .dat .txt     columns `cv... free_energy [error]`, first CV slowest, a blank line between blocks; `#`
                        header lines record units, temperature and `periodic CV=PERIOD ...` (read back).
  csv     .csv          the same columns, comma separated, one header line.
  cube    .cube .cub    Gaussian cube (3-D grids only), CV units written as they are (read as Bohr by viewers).
  npz     .npz          numpy archive: values, axis0.., names, error, units, temperature, kT, periodic.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._errors import InputError
from .numbers import MAX_NUMBER_TEXT, parse_number, parse_positive_int
from .tables import (
    INPUT_MEMORY_FRACTION,
    PathLike,
    Table,
    directives,
    is_float,
    max_input_bytes,
    parse_table_text,
    physical_memory,
    read_groups,
    read_table,
    set_values,
)
from .writers import (
    CHUNK_ROWS,
    DAT_FREE_FIELD,
    FORMATS,
    PERIODIC_HEAD,
    PLUMED_FREE_FIELD,
    atomic_write,
    check_number_format,
    check_output_path,
    columns_text,
    cube_header,
    cube_text,
    cube_text_for,
    cv_names,
    estimated_bytes,
    npz_fields,
    output_format,
    plumed_grid_text,
    points_text,
    result_writer,
    write_columns,
    write_cube,
    write_plumed_grid,
    write_points,
    write_result,
    write_text,
    writer_memory,
)

__all__ = [  # the jobs' names, as cyfes.io.formats gives them, and the grid readers below
    "MAX_NUMBER_TEXT", "parse_number", "parse_positive_int", "INPUT_MEMORY_FRACTION", "PathLike", "Table", "max_input_bytes",
    "parse_table_text", "physical_memory", "read_groups", "read_table", "CHUNK_ROWS", "DAT_FREE_FIELD", "FORMATS",
    "PLUMED_FREE_FIELD", "atomic_write", "check_output_path", "columns_text", "cube_header", "cube_text",
    "cube_text_for", "cv_names", "estimated_bytes", "npz_fields", "output_format", "plumed_grid_text", "points_text",
    "result_writer", "write_columns", "write_cube", "write_plumed_grid", "write_points", "write_result", "write_text",
    "writer_memory", "check_number_format",
    "Grid", "read_grid", "parse_plumed_grid", "parse_cube",
    "directives", "set_values", "is_float",  # PLUMED header rules the other readers share (hills, cyfes45)
]


# ----------------------------------------------------------------------------------------------- reading grids
@dataclass
class Grid:
    """A free energy grid read back from a file: axes per CV, values shaped by the axes (matrix indexing)."""

    names: list[str]
    axes: list[np.ndarray]
    values: np.ndarray
    error: np.ndarray | None = None
    periodic: list[bool] = field(default_factory=list)
    #: What the file records of how it was made, where it does (.npz, a cyfes .dat): "temperature" (K),
    #: "units" and "periods" (per CV, the period or None).
    recorded: dict = field(default_factory=dict)


def read_grid(path: PathLike, fmt: str | None = None) -> Grid:
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
    if kind in ("colvars", "dx"):
        from . import program_grids  # deferred: a cycle (program_grids imports this module)
        if kind == "dx":
            raise InputError(f"{p}: reading OpenDX maps back is not supported")
        return program_grids.parse_colvars_grid(text, str(p))
    if fmt is None and text.lstrip().startswith("#! FIELDS"):  # plumed sum_hills names its grid fes.dat
        return parse_plumed_grid(text, str(p))
    return _parse_columns(text, str(p))


def _read_npz_grid(p: Path) -> Grid:
    with np.load(p, allow_pickle=False) as z:
        names = [str(n) for n in z["names"]]
        axes = [z[f"axis{d}"] for d in range(len(names))]
        error = z["error"] if "error" in z.files else None
        periods = [float(x) if np.isfinite(x) else None for x in z["periodic"]]
        recorded: dict = {"periods": periods}
        if "temperature" in z.files:
            recorded["temperature"] = float(z["temperature"])
        if "units" in z.files:
            recorded["units"] = str(z["units"])
        return Grid(names, axes, z["values"], error, [p is not None for p in periods], recorded)


def parse_plumed_grid(text: str, source: str = "<grid>") -> Grid:
    table = parse_table_text(text, source)
    sets = set_values(directives(text))
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
    names = header[-1].lstrip("#").split() if header else (lines[0].split(",") if lines else [])
    data = parse_table_text(text, source).data  # file:line errors; '#' lines and a CSV's names line skipped
    if DAT_FREE_FIELD not in names:
        raise InputError(f"{source}: no {DAT_FREE_FIELD} column in its header ({' '.join(names) or 'empty'}); "
                         "not a cyfes .dat/.csv grid")
    dim = names.index(DAT_FREE_FIELD)
    axes = [np.unique(data[:, d]) for d in range(dim)]
    shape = tuple(len(a) for a in axes)
    error = data[:, dim + 1].reshape(shape) if "error" in names else None
    recorded = _dat_recorded(header[:-1], names[:dim], source)
    periods = recorded.get("periods", [None] * dim)
    return Grid(names[:dim], axes, data[:, dim].reshape(shape), error, [p is not None for p in periods], recorded)


_DAT_THERMAL = re.compile(r"free energy surface in (kJ/mol|kcal/mol) at (\S+) K")


def _dat_recorded(comments: list[str], names: list[str], source: str) -> dict:
    """The units, temperature and periods a cyfes .dat header records (writers._header_lines)."""
    out: dict = {}
    for line in comments:
        text = line.lstrip("#").strip()
        thermal = _DAT_THERMAL.search(text)
        if thermal and is_float(thermal.group(2)):
            out.update(units=thermal.group(1), temperature=float(thermal.group(2)))
        if text.split(" ", 1)[0] == PERIODIC_HEAD:
            out["periods"] = _dat_periods(text.split()[1:], names, source)
    return out


def _dat_periods(fields: list[str], names: list[str], source: str) -> list[float | None]:
    periods: dict[str, float] = {}
    for item in fields:
        name, _, value = item.partition("=")
        if name not in names or not is_float(value) or not float(value) > 0 or not np.isfinite(float(value)):
            raise InputError(f"{source}: bad '{PERIODIC_HEAD}' header entry {item!r}: expected CV=PERIOD with a "
                             f"CV of the file ({' '.join(names)}) and a period > 0")
        periods[name] = float(value)
    return [periods.get(n) for n in names]


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
