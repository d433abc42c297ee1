"""What `cyfes basins`, `cyfes path` and `cyfes fes --basins` share: the surface to answer questions of (a grid
file, or samples with the options of `cyfes fes`) and the files of the answers; the flags of both commands are
in flags.py."""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
from typing import IO, Any, Callable

from .. import analysis
from .._errors import InputError
from ..engine.result import FESResult
from ..io import formats, plot, plot_answers
from ..io import output as _output
from . import options


def _targets(args: argparse.Namespace) -> list[str]:
    return [p for p in (getattr(args, "output", None), args.csv, args.json, args.plot) if p]


def check(args: argparse.Namespace) -> None:
    """Before reading or computing: the outputs may be written, and a plot can be drawn."""
    if args.plot:
        plot.image_format(args.plot)
        plot.require_matplotlib()
    _output.check_targets(_targets(args), options.read_files(args), args.force)


def picture(args: argparse.Namespace, result: Any, found: Any, path: Any = None) -> list:
    if not args.plot:
        return []
    return [(args.plot, plot_answers.answers_writer(result, args.plot, found, path, args.plot_max))]


def surface_of(args: argparse.Namespace) -> Any:
    """The grid file's surface, or (with --sigma) the surface of the samples, as `cyfes fes` computes it."""
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
        result = FESResult.read(args.inputs[0], temperature=args.temperature, units=args.units)
        return with_periods(result, args.periodic, args.inputs[0]) if args.periodic else result
    args.temperature = 300.0 if args.temperature is None else args.temperature
    args.units = "kJ/mol" if args.units is None else args.units
    samples = options.load_samples(args)
    plan = options.plan_grid(args, samples)
    options.check_budgets(_no_outputs(args), plan)
    return options.compute(args, samples, plan)


def with_periods(result: Any, specs: list[str], source: str) -> Any:
    """A grid file's surface with --periodic CV=LO,HI (or CV=none) applied: a period is taken only where the
    analyses would wrap the grid (its points span one period without repeating the end, PLUMED's layout)."""
    names = formats.cv_names(result)
    asked = options.named_pairs(specs, names, "--periodic")
    periods = list(result.periodic)
    for d, domain in asked.items():
        periods[d] = None if domain is None else domain[1] - domain[0]
    out = dataclasses.replace(result, periodic=periods)
    wrap = analysis.wraps(out)
    for d in asked:
        if periods[d] and not wrap[d]:
            axis = result.axes[d]
            raise InputError(f"--periodic {names[d]}: {source}'s axis {names[d]} has {len(axis)} points from "
                             f"{axis[0]:.6g} to {axis[-1]:.6g}, not one period of {periods[d]:.6g} (a periodic "
                             "grid holds N points spaced period/N)")
    return out


def _no_outputs(args: argparse.Namespace) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), "output": [], "plot": None, "format": None})


def _number(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def csv_writer(rows: list[dict[str, Any]]) -> Callable[[IO[bytes]], None]:
    def write(fh: IO[bytes]) -> None:
        text = io.StringIO()
        text.write(",".join(rows[0]) + "\n")
        for row in rows:
            text.write(",".join(f"{v:.10g}" if isinstance(v, float) else str(v) for v in row.values()) + "\n")
        fh.write(text.getvalue().encode())
    return write


def json_writer(doc: dict[str, Any]) -> Callable[[IO[bytes]], None]:
    def clean(v: Any) -> Any:
        if isinstance(v, float):
            return _number(v)
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v
    return lambda fh: fh.write((json.dumps(clean(doc), indent=1) + "\n").encode())


def trace(result: Any, found: Any) -> dict[str, Any]:
    """Delta F of each basin to basin 0 on the running surfaces (blocks 1..k)."""
    if getattr(result, "block_values", None) is None:
        raise InputError("--trace: needs a surface from samples with --blocks N (N > 1)")
    runs = {b.label: result.delta_f_trace(0, b.label) for b in found if b.label}
    samples = next(iter(runs.values())).samples if runs else ()
    return {"samples": list(samples), "delta_f": {str(k): list(t.delta_f) for k, t in runs.items()}}


