"""The samples that several commands share: `cyfes fes`, `cyfes demo`, `cyfes basins` and `cyfes path` read
samples by the same flags (input, estimate, grid, compute, output: declared in flags.py), plan the same grid and
compute the same surface."""
from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import _units
from .._errors import InputError
from ..engine import fes as _api
from ..engine import inputs as _inputs
from ..io import formats, plot
from ..io import output as _output
from ..workflows import metad_reweight
from . import judging, progress, scanning
from .parsing import PROG

#: Grid points per CV when --bins is not given, by number of CVs.
DEFAULT_BINS = {1: 200, 2: 100, 3: 40}


@dataclass
class Samples:
    """What `cyfes fes` hands to cyfes.fes, plus where it came from."""

    names: list[str]
    values: np.ndarray
    bias: np.ndarray | None
    weights: np.ndarray | None
    domains: dict[str, tuple[float, float]]
    #: per CV the samples' (low, high) where known without a pass over values (Dask arrays on a cluster)
    data_range: tuple[np.ndarray, np.ndarray] | None = None


def split_list(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def _default_cvs(table: formats.Table, used: Sequence[str]) -> list[str]:
    skip = {"time", "step"} | set(used)  # step: the first column of a Colvars trajectory
    names = [n for n in table.names if n not in skip and not n.endswith(".bias") and not n.endswith(".rbias")]
    if not names or len(names) > 3:
        raise InputError(f"{table.source}: choose the CVs with --cv; available columns: {', '.join(table.names)}")
    return names


def _rows(data: np.ndarray, skip: int, stride: int, source: str) -> np.ndarray:
    kept = data[skip::stride]
    if len(kept) == 0:
        raise InputError(f"{source}: no rows left after --skip {skip} (the file has {len(data)} rows)")
    return kept


def check_rows(args: argparse.Namespace) -> None:
    if args.skip < 0 or args.stride < 1:
        raise InputError("--skip must be >= 0 and --stride >= 1")


def _table_samples(table: formats.Table, keys: tuple[list[str], list[str], list[str]], skip: int,
                   stride: int) -> Samples:
    """The CV, bias and weight columns (cv, bias, weight keys) of one table's rows after skip, every stride-th."""
    data = _rows(table.data, skip, stride, table.source)
    return _group_samples(table, [data[:, [table.column_index(k) for k in group]] for group in keys], keys)


def _group_samples(table: formats.Table, arrays: Sequence[np.ndarray], keys: tuple[list[str], list[str], list[str]],
                   skip: int = 0, stride: int = 1) -> Samples:
    """The Samples of the (cv, bias, weight) columns of `table` given as one array per group of keys (as
    formats.read_groups parses them): the CVs as they are, one bias or weight column as a view of its array
    (the engine takes C-ordered arrays: no copy of a file's rows after the parse), several summed (bias) or
    multiplied (weights)."""
    values, bias, weights = (_rows(a, skip, stride, table.source) for a in arrays)
    names = [table.names[table.column_index(k)] for k in keys[0]]
    domains = {n: table.periodic[n] for n in names if n in table.periodic}
    return Samples(names, values, _combined(bias, np.sum) if keys[1] else None,
                   _combined(weights, np.prod) if keys[2] else None, domains)


def _combined(columns: np.ndarray, combine: Any) -> np.ndarray:
    return columns[:, 0] if columns.shape[1] == 1 else combine(columns, axis=1)


def read_files(args: argparse.Namespace) -> list[str]:
    """Every file the run reads, none of which it may write: the INPUT files (with --windows, the windows file
    and its window files) and the --hills files."""
    return list(args.inputs) + list(getattr(args, "hills", None) or [])


def wanted_columns(args: argparse.Namespace) -> list[str] | None:
    """With --cv, only the named columns are converted (a wide COLVAR costs little more than those columns)."""
    cvs = split_list(args.cv)
    return cvs + split_list(args.bias) + split_list(args.weights) if cvs else None


def input_format(args: argparse.Namespace) -> str | None:
    return getattr(args, "input_format", None)


def warn_notes(table: formats.Table) -> formats.Table:
    for note in table.notes:
        print(f"{PROG}: warning: {note}", file=sys.stderr)
    return table


def column_keys(args: argparse.Namespace, first: formats.Table | None) -> tuple[list[str], list[str], list[str]]:
    """(cv, bias, weight) keys: --cv, else the CVs among the first table's columns (`first`: None with --cv)."""
    bias_keys, weight_keys = split_list(args.bias), split_list(args.weights)
    return split_list(args.cv) or _default_cvs(first, bias_keys + weight_keys), bias_keys, weight_keys


def load_samples(args: argparse.Namespace) -> Samples:
    """Read every input and pick the CV, bias and weight columns (rows after --skip, every --stride-th)."""
    check_rows(args)
    parts = _file_samples(args) if wanted_columns(args) else _table_parts(args)
    domains: dict[str, tuple[float, float]] = {}
    for part in parts:
        domains.update(part.domains)
    join = lambda arrays: arrays[0] if len(arrays) == 1 else np.concatenate(arrays)  # noqa: E731
    samples = Samples(parts[0].names, join([p.values for p in parts]),
                      None if parts[0].bias is None else join([p.bias for p in parts]),
                      None if parts[0].weights is None else join([p.weights for p in parts]), domains)
    if getattr(args, "hills", None):
        kt = _units.kT(judging.temperature(args), args.units)
        samples = metad_reweight.reweight_samples(args, samples, kt)[0]
    return samples


def _file_samples(args: argparse.Namespace) -> list[Samples]:
    """--cv given: every input parsed straight into its CV and bias arrays (formats.read_groups), picked after
    all were read, as _table_parts does."""
    keys = column_keys(args, None)
    reads = []
    for path in args.inputs:
        reads.append(formats.read_groups(path, keys, input_format(args)))
        warn_notes(reads[-1][0])
    return [_table_samples(table, keys, args.skip, args.stride) if arrays is None
            else _group_samples(table, arrays, keys, args.skip, args.stride) for table, arrays in reads]


def _table_parts(args: argparse.Namespace) -> list[Samples]:
    """No --cv: every column of every input read, the CVs chosen from the first one's names."""
    tables = [warn_notes(formats.read_table(path, input_format(args))) for path in args.inputs]
    keys = column_keys(args, tables[0])
    return [_table_samples(table, keys, args.skip, args.stride) for table in tables]


def _load_on_worker(path: str, args: argparse.Namespace, keys: tuple[list[str], list[str], list[str]]) -> Any:
    """One input read where a Dask worker runs (cyfes.cluster)."""
    from ..io import cluster  # deferred: only runs with --scheduler, which needs Dask
    got = _table_samples(formats.read_table(path, input_format(args), columns=wanted_columns(args)), keys, args.skip,
                         args.stride)
    return cluster.FileChunk(got.names, got.values, got.bias, got.weights, got.domains)


def load_on_cluster(args: argparse.Namespace, client: Any) -> Samples:
    """--scheduler: every input read on a worker and kept there (Dask arrays), its columns picked as above;
    the first file's header is read here too, for the column names."""
    from ..io import cluster  # deferred: needs Dask (cyfes[dask])
    check_rows(args)
    keys = column_keys(args, formats.read_table(args.inputs[0], input_format(args)))
    found = cluster.read_on_workers(client, args.inputs, functools.partial(_load_on_worker, args=args, keys=keys))
    return Samples(found.names, found.values, found.bias, found.weights, found.domains, (found.lo, found.hi))


def _cv_position(key: str, names: list[str], option: str) -> int:
    if key in names:
        return names.index(key)
    if key.isdigit() and int(key) < len(names):
        return int(key)
    raise InputError(f"{option} {key}: not one of the CVs ({', '.join(names)})")


def named_pairs(specs: Sequence[str], names: list[str], option: str) -> dict[int, tuple[float, float] | None]:
    """`CV=LO,HI` specs by CV position; `CV=none` maps to None."""
    out: dict[int, tuple[float, float] | None] = {}
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


def parse_sigma(text: str, names: list[str]) -> list[float]:
    """--sigma: one value, one per CV, or CV=value pairs."""
    parts = split_list(text)
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


def parse_bins(text: str | None, dim: int) -> list[int]:
    if text is None:
        return [DEFAULT_BINS.get(dim, 20)] * dim
    try:
        values = [int(t) for t in split_list(text)]
    except ValueError:
        raise InputError(f"--bins: expected integers, got {text!r}") from None
    if len(values) not in (1, dim) or min(values) < 1:
        raise InputError(f"--bins: expected 1 or {dim} positive integers, got {text!r}")
    return values * dim if len(values) == 1 else values


@dataclass
class GridPlan:
    """Per CV: the period (or None), the number of points and the (low, high) passed to cyfes.fes."""

    periods: list[float | None]
    bins: list[int]
    ranges: list[tuple[float, float]]


def _data_range(samples: Samples, d: int) -> tuple[float, float]:
    if samples.data_range is not None:
        return float(samples.data_range[0][d]), float(samples.data_range[1][d])
    return float(samples.values[:, d].min()), float(samples.values[:, d].max())


def plan_grid(args: argparse.Namespace, samples: Samples) -> GridPlan:
    """Periods and grid ranges: --periodic, else the COLVAR's domains; --range, else the period or data range."""
    names = samples.names
    dim = len(names)
    domains: dict[int, tuple[float, float] | None] = {d: samples.domains.get(n) for d, n in enumerate(names)}
    domains.update(named_pairs(args.periodic, names, "--periodic"))
    given = named_pairs(args.ranges, names, "--range")
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


def check_outputs(args: argparse.Namespace) -> None:
    """Fail before reading or computing: unknown formats, missing or unwritable directories, paths that must not
    be written (links, FIFOs, devices, read-only files, inputs: see cyfes.io.output), --running members and the
    convergence plot included, missing matplotlib."""
    if args.format and not args.output:
        raise InputError("--format: give an output file with -o")
    for flag, names in (("-o", args.output), ("--plot", [args.plot]), ("--plot-convergence", [args.plot_convergence])):
        if any(name is not None and not name.strip() for name in names):
            raise InputError(f"{flag}: an empty file name")
    for path in args.output:
        _output.check_name(path)
        formats.output_format(path, args.format)
    if args.plot:
        plot.image_format(args.plot)
        plot.require_matplotlib()
        if args.plot_max is not None and not np.isfinite(args.plot_max):
            raise InputError(f"--plot-max: must be a finite number, got {args.plot_max}")
    _output.check_targets(list(args.output) + ([args.plot] if args.plot else []) + judging.output_names(args)
                          + scanning.output_names(args), read_files(args), args.force)


#: Memory the plot of one grid point needs (matplotlib's contour paths and image), an estimate.
PLOT_BYTES_PER_POINT = 400


def check_budgets(args: argparse.Namespace, plan: GridPlan) -> None:
    """Before computing: the plot can draw this grid, and the outputs fit in memory, on disk and under the
    file size limit (estimates per format, see formats.estimated_bytes)."""
    points, dim = int(np.prod(plan.bins, dtype=np.float64)), len(plan.bins)
    if args.plot:
        plot.check_plot_shape(plan.bins)
    kinds = [formats.output_format(path, args.format) for path in args.output]
    for path, kind in zip(args.output, kinds):
        if kind in ("cube", "dx") and dim != 3:
            raise InputError(f"{path}: the {kind} format holds 3-D grids; this FES has {dim} CVs")
    memory = max([formats.writer_memory(k, points, dim) for k in kinds]
                 + [PLOT_BYTES_PER_POINT * points if args.plot else 0])
    _inputs.check_grid_fits(points, dim, "--bins", extra=memory)
    error = args.blocks > 1
    _output.check_sizes([(_output.Path(path), formats.estimated_bytes(k, points, dim, error))
                         for path, k in zip(args.output, kinds)])


def compute(args: argparse.Namespace, samples: Samples, plan: GridPlan) -> Any:

    options: dict[str, Any] = dict(
        bias=samples.bias, weights=samples.weights, temperature=judging.temperature(args), units=args.units,
        bins=plan.bins, ranges=plan.ranges, periodic=plan.periods, blocks=args.blocks, device=args.device,
        precision=args.precision, threads=args.threads, names=samples.names, tolerance=args.tolerance,
        method=args.method)
    sigma = judging.sigma(args, samples, plan.periods, parse_sigma)
    with progress.bar("cyfes fes", enabled=None if not args.quiet else False) as update:
        return _api.fes(samples.values, sigma, progress=update, **options)


def write_outputs(result: Any, args: argparse.Namespace,
                  extra: Sequence[tuple[Path, _output.Writer]] = ()) -> list[Path]:
    """Every -o file, the plot and `extra`, staged and committed together: all are written or none."""
    outputs = [(path, formats.result_writer(result, path, args.format)) for path in args.output] + list(extra)
    if args.plot:
        outputs.append((args.plot, plot.plot_writer(result, args.plot, vmax=args.plot_max)))
    return _output.write_all(outputs, read_files(args))


def summary(result: Any, written: Sequence[Path]) -> str:
    shape = "x".join(str(len(a)) for a in result.axes)
    where = np.unravel_index(int(np.argmin(result.values)), result.values.shape)
    at = ", ".join(f"{n}={a[i]:.4g}" for n, a, i in zip(formats.cv_names(result), result.axes, where))
    files = ", ".join(str(p) for p in written) if written else "nothing (give -o FILE or --plot IMAGE)"
    periodic = [f"{n} (period {p:.6g})" for n, p in zip(formats.cv_names(result), result.periodic) if p]
    return (f"cyfes: FES of {', '.join(formats.cv_names(result))} from {result.n_samples} samples on a {shape} "
            f"grid ({result.backend}, {result.precision})"
            + (f"; periodic: {', '.join(periodic)}" if periodic else "")
            + f"; minimum at {at}; wrote {files}")


def surface(args: argparse.Namespace, samples: Samples) -> Any:
    judging.check_delta_cvs(args, samples.names)
    plan = plan_grid(args, samples)
    check_budgets(args, plan)
    return judging.finish(args, compute(args, samples, plan))
