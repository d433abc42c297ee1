"""`cyfes basins`: the basins of a surface (a grid file, or computed from samples with the options of `cyfes fes`),
their free energies, Delta F with block errors, and how Delta F converges. The answers are cyfes.analysis's."""
from __future__ import annotations

import argparse
from typing import Any

from ..io import output as _output
from ..io.format_names import cv_names
from . import answer_tables, flags

BASINS_DESCRIPTION = """\
The basins of a free energy surface: every grid point assigned to the basin its steepest descent ends in,
minima shallower than --min-depth merged into the basin across their lowest saddle. Per basin: its minimum,
F there, the basin's free energy -kT ln sum e^{-F/kT} dV, Delta F to the lowest basin with its block error
(--blocks N on samples), its population and its depth.

INPUT is a grid file (PLUMED sum_hills grid, cyfes .grid/.dat/.csv/.npz/.cube), or with --sigma
one or more COLVAR files whose surface is computed first, with the options of `cyfes fes`."""


def configure_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("basins", description=BASINS_DESCRIPTION,
                       epilog=flags.ANSWERS_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    flags.add_answer_arguments(p)
    p.add_argument("--trace", action="store_true", help="also Delta F of each basin from the first k of "
                   "the --blocks N blocks of samples, k = 1..N (has it converged?)")
    flags.add_answer_output_arguments(p, "the basins' borders and minima")
    p.set_defaults(run=run)


def _basin_rows(result: Any, found: Any) -> list[dict[str, Any]]:
    names = cv_names(result)
    rows = []
    for b in found:
        row: dict[str, Any] = {"basin": b.label}
        row.update({n: v for n, v in zip(names, b.minimum)})
        row.update(minimum_free_energy=b.minimum_free_energy, free_energy=b.free_energy, error=b.error,
                   delta_f=b.delta_f, delta_f_error=b.delta_f_error, population=b.population,
                   population_error=b.population_error, points=b.points,
                   depth=b.depth)
        rows.append(row)
    return rows


def run(args: argparse.Namespace) -> int:
    from . import answers, options  # deferred: numpy and the engine, which --help does not need
    answers.check(args)
    result = answers.surface_of(args)
    found = result.basins(args.min_depth)
    rows = _basin_rows(result, found)
    doc = {"units": result.units, "kT": result.kT, "min_depth": args.min_depth, "basins": rows}
    trace = answers.trace(result, found) if args.trace else None
    if trace is not None:
        doc["trace"] = trace
    outputs = [(p, w) for p, w in ((args.csv, answers.csv_writer(rows) if args.csv else None),
                                   (args.json, answers.json_writer(doc) if args.json else None)) if p]
    written = _output.write_all(outputs + answers.picture(args, result, found), options.read_files(args))
    if not args.quiet:
        print(answer_tables.basins_table(result, found))
        if trace is not None:
            print(answer_tables.trace_table(trace, result.units))
        if written:
            print("cyfes: wrote " + ", ".join(str(p) for p in written))
    return 0
