"""`cyfes reweight`: the command line of the OPES script FES_from_Reweighting.py, flag for flag.

Parsing and file writing only; the estimates are in cyfes.reweight.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import InputError
from ..io import output as _output
from ..workflows import opes_defaults
from .parsing import NEGATIVE_VALUE

if TYPE_CHECKING:
    from ..workflows import reweight

DESCRIPTION = """\
The free energy surface along 1 or more CVs from a (biased) COLVAR by reweighted kernel density estimation,
as FES_from_Reweighting.py (OPES post-processing) computes it: the same flags, the same output files, header
lines (sample_size, effective_sample_size, DeltaF, blocks_num, blocks_effective_num, min_/max_/nbins_/periodic_)
and numbers. The kernel sums run on the GPU when there is one (--device), else on all CPU cores."""

EPILOG = """\
examples:
  cyfes reweight -f COLVAR --cv phi,psi --sigma 0.15,0.15 --temp 300 -o fes-rew.dat
  cyfes reweight -f COLVAR --cv 2 --sigma 0.05 --kt 2.494 --blocks 5 --deltaFat 0.5
  cyfes reweight -f COLVAR --cv d1 --bias NO --sigma 0.1 --kt 2.5 --stride 10000      # fes-rew_1.dat, ...

differences from the script: any number of CVs; any grid shape (the script needs as many bins along both CVs);
--stride larger than the data, unknown columns and bad values are one-line errors (exit 2) and nothing is
written; all outputs replace existing files together or not at all, and never the COLVAR, a link, a read-only
file (those two with --force), a FIFO or a device.
exit status: 0 success, 2 bad input or command line, 1 other errors."""

def configure_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("reweight", description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--colvar", "-f", dest="filename", default="COLVAR", help="the COLVAR file (default COLVAR)")
    p.add_argument("--outfile", "-o", dest="outfile", default=opes_defaults.REWEIGHT_OUTFILE,
                   help="output file (default fes-rew.dat)")
    p.add_argument("--sigma", "-s", dest="sigma", required=True, help="kernel bandwidth per CV, comma-separated")
    kbt = p.add_mutually_exclusive_group(required=True)
    kbt.add_argument("--kt", dest="kbt", type=float, help="the temperature in energy units")
    kbt.add_argument("--temp", dest="temp", type=float, help="the temperature in kelvin (energies in kJ/mol)")
    p.add_argument("--cv", dest="cv", default="2", help="CVs by name or column number from 1 (default 2)")
    p.add_argument("--bias", dest="bias", default=".bias", help="bias column(s) by name or number, summed "
                   "(default: every .bias/.rbias column); NO for an unweighted estimate")
    p.add_argument("--min", dest="grid_min", help="grid lower bounds, comma-separated")
    p.add_argument("--max", dest="grid_max", help="grid upper bounds, comma-separated")
    p.add_argument("--bin", dest="grid_bin", default="100,100", help="bins per CV (N+1 points; default 100)")
    split = p.add_mutually_exclusive_group()
    split.add_argument("--blocks", dest="blocks_num", type=int, default=1, help="block average with this many "
                       "blocks: uncertainty column, per-block files")
    split.add_argument("--stride", dest="stride", type=int, default=0, help="write a running FES every N samples")
    p.add_argument("--deltaFat", dest="deltaFat", type=float, help="free energy difference between the two sides "
                   "of this value of the first CV")
    p.add_argument("--skiprows", dest="skiprows", type=int, default=0, help="skip this many initial rows")
    p.add_argument("--reverse", dest="reverse", action="store_true", help="reverse the time")
    p.add_argument("--nomintozero", dest="nomintozero", action="store_true", help="do not shift the minimum to 0")
    p.add_argument("--der", dest="der", action="store_true", help="write the FES derivatives too")
    p.add_argument("--fmt", dest="fmt", default=opes_defaults.DEFAULT_FMT, help="number format (default '%% 12.6f')")
    ours = p.add_argument_group("cyfes options")
    ours.add_argument("--device", default="auto", help="auto (GPU when usable), cpu, gpu, cuda:N")
    ours.add_argument("--threads", type=int, metavar="N", help="CPU threads (default: all)")
    ours.add_argument("--force", action="store_true", help="replace an output that is a symbolic link (the link, "
                      "not its target) or a read-only file; the COLVAR, FIFOs and devices are never written")
    ours.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    # values such as -1.5,-1.5 or -pi,-pi are values, not options (PLUMED and the script accept them so)
    p._negative_number_matcher = NEGATIVE_VALUE
    p.set_defaults(run=run)
    return p


def options(args: argparse.Namespace) -> reweight.Options:
    from ..workflows import reweight  # deferred: numpy and the engine, which --help does not need
    kbt = args.kbt if args.kbt is not None else args.temp * opes_defaults.KB_KJMOL
    return reweight.Options(colvar=args.filename, outfile=args.outfile, sigma=args.sigma, kbt=kbt, cv=args.cv,
                            bias=args.bias, grid_min=args.grid_min, grid_max=args.grid_max, grid_bin=args.grid_bin,
                            blocks=args.blocks_num, stride=args.stride, delta_f_at=args.deltaFat,
                            skiprows=args.skiprows, reverse=args.reverse, mintozero=not args.nomintozero,
                            der=args.der, fmt=args.fmt, device=args.device, threads=args.threads)


def output_names(p: reweight.Plan) -> list[str]:
    """Every file the run writes, in order: one per window (running or per block), then with --blocks the
    average under the --outfile name; a single window writes --outfile only."""
    o = p.options
    if not (len(p.windows) > 1 or p.block_mode):
        return [o.outfile]
    from ..workflows import reweight  # deferred: as in options
    pattern = reweight.iteration_names(o.outfile)
    return [pattern % it for it in range(1, len(p.windows) + 1)] + ([o.outfile] if p.block_mode else [])


def least_bytes(p: reweight.Plan) -> int:
    """A lower bound of the bytes of each output: its grid rows of numbers, without header or separators."""
    dim = len(p.grid.axes)
    rows = math.prod(len(a) for a in p.grid.axes)
    columns = dim + 1 + (dim if p.options.der else 1 if p.block_mode else 0)
    return rows * (columns * (len(p.options.fmt % 0.0) + 1))


def check_outputs(p: reweight.Plan, force: bool) -> list[Path]:
    """Before any sum: every name passes cyfes.io.output's rules (never the COLVAR) and fits the file size limit."""
    paths = _output.check_targets(output_names(p), [p.options.colvar], force)
    _output.check_sizes([(path, least_bytes(p)) for path in paths])
    return paths


def _text_writer(text: str) -> _output.Writer:
    data = text.encode("utf-8")
    return lambda fh: fh.write(data)


def write(p: reweight.Plan) -> list[Path]:
    """Stage each estimate as it is computed, then commit every file at once (cyfes.io.output): all or none."""
    from ..workflows import reweight  # deferred: as in options
    names = output_names(p)
    with _output.Staging([p.options.colvar]) as staging:
        blocks = []
        for name, est in zip(names, reweight.estimates(p)):
            staging.add(name, _text_writer(reweight.file_text(p, est)))
            blocks.append(est)
        if p.block_mode:
            average = reweight.block_average(p, blocks)
            staging.add(names[-1], _text_writer(reweight.file_text(p, average, final_block=True)))
        return staging.commit()


def run(args: argparse.Namespace) -> int:
    if args.temp is not None and not args.temp > 0:
        raise InputError(f"--temp: must be > 0 kelvin, got {args.temp}")
    if not args.outfile.strip():
        raise InputError("--outfile: an empty file name")
    # the main name first, before the COLVAR is read; the per-window names once the windows are known
    _output.check_targets([args.outfile], [args.filename], args.force)
    from ..workflows import reweight  # deferred: as in options
    p = reweight.plan(options(args))
    check_outputs(p, args.force)
    for w in p.warnings:
        print(f"cyfes: warning: {w}", file=sys.stderr)
    written = write(p)
    if not args.quiet:
        print(f"cyfes reweight: {len(p.col.cvs)} samples of {', '.join(p.col.names)} (bias: "
              f"{', '.join(p.col.bias_names) or 'none'}), {p.backend}; wrote {len(written)} file(s): "
              + ", ".join(str(w) for w in written[-3:]))
    return 0
