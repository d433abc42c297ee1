"""CyFES 4.5's command line (`python -m cyfes -i data.txt -g 20,20,20 -o fes.cub`), told apart from the
subcommands by main.py; the work is cyfes.workflows.cyfes45's."""
from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import InputError

if TYPE_CHECKING:
    from ..workflows.cyfes45 import LegacyOptions

#: Flags CyFES 4.5 parsed; a command line starting with one of them is a CyFES 4.5 command line.
LEGACY_FLAGS = ("-i", "-ic", "-ib", "-ir", "-no_bias", "-no_rbias", "-s", "-e", "-g", "-cmin", "-cmax", "-intg",
                "-sigma", "-f32", "-a", "-b", "-o", "-odat", "-oV", "-oF", "-device", "-sink")
#: The flags CyFES 4.5 accepted without a value.
_SWITCHES = ("-no_bias", "-no_rbias", "-f32", "-intg", "-sink")


def is_legacy(argv: Sequence[str]) -> bool:
    """True when argv (without the program name) starts with a CyFES 4.5 flag (single dash)."""
    if not argv:
        return False
    first = argv[0].split("=", 1)[0]
    return first.startswith("-") and not first.startswith("--") and first in LEGACY_FLAGS


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(f"CyFES 4.5 command line: {message}")


def legacy_parser() -> argparse.ArgumentParser:
    """CyFES 4.5's flags with its defaults (its __main__.py)."""
    p = _Parser(prog="python -m cyfes", add_help=False, allow_abbrev=False,
                description="CyFES 4.5 compatible command line (see `cyfes fes --help` for the new one).")
    add = p.add_argument
    add("-i", required=True, help="input record file (.txt, .xyz: whitespace; .csv: commas; no header)")
    add("-ic", default="0,1,2", help="the 3 CV column indices. Default: 0,1,2")
    add("-ib", default="3", help="bias column index. Default: 3")
    add("-ir", default="4", help="rbias column index. Default: 4")
    add("-s", default=None, help="read only the first s lines. Default: all")
    add("-e", default="0.0", help="edge added around the grid range. Default: 0.0")
    add("-g", default="10,10,10", help="grid intervals per axis (g+1 points). Default: 10,10,10")
    add("-o", default=None, help="output cube file")
    add("-oV", default=None, help="output .dat of the sink-method bias V")
    add("-oF", default=None, help="output .dat of the sink-method free energy -V - min(-V) (needs -oV)")
    add("-odat", default=None, help="output .dat file")
    for flag, default in (("-no_bias", "false"), ("-no_rbias", "true"), ("-f32", "false"), ("-intg", "false"),
                          ("-sink", None)):
        add(flag, nargs="?", const="true", default=default, help=f"true/false. Default: {default}")
    add("-sigma", default="1.0", help="Gaussian bandwidth, isotropic. Default: 1.0")
    add("-device", default=None, help="ignored (CyFES 4.5 ignored it too)")
    add("-a", default="1", help="multiplier of the FES values. Default: 1")
    add("-b", default="0", help="shift of the FES values. Default: 0")
    add("-cmin", default=None, help="grid minimum per axis. Default: the data minimum")
    add("-cmax", default=None, help="grid maximum per axis. Default: the data maximum")
    return p


def _true(value: str, name: str, warnings: list[str], true_unless_false: bool = False) -> bool:
    """CyFES 4.5's reading of a switch: `value.lower() == 'true'` (for -f32: `!= 'false'`)."""
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        reading = "true" if true_unless_false else "false"
        warnings.append(f"-{name} {value!r} is neither true nor false: read as {reading}, as CyFES 4.5 reads it")
    return text != "false" if true_unless_false else text == "true"


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputError(f"-{name}: expected an integer, got {text!r}") from None


def _ints(text: str, name: str) -> list[int]:
    return [_int(t, name) for t in text.split(",")]


def _float(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"-{name}: expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise InputError(f"-{name}: {text!r} is not finite")
    return value


def _per_axis(text: str | None, name: str, conv) -> list | None:
    """Three comma-separated values (one is taken for all three axes)."""
    if text is None:
        return None
    values = [conv(t, name) for t in text.split(",")]
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise InputError(f"-{name}: expected 3 comma-separated values (x,y,z), got {text!r}")
    return values


def _glue_values(argv: Sequence[str]) -> list[str]:
    """Join each flag to its value (`-cmin=-3,-3,-3`) so argparse takes negative lists for values, not flags."""
    out, args, k = [], list(argv), 0
    while k < len(args):
        tok = args[k]
        nxt = args[k + 1] if k + 1 < len(args) else None
        takes = tok in LEGACY_FLAGS and (tok not in _SWITCHES or (nxt is not None and nxt not in LEGACY_FLAGS))
        if takes and nxt is not None and nxt not in LEGACY_FLAGS and "=" not in tok:
            out.append(f"{tok}={nxt}")
            k += 2
        else:
            out.append(tok)
            k += 1
    return out


def parse_legacy(argv: Sequence[str]) -> LegacyOptions:
    """Parse a CyFES 4.5 command line (argv without the program name)."""
    from ..workflows.cyfes45 import LegacyOptions, check_legacy_grid  # deferred: numpy and the engine, which
    # main.py's is_legacy test on every command line (`cyfes --help` too) must not load
    ns = legacy_parser().parse_args(_glue_values(argv))
    warnings: list[str] = []
    if ns.device is not None:
        warnings.append("-device is accepted for CyFES 4.5 scripts but ignored (CyFES 4.5 ignored it too and ran on "
                        "GPU 0); cyfes picks the device itself: use `cyfes fes --device` to choose")
    if ns.sink is not None:
        warnings.append("-sink is accepted for CyFES 4.5 scripts but ignored (CyFES 4.5 parsed it and never used it)")
    if ns.oF is not None and ns.oV is None:
        raise InputError("-oF: needs -oV as well (CyFES 4.5: 'The bias name is not set!')")
    if ns.o is None and ns.odat is None and ns.oV is None:
        raise InputError("CyFES 4.5 command line: give an output: -o FILE.cub, -odat FILE.dat and/or -oV FILE.dat")
    cvs = _ints(ns.ic, "ic")
    if len(cvs) != 3:
        raise InputError(f"-ic: CyFES 4.5 mode takes exactly 3 CV columns, got {ns.ic!r}; "
                         "use `cyfes fes` for other dimensions")
    intervals = _per_axis(ns.g, "g", _int)
    if any(g < 1 for g in intervals):
        raise InputError(f"-g: grid intervals must be >= 1 per axis, got {ns.g!r}")
    check_legacy_grid(intervals, ns.g)
    sigma = _float(ns.sigma, "sigma")
    if sigma <= 0:
        raise InputError(f"-sigma: must be > 0, got {ns.sigma!r}")
    rows = None if ns.s is None else _int(ns.s, "s")
    return LegacyOptions(
        input=Path(ns.i), cv_columns=cvs, bias_column=_int(ns.ib, "ib"), rbias_column=_int(ns.ir, "ir"),
        no_bias=_true(ns.no_bias, "no_bias", warnings), no_rbias=_true(ns.no_rbias, "no_rbias", warnings),
        rows=rows, edge=_float(ns.e, "e"), intervals=intervals,
        cmin=_per_axis(ns.cmin, "cmin", _float), cmax=_per_axis(ns.cmax, "cmax", _float),
        intg=_true(ns.intg, "intg", warnings), sigma=sigma,
        float32=_true(ns.f32, "f32", warnings, true_unless_false=True), a=_float(ns.a, "a"), b=_float(ns.b, "b"),
        cube=Path(ns.o) if ns.o else None, dat=Path(ns.odat) if ns.odat else None,
        bias_dat=Path(ns.oV) if ns.oV else None, free_dat=Path(ns.oF) if ns.oF else None, warnings=warnings)


def run(argv: Sequence[str]) -> int:
    opts = parse_legacy(argv)
    for warning in opts.warnings:
        print(f"cyfes: warning: {warning}", file=sys.stderr)
    shown = len(opts.warnings)
    from ..workflows import cyfes45  # deferred: as in parse_legacy
    written = cyfes45.run_legacy(opts)
    for warning in opts.warnings[shown:]:  # found in the data (a bias CyFES 4.5's float32 weights overflow)
        print(f"cyfes: warning: {warning}", file=sys.stderr)
    print("cyfes (CyFES 4.5 mode): wrote " + ", ".join(str(p) for p in written))
    return 0
