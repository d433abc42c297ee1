"""Surfaces out in other programs' grid formats: Colvars multicolumn grids (`.pmf`) and OpenDX (`.dx`).

Colvars (colvar_grid::write_multicol in Colvars' colvargrid_def.h): a line `# <number of CVs>`, then per CV
`# <lower boundary> <bin width> <bins> <periodic 0|1>`, then one row per bin, `x1 ... xn  value`, the last CV
fastest, with an empty line before each run of the last CV. Colvars places values at bin centres, so a grid
point x of cyfes is the centre of the bin [x - dx/2, x + dx/2) and the lower boundary is axis[0] - dx/2.

OpenDX (the format of VMD's and PyMOL's volumetric maps, and of Colvars' write_opendx): gridpositions with
origin and one delta line per axis, gridconnections, a rank-0 array of the values with the last axis fastest,
three per line, and the field that joins them. For 3 CVs, as the viewers expect.
"""
from __future__ import annotations

from typing import IO, Any

import numpy as np

from .._errors import InputError
from .text_rows import load_rows
from .writers import cv_names

#: Colvars writes grids with cv_width 21 and cv_prec 14 in scientific notation.
COLVARS_NUMBER = "%21.14e"
DX_NUMBER = "%.10e"
#: Rows formatted at a time (memory stays bounded whatever the grid).
CHUNK = 1 << 12


def _spacings(result: Any) -> list[float]:
    out = []
    for name, axis in zip(cv_names(result), result.axes):
        if len(axis) < 2:
            raise InputError(f"grid of {name}: one point has no bin width; a grid file needs at least 2 points")
        out.append(float(axis[1] - axis[0]))
    return out


def colvars_header(result: Any) -> list[str]:
    widths = _spacings(result)
    lines = [f"# {result.dim}"]
    for axis, width, period in zip(result.axes, widths, result.periodic):
        lines.append("# " + COLVARS_NUMBER % (axis[0] - width / 2) + " " + COLVARS_NUMBER % width
                     + " %10d  %d" % (len(axis), 1 if period else 0))
    return lines


def write_colvars_grid(out: IO[str], result: Any) -> None:
    out.write("\n".join(colvars_header(result)) + "\n")
    values = np.asarray(result.values, dtype=np.float64)
    last = values.shape[-1]
    mesh_index = np.indices(values.shape).reshape(values.ndim, -1).T  # C order: the last CV fastest
    row = " " + " ".join([COLVARS_NUMBER] * values.ndim) + "  " + COLVARS_NUMBER + "\n"
    flat = values.ravel()
    for start in range(0, len(flat), CHUNK):
        idx = mesh_index[start:start + CHUNK]
        coords = np.stack([result.axes[d][idx[:, d]] for d in range(values.ndim)], axis=1)
        parts = []
        for k, (c, v) in enumerate(zip(coords.tolist(), flat[start:start + CHUNK].tolist())):
            if (start + k) % last == 0:
                parts.append("\n")
            parts.append(row % (*c, v))
        out.write("".join(parts))


def write_dx(out: IO[str], result: Any) -> None:
    if result.dim != 3:
        raise InputError(f"dx: OpenDX maps here hold 3-D grids (VMD, PyMOL); this FES has {result.dim} CVs")
    widths = _spacings(result)
    shape = " ".join(str(len(a)) for a in result.axes)
    lines = [f"# cyfes free energy surface in {result.units}; axes {' '.join(cv_names(result))}",
             f"object 1 class gridpositions counts {shape}",
             "origin " + " ".join(DX_NUMBER % a[0] for a in result.axes)]
    for d in range(3):
        lines.append("delta " + " ".join(DX_NUMBER % (widths[d] if e == d else 0.0) for e in range(3)))
    lines += [f"object 2 class gridconnections counts {shape}",
              f"object 3 class array type double rank 0 items {result.values.size} data follows"]
    out.write("\n".join(lines) + "\n")
    flat = np.asarray(result.values, dtype=np.float64).ravel()  # C order: z fastest, as OpenDX reads
    step = 3 * CHUNK
    for start in range(0, len(flat), step):
        chunk = flat[start:start + step].tolist()
        out.write("".join(" ".join(DX_NUMBER % v for v in chunk[i:i + 3]) + "\n" for i in range(0, len(chunk), 3)))
    out.write('attribute "dep" string "positions"\n'
              'object "free energy" class field\n'
              'component "positions" value 1\n'
              'component "connections" value 2\n'
              'component "data" value 3\n')


# ----------------------------------------------------------------------------------------------- reading
def parse_colvars_grid(text: str, source: str = "<pmf>") -> Any:
    """A Colvars multicolumn grid (`.pmf`, `.czar.pmf`, `.count`, ...) as a formats.Grid: axes at the bin
    centres, values in matrix order (the file runs the last CV fastest), periodic from the pbc flags."""
    from .formats import Grid  # deferred: a cycle (formats imports this module)
    lines = text.splitlines()
    try:
        dim = int(lines[0].lstrip("#").split()[0])
        spec = [lines[1 + d].lstrip("#").split() for d in range(dim)]
        lows = [float(s[0]) for s in spec]
        widths = [float(s[1]) for s in spec]
        counts = [int(s[2]) for s in spec]
        periodic = [s[3] == "1" for s in spec]
    except (IndexError, ValueError):
        raise InputError(f"{source}: lines 1-2: not a Colvars grid header ('# ncv', then per CV "
                         "'# lower width bins periodic')") from None
    if dim < 1 or min(counts) < 1:
        raise InputError(f"{source}: line 1: a Colvars grid needs at least one CV and one bin per CV")
    body = ["" if line.lstrip().startswith("#") else line for line in lines[1 + dim:]]
    first = next((line for line in body if line.strip()), "")
    ncols = len(first.split())
    if ncols != dim + 1:
        raise InputError(f"{source}: {ncols} columns for {dim} CVs; cyfes reads grids of one value per point "
                         "(not gradient grids)")
    data = load_rows(body, 2 + dim, ncols, source)
    if len(data) != int(np.prod(counts)):
        raise InputError(f"{source}: {len(data)} rows where the header's bins make {int(np.prod(counts))}")
    axes = [lo + (np.arange(n) + 0.5) * w for lo, w, n in zip(lows, widths, counts)]
    return Grid([f"cv{d + 1}" for d in range(dim)], axes, data[:, -1].reshape(counts), None, periodic)
