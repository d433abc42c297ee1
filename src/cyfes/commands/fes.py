"""`cyfes fes`: the free energy surface of COLVAR (or other) files, its error bars, answers and pictures."""
from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

from .._errors import InputError
from ..workflows import metad_flags
from . import flags
from .parsing import PROG

FES_DESCRIPTION = """\
Compute the free energy surface F(x) = -kT ln P(x) of collective variables (CVs) sampled in a (biased)
simulation, by Gaussian kernel density estimation with each sample reweighted by exp(V/kT) for its bias V.

INPUT is a PLUMED COLVAR file (`#! FIELDS` header, `#! SET` lines, concatenated restarts), a whitespace or
CSV table with or without a header line, or a .npy array; several INPUTs (walkers) are concatenated.
Columns are chosen by name or by 0-based index. CVs that a COLVAR declares periodic (`#! SET min_phi -pi`
and `max_phi pi`) are treated as periodic unless --periodic says otherwise; the grid of a periodic CV spans
its period, without repeating the end point, as in PLUMED.

Outputs by extension (or --format): .grid/.fes PLUMED grid (sum_hills layout), .dat/.txt columns,
.csv, .cube/.cub Gaussian cube (3 CVs), .npz numpy archive, .pmf Colvars grid, .dx OpenDX map (3 CVs); --plot draws a .png/.pdf/.svg (needs
matplotlib: pip install 'cyfes[plot]')."""


FES_EPILOG = """\
examples:
  cyfes fes COLVAR --cv phi,psi --bias metad.bias --sigma 0.1 --periodic phi=-pi,pi --periodic psi=-pi,pi \\
        -o fes.grid --plot fes.png
  cyfes fes COLVAR --cv 1 --bias 3 --sigma 0.05 --bins 300 --units kcal/mol --temperature 310 -o fes.dat
  cyfes fes samples.csv --cv d1,d2 --weights w --sigma 0.02,0.03 --range d1=0,2 --range d2=0,3 -o fes.npz
  cyfes fes COLVAR.* --cv cv1,cv2 --bias metad.rbias,uwall.bias --sigma 0.1 --skip 1000 --stride 10 \\
        --blocks 5 -o fes.dat      # several walkers, burn-in, block error bars in an `error` column

exit status: 0 success, 2 bad input or command line, 1 other errors (no GPU, no matplotlib, ...)."""


def configure_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fes", description=FES_DESCRIPTION, epilog=FES_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    flags.add_fes_arguments(p)
    flags.add_streaming_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from . import judging, options, scanning, streaming, windows  # deferred: numpy and the engine (not --help)
    windows.check(args)
    options.check_outputs(args)
    judging.check(args)
    metad_flags.check_arguments(args)
    scanning.check(args)
    streaming.check(args)
    from ..engine import backends  # deferred: as the modules above
    warm = backends.warm_up(args.device)  # the GPU's context is made while the inputs are read
    try:
        return _run(args, warm)
    finally:
        if warm is not None:  # never exit while the thread is inside CUDA
            warm.join()


def _run(args: argparse.Namespace, warm: threading.Thread | None) -> int:
    from . import judging, options, scanning, streaming, windows  # deferred: as in run
    clock, stream_line = [time.perf_counter()], []
    if args.scheduler:
        if args.sigma.strip().lower() == "auto":
            raise InputError("--sigma auto: not with --scheduler (it needs every sample here); give the widths")
        from ..io import cluster  # deferred: needs Dask (cyfes[dask])
        with cluster.client(args.scheduler) as client:
            samples = options.load_on_cluster(args, client)
            clock.append(time.perf_counter())
            _join(warm)
            result = options.surface(args, samples)
    elif streaming.wanted(args):
        samples, plan = streaming.load(args)
        clock.append(time.perf_counter())
        _join(warm)
        stream_line = [f"{PROG}: "
                       f"{streaming.describe(plan, options.parse_bins(args.bins, len(samples.names)), args.blocks)}"]
        if getattr(args, "verbose", False):  # the bound up front, before the second pass
            print(stream_line[0], file=sys.stderr)
        result = options.surface(args, samples)
    else:
        samples = windows.load(args, options.Samples, options.plan_grid) if args.windows else options.load_samples(args)
        clock.append(time.perf_counter())
        _join(warm)
        result = options.surface(args, samples)
    scan_lines, scan_plots = scanning.run(args, samples, options.plan_grid, result)
    clock.append(time.perf_counter())
    written = options.write_outputs(result, args, judging.extra_outputs(args, result) + scan_plots)
    clock.append(time.perf_counter())
    if not args.quiet:
        print("\n".join([options.summary(result, written)] + stream_line + judging.report(args, result) + scan_lines))
    if getattr(args, "verbose", False):
        read, surface, write = (b - a for a, b in zip(clock, clock[1:]))
        size = sum(Path(p).stat().st_size for p in args.inputs if Path(p).is_file())
        print(f"{PROG}: time: read {read:.3f} s ({size / 1e6:.1f} MB, {size / 1e6 / max(read, 1e-9):.0f} MB/s), "
              f"surface {surface:.3f} s, write {write:.3f} s", file=sys.stderr)
    return 0


def _join(warm: threading.Thread | None) -> None:
    """Wait for the GPU's context (what is left of it after the read) before the surface asks for it."""
    if warm is not None:
        warm.join()
