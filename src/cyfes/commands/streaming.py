"""`cyfes fes --stream`: inputs larger than memory read in chunks, twice. The first pass checks every line (the
errors of the whole-file reader, with file:line, before any sum), counts the rows each chunk keeps after --skip
and --stride, and finds each column's range (for a grid without --range) and the `#! SET` domains (with --hills
also the samples' times: which counts of earlier hills they need); the second pass sums chunk by chunk through
cyfes.fes's exact merge (engine/streamed.py). --sigma auto reads the chunks once more, between the two, for the
bandwidth (judging.sigma). Memory: the read buffer, one block's parsed rows, one chunk and the grid's partial
sums, whatever the file's size."""
from __future__ import annotations

import argparse
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import _units
from .._errors import InputError
from ..engine import streamed
from ..io import input_formats, tables
from ..workflows import metad_reweight, sum_hills
from . import judging, options


def _refusal(args: argparse.Namespace) -> str | None:
    """Why these options do not stream, or None."""
    needs = [("--windows", bool(args.windows), "needs every sample in memory (MBAR iterates over all windows)"),
             ("--scheduler", bool(args.scheduler), "reads and sums the inputs on the Dask workers instead")]
    found = [f"{flag}: {why}; not with --stream" for flag, on, why in needs if on]
    return found[0] if found else None


def check(args: argparse.Namespace) -> None:
    """Before any work: --chunk-rows, and no --stream with an option that needs every sample in memory."""
    if args.chunk_rows < 1:
        raise InputError(f"--chunk-rows: must be >= 1, got {args.chunk_rows}")
    why = _refusal(args) if args.stream else None
    if why:
        raise InputError(why)


def wanted(args: argparse.Namespace) -> bool:
    """--stream, or inputs larger than the in-memory bound (and no option that needs them in memory)."""
    if args.stream:
        return True
    files = [Path(p) for p in args.inputs if Path(p).is_file()]
    return sum(_memory_bytes(p, args) for p in files) > tables.max_input_bytes() and _refusal(args) is None


def _memory_bytes(p: Path, args: argparse.Namespace) -> int:
    """What the in-memory read of one input would hold: a .npy's values as float64 (the in-memory reader's
    bound), a text file's size on disk."""
    fmt = options.input_format(args)
    if fmt == "npy" or (fmt is None and (p.suffix.lower() == ".npy" or input_formats.is_npy(p))):
        return tables.npy_bytes(p)
    return p.stat().st_size


@dataclass
class _File:
    """One input after the first pass: its Table (no rows), per chunk the file row it starts at, its rows and
    the kept rows' per-column range."""

    path: str
    table: tables.Table = None  # type: ignore[assignment]
    chunks: list[tuple[int, int, list[str], np.ndarray, np.ndarray]] = field(default_factory=list)
    block_rows: int = 0
    text: bool = True  # read through the text buffer (a .npy is read in slices of its memory map)


def _kept(data: np.ndarray, start: int, skip: int, stride: int) -> np.ndarray:
    """The rows of a chunk starting at file row `start` that --skip and --stride keep."""
    first = skip - start if start < skip else (-(start - skip)) % stride
    return data[first::stride]


def _reader(path: str, args: argparse.Namespace) -> tables.ChunkedTable:
    wanted = options.wanted_columns(args)
    if wanted is not None and args.hills:
        wanted = wanted + ["time"]  # the samples' times: which hills came before each
    return tables.ChunkedTable(path, options.input_format(args), wanted, args.chunk_rows)


@dataclass
class _Times:
    """--hills: what the first pass learns of the samples' times, as the in-memory reweighting reads them: the
    time of the last row of any input (rows --skip drops included), whether every kept one is finite, and
    which counts of earlier hills the kept ones need (c after each, for --reweight ct)."""

    timed: metad_reweight.TimedHills
    last: float = -math.inf
    finite: bool = True
    needed: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.needed = np.zeros(len(self.timed.times) + 1, dtype=bool)

    def see(self, names: list[str], data: np.ndarray, kept: np.ndarray) -> None:
        if "time" not in names:
            return  # the reader names the missing column after its pass, as read_table does; else _first_pass
        column = names.index("time")
        self.last = max(self.last, float(data[:, column].max()))
        times = kept[:, column]
        self.finite = self.finite and bool(np.isfinite(times).all())
        if self.finite:
            self.needed[metad_reweight.hills_before(self.timed, times)] = True


def _first_pass(path: str, args: argparse.Namespace, times: _Times | None) -> _File:
    got, start, reader = _File(path), 0, _reader(path, args)
    for names, data in reader:
        kept = _kept(data, start, args.skip, args.stride)
        if times is not None:
            times.see(names, data, kept)
        lo, hi = (kept.min(axis=0), kept.max(axis=0)) if len(kept) else (None, None)
        got.chunks.append((start, len(kept), names, lo, hi))
        start += len(data)
    got.table, got.block_rows, got.text = reader.table, reader.block_rows, reader.kind != "npy"
    if times is not None and "time" not in got.table.names:
        raise InputError(f"{path}: no 'time' column; --hills needs each sample's time")
    if not any(n for _, n, *_ in got.chunks):
        raise InputError(f"{path}: no rows left after --skip {args.skip} (the file has {start} rows)")
    return got


def _pick(rows: np.ndarray, names: list[str], keys: list[str]) -> np.ndarray:
    return rows[:, [names.index(k) for k in keys]]


@dataclass
class Plan:
    """What the second pass reads: the files, the columns by name (cv, bias, weights), the memory bound."""

    files: list[_File]
    columns: tuple[list[str], list[str], list[str]]
    skip: int
    stride: int
    args: argparse.Namespace
    hills: metad_reweight.HillsBias | None = None  # --hills: their bias at each chunk's samples

    def read(self) -> Iterator[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]:
        cvs, bias, weights = self.columns
        for f in self.files:
            start = 0
            for names, data in _reader(f.path, self.args):
                kept = _kept(data, start, self.skip, self.stride)
                start += len(data)
                if len(kept):
                    values = _pick(kept, names, cvs)
                    yield (values, self._bias(kept, names, values),
                           _pick(kept, names, weights).prod(axis=1) if weights else None)

    def _bias(self, kept: np.ndarray, names: list[str], values: np.ndarray) -> np.ndarray | None:
        """The bias columns summed, plus the hills' bias (as the in-memory run adds it: columns first)."""
        keys = self.columns[1]
        summed = _pick(kept, names, keys).sum(axis=1) if keys else None
        if self.hills is None:
            return summed
        metad = self.hills.at(values, kept[:, names.index("time")])
        return metad if summed is None else summed + metad

    def memory(self, grid_points: int, blocks: int) -> str:
        """The memory bound, in words: buffer + one block's parsed rows + one chunk + the grid's sums."""
        width = max(len(f.table.file_names or f.table.names) for f in self.files)  # at most, the columns converted
        block_rows = max(f.block_rows for f in self.files)
        rows = min(self.args.chunk_rows, block_rows)  # a chunk is cut from one block's rows
        parsed, chunk = block_rows * width * 8, rows * width * 8
        grid = 3 * grid_points * blocks * 8  # a chunk's partial sums, the running total, the merged copy
        buffer = tables.BLOCK_BYTES if any(f.text for f in self.files) else 0
        total = buffer + parsed + chunk + grid
        mib = lambda n: f"{n / 2**20:.1f} MiB"  # noqa: E731
        return (f"memory bound about {mib(total)}: read buffer {mib(buffer)} + one block's parsed rows "
                f"{mib(parsed)} + chunk of {rows:,} rows {mib(chunk)} + grid sums "
                f"{grid_points:,} points x {blocks} blocks {mib(grid)} (plus the kernels' working set per chunk)")


def load(args: argparse.Namespace) -> tuple[options.Samples, Plan]:
    """The first pass over every input; Samples whose values are a streamed.Stream (the second pass)."""
    options.check_rows(args)
    times = _Times(metad_reweight.read_timed_hills(args.hills, args.biasfactor)) if args.hills else None
    files = [_first_pass(path, args, times) for path in args.inputs]
    for f in files:
        options.warn_notes(f.table)
    cv_keys, bias_keys, weight_keys = options.column_keys(args, files[0].table)
    by_name = lambda t, keys: [t.names[t.column_index(k)] for k in keys]  # noqa: E731
    for f in files[1:]:
        by_name(f.table, cv_keys + bias_keys + weight_keys)  # each file must have them (the same error)
    first = files[0].table
    columns = (by_name(first, cv_keys), by_name(first, bias_keys), by_name(first, weight_keys))
    names = columns[0]
    domains = {n: f.table.periodic[n] for f in files for n in names if n in f.table.periodic}
    plan = Plan(files, columns, args.skip, args.stride, args, None if times is None else
                _hills(args, names, domains, times))
    spans = [(lo[[cn.index(n) for n in names]], hi[[cn.index(n) for n in names]])
             for f in files for _, count, cn, lo, hi in f.chunks if count]
    data_range = (np.min([s[0] for s in spans], axis=0), np.max([s[1] for s in spans], axis=0))
    sizes = [count for f in files for _, count, *_ in f.chunks if count]
    stream = streamed.Stream(plan.read, sizes, len(names))
    return options.Samples(names, stream, None, None, domains, data_range), plan


def _hills(args: argparse.Namespace, names: list[str], domains: dict, times: _Times) -> metad_reweight.HillsBias:
    """--hills after the first pass: the hills matched to the CVs, checked against the samples' times, and c
    after each count of hills a sample needs, computed once (the in-memory reweighting's steps, in its order)."""
    where = " ".join(args.hills)
    timed = metad_reweight.match_cvs(times.timed, names, domains, where)
    grid = metad_reweight.grid_of(args, timed)
    metad_reweight.check_times(times.finite, timed.times, where, times.last)
    device = sum_hills.hills_device(args.device, args.threads, timed.hills.dim)
    kt = _units.kT(judging.temperature(args), args.units)
    return metad_reweight.prepare(timed, kt, args.reweight or "ct", grid, np.flatnonzero(times.needed), device)


def describe(plan: Plan, bins: list[int], blocks: int) -> str:
    """The line on streaming: chunks, passes and the memory bound."""
    count = sum(1 for f in plan.files for c in f.chunks if c[1])
    return (f"streamed {len(plan.files)} input(s) in {count} chunks, read twice (a first pass for the checks, "
            "row counts and ranges, then the sums); " + plan.memory(int(np.prod(bins)), max(1, blocks)))
