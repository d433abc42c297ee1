"""`cyfes sum_hills`: PLUMED's `plumed sum_hills` command line, flag for flag, writing the same files.

Only the argument parsing and file writing live here; the sums are in cyfes.hillsum.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import InputError
from ..io import output as _output
from .parsing import NEGATIVE_VALUE

if TYPE_CHECKING:
    from ..workflows import sum_hills as hillsum

DESCRIPTION = """\
Sum the Gaussian hills of a metadynamics HILLS file into a free energy surface F = -V on a grid, as
`plumed sum_hills` does (PLUMED 2.11): the same flags and output files, computed as PLUMED's source does.

Each hill is PLUMED's stretched Gaussian h (A e^-s + B), s = 1/2 sum_d ((x_d - c_d)/sigma_d)^2, cut at s = 6.25,
with its own sigmas and height as written in the file (well-tempered heights are already scaled there).
CV names and periodicity come from the HILLS header; multivariate (flexible) hills are read when the header
says `#! SET multivariate true`. Several files (comma-separated) are read one after the other."""

EPILOG = """\
examples:
  cyfes sum_hills --hills HILLS                                   # fes.dat
  cyfes sum_hills --hills HILLS.0,HILLS.1 --bin 99,99 --min -pi,-pi --max pi,pi --outfile fes.dat
  cyfes sum_hills --hills HILLS --idw phi --kt 2.494              # integrate the other CVs out
  cyfes sum_hills --hills HILLS --stride 1000 --mintozero         # fes_0.dat, fes_1.dat, ...
  cyfes sum_hills --hills HILLS --negbias                         # negativebias.dat
  cyfes sum_hills --histo COLVAR --idw phi,psi --sigma 0.2,0.2 --kt 2.494   # histo.dat

differences from plumed: existing output files are replaced (PLUMED renames them to bck.N.*), all together or
none, but never an input, a link, a read-only file (those two with --force), a FIFO or a device; errors are one
line with exit status 2 and nothing is written; --untruncated and --force are cyfes's own.
exit status: 0 success, 2 bad input or command line, 1 other errors."""


def _list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [t for t in text.split(",") if t != ""]

#: Command-line words that start with '-' but are numbers or pi lists.


def configure_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("sum_hills", description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hills", metavar="FILES", help="HILLS file(s), comma-separated")
    p.add_argument("--histo", metavar="FILES", help="COLVAR/HILLS file(s) to histogram with Gaussian kernels "
                   "(needs --sigma and --kt)")
    p.add_argument("--stride", metavar="N", help="write a running estimate every N hills: <outfile>0.dat, 1.dat, ...")
    p.add_argument("--min", metavar="LIST", help="lower grid bounds, one per CV (numbers or pi expressions)")
    p.add_argument("--max", metavar="LIST", help="upper grid bounds, one per CV")
    p.add_argument("--bin", metavar="LIST", help="number of bins per CV (N+1 points, N on a periodic CV)")
    p.add_argument("--spacing", metavar="LIST", help="grid spacing per CV, instead of (or with) --bin")
    p.add_argument("--idw", metavar="CVS", help="CVs to keep; with --hills the others are integrated out (needs --kt)")
    p.add_argument("--outfile", metavar="FILE", help="output of the hills sum (fes.dat; with --stride the prefix, "
                   "fes_)")
    p.add_argument("--outhisto", metavar="FILE", help="output of --histo (histo.dat; with --stride histo_)")
    p.add_argument("--kt", metavar="KT", help="kT in the energy units of the hills (for --idw and --histo)")
    p.add_argument("--sigma", metavar="LIST", help="kernel widths for --histo, one per CV")
    p.add_argument("--negbias", action="store_true", help="write the bias V (biasf-1)/biasf instead of F "
                   "(negativebias.dat)")
    p.add_argument("--nohistory", action="store_true", help="with --stride: each file from its own hills only")
    p.add_argument("--mintozero", action="store_true", help="shift the minimum to zero")
    p.add_argument("--fmt", metavar="FMT", help="number format (default %%14.9f)")
    ours = p.add_argument_group("cyfes options")
    ours.add_argument("--untruncated", action="store_true", help="sum plain Gaussians over the whole grid "
                      "instead of PLUMED's cut ones (not what plumed writes)")
    ours.add_argument("--device", default="auto", help="auto (GPU when usable, default), cpu, gpu, cuda:N")
    ours.add_argument("--threads", type=int, metavar="N", help="CPU threads (default: all)")
    ours.add_argument("--force", action="store_true", help="replace an output that is a symbolic link (the link, "
                      "not its target) or a read-only file; inputs, FIFOs and devices are never written")
    ours.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    ours.add_argument("-v", "--verbose", action="store_true", help="also say where the time went (read, sum, "
                      "write) on stderr")
    # values such as -1.5,-1.5 or -pi,-pi are values, not options (PLUMED and the script accept them so)
    p._negative_number_matcher = NEGATIVE_VALUE
    p.set_defaults(run=run)
    return p


def output_names(base: str | None, default: str, stride: int | None, count: int) -> list[str]:
    """PLUMED's names: the file itself, or with --stride the prefix followed by 0.dat, 1.dat, ..."""
    if stride is None:
        return [base if base is not None else default + ".dat"]
    prefix = base if base is not None else default + "_"
    return [f"{prefix}{k}.dat" for k in range(count)]


def plan(args: argparse.Namespace,
         warm: threading.Thread | None = None) -> list[tuple[list[str], hillsum.SumHillsRun]]:
    """Validate everything and return, per kind of output, its file names and the run that fills them.
    `warm` (backends.warm_up's thread, making the GPU's context while the files are read) is joined once they
    are read, before anything asks for a device."""
    from ..io import formats  # deferred: numpy, unneeded for --help
    from ..io import hills as hills_io  # deferred: numpy, unneeded for --help
    from ..workflows import sum_hills as hillsum  # deferred: numpy, unneeded for --help
    if not args.hills and not args.histo:
        raise InputError("sum_hills: give --hills FILES and/or --histo FILES")
    _check_input_sizes(_list(args.hills) or [], "--hills")
    _check_input_sizes(_list(args.histo) or [], "--histo")
    for flag, name in (("--outfile", args.outfile), ("--outhisto", args.outhisto)):
        if name is not None and not name.strip():
            raise InputError(f"{flag}: an empty file name")
    if args.fmt is not None:
        hills_io.check_fmt(" " + args.fmt)
    stride = None if args.stride is None else formats.parse_positive_int(args.stride, "--stride")
    if stride is None:  # the names are known before reading: refuse a bad one before a large HILLS is read
        _output.check_targets(([output_names(args.outfile, _hills_default(args), None, 1)[0]] if args.hills else [])
                              + ([output_names(args.outhisto, "histo", None, 1)[0]] if args.histo else []),
                              input_files(args), args.force)
    idw = _list(args.idw)
    grid_opts = dict(gmin=_list(args.min), gmax=_list(args.max), bins=_list(args.bin), spacing=_list(args.spacing))
    jobs = []
    hills_run = None
    if args.hills:
        data = hills_io.read_hills(_list(args.hills))
        _join(warm)
        if args.histo and idw:
            raise InputError("--idw: cannot be combined with both --hills and --histo (plumed stops there too)")
        hills_run = hillsum.hills_run(data, **grid_opts, kernel="untruncated" if args.untruncated else "stretched",
                                    negbias=args.negbias, idw=idw, kt=args.kt, stride=stride,
                                    nohistory=args.nohistory, mintozero=args.mintozero, threads=args.threads,
                                    device=args.device, project_all=bool(args.histo))
        count = len(hillsum.dump_parts(len(data), stride))
        jobs.append((output_names(args.outfile, _hills_default(args), stride, count), hills_run))
    if args.histo:
        points = hills_io.read_points(_list(args.histo), None if args.hills else idw)
        _join(warm)
        if hills_run is not None and (points.names != hills_run.hills.names
                                      or points.domains != hills_run.hills.domains):
            raise InputError(f"--histo: its CVs and periodicity must be those of the --hills files "
                             f"({', '.join(hills_run.hills.names)})")
        run_h = hillsum.histogram_run(points, _list(args.sigma), args.kt, **grid_opts, stride=stride,
                                    nohistory=args.nohistory, mintozero=args.mintozero, threads=args.threads,
                                    device=args.device, grid=hills_run.grid if hills_run is not None else None)
        count = len(hillsum.dump_parts(len(points.positions), stride))
        jobs.append((output_names(args.outhisto, "histo", stride, count), run_h))
    check_outputs(jobs, input_files(args), args.force, args.fmt or hills_io.PLUMED_FMT)
    return jobs


def _check_input_sizes(paths: list[str], option: str) -> None:
    """The bound every cyfes reader keeps on one input (CYFES_MAX_INPUT_BYTES), before anything is read."""
    from ..io import formats  # deferred: numpy, unneeded for --help
    limit = formats.max_input_bytes()
    for path in paths:
        try:
            size = os.stat(path).st_size
        except OSError:
            continue  # the reader names a missing or unreadable file
        if size > limit:
            raise InputError(f"{option} {path}: is larger than {limit:,} bytes; cyfes reads inputs into memory "
                             "(set CYFES_MAX_INPUT_BYTES to allow more)")


def _hills_default(args: argparse.Namespace) -> str:
    return "negativebias" if args.negbias else "fes"


def input_files(args: argparse.Namespace) -> list[str]:
    return (_list(args.hills) or []) + (_list(args.histo) or [])


def least_bytes(run_: hillsum.SumHillsRun, fmt: str) -> int:
    """A lower bound of the bytes of one output of `run_` (its rows of numbers, without separators' excess)."""
    import numpy as np  # deferred: numpy, unneeded for --help
    grid = run_.grid
    if run_.proj and not run_.histogram:
        rows = int(np.prod([grid.nbin[grid.names.index(n)] for n in run_.proj], dtype=np.float64))
        columns = len(run_.proj) + 1
    else:
        dim = len(grid.names)
        rows, columns = grid.size, 2 * dim + 1 if run_.derivatives else dim + 1
    try:
        cell = len(fmt % 0.0) + 1
    except (TypeError, ValueError):
        cell = 1
    return rows * (columns * cell + 1)


def check_outputs(jobs: Sequence[tuple[list[str], hillsum.SumHillsRun]], inputs: Sequence[str], force: bool,
                  fmt: str) -> None:
    """Before any sum: every name may be written (cyfes.io.output's rules; never an input) and every file fits
    under the file size limit and on the disk."""
    names = [name for names, _ in jobs for name in names]
    paths = _output.check_targets(names, inputs, force)
    sizes = [least_bytes(run_, fmt) for names, run_ in jobs for _ in names]
    _output.check_sizes(list(zip(paths, sizes)))


def _join(warm: threading.Thread | None) -> None:
    if warm is not None:
        warm.join()


def _text_writer(text: str) -> _output.Writer:
    data = text.encode("utf-8")
    return lambda fh: fh.write(data)


def write_all(jobs: Iterable[tuple[list[str], hillsum.SumHillsRun]], fmt: str,
              inputs: Sequence[str] = (), spent: dict[str, float] | None = None) -> list[Path]:
    """Stage every file as its sum is done, then commit them all at once (cyfes.io.output): all or none.
    `spent` gets the seconds of the sums ("sum") and of the text and files ("write")."""
    spent = {} if spent is None else spent
    with _output.Staging(inputs) as staging:
        for names, run_ in jobs:
            files = iter(run_.files())
            for name in names:
                start = time.perf_counter()
                grid_file = next(files, None)
                if grid_file is None:
                    break
                made = time.perf_counter()
                staging.add(name, _text_writer(grid_file.text(fmt)))
                spent["sum"] = spent.get("sum", 0.0) + made - start
                spent["write"] = spent.get("write", 0.0) + time.perf_counter() - made
        start = time.perf_counter()
        written = staging.commit()
        spent["write"] = spent.get("write", 0.0) + time.perf_counter() - start
        return written


def run(args: argparse.Namespace) -> int:
    from ..engine import backends  # deferred: numpy, unneeded for --help
    from ..io import hills as hills_io  # deferred: numpy, unneeded for --help
    start = time.perf_counter()
    warm = backends.warm_up(args.device)  # the GPU's context is made while the files are read
    try:
        jobs = plan(args, warm)
        read = time.perf_counter() - start
        spent: dict[str, float] = {}
        written = write_all(jobs, args.fmt or hills_io.PLUMED_FMT, input_files(args), spent)
    finally:
        _join(warm)  # never exit while the thread is inside CUDA
    if not args.quiet:
        n = ", ".join(f"{len(r.hills)} {'points' if r.histogram else 'hills'}" for _, r in jobs)
        print(f"cyfes sum_hills: {n}; wrote {', '.join(str(p) for p in written)}")
    if args.verbose:
        size = sum(os.stat(p).st_size for p in input_files(args) if os.path.isfile(p))
        print(f"cyfes sum_hills: time: read {read:.3f} s ({size / 1e6:.1f} MB, {size / 1e6 / max(read, 1e-9):.0f} "
              f"MB/s), sum {spent.get('sum', 0.0):.3f} s, write {spent.get('write', 0.0):.3f} s", file=sys.stderr)
    return 0
