"""`cyfes state`: the command line of the OPES script FES_from_State.py, flag for flag.

Parsing and file writing only; the surface is computed in cyfes.workflows.state, the file read in cyfes.io.opes.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import InputError
from ..io import output as _output
from ..workflows import opes_defaults
from .parsing import NEGATIVE_VALUE

if TYPE_CHECKING:
    from ..io import opes
    from ..workflows import state

DESCRIPTION = """\
The free energy surface estimated by OPES (OPES_METAD or OPES_METAD_EXPLORE) from its state file
(STATE_WFILE: the compressed kernels), as FES_from_State.py computes it: the same flags, the same output file
(`#! FIELDS cv... file.free [der_cv...]`, `#! SET [DeltaF] min_/max_/nbins_/periodic_` per CV) and numbers.
The file may also be a KERNELS file (FILE=, every deposited kernel): its kernels are compressed into the
state PLUMED rebuilds when it restarts from them (what State_from_Kernels.py gets through plumed driver)."""

EPILOG = """\
examples:
  cyfes state --state STATE --temp 300 --bin 100,100 -o fes.dat
  cyfes state -f State.data --kt 2.494 --min -pi,-pi --max pi,pi --deltaFat 0
  cyfes state -f STATE --kt 2.5 --all_stored -o fes.dat          # fes_1.dat, fes_2.dat, ... one per state
  cyfes state -f KERNELS --temp 300 --bin 100,100 -o fes.dat     # compressed as on a PLUMED restart

differences from the script: any number of CVs (the script: 1 or 2); one --bin/--min/--max value serves every
CV; min/max may be pi expressions (pi/2, -2*pi/3); a state file that is not an OPES state, a missing SET line or
a bad number is a one-line error (exit 2) and nothing is written; outputs replace existing files atomically,
and an output that is the state file itself is refused. A KERNELS file is compressed as PLUMED's OPESmetad does
on a restart from it (the nearest kernel within compression_threshold takes each new one; recursive merging
unless --recursive-merge-off); the OPES script FES_from_Kernels-1D.py takes the last kernel within the threshold
and ignores periodicity when merging, so its 1-CV surfaces can differ.
exit status: 0 success, 2 bad input or command line, 1 other errors."""


def configure_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("state", description=DESCRIPTION,
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--state", "-f", dest="filename", default="STATE",
                   help="the state file name, with the compressed kernels (default STATE), or a KERNELS file")
    p.add_argument("--outfile", "-o", dest="outfile", default=opes_defaults.STATE_OUTFILE,
                   help="output file (default fes.dat)")
    kbt = p.add_mutually_exclusive_group(required=True)
    kbt.add_argument("--kt", dest="kbt", type=float, help="the temperature in energy units")
    kbt.add_argument("--temp", dest="temp", type=float, help="the temperature in kelvin (energies in kJ/mol)")
    p.add_argument("--min", dest="grid_min", help="grid lower bounds, comma-separated")
    p.add_argument("--max", dest="grid_max", help="grid upper bounds, comma-separated")
    p.add_argument("--bin", dest="grid_bin", help="bins per CV (N+1 points, N over a full period; default 100)")
    p.add_argument("--fmt", dest="fmt", default=opes_defaults.DEFAULT_FMT, help="number format (default '%% 12.6f')")
    p.add_argument("--deltaFat", dest="deltaFat", type=float, help="free energy difference between the two sides "
                   "of this value of the first CV")
    p.add_argument("--all_stored", dest="all_stored", action="store_true",
                   help="write the FES of every stored state instead of only the last one")
    p.add_argument("--nomintozero", dest="nomintozero", action="store_true", help="do not shift the minimum to 0")
    p.add_argument("--der", dest="der", action="store_true", help="write the FES derivatives too")
    ours = p.add_argument_group("cyfes options")
    ours.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    ours.add_argument("--recursive-merge-off", dest="recursive", action="store_false",
                      help="KERNELS file: compress as OPES_METAD with RECURSIVE_MERGE_OFF (merge each new kernel "
                      "once)")
    p._negative_number_matcher = NEGATIVE_VALUE  # -pi,-pi and -1.5 are values, not options
    p.set_defaults(run=run)
    return p


def options(args: argparse.Namespace) -> state.Options:
    from ..workflows import state  # deferred: numpy, which --help does not need
    if args.temp is not None and not args.temp > 0:
        raise InputError(f"--temp: must be > 0 kelvin, got {args.temp}")
    if args.kbt is not None and not args.kbt > 0:
        raise InputError(f"--kt: must be > 0, got {args.kbt}")
    kbt = args.kbt if args.kbt is not None else args.temp * opes_defaults.KB_KJMOL
    try:
        args.fmt % 1.0
    except (TypeError, ValueError) as exc:
        raise InputError(f"--fmt {args.fmt!r}: not a format for one number ({exc})") from None
    return state.Options(kbt=kbt, outfile=args.outfile, grid_min=args.grid_min, grid_max=args.grid_max,
                         grid_bin=args.grid_bin, fmt=args.fmt, delta_f_at=args.deltaFat, all_stored=args.all_stored,
                         mintozero=not args.nomintozero, der=args.der)


def run(args: argparse.Namespace) -> int:
    from ..workflows import state  # deferred: as in options
    o = options(args)
    states, what = _read(args)
    chosen = len(states) if o.all_stored else 1
    names = state.stored_names(o.outfile, chosen) if o.all_stored else [o.outfile]
    _output.check_targets(names, inputs=[args.filename])
    warnings: list[str] = []
    texts = state.outputs(states, o, warnings)
    for w in warnings:
        print(f"cyfes: warning: {w}", file=sys.stderr)
    written = _write(texts)
    if not args.quiet:
        shown = ", ".join(str(w) for w in written[-3:]) + (" ..." if len(written) > 3 else "")
        print(f"cyfes state: {what}; wrote {shown}")
    return 0


def _read(args: argparse.Namespace) -> tuple[list[opes.OpesState], str]:
    """The states to sum and what they are, for the closing line; a KERNELS file gives the one state PLUMED
    rebuilds from it."""
    from ..io import opes  # deferred: as in options
    from ..workflows import kernels as _kernels  # deferred: as in options
    found = opes.read_opes(args.filename)
    if isinstance(found, opes.OpesKernels):
        st = _kernels.to_state(found, recursive=args.recursive)
        return [st], (f"{len(found.heights)} deposited kernels of {', '.join(found.names)} "
                      f"({found.sets['action'][:-8]}, {found.segments} run(s)) compressed to {len(st.heights)}")
    last = found[-1]
    return found, (f"{len(found)} stored state(s) of {', '.join(last.names)} ({last.sets['action'][:-6]}), "
                   f"{len(last.heights)} kernels in the last")


def _write(texts: list[tuple]) -> list[Path]:
    with _output.Staging() as staging:
        for name, text in texts:
            data = text.encode()
            staging.add(name, lambda handle, data=data: handle.write(data))
        return staging.commit()
