"""The `cyfes` command (also `python -m cyfes`): fes, info, demo, and the CyFES 4.5 command line.

The only module of the package that prints or exits. Every expected failure is one line on stderr,
`cyfes: error: ...`, with exit code 2 for bad input and 1 for anything else cyfes reports (no GPU, no
matplotlib); nothing is written when a run fails.
"""
from __future__ import annotations

import argparse
import functools
import json
import platform
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import _output, compat, formats, progress
from ._errors import CyfesError, InputError

PROG = "cyfes"
#: Grid points per CV when --bins is not given, by number of CVs.
DEFAULT_BINS = {1: 200, 2: 100, 3: 40}
DEMO_FILE = "demo_colvar.dat"
#: The demo's settings (see scripts/make_demo_data.py for the data).
DEMO_SETTINGS = {"cv": "x,y", "bias": "static.bias", "sigma": "0.03", "bins": "120,100",
                 "range": ["x=-1.8,1.8", "y=-1.0,2.0"], "units": "kJ/mol", "temperature": 300.0,
                 "plot_max": "60"}


class UsageError(Exception):
    """A command line argparse could not parse; reported in one line like every other error."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


# ----------------------------------------------------------------------------------------------- parser
FES_DESCRIPTION = """\
Compute the free energy surface F(x) = -kT ln P(x) of collective variables (CVs) sampled in a (biased)
simulation, by Gaussian kernel density estimation with each sample reweighted by exp(V/kT) for its bias V.

INPUT is a PLUMED COLVAR file (`#! FIELDS` header, `#! SET` lines, concatenated restarts), a whitespace or
CSV table with or without a header line, or a .npy array; several INPUTs (walkers) are concatenated.
Columns are chosen by name or by 0-based index. CVs that a COLVAR declares periodic (`#! SET min_phi -pi`
and `max_phi pi`) are treated as periodic unless --periodic says otherwise; the grid of a periodic CV spans
its period, without repeating the end point, as in PLUMED.

Outputs by extension (or --format): .grid/.fes PLUMED grid (sum_hills layout), .dat/.txt columns,
.csv, .cube/.cub Gaussian cube (3 CVs), .npz numpy archive; --plot draws a .png/.pdf/.svg (needs
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

MAIN_DESCRIPTION = """\
cyfes: free energy surfaces from biased molecular dynamics by reweighted Gaussian kernel density
estimation, on GPUs (CUDA) and CPUs (OpenMP).

CyFES 4.5 command lines (python -m cyfes -i data.txt -g 20,20,20 -o fes.cub) are still understood."""

MAIN_EPILOG = """\
commands:
  cyfes fes INPUT ...     compute a free energy surface (cyfes fes --help)
  cyfes info [--json]     version, build options, backends and GPUs
  cyfes demo [-o DIR]     compute and plot the FES of the bundled example data
  cyfes sum_hills ...     plumed sum_hills, flag for flag (cyfes sum_hills --help)
  cyfes reweight ...      FES_from_Reweighting.py, flag for flag (cyfes reweight --help)
  cyfes basins | path     basins, Delta F and barriers of a surface (cyfes basins --help)"""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=MAIN_DESCRIPTION, epilog=MAIN_EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    from . import __version__
    parser.add_argument("--version", action="version", version=f"cyfes {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    fes = sub.add_parser("fes", help="compute a free energy surface", description=FES_DESCRIPTION,
                         epilog=FES_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_fes_arguments(fes)
    fes.set_defaults(run=run_fes)
    info = sub.add_parser("info", help="version, build options, backends and GPUs",
                          description="Report the cyfes version, how it was built (CUDA, OpenMP), which "
                                      "backends can run here and the GPUs found.")
    info.add_argument("--json", action="store_true", help="print the report as JSON")
    info.set_defaults(run=run_info)
    demo = sub.add_parser("demo", help="compute and plot the FES of the bundled example data",
                          description="Compute the free energy surface of the example data shipped with cyfes "
                                      "(a biased 2-D simulation of a double-well potential) and plot it.",
                          epilog="example:\n  cyfes demo -o /tmp/cyfes-demo",
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("-o", "--output-dir", default="cyfes-demo", metavar="DIR",
                      help="directory for demo_fes.dat, demo_fes.png and a copy of the data (created; "
                           "default: ./cyfes-demo)")
    demo.add_argument("--device", default="auto", help="auto (default), cpu, gpu, cuda:N")
    demo.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    demo.set_defaults(run=run_demo)
    from . import analysis_cli, reweight_cli, sumhills_cli
    sumhills_cli.add_parser(sub)
    reweight_cli.add_parser(sub)
    analysis_cli.add_parsers(sub)
    return parser


def _add_fes_arguments(p: argparse.ArgumentParser) -> None:
    from . import fes_options
    _add_input_arguments(p)
    _add_estimate_arguments(p)
    _add_output_arguments(p)
    fes_options.add_arguments(p)


def _add_input_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("input")
    g.add_argument("inputs", nargs="+", metavar="INPUT", help="COLVAR / text / CSV / .npy file(s)")
    g.add_argument("--cv", metavar="COLS", help="CV columns, names or 0-based indices: phi,psi or 1,2 "
                   "(default: every column except time, bias and weights, if at most 3)")
    g.add_argument("--bias", metavar="COLS", help="bias column(s) V in --units; several are summed "
                   "(metad.rbias,uwall.bias); samples are reweighted by exp(V/kT)")
    g.add_argument("--weights", metavar="COL", help="column of per-sample weights (on top of the bias)")
    g.add_argument("--skip", type=int, default=0, metavar="N", help="drop the first N rows of each input "
                   "(burn-in)")
    g.add_argument("--stride", type=int, default=1, metavar="N", help="then keep every N-th row")


def _add_estimate_arguments(p: argparse.ArgumentParser) -> None:
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


def _add_output_arguments(p: argparse.ArgumentParser) -> None:
    out = p.add_argument_group("output")
    out.add_argument("-o", "--output", action="append", default=[], metavar="FILE",
                     help="write the FES here, format by extension; repeat for several files")
    out.add_argument("--format", choices=list(formats.FORMATS), help="format of every -o file, whatever "
                     "its extension")
    out.add_argument("--plot", metavar="IMAGE", help="draw the FES into IMAGE (.png, .pdf, .svg)")
    out.add_argument("--plot-max", type=float, metavar="F", help="top of the plot's colour scale, in --units")
    out.add_argument("--force", action="store_true", help="replace an output that is a symbolic link (the link, "
                     "not its target), a read-only file or one of the inputs; FIFOs and devices are never written")
    out.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")


# ----------------------------------------------------------------------------------------------- fes
@dataclass
class Samples:
    """What `cyfes fes` hands to cyfes.fes, plus where it came from."""

    names: List[str]
    values: np.ndarray
    bias: Optional[np.ndarray]
    weights: Optional[np.ndarray]
    domains: Dict[str, Tuple[float, float]]
    #: per CV the samples' (low, high) where known without a pass over values (Dask arrays on a cluster)
    data_range: Optional[Tuple[np.ndarray, np.ndarray]] = None


def _split_list(text: Optional[str]) -> List[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def _default_cvs(table: formats.Table, used: Sequence[str]) -> List[str]:
    skip = {"time"} | set(used)
    names = [n for n in table.names if n not in skip and not n.endswith(".bias") and not n.endswith(".rbias")]
    if not names or len(names) > 3:
        raise InputError(f"{table.source}: choose the CVs with --cv; available columns: {', '.join(table.names)}")
    return names


def _rows(data: np.ndarray, skip: int, stride: int, source: str) -> np.ndarray:
    kept = data[skip::stride]
    if len(kept) == 0:
        raise InputError(f"{source}: no rows left after --skip {skip} (the file has {len(data)} rows)")
    return kept


def _check_rows(args: argparse.Namespace) -> None:
    if args.skip < 0 or args.stride < 1:
        raise InputError("--skip must be >= 0 and --stride >= 1")


def _table_samples(table: formats.Table, keys: Tuple[List[str], List[str], List[str]], skip: int,
                   stride: int) -> Samples:
    """The CV, bias and weight columns (cv, bias, weight keys) of one table's rows after skip, every stride-th."""
    cv_keys, bias_keys, weight_keys = keys
    names = [table.names[table.column_index(k)] for k in cv_keys]
    data = _rows(table.data, skip, stride, table.source)
    bias = data[:, [table.column_index(k) for k in bias_keys]].sum(axis=1) if bias_keys else None
    weights = data[:, [table.column_index(k) for k in weight_keys]].prod(axis=1) if weight_keys else None
    domains = {n: table.periodic[table.names[table.column_index(k)]] for n, k in zip(names, cv_keys)
               if table.names[table.column_index(k)] in table.periodic}
    return Samples(names, data[:, [table.column_index(k) for k in cv_keys]], bias, weights, domains)


def _warn_notes(table: formats.Table) -> formats.Table:
    for note in table.notes:
        print(f"{PROG}: warning: {note}", file=sys.stderr)
    return table


def _keys(args: argparse.Namespace, first: formats.Table) -> Tuple[List[str], List[str], List[str]]:
    bias_keys, weight_keys = _split_list(args.bias), _split_list(args.weights)
    return _split_list(args.cv) or _default_cvs(first, bias_keys + weight_keys), bias_keys, weight_keys


def load_samples(args: argparse.Namespace) -> Samples:
    """Read every input and pick the CV, bias and weight columns (rows after --skip, every --stride-th)."""
    _check_rows(args)
    tables = [_warn_notes(formats.read_table(path)) for path in args.inputs]
    keys = _keys(args, tables[0])
    parts = [_table_samples(table, keys, args.skip, args.stride) for table in tables]
    domains: Dict[str, Tuple[float, float]] = {}
    for part in parts:
        domains.update(part.domains)
    join = lambda arrays: None if arrays[0] is None else np.concatenate(arrays)  # noqa: E731
    return Samples(parts[0].names, np.concatenate([p.values for p in parts]), join([p.bias for p in parts]),
                   join([p.weights for p in parts]), domains)


def _load_on_worker(path: str, args: argparse.Namespace, keys: Tuple[List[str], List[str], List[str]]) -> Any:
    """One input read where a Dask worker runs (cyfes.cluster)."""
    from . import cluster  # deferred: only runs with --scheduler, which needs Dask
    got = _table_samples(formats.read_table(path), keys, args.skip, args.stride)
    return cluster.FileChunk(got.names, got.values, got.bias, got.weights, got.domains)


def load_on_cluster(args: argparse.Namespace, client: Any) -> Samples:
    """--scheduler: every input read on a worker and kept there (Dask arrays), its columns picked as above;
    the first file's header is read here too, for the column names."""
    from . import cluster  # deferred: needs Dask (cyfes[dask])
    _check_rows(args)
    keys = _keys(args, formats.read_table(args.inputs[0]))
    found = cluster.read_on_workers(client, args.inputs, functools.partial(_load_on_worker, args=args, keys=keys))
    return Samples(found.names, found.values, found.bias, found.weights, found.domains, (found.lo, found.hi))


def _cv_position(key: str, names: List[str], option: str) -> int:
    if key in names:
        return names.index(key)
    if key.isdigit() and int(key) < len(names):
        return int(key)
    raise InputError(f"{option} {key}: not one of the CVs ({', '.join(names)})")


def _named_pairs(specs: Sequence[str], names: List[str], option: str) -> Dict[int, Optional[Tuple[float, float]]]:
    """`CV=LO,HI` specs by CV position; `CV=none` maps to None."""
    out: Dict[int, Optional[Tuple[float, float]]] = {}
    for spec in specs:
        key, eq, rest = spec.partition("=")
        if not eq:
            raise InputError(f"{option} {spec}: expected CV=LO,HI, e.g. phi=-pi,pi")
        pos = _cv_position(key.strip(), names, option)
        if rest.strip().lower() in ("none", "no", "false", "off"):
            out[pos] = None
            continue
        bounds = rest.split(",")
        if len(bounds) != 2:
            raise InputError(f"{option} {spec}: expected two bounds LO,HI")
        lo, hi = (formats.parse_number(b, f"{option} {key}") for b in bounds)
        if not hi > lo:
            raise InputError(f"{option} {spec}: needs LO < HI")
        out[pos] = (lo, hi)
    return out


def parse_sigma(text: str, names: List[str]) -> List[float]:
    """--sigma: one value, one per CV, or CV=value pairs."""
    parts = _split_list(text)
    if parts and all("=" in p for p in parts):
        given = {_cv_position(k.strip(), names, "--sigma"): formats.parse_number(v, f"--sigma {k}")
                 for k, _, v in (p.partition("=") for p in parts)}
        missing = [names[d] for d in range(len(names)) if d not in given]
        if missing:
            raise InputError(f"--sigma: no bandwidth for {', '.join(missing)}")
        return [given[d] for d in range(len(names))]
    values = [formats.parse_number(p, "--sigma") for p in parts]
    if len(values) not in (1, len(names)):
        raise InputError(f"--sigma: expected 1 or {len(names)} values (one per CV), got {len(values)}")
    return values * len(names) if len(values) == 1 else values


def parse_bins(text: Optional[str], dim: int) -> List[int]:
    if text is None:
        return [DEFAULT_BINS.get(dim, 20)] * dim
    try:
        values = [int(t) for t in _split_list(text)]
    except ValueError:
        raise InputError(f"--bins: expected integers, got {text!r}") from None
    if len(values) not in (1, dim) or min(values) < 1:
        raise InputError(f"--bins: expected 1 or {dim} positive integers, got {text!r}")
    return values * dim if len(values) == 1 else values


@dataclass
class GridPlan:
    """Per CV: the period (or None), the number of points and the (low, high) passed to cyfes.fes."""

    periods: List[Optional[float]]
    bins: List[int]
    ranges: List[Tuple[float, float]]


def _data_range(samples: Samples, d: int) -> Tuple[float, float]:
    if samples.data_range is not None:
        return float(samples.data_range[0][d]), float(samples.data_range[1][d])
    return float(samples.values[:, d].min()), float(samples.values[:, d].max())


def plan_grid(args: argparse.Namespace, samples: Samples) -> GridPlan:
    """Periods and grid ranges: --periodic, else the COLVAR's domains; --range, else the period or data range."""
    names = samples.names
    dim = len(names)
    domains: Dict[int, Optional[Tuple[float, float]]] = {d: samples.domains.get(n) for d, n in enumerate(names)}
    domains.update(_named_pairs(args.periodic, names, "--periodic"))
    given = _named_pairs(args.ranges, names, "--range")
    bins = parse_bins(args.bins, dim)
    periods, ranges = [], []
    for d in range(dim):
        dom = domains.get(d)
        periods.append(dom[1] - dom[0] if dom else None)
        lo, hi = given.get(d) or dom or _data_range(samples, d)
        if given.get(d) is None and dom is not None:
            hi = hi - (hi - lo) / bins[d]  # a periodic grid does not repeat its end point (PLUMED's layout)
        if not hi > lo:
            lo, hi = lo - 0.5, hi + 0.5  # all samples at one value: a unit window around it
        ranges.append((lo, hi))
    return GridPlan(periods, bins, ranges)


def _check_outputs(args: argparse.Namespace) -> None:
    """Fail before reading or computing: unknown formats, missing or unwritable directories, paths that must not
    be written (links, FIFOs, devices, read-only files, inputs: see cyfes._output), --running members and the
    convergence plot included, missing matplotlib."""
    if args.format and not args.output:
        raise InputError("--format: give an output file with -o")
    for flag, names in (("-o", args.output), ("--plot", [args.plot]), ("--plot-convergence", [args.plot_convergence])):
        if any(name is not None and not name.strip() for name in names):
            raise InputError(f"{flag}: an empty file name")
    for path in args.output:
        formats.output_format(path, args.format)
    if args.plot:
        from . import plot
        plot.image_format(args.plot)
        plot.require_matplotlib()
        if args.plot_max is not None and not np.isfinite(args.plot_max):
            raise InputError(f"--plot-max: must be a finite number, got {args.plot_max}")
    from . import fes_options
    _output.check_targets(list(args.output) + ([args.plot] if args.plot else []) + fes_options.output_names(args),
                          args.inputs, args.force)


#: Memory the plot of one grid point needs (matplotlib's contour paths and image), an estimate.
PLOT_BYTES_PER_POINT = 400


def check_budgets(args: argparse.Namespace, plan: GridPlan) -> None:
    """Before computing: the plot can draw this grid, and the outputs fit in memory, on disk and under the
    file size limit (estimates per format, see formats.estimated_bytes)."""
    from . import _inputs
    points, dim = int(np.prod(plan.bins, dtype=np.float64)), len(plan.bins)
    if args.plot:
        from . import plot
        plot.check_plot_shape(plan.bins)
    kinds = [formats.output_format(path, args.format) for path in args.output]
    for path, kind in zip(args.output, kinds):
        if kind == "cube" and dim != 3:
            raise InputError(f"{path}: the cube format holds 3-D grids; this FES has {dim} CVs")
    memory = max([formats.writer_memory(k, points, dim) for k in kinds]
                 + [PLOT_BYTES_PER_POINT * points if args.plot else 0])
    _inputs.check_grid_fits(points, dim, "--bins", extra=memory)
    error = args.blocks > 1
    _output.check_sizes([(_output.Path(path), formats.estimated_bytes(k, points, dim, error))
                         for path, k in zip(args.output, kinds)])


def compute(args: argparse.Namespace, samples: Samples, plan: GridPlan) -> Any:
    from . import _api, fes_options

    options: Dict[str, Any] = dict(
        bias=samples.bias, weights=samples.weights, temperature=fes_options.temperature(args), units=args.units,
        bins=plan.bins, ranges=plan.ranges, periodic=plan.periods, blocks=args.blocks, device=args.device,
        precision=args.precision, threads=args.threads, names=samples.names, tolerance=args.tolerance,
        method=args.method)
    sigma = fes_options.sigma(args, samples, plan.periods, parse_sigma)
    with progress.bar("cyfes fes", enabled=None if not args.quiet else False) as update:
        return _api.fes(samples.values, sigma, progress=update, **options)


def write_outputs(result: Any, args: argparse.Namespace,
                  extra: Sequence[Tuple[Path, _output.Writer]] = ()) -> List[Path]:
    """Every -o file, the plot and `extra`, staged and committed together: all are written or none."""
    outputs = [(path, formats.result_writer(result, path, args.format)) for path in args.output] + list(extra)
    if args.plot:
        from . import plot
        outputs.append((args.plot, plot.plot_writer(result, args.plot, vmax=args.plot_max)))
    return _output.write_all(outputs, args.inputs)


def _summary(result: Any, written: Sequence[Path]) -> str:
    shape = "x".join(str(len(a)) for a in result.axes)
    where = np.unravel_index(int(np.argmin(result.values)), result.values.shape)
    at = ", ".join(f"{n}={a[i]:.4g}" for n, a, i in zip(formats.cv_names(result), result.axes, where))
    files = ", ".join(str(p) for p in written) if written else "nothing (give -o FILE or --plot IMAGE)"
    periodic = [f"{n} (period {p:.6g})" for n, p in zip(formats.cv_names(result), result.periodic) if p]
    return (f"cyfes: FES of {', '.join(formats.cv_names(result))} from {result.n_samples} samples on a {shape} "
            f"grid ({result.backend}, {result.precision})"
            + (f"; periodic: {', '.join(periodic)}" if periodic else "")
            + f"; minimum at {at}; wrote {files}")


def _surface(args: argparse.Namespace, samples: Samples) -> Any:
    from . import fes_options
    plan = plan_grid(args, samples)
    check_budgets(args, plan)
    return fes_options.finish(args, compute(args, samples, plan))


def run_fes(args: argparse.Namespace) -> int:
    from . import fes_options
    _check_outputs(args)
    fes_options.check(args)
    if args.scheduler:
        if args.sigma.strip().lower() == "auto":
            raise InputError("--sigma auto: not with --scheduler (it needs every sample here); give the widths")
        from . import cluster  # deferred: needs Dask (cyfes[dask])
        with cluster.client(args.scheduler) as client:
            result = _surface(args, load_on_cluster(args, client))
    else:
        result = _surface(args, load_samples(args))
    written = write_outputs(result, args, fes_options.extra_outputs(args, result))
    if not args.quiet:
        print("\n".join([_summary(result, written)] + fes_options.report(args, result)))
    return 0


# ----------------------------------------------------------------------------------------------- info
def info_report() -> Dict[str, Any]:
    from . import __version__, _build_info
    from ._backends import backends

    report: Dict[str, Any] = {
        "version": __version__, "python": platform.python_version(), "platform": platform.platform(),
        "build": {"cuda": bool(_build_info.CUDA), "cuda_version": _build_info.CUDA_VERSION,
                  "cuda_runtime": _build_info.CUDA_RUNTIME if _build_info.CUDA else None,
                  "openmp": _build_info.OPENMP, "compiler": _build_info.COMPILER},
        "backends": backends(), "extras": {}}
    for module in ("matplotlib", "tqdm"):
        try:
            report["extras"][module] = __import__(module).__version__
        except ImportError:
            report["extras"][module] = None
    return report


def _info_text(r: Dict[str, Any]) -> str:
    b, cpu, cuda = r["build"], r["backends"]["cpu"], r["backends"]["cuda"]
    lines = [f"cyfes {r['version']} (Python {r['python']}, {r['platform']})",
             f"build:   CUDA {'on' if b['cuda'] else 'off'}"
             + (f" (CUDA {b['cuda_version']}, {b['cuda_runtime']} runtime"
                + (f"; needs a driver for CUDA >= {cuda['needs_driver_cuda']}, driver >= {cuda['needs_driver']})"
                   if cuda.get("needs_driver") else ")") if b["cuda"] else "")
             + f", OpenMP {b['openmp'] or 'off'}, compiler {b['compiler']}",
             f"cpu:     usable, {cpu['threads']} threads",
             "cuda:    " + ("usable" if cuda["usable"] else f"not usable: {cuda['reason']}")]
    if cuda.get("runtime_version"):
        lines.append(f"         runtime {cuda['runtime_version']}, driver {cuda.get('driver_version')}")
    elif cuda.get("driver_cuda"):
        lines.append(f"         driver supports CUDA {cuda['driver_cuda']}")
    for dev in cuda["devices"]:
        lines.append("gpu:     " + ", ".join(f"{k} {v}" for k, v in dev.items()))
    lines.append("extras:  " + ", ".join(f"{k} {v or 'missing'}" for k, v in r["extras"].items())
                 + ("" if r["extras"].get("matplotlib") else "  (plots: pip install 'cyfes[plot]')"))
    return "\n".join(lines)


def run_info(args: argparse.Namespace) -> int:
    report = info_report()
    print(json.dumps(report, indent=2, default=str) if args.json else _info_text(report))
    return 0


# ----------------------------------------------------------------------------------------------- demo
def demo_data_path() -> Path:
    from importlib import resources
    path = Path(str(resources.files("cyfes").joinpath("data", DEMO_FILE)))
    if not path.is_file():
        raise CyfesError(f"the demo data {DEMO_FILE} is missing from this installation ({path})")
    return path


def run_demo(args: argparse.Namespace) -> int:
    from . import plot
    out = Path(args.output_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory")
    data = demo_data_path()
    s = DEMO_SETTINGS
    fes_args = build_parser().parse_args(
        ["fes", str(data), "--cv", s["cv"], "--bias", s["bias"], "--sigma", s["sigma"], "--bins", s["bins"],
         "--units", s["units"], "-T", str(s["temperature"]), "--device", args.device, "--plot-max", s["plot_max"]]
        + [f"--range={r}" for r in s["range"]])
    out.mkdir(parents=True, exist_ok=True)
    fes_args.output = [str(out / "demo_fes.dat")]
    fes_args.force = False
    try:
        plot.require_matplotlib()
        fes_args.plot = str(out / "demo_fes.png")
    except plot.PlotUnavailable as exc:
        print(f"cyfes: warning: no picture: {exc}", file=sys.stderr)
    _check_outputs(fes_args)
    _output.check_target(out / DEMO_FILE, [data])
    samples = load_samples(fes_args)
    result = compute(fes_args, samples, plan_grid(fes_args, samples))
    copy = data.read_bytes()
    written = write_outputs(result, fes_args, [(out / DEMO_FILE, lambda fh: fh.write(copy))])
    if not args.quiet:
        print(_summary(result, written))
        print(f"cyfes: the same from the command line: cyfes fes {out / DEMO_FILE} --cv {s['cv']} --bias "
              f"{s['bias']} --sigma {s['sigma']} --bins {s['bins']} "
              + " ".join(f"--range {r}" for r in s["range"]) + f" -o fes.dat --plot fes.png --plot-max {s['plot_max']}")
    return 0


# ----------------------------------------------------------------------------------------------- legacy
def run_legacy(argv: Sequence[str]) -> int:
    opts = compat.parse_legacy(argv)
    for warning in opts.warnings:
        print(f"cyfes: warning: {warning}", file=sys.stderr)
    shown = len(opts.warnings)
    written = compat.run_legacy(opts)
    for warning in opts.warnings[shown:]:  # found in the data (a bias CyFES 4.5's float32 weights overflow)
        print(f"cyfes: warning: {warning}", file=sys.stderr)
    print("cyfes (CyFES 4.5 mode): wrote " + ", ".join(str(p) for p in written))
    return 0


# ----------------------------------------------------------------------------------------------- main
def _error(message: str) -> None:
    text = " ".join(str(message).split())  # one line, whatever the message held
    print(f"{PROG}: error: {text}", file=sys.stderr)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line `argv` (default sys.argv[1:]); returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    handlers = _output.install_signal_handlers()
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning  # one line each, like the errors
            return _main(args)
    finally:
        _output.restore_signal_handlers(handlers)


def _show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                  line: Optional[str] = None) -> None:
    print(f"{PROG}: warning: {' '.join(str(message).split())}", file=sys.stderr)


def _main(args: List[str]) -> int:
    try:
        if compat.is_legacy(args):
            return run_legacy(args)
        parser = build_parser()
        ns = parser.parse_args(args)
        if not hasattr(ns, "run"):
            parser.print_help(sys.stderr)
            return 2
        return int(ns.run(ns))
    except (UsageError, InputError) as exc:
        _error(str(exc))
        return 2
    except CyfesError as exc:
        _error(str(exc))
        return 1
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except _output.Terminated as exc:
        _error(f"terminated by {exc}")
        return 128 + exc.signum
    except MemoryError:
        _error("out of memory; use fewer bins, fewer samples (--stride) or --precision float32")
        return 1
    finally:
        _output.discard_all()
