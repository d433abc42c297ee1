"""`cyfes path`: the minimum free energy path between two basins of a surface and the barrier along it, with block
errors. The answers are cyfes.analysis's."""
from __future__ import annotations

import argparse
from typing import IO, Any, Callable

from .._errors import InputError
from ..io import output as _output
from ..io.format_names import cv_names
from ..io.numbers import parse_number
from . import answer_tables, flags

PATH_DESCRIPTION = """\
The minimum free energy path between two basins and the barrier along it: the grid path whose highest point
is lowest (steepest descent on both sides of the saddle), optionally relaxed as a zero-temperature string
(--refine). --from and --to are coordinates (X,Y) or basin:N; each end moves to the minimum of its basin."""


def configure_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("path", description=PATH_DESCRIPTION,
                       epilog=flags.ANSWERS_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    flags.add_answer_arguments(p)
    p.add_argument("--from", dest="start", required=True, metavar="X,Y", help="start: coordinates or basin:N")
    p.add_argument("--to", dest="end", required=True, metavar="X,Y", help="end: coordinates or basin:N")
    p.add_argument("--refine", action="store_true", help="relax the grid path as a zero-temperature string")
    p.add_argument("-o", "--output", metavar="FILE", help="write the path (CV columns, free_energy) as CSV")
    flags.add_answer_output_arguments(p, "the basins' borders and minima, the path and F along it")
    p.set_defaults(run=run)


def _end(text: str, dim: int, option: str) -> Any:
    key, colon, rest = text.partition(":")
    if colon and key.strip().lower() == "basin":
        try:
            return int(rest)
        except ValueError:
            raise InputError(f"{option} {text}: expected basin:N with N an integer") from None
    values = [parse_number(t, option) for t in text.split(",")]
    if len(values) != dim:
        raise InputError(f"{option} {text}: expected {dim} coordinates (one per CV) or basin:N")
    return tuple(values)


def _path_rows(result: Any, found: Any) -> list[dict[str, Any]]:
    names = cv_names(result)
    return [{**{n: float(v) for n, v in zip(names, x)}, "free_energy": float(f)}
            for x, f in zip(found.points, found.free_energy)]


def path_summary(result: Any, found: Any) -> str:
    names = cv_names(result)
    saddle = ", ".join(f"{n}={v:.4g}" for n, v in zip(names, found.saddle))
    return (f"cyfes: path from basin {found.basins[0]} to basin {found.basins[1]}, {len(found.points)} points"
            f"{' (string)' if found.refined else ''}; saddle at {saddle}, F = {found.saddle_free_energy:.4g}; "
            f"barrier {answer_tables.pm(found.barrier, found.barrier_error)}, reverse "
            f"{answer_tables.pm(found.barrier_reverse, found.barrier_reverse_error)} {result.units}")


def run(args: argparse.Namespace) -> int:
    from . import answers, options  # deferred: numpy and the engine, which --help does not need
    answers.check(args)
    result = answers.surface_of(args)
    found = result.path(_end(args.start, result.dim, "--from"), _end(args.end, result.dim, "--to"),
                        args.min_depth, args.refine)
    rows = _path_rows(result, found)
    doc = {"units": result.units, "kT": result.kT, "basins": list(found.basins), "saddle": list(found.saddle),
           "saddle_free_energy": found.saddle_free_energy, "barrier": found.barrier,
           "barrier_error": found.barrier_error, "barrier_reverse": found.barrier_reverse,
           "barrier_reverse_error": found.barrier_reverse_error, "refined": found.refined, "path": rows}
    outputs: list[tuple[str, Callable[[IO[bytes]], None]]] = []
    for path, writer in ((args.output, answers.csv_writer(rows)), (args.csv, answers.csv_writer(rows)), (args.json, answers.json_writer(doc))):
        if path:
            outputs.append((path, writer))
    written = _output.write_all(outputs + answers.picture(args, result, result.basins(args.min_depth), found),
                                options.read_files(args))
    if not args.quiet:
        print(path_summary(result, found))
        if written:
            print("cyfes: wrote " + ", ".join(str(p) for p in written))
    return 0
