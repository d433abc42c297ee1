"""`cyfes basins` and `cyfes path`: the basins of a surface and the barrier between two of them, from a grid file
or computed from samples (the options of `cyfes fes`). Parsing, printing and writing only; the answers are
cyfes.analysis's."""
from __future__ import annotations

import argparse
import io
import json
import math
import re
from typing import IO, Any, Callable, Dict, List, Optional, Tuple

from . import _output, formats
from ._errors import InputError

BASINS_DESCRIPTION = """\
The basins of a free energy surface: every grid point assigned to the basin its steepest descent ends in,
minima shallower than --min-depth merged into the basin across their lowest saddle. Per basin: its minimum,
F there, the basin's free energy -kT ln sum e^{-F/kT} dV, Delta F to the lowest basin with its block error
(--blocks N on samples), its population and its depth.

INPUT is a grid file (PLUMED sum_hills grid, cyfes .grid/.dat/.csv/.npz/.cube), or with --sigma
one or more COLVAR files whose surface is computed first, with the options of `cyfes fes`."""

PATH_DESCRIPTION = """\
The minimum free energy path between two basins and the barrier along it: the grid path whose highest point
is lowest (steepest descent on both sides of the saddle), optionally relaxed as a zero-temperature string
(--refine). --from and --to are coordinates (X,Y) or basin:N; each end moves to the minimum of its basin."""

EPILOG = """\
examples:
  cyfes basins fes.dat --temperature 300 --csv basins.csv --json basins.json
  cyfes basins COLVAR --cv phi,psi --bias metad.rbias --sigma 0.1 --blocks 5 --csv basins.csv
  cyfes path fes.grid --from -1.5,1.2 --to 1.0,-0.8 -o path.csv --refine

exit status: 0 success, 2 bad input or command line, 1 other errors."""


#: Command-line words that start with '-' but are coordinates.
NEGATIVE_VALUE = re.compile(r"^-(\d|\.\d|pi)", re.IGNORECASE)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from . import cli
    for name, text, run, short in (("basins", BASINS_DESCRIPTION, run_basins, "basins, their free energies and Delta F"),
                                   ("path", PATH_DESCRIPTION, run_path, "minimum free energy path and barrier")):
        p = sub.add_parser(name, help=short, description=text, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        cli._add_input_arguments(p)
        cli._add_estimate_arguments(p)
        for action in p._actions:  # --sigma chooses samples over a grid file here, so it is optional
            if action.dest == "sigma":
                action.required = False
        p.set_defaults(temperature=None, kt=None, run=run)
        # coordinates such as -1.2,0.5 or -pi/2,0 are values, not options (argparse knows only plain numbers)
        p._negative_number_matcher = NEGATIVE_VALUE
        p.add_argument("--min-depth", type=float, metavar="F", help="minima shallower than F (in --units) are "
                       "merged into a neighbouring basin (default 2 kT)")
        if name == "basins":
            p.add_argument("--trace", action="store_true", help="also Delta F of each basin from the first k of "
                           "the --blocks N blocks of samples, k = 1..N (has it converged?)")
        if name == "path":
            p.add_argument("--from", dest="start", required=True, metavar="X,Y", help="start: coordinates or basin:N")
            p.add_argument("--to", dest="end", required=True, metavar="X,Y", help="end: coordinates or basin:N")
            p.add_argument("--refine", action="store_true", help="relax the grid path as a zero-temperature string")
            p.add_argument("-o", "--output", metavar="FILE", help="write the path (CV columns, free_energy) as CSV")
        p.add_argument("--plot", metavar="IMAGE", help="draw the basins' borders and minima" + (", the path and F "
                       "along it" if name == "path" else "") + " on the 2-D surface (.png, .pdf, .svg; matplotlib)")
        p.add_argument("--plot-max", type=float, metavar="F", help="top of the plot's colour scale, in --units")
        p.add_argument("--csv", metavar="FILE", help="write the table as CSV")
        p.add_argument("--json", metavar="FILE", help="write the table as JSON")
        p.add_argument("--force", action="store_true", help="replace an output that is a link, read-only or an input")
        p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")


def _targets(args: argparse.Namespace) -> List[str]:
    return [p for p in (getattr(args, "output", None), args.csv, args.json, args.plot) if p]


def _check(args: argparse.Namespace) -> None:
    """Before reading or computing: the outputs may be written, and a plot can be drawn."""
    if args.plot:
        from . import plot
        plot.image_format(args.plot)
        plot.require_matplotlib()
    _output.check_targets(_targets(args), args.inputs, args.force)


def _picture(args: argparse.Namespace, result: Any, found: Any, path: Any = None) -> list:
    if not args.plot:
        return []
    from . import analysis_plot
    return [(args.plot, analysis_plot.answers_writer(result, args.plot, found, path, args.plot_max))]


def surface(args: argparse.Namespace) -> Any:
    """The grid file's surface, or (with --sigma) the surface of the samples, as `cyfes fes` computes it."""
    from . import cli
    from ._api import FESResult
    if args.min_depth is not None and not (args.min_depth >= 0 and math.isfinite(args.min_depth)):
        raise InputError(f"--min-depth: expected a number >= 0, got {args.min_depth}")
    if args.sigma is None:
        if len(args.inputs) != 1:
            raise InputError("give one grid file, or --sigma to compute the surface of COLVAR files")
        try:
            formats.output_format(args.inputs[0])
        except InputError:
            raise InputError(f"{args.inputs[0]}: not a grid file (.grid, .fes, .dat, .txt, .csv, .cube, .npz); "
                             "give --sigma to compute the surface of samples") from None
        return FESResult.read(args.inputs[0], temperature=args.temperature, units=args.units)
    args.temperature = 300.0 if args.temperature is None else args.temperature
    samples = cli.load_samples(args)
    plan = cli.plan_grid(args, samples)
    cli.check_budgets(_no_outputs(args), plan)
    return cli.compute(args, samples, plan)


def _no_outputs(args: argparse.Namespace) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), "output": [], "plot": None, "format": None})


def _number(x: float) -> Optional[float]:
    return float(x) if math.isfinite(x) else None


def _basin_rows(result: Any, found: Any) -> List[Dict[str, Any]]:
    names = formats.cv_names(result)
    rows = []
    for b in found:
        row: Dict[str, Any] = {"basin": b.label}
        row.update({n: v for n, v in zip(names, b.minimum)})
        row.update(minimum_free_energy=b.minimum_free_energy, free_energy=b.free_energy, error=b.error,
                   delta_f=b.delta_f, delta_f_error=b.delta_f_error, population=b.population,
                   population_error=b.population_error, points=b.points,
                   depth=b.depth)
        rows.append(row)
    return rows


def _csv_writer(rows: List[Dict[str, Any]]) -> Callable[[IO[bytes]], None]:
    def write(fh: IO[bytes]) -> None:
        text = io.StringIO()
        text.write(",".join(rows[0]) + "\n")
        for row in rows:
            text.write(",".join(f"{v:.10g}" if isinstance(v, float) else str(v) for v in row.values()) + "\n")
        fh.write(text.getvalue().encode())
    return write


def _json_writer(doc: Dict[str, Any]) -> Callable[[IO[bytes]], None]:
    def clean(v: Any) -> Any:
        if isinstance(v, float):
            return _number(v)
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v
    return lambda fh: fh.write((json.dumps(clean(doc), indent=1) + "\n").encode())


def _pm(value: float, err: float) -> str:
    return f"{value:.4g}" + (f" +- {err:.2g}" if math.isfinite(err) else "")


def basins_table(result: Any, found: Any) -> str:
    names = formats.cv_names(result)
    head = f"{'basin':>5}  {'minimum (' + ', '.join(names) + ')':<28} {'F_min':>9} {'F_basin':>16} " \
           f"{'DeltaF':>16} {'population':>10} {'depth':>8}"
    lines = [head]
    for b in found:
        at = ", ".join(f"{v:.4g}" for v in b.minimum)
        lines.append(f"{b.label:>5}  {at:<28} {b.minimum_free_energy:>9.4g} {_pm(b.free_energy, b.error):>16} "
                     f"{_pm(b.delta_f, b.delta_f_error):>16} {b.population:>10.4g} {b.depth:>8.4g}")
    return "\n".join(lines) + f"\n(energies in {result.units}, kT = {result.kT:.6g})"


def _trace(result: Any, found: Any) -> Dict[str, Any]:
    """Delta F of each basin to basin 0 on the running surfaces (blocks 1..k)."""
    if getattr(result, "block_values", None) is None:
        raise InputError("--trace: needs a surface from samples with --blocks N (N > 1)")
    runs = {b.label: result.delta_f_trace(0, b.label) for b in found if b.label}
    samples = next(iter(runs.values())).samples if runs else ()
    return {"samples": list(samples), "delta_f": {str(k): list(t.delta_f) for k, t in runs.items()}}


def trace_table(trace: Dict[str, Any], units: str) -> str:
    keys = list(trace["delta_f"])
    lines = [f"{'samples':>10} " + " ".join(f"{'DeltaF ' + k:>12}" for k in keys) + f"   ({units}, to basin 0)"]
    for i, n in enumerate(trace["samples"]):
        lines.append(f"{n:>10} " + " ".join(f"{trace['delta_f'][k][i]:>12.4g}" for k in keys))
    return "\n".join(lines)


def run_basins(args: argparse.Namespace) -> int:
    _check(args)
    result = surface(args)
    found = result.basins(args.min_depth)
    rows = _basin_rows(result, found)
    doc = {"units": result.units, "kT": result.kT, "min_depth": args.min_depth, "basins": rows}
    trace = _trace(result, found) if args.trace else None
    if trace is not None:
        doc["trace"] = trace
    outputs = [(p, w) for p, w in ((args.csv, _csv_writer(rows) if args.csv else None),
                                   (args.json, _json_writer(doc) if args.json else None)) if p]
    written = _output.write_all(outputs + _picture(args, result, found))
    if not args.quiet:
        print(basins_table(result, found))
        if trace is not None:
            print(trace_table(trace, result.units))
        if written:
            print("cyfes: wrote " + ", ".join(str(p) for p in written))
    return 0


def _end(text: str, dim: int, option: str) -> Any:
    key, colon, rest = text.partition(":")
    if colon and key.strip().lower() == "basin":
        try:
            return int(rest)
        except ValueError:
            raise InputError(f"{option} {text}: expected basin:N with N an integer") from None
    values = [formats.parse_number(t, option) for t in text.split(",")]
    if len(values) != dim:
        raise InputError(f"{option} {text}: expected {dim} coordinates (one per CV) or basin:N")
    return tuple(values)


def _path_rows(result: Any, found: Any) -> List[Dict[str, Any]]:
    names = formats.cv_names(result)
    return [{**{n: float(v) for n, v in zip(names, x)}, "free_energy": float(f)}
            for x, f in zip(found.points, found.free_energy)]


def path_summary(result: Any, found: Any) -> str:
    names = formats.cv_names(result)
    saddle = ", ".join(f"{n}={v:.4g}" for n, v in zip(names, found.saddle))
    return (f"cyfes: path from basin {found.basins[0]} to basin {found.basins[1]}, {len(found.points)} points"
            f"{' (string)' if found.refined else ''}; saddle at {saddle}, F = {found.saddle_free_energy:.4g}; "
            f"barrier {_pm(found.barrier, found.barrier_error)}, reverse "
            f"{_pm(found.barrier_reverse, found.barrier_reverse_error)} {result.units}")


def run_path(args: argparse.Namespace) -> int:
    _check(args)
    result = surface(args)
    found = result.path(_end(args.start, result.dim, "--from"), _end(args.end, result.dim, "--to"),
                        args.min_depth, args.refine)
    rows = _path_rows(result, found)
    doc = {"units": result.units, "kT": result.kT, "basins": list(found.basins), "saddle": list(found.saddle),
           "saddle_free_energy": found.saddle_free_energy, "barrier": found.barrier,
           "barrier_error": found.barrier_error, "barrier_reverse": found.barrier_reverse,
           "barrier_reverse_error": found.barrier_reverse_error, "refined": found.refined, "path": rows}
    outputs: List[Tuple[str, Callable[[IO[bytes]], None]]] = []
    for path, writer in ((args.output, _csv_writer(rows)), (args.csv, _csv_writer(rows)), (args.json, _json_writer(doc))):
        if path:
            outputs.append((path, writer))
    written = _output.write_all(outputs + _picture(args, result, result.basins(args.min_depth), found))
    if not args.quiet:
        print(path_summary(result, found))
        if written:
            print("cyfes: wrote " + ", ".join(str(p) for p in written))
    return 0

