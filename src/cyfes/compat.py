"""The CyFES 4.5 command line: `python -m cyfes -i data.txt -g 20,20,20 -o fes.cub`.

CyFES 4.5 semantics, as reproduced here:
  * input: a whitespace text file, `#` comments; columns chosen by 0-based index: CVs `-ic` (default 0,1,2),
    bias `-ib` (default 3), second bias `-ir` (default 4); `-no_bias` / `-no_rbias` drop either. Rows `-s` to
    `-e` (Python slice, end exclusive).
  * energies in kcal/mol at 300 K (kT = k_B * 300 K = 0.5962 kcal/mol); each sample weighs exp((bias + rbias)/kT).
  * F(x) = -kT ln sum_j w_j exp(-|x - s_j|^2 / (2 sigma^2)) with one isotropic `-sigma` (default 0.3), neither
    normalised nor shifted.
  * grid: `-g` intervals per axis, so g+1 points from `-cmin` to `-cmax` (default: the data's min and max);
    `-intg` a grid spacing that replaces `-g`.
  * `-o` a Gaussian cube (lengths in Bohr, the CVs read as Angstrom), `-odat` columns `x y z F` in Angstrom with
    x slowest. `-f32` computes in float32.
Differences (deliberate): the grid order is right for any point counts (CyFES 4.5 scrambles it when the x and
y counts differ); `-device` and `-sink` are accepted and ignored with a warning; `-a` and `-b` too (see
LEGACY_IGNORED). Only cli.py prints: warnings come back as strings.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from . import formats
from ._errors import InputError

#: kT of CyFES 4.5: kcal/mol at 300 K.
LEGACY_UNITS = "kcal/mol"
LEGACY_TEMPERATURE = 300.0
#: Grid intervals per axis when -g is not given.
DEFAULT_INTERVALS = 10
#: Flags CyFES 4.5 parsed; a command line starting with one of them is a CyFES 4.5 command line.
LEGACY_FLAGS = ("-i", "-ic", "-ib", "-ir", "-no_bias", "-no_rbias", "-s", "-e", "-g", "-cmin", "-cmax", "-intg",
                "-sigma", "-f32", "-a", "-b", "-o", "-odat", "-device", "-sink")
#: Flags accepted for old scripts' sake but without effect here, and why.
LEGACY_IGNORED = {
    "device": "cyfes picks the GPU itself (use `cyfes fes --device`)",
    "sink": "cyfes has no sink step",
    "a": "its CyFES 4.5 meaning is not reproduced",
    "b": "its CyFES 4.5 meaning is not reproduced",
}
_TRUE = ("1", "true", "t", "yes", "y", "on")
_FALSE = ("0", "false", "f", "no", "n", "off", "none")


def is_legacy(argv: Sequence[str]) -> bool:
    """True when argv (without the program name) starts with a CyFES 4.5 flag (single dash)."""
    if not argv:
        return False
    first = argv[0].split("=", 1)[0]
    return first.startswith("-") and not first.startswith("--") and first in LEGACY_FLAGS


@dataclass
class LegacyOptions:
    """A parsed CyFES 4.5 command line."""

    input: Path
    cv_columns: List[int]
    bias_column: Optional[int]
    rbias_column: Optional[int]
    start: int
    end: Optional[int]
    intervals: List[int]
    cmin: Optional[List[float]]
    cmax: Optional[List[float]]
    spacing: Optional[List[float]]
    sigma: float
    float32: bool
    cube: Optional[Path]
    dat: Optional[Path]
    warnings: List[str] = field(default_factory=list)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(f"CyFES 4.5 command line: {message}")


def legacy_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m cyfes", add_help=False, allow_abbrev=False,
                description="CyFES 4.5 compatible command line (see `cyfes fes --help` for the new one).")
    add = p.add_argument
    add("-i", required=True, help="input record file")
    add("-ic", default="0,1,2", help="CV column indices (0-based), default 0,1,2")
    add("-ib", default=None, help="bias column index, default 3")
    add("-ir", default=None, help="second bias (rbias) column index, default 4")
    for flag in ("-no_bias", "-no_rbias", "-f32", "-sink"):
        add(flag, nargs="?", const="true", default="false", help="true/false")
    add("-s", default="0", help="first row (0-based)")
    add("-e", default=None, help="end row (exclusive)")
    add("-g", default=None, help="grid intervals per axis (g+1 points), default 10 per axis")
    add("-cmin", default=None, help="grid minimum per axis")
    add("-cmax", default=None, help="grid maximum per axis")
    add("-intg", default=None, help="grid spacing per axis (replaces -g)")
    add("-sigma", default="0.3", help="Gaussian bandwidth (isotropic)")
    add("-a", default=None)
    add("-b", default=None)
    add("-device", default=None)
    add("-o", default=None, help="output cube file")
    add("-odat", default=None, help="output dat file")
    return p


def _flag(value: str, name: str) -> bool:
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InputError(f"-{name}: expected true or false, got {value!r}")


def _ints(text: str, name: str) -> List[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise InputError(f"-{name}: expected comma-separated integers, got {text!r}") from None


def _floats(text: Optional[str], name: str) -> Optional[List[float]]:
    if text is None:
        return None
    return [formats.parse_number(t, f"-{name}") for t in text.split(",") if t.strip()]


def _column(text: Optional[str], default: int, off: bool, name: str) -> Optional[int]:
    if off:
        return None
    if text is None:
        return default
    values = _ints(text, name)
    if len(values) != 1:
        raise InputError(f"-{name}: expected one column index, got {text!r}")
    return values[0]


def _glue_values(argv: Sequence[str]) -> List[str]:
    """Join each flag to its value (`-cmin=-3,-3`) so argparse takes negative lists for values, not flags."""
    out, args, k = [], list(argv), 0
    switches = ("-no_bias", "-no_rbias", "-f32", "-sink")
    while k < len(args):
        tok = args[k]
        nxt = args[k + 1] if k + 1 < len(args) else None
        takes = tok in LEGACY_FLAGS and (tok not in switches or (nxt or "").lower() in _TRUE + _FALSE)
        if takes and nxt is not None and nxt not in LEGACY_FLAGS and "=" not in tok:
            out.append(f"{tok}={nxt}")
            k += 2
        else:
            out.append(tok)
            k += 1
    return out


def parse_legacy(argv: Sequence[str]) -> LegacyOptions:
    """Parse a CyFES 4.5 command line (argv without the program name)."""
    ns = legacy_parser().parse_args(_glue_values(argv))
    warnings = [f"-{key} is accepted for CyFES 4.5 scripts but ignored: {why}"
                for key, why in LEGACY_IGNORED.items()
                if getattr(ns, key) is not None and not (key == "sink" and not _flag(ns.sink, "sink"))]
    if ns.o is None and ns.odat is None:
        raise InputError("CyFES 4.5 command line: give an output, -o FILE.cub and/or -odat FILE.dat")
    sigma = formats.parse_number(ns.sigma, "-sigma")
    if sigma <= 0:
        raise InputError(f"-sigma: must be > 0, got {ns.sigma!r}")
    return LegacyOptions(
        input=Path(ns.i), cv_columns=_ints(ns.ic, "ic"),
        bias_column=_column(ns.ib, 3, _flag(ns.no_bias, "no_bias"), "ib"),
        rbias_column=_column(ns.ir, 4, _flag(ns.no_rbias, "no_rbias"), "ir"),
        start=_ints(ns.s, "s")[0] if ns.s else 0, end=_ints(ns.e, "e")[0] if ns.e else None,
        intervals=_ints(ns.g, "g") if ns.g else [DEFAULT_INTERVALS], cmin=_floats(ns.cmin, "cmin"), cmax=_floats(ns.cmax, "cmax"),
        spacing=_floats(ns.intg, "intg"), sigma=sigma, float32=_flag(ns.f32, "f32"),
        cube=Path(ns.o) if ns.o else None, dat=Path(ns.odat) if ns.odat else None, warnings=warnings)


def _per_axis(values: Optional[List[float]], dim: int, name: str) -> Optional[List[float]]:
    if values is None:
        return None
    if len(values) == 1:
        return values * dim
    if len(values) != dim:
        raise InputError(f"-{name}: expected 1 or {dim} values (one per CV), got {len(values)}")
    return values


def _select(table: formats.Table, column: int, what: str) -> np.ndarray:
    if not -table.data.shape[1] <= column < table.data.shape[1]:
        raise InputError(f"{table.source}: {what} column {column} does not exist: the file has "
                         f"{table.data.shape[1]} columns (0 to {table.data.shape[1] - 1})")
    return table.data[:, column]


def legacy_axes(opts: LegacyOptions, samples: np.ndarray) -> List[np.ndarray]:
    """The grid axes of CyFES 4.5: g+1 points per axis from cmin to cmax (or cmin + k * intg)."""
    dim = samples.shape[1]
    lo = _per_axis(opts.cmin, dim, "cmin") or list(samples.min(axis=0))
    hi = _per_axis(opts.cmax, dim, "cmax") or list(samples.max(axis=0))
    spacing = _per_axis(opts.spacing, dim, "intg")
    counts = None if spacing is not None else _per_axis([float(g) for g in opts.intervals], dim, "g")
    axes = []
    for d in range(dim):
        if not hi[d] > lo[d]:
            raise InputError(f"grid: axis {d} needs cmin < cmax, got {lo[d]} and {hi[d]}")
        if spacing is not None:
            if spacing[d] <= 0:
                raise InputError(f"-intg: spacing must be > 0, got {spacing[d]}")
            n = int(math.floor((hi[d] - lo[d]) / spacing[d] + 1e-9))
            axes.append(lo[d] + spacing[d] * np.arange(n + 1))
        else:
            if counts[d] < 1 or counts[d] != int(counts[d]):
                raise InputError(f"-g: grid intervals must be positive integers, got {opts.intervals}")
            axes.append(np.linspace(lo[d], hi[d], int(counts[d]) + 1))
    return axes


def legacy_inputs(opts: LegacyOptions) -> Tuple[np.ndarray, np.ndarray]:
    """The samples (N, D) and the total bias (N,) in kcal/mol, rows start:end."""
    table = formats.read_table(opts.input)
    rows = slice(opts.start, opts.end)
    samples = np.stack([_select(table, c, "CV") for c in opts.cv_columns], axis=1)[rows]
    bias = np.zeros(len(table.data))
    if opts.bias_column is not None:
        bias = bias + _select(table, opts.bias_column, "bias (-ib; -no_bias true to run without)")
    if opts.rbias_column is not None:
        bias = bias + _select(table, opts.rbias_column, "rbias (-ir; -no_rbias true to run without)")
    if len(samples) == 0:
        raise InputError(f"{opts.input}: no rows between -s {opts.start} and -e {opts.end}")
    return samples, bias[rows]


def legacy_free_energy(opts: LegacyOptions, samples: np.ndarray, bias: np.ndarray,
                       axes: List[np.ndarray]) -> np.ndarray:
    """F on the grid as CyFES 4.5 defines it (unnormalised kernel sum, no shift), computed by cyfes.fes."""
    from ._api import fes

    result = fes(samples, opts.sigma, bias=bias, units=LEGACY_UNITS, temperature=LEGACY_TEMPERATURE,
                 grid=np.stack([m.ravel() for m in np.meshgrid(*axes, indexing="ij")], axis=1),
                 precision="float32" if opts.float32 else "float64", shift=False)
    # cyfes.fes returns -kT ln( sum_j w_j N(x; s_j, sigma) / sum_j w_j ); CyFES 4.5 has neither the Gaussian's
    # normalisation nor the division by the total weight.
    logw = bias / result.kT
    top = logw.max()
    log_total = top + math.log(np.exp(logw - top).sum())
    log_norm = -samples.shape[1] * math.log(opts.sigma * math.sqrt(2 * math.pi))
    raw = result.values - result.kT * log_total + result.kT * log_norm
    return raw.reshape(tuple(len(a) for a in axes))


def dat_text(axes: List[np.ndarray], values: np.ndarray) -> str:
    """Columns `x y z F`: coordinates in Angstrom, F in kcal/mol, x slowest."""
    mesh = np.meshgrid(*axes, indexing="ij")
    table = np.stack([m.ravel() for m in mesh] + [values.ravel()], axis=1)
    return formats._fmt_block(table, None)


def run_legacy(opts: LegacyOptions) -> List[Path]:
    """Compute and write what the CyFES 4.5 command line asked for; returns the files written."""
    for out in (opts.cube, opts.dat):
        if out is not None:
            formats.check_output_path(out)
    samples, bias = legacy_inputs(opts)
    if opts.cube is not None and samples.shape[1] != 3:
        raise InputError(f"-o: a cube file needs 3 CVs, got {samples.shape[1]} (-ic); use -odat")
    axes = legacy_axes(opts, samples)
    values = legacy_free_energy(opts, samples, bias, axes)
    written = []
    if opts.cube is not None:
        text = formats.cube_text(values, [a[0] * formats.ANGSTROM_TO_BOHR for a in axes],
                                 [(a[1] - a[0]) * formats.ANGSTROM_TO_BOHR if len(a) > 1 else 1.0 for a in axes],
                                 ("CyFES free energy surface (cyfes, CyFES 4.5 mode), kcal/mol at 300 K",
                                  "lengths in Bohr; x slowest, z fastest"))
        written.append(formats.write_text(opts.cube, text))
    if opts.dat is not None:
        written.append(formats.write_text(opts.dat, dat_text(axes, values)))
    return written
