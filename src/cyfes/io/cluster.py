"""`cyfes fes --scheduler ADDRESS`: the input files read on a Dask cluster's workers, where they stay.

Each file is read by one worker (the same reader and column rules as a local run); the columns `cyfes fes` needs
stay in that worker's memory as one chunk of a Dask array, and only each file's row count, per-CV range and
periodic domains come back to this process. cyfes.fes then sums every chunk on the worker that holds it (on its
GPU where it has one) and merges the grid-sized partial sums (cyfes.engine.streamed). Dask's distributed scheduler is an
optional dependency: ``pip install cyfes[dask]``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .._errors import InputError


@dataclass(frozen=True)
class FileChunk:
    """What one worker read from one file: the CV values (N, D), bias and weights (N,) or None, and the CVs'
    names and periodic domains."""

    names: list[str]
    values: np.ndarray
    bias: np.ndarray | None
    weights: np.ndarray | None
    domains: dict[str, tuple[float, float]]


@dataclass(frozen=True)
class Summary:
    """What comes back to the client of one file: its rows, per-CV range, names and domains."""

    rows: int
    lo: np.ndarray
    hi: np.ndarray
    names: list[str]
    domains: dict[str, tuple[float, float]]
    has_bias: bool
    has_weights: bool


def _summary(chunk: FileChunk) -> Summary:
    return Summary(len(chunk.values), chunk.values.min(axis=0), chunk.values.max(axis=0), chunk.names,
                   chunk.domains, chunk.bias is not None, chunk.weights is not None)


def client(address: str) -> Any:
    """A client of the Dask scheduler at `address` (tcp://host:port, or a scheduler file's path)."""
    try:
        from distributed import Client  # deferred: Dask is optional (cyfes[dask])
    except ImportError:
        raise InputError("--scheduler: needs Dask's distributed scheduler; pip install cyfes[dask]") from None
    try:
        if address.endswith(".json"):
            return Client(scheduler_file=address, timeout="10s")
        return Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(f"--scheduler: cannot reach a Dask scheduler at {address}: {exc}") from None


@dataclass(frozen=True)
class Distributed:
    """The inputs of a run as Dask arrays on the workers (bias and weights None where not given), with the
    CVs' names, periodic domains and per-CV range over every file."""

    values: Any
    bias: Any
    weights: Any
    names: list[str]
    domains: dict[str, tuple[float, float]]
    lo: np.ndarray
    hi: np.ndarray


def _column(chunk: FileChunk, which: str) -> np.ndarray:
    return getattr(chunk, which)


def read_on_workers(cl: Any, paths: Sequence[str], load: Callable[[str], FileChunk]) -> Distributed:
    """Every file read by load(path) on a worker, kept there; only the summaries gathered."""
    import dask  # deferred: Dask is optional (cyfes[dask])
    import dask.array as da

    futures = cl.map(load, list(paths), pure=False)
    summaries: list[Summary] = cl.gather(cl.map(_summary, futures))
    first = summaries[0]
    for path, s in zip(paths, summaries):
        if s.names != first.names:
            raise InputError(f"{path}: CVs {', '.join(s.names)} differ from the first input's "
                             f"({', '.join(first.names)})")

    def stack(which: str, width: int | None) -> Any:
        parts = [da.from_delayed(dask.delayed(_column)(f, which), shape=(s.rows,) if width is None
                                 else (s.rows, width), dtype=np.float64) for f, s in zip(futures, summaries)]
        return da.concatenate(parts)

    domains: dict[str, tuple[float, float]] = {}
    for s in summaries:
        domains.update(s.domains)
    return Distributed(stack("values", len(first.names)), stack("bias", None) if first.has_bias else None,
                       stack("weights", None) if first.has_weights else None, first.names, domains,
                       np.min([s.lo for s in summaries], axis=0), np.max([s.hi for s in summaries], axis=0))
