"""The flags of `cyfes fes`, `cyfes demo`, `cyfes basins` and `cyfes path`, by group, in a module that imports no
numpy: each command's parser is built from here, so its --help loads nothing heavy. What the flags do is in the
modules that own each group and are imported where a command runs: options.py (input, estimate, grid, compute,
output), judging.py, scanning.py, windows.py, streaming.py and answers.py; metad_flags.py (cyfes.workflows) has
the flags of reweighting from HILLS."""
from __future__ import annotations

import argparse

from ..io.format_names import CHUNK_ROWS_DEFAULT, FORMATS, INPUT_FORMATS
from ..workflows import metad_flags
from .parsing import NEGATIVE_VALUE


def add_fes_arguments(p: argparse.ArgumentParser) -> None:
    add_input_arguments(p)
    metad_flags.add_arguments(p.add_argument_group("metadynamics reweighting from HILLS"))
    add_estimate_arguments(p)
    add_output_arguments(p)
    add_judging_arguments(p)
    add_scan_arguments(p)
    add_windows_arguments(p)


def add_input_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("input")
    g.add_argument("inputs", nargs="*", metavar="INPUT", help="PLUMED COLVAR, Colvars .colvars.traj, GROMACS "
                   ".xvg, text / CSV or .npy file(s)")
    g.add_argument("--cv", metavar="COLS", help="CV columns, names or 0-based indices: phi,psi or 1,2 "
                   "(default: every column except time, bias and weights, if at most 3)")
    g.add_argument("--bias", metavar="COLS", help="bias column(s) V in --units; several are summed "
                   "(metad.rbias,uwall.bias); samples are reweighted by exp(V/kT)")
    g.add_argument("--weights", metavar="COL", help="column of per-sample weights (on top of the bias)")
    g.add_argument("--skip", type=int, default=0, metavar="N", help="drop the first N rows of each input "
                   "(burn-in)")
    g.add_argument("--stride", type=int, default=1, metavar="N", help="then keep every N-th row")
    g.add_argument("--input-format", choices=INPUT_FORMATS, help="read every INPUT as this format instead of "
                   "the one its content suggests (see docs/formats.md)")


def add_estimate_arguments(p: argparse.ArgumentParser) -> None:
    k = p.add_argument_group("estimate")
    k.add_argument("--sigma", required=True, metavar="S", help="kernel bandwidth in CV units: one value, one "
                   "per CV (0.1,0.2) or by name (phi=0.1,psi=0.2); pi expressions allowed; auto: Silverman's rule")
    k.add_argument("--periodic", action="append", default=[], metavar="CV=LO,HI",
                   help="a periodic CV and its domain, e.g. phi=-pi,pi (period HI-LO); CV=none turns off the "
                   "periodicity a COLVAR declares; repeat per CV")
    k.add_argument("-T", "--temperature", type=float, default=300.0, metavar="K", help="temperature in K "
                   "(default 300)")
    k.add_argument("--units", default="kJ/mol", choices=["kJ/mol", "kcal/mol"],
                   help="energy unit of the bias and of F (default kJ/mol, as PLUMED)")
    k.add_argument("--blocks", type=int, default=1, metavar="N", help="split the samples into N blocks and "
                   "report the standard error of F (default 1: no error)")
    grid = p.add_argument_group("grid")
    grid.add_argument("--bins", metavar="N", help="grid points per CV: one value or one per CV "
                      "(default 200, 100x100 or 40^3)")
    grid.add_argument("--range", action="append", default=[], metavar="CV=LO,HI", dest="ranges",
                      help="grid range of a CV, e.g. psi=-2,2.5 (default: the data range, or the period); "
                      "repeat per CV")
    run = p.add_argument_group("compute")
    run.add_argument("--device", default="auto", help="auto (GPU when usable, default), cpu, gpu, cuda:N, "
                     "or cuda:0,1 to split the grid over GPUs")
    run.add_argument("--precision", default="float64", choices=["float64", "float32"],
                     help="kernel precision (default float64)")
    run.add_argument("--threads", type=int, metavar="N", help="CPU threads (default: all)")
    run.add_argument("--scheduler", metavar="ADDRESS", help="read and sum the inputs on the workers of the Dask "
                     "cluster at ADDRESS (tcp://host:port or a scheduler file), one chunk per file; needs "
                     "cyfes[dask]")
    run.add_argument("--tolerance", type=float, default=1e-6, metavar="KT",
                     help="largest change of any F (in kT) the samples left out of a sum may cause (default 1e-6; "
                          "0 sums every pair)")
    run.add_argument("--method", default="direct", choices=["direct", "binned"],
                     help="direct kernel sums (default) or binning + FFT (estimated error reported)")


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    out = p.add_argument_group("output")
    out.add_argument("-o", "--output", action="append", default=[], metavar="FILE",
                     help="write the FES here, format by extension; repeat for several files")
    out.add_argument("--format", choices=list(FORMATS), help="format of every -o file, whatever "
                     "its extension")
    out.add_argument("--plot", metavar="IMAGE", help="draw the FES into IMAGE (.png, .pdf, .svg)")
    out.add_argument("--plot-max", type=float, metavar="F", help="top of the plot's colour scale, in --units")
    out.add_argument("--force", action="store_true", help="replace an output that is a symbolic link (the link, "
                     "not its target), a read-only file or one of the inputs; FIFOs and devices are never written")
    out.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    out.add_argument("-v", "--verbose", action="store_true", help="also say where the time went (read, surface, "
                     "write) on stderr")


def add_judging_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("judging the estimate")
    g.add_argument("--kt", type=float, metavar="KT", help="kT in --units instead of -T/--temperature")
    g.add_argument("--delta-f", action="append", default=[], metavar="CV=VALUE", dest="delta_f",
                   help="print F(CV > VALUE) - F(CV < VALUE) (with its block error when --blocks > 1); repeatable")
    g.add_argument("--error-method", choices=["blocks", "weighted"], default="blocks",
                   help="error bars with --blocks: blocks (standard error of the blocks' F, default) or weighted "
                   "(FES_from_Reweighting.py's, blocks weighted by their total weight)")
    g.add_argument("--running", type=int, metavar="K", help="also write K running estimates, from the first "
                   "1..K of K consecutive chunks of the samples, as <name>_1<ext> ... <name>_K<ext> (the chunks "
                   "are the error blocks too)")
    g.add_argument("--basins", action="store_true", help="print the basins: minima, free energies, Delta F to "
                   "the lowest with block errors (see cyfes basins; docs/analysis.md)")
    g.add_argument("--min-depth", type=float, metavar="F", help="with --basins: minima shallower than F (--units) "
                   "merge into a neighbouring basin (default 2 kT)")
    g.add_argument("--plot-convergence", metavar="IMAGE", help="draw each --delta-f and F at a few points "
                   "against the number of samples (needs --running or --blocks; matplotlib)")


def add_scan_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("convergence scans")
    g.add_argument("--block-scan", nargs="?", const="", default=None, metavar="COUNTS",
                   help="recompute with 2..64 error blocks (or the counts given, 2,4,8) and print the median "
                   "standard error of F, Delta F and the barrier between the two lowest basins against the block "
                   "size, with a plateau mark")
    g.add_argument("--sigma-scan", metavar="S1,S2,...", help="recompute with each bandwidth (every CV) and print "
                   "Delta F and the barrier between the two lowest basins against sigma")
    g.add_argument("--plot-scan", metavar="IMAGE", help="draw the scans into IMAGE (needs a scan; matplotlib)")


def add_windows_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("umbrella windows")
    g.add_argument("--windows", metavar="FILE.yaml", help="umbrella windows with static harmonic restraints (a "
                   "YAML file: cv, and per window file, centre, kappa; see docs/umbrella.md) instead of INPUT "
                   "files, joined by MBAR (needs cyfes[mbar])")


def add_streaming_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("streaming (inputs larger than memory)")
    g.add_argument("--stream", action="store_true", help="read the inputs in chunks (PLUMED, CSV, text, .gz, "
                   "Colvars, xvg, .npy), in two passes (check and range, then sums; --sigma auto adds one, each "
                   "--block-scan or --sigma-scan point one more): memory stays bounded whatever their size "
                   "(default: only when they are larger than the in-memory bound, CYFES_MAX_INPUT_BYTES or 1/8 of "
                   "memory; a .npy counts its values as float64). Not with --windows or --scheduler")
    g.add_argument("--chunk-rows", type=int, default=CHUNK_ROWS_DEFAULT, metavar="N",
                   help=f"rows summed at once when streaming (default {CHUNK_ROWS_DEFAULT:,})")


ANSWERS_EPILOG = """\
examples:
  cyfes basins fes.dat --temperature 300 --csv basins.csv --json basins.json
  cyfes basins COLVAR --cv phi,psi --bias metad.rbias --sigma 0.1 --blocks 5 --csv basins.csv
  cyfes path fes.grid --from -1.5,1.2 --to 1.0,-0.8 -o path.csv --refine

exit status: 0 success, 2 bad input or command line, 1 other errors."""


def add_answer_arguments(p: argparse.ArgumentParser) -> None:
    """The flags `cyfes basins` and `cyfes path` share: the samples' (as `cyfes fes`, --sigma optional: without it
    INPUT is a grid file) and --min-depth."""
    add_input_arguments(p)
    add_estimate_arguments(p)
    for action in p._actions:  # --sigma chooses samples over a grid file here, so it is optional
        if action.dest == "sigma":
            action.required = False
    p.set_defaults(temperature=None, kt=None, units=None)  # a grid file's own, where it records them
    # coordinates such as -1.2,0.5 or -pi/2,0 are values, not options (argparse knows only plain numbers)
    p._negative_number_matcher = NEGATIVE_VALUE
    p.add_argument("--min-depth", type=float, metavar="F", help="minima shallower than F (in --units) are "
                   "merged into a neighbouring basin (default 2 kT)")


def add_answer_output_arguments(p: argparse.ArgumentParser, draws: str) -> None:
    p.add_argument("--plot", metavar="IMAGE", help=f"draw {draws} on the 2-D surface (.png, .pdf, .svg; matplotlib)")
    p.add_argument("--plot-max", type=float, metavar="F", help="top of the plot's colour scale, in --units")
    p.add_argument("--csv", metavar="FILE", help="write the table as CSV")
    p.add_argument("--json", metavar="FILE", help="write the table as JSON")
    p.add_argument("--force", action="store_true", help="replace an output that is a link, read-only or an input")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
