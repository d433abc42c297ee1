"""Samples that come in chunks, summed chunk by chunk and merged exactly.

Four sources: a list of (N_i, D) arrays (summed one after the other in this process: memory holds one chunk and the
grid), a Stream (chunks read anew from files each time it is iterated: `cyfes fes --stream`), a Dask array (each
chunk summed on the worker that holds it, on that worker's GPU where it has one; only grid-sized partial sums travel
and merge on the workers, so the samples never gather on the client), and files read on the workers (`cyfes fes
--scheduler`). A chunk's contribution to a block is the pair (log sum_j w_j K(x - s_j) on every grid point, log
sum_j w_j): log-sums of disjoint sets of samples add by log-add-exp, so the merged sums are the one-process sums up
to rounding, whatever the chunking.

Dask is an optional dependency (``pip install cyfes[dask]``); nothing here imports it unless a Dask array or a
scheduler is given.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .._errors import InputError

#: Partial sums merged per task of the Dask reduction tree (a task holds this many grid-sized arrays at once).
MERGE_FAN_IN = 8


@dataclass(frozen=True)
class Partial:
    """Per block, the sums of the samples seen so far: log sum_j w_j K(x - s_j) on every grid point (blocks, M),
    log sum_j w_j and log sum_j w_j^2 (blocks,), the samples of weight > 0 (blocks,); the largest truncation
    bound (kT), the pairs summed, the binned method's largest error estimate, and where the sums ran."""

    log_dens: np.ndarray
    log_z: np.ndarray
    log_z2: np.ndarray
    kept: np.ndarray
    bound: float = 0.0
    pairs: int = 0
    estimate: float = 0.0
    backends: tuple[str, ...] = field(default_factory=tuple)


def empty(blocks: int, points: int) -> Partial:
    """The sums of no samples."""
    return Partial(np.full((blocks, points), -np.inf), np.full(blocks, -np.inf), np.full(blocks, -np.inf),
                   np.zeros(blocks, dtype=np.int64))


def merge(parts: Sequence[Partial]) -> Partial:
    """The sums of the union of disjoint sample sets, from each set's sums (exact up to rounding). Sums of no
    samples (a grid of 0 points: nothing was summed) are left out."""
    summed = [p for p in parts if p.log_dens.shape[1] > 0]
    if not summed:
        return parts[0]
    parts, first = summed, summed[0]
    dens, lz, lz2, kept = (first.log_dens.copy(), first.log_z.copy(), first.log_z2.copy(), first.kept.copy())
    with np.errstate(invalid="ignore"):  # logaddexp(-inf, -inf) is -inf, with a warning
        for p in parts[1:]:
            np.logaddexp(dens, p.log_dens, out=dens)
            np.logaddexp(lz, p.log_z, out=lz)
            np.logaddexp(lz2, p.log_z2, out=lz2)
            kept += p.kept
    return Partial(dens, lz, lz2, kept, max(p.bound for p in parts), sum(p.pairs for p in parts),
                   max(p.estimate for p in parts), tuple(sorted({b for p in parts for b in p.backends})))


def is_dask(value: Any) -> bool:
    """A Dask array, recognised without importing Dask."""
    return type(value).__module__.split(".")[0] == "dask" and hasattr(value, "chunks")


@dataclass(frozen=True)
class Stream:
    """Samples read anew each time they are iterated (a file larger than memory): read() yields (samples, bias,
    weights) per chunk, numpy arrays (bias, weights None where not given), of the row counts `sizes` (known
    from a first pass, so blocks can be laid out) and `dim` columns. Memory holds one chunk and the grid."""

    read: Callable[[], Iterator[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]]
    sizes: list[int]
    dim: int

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]:
        count = 0
        for part in self.read():
            if count >= len(self.sizes) or len(part[0]) != self.sizes[count]:
                raise InputError(f"samples: chunk {count} differs from the first pass's (did the input change "
                                 "while it was read?)")
            count += 1
            yield part
        if count != len(self.sizes):
            raise InputError(f"samples: {count} chunks, the first pass found {len(self.sizes)} (did the input "
                             "change while it was read?)")

    def __len__(self) -> int:
        return len(self.sizes)


def is_chunked(value: Any) -> bool:
    """Samples given in chunks: a Dask array, a Stream, or a list or tuple of 2-D numpy arrays (one chunk each)."""
    if is_dask(value) or isinstance(value, Stream):
        return True
    return (isinstance(value, (list, tuple)) and len(value) > 0
            and all(isinstance(v, np.ndarray) and v.ndim == 2 for v in value))


@dataclass(frozen=True)
class Chunks:
    """Samples in chunks: per chunk (samples, bias, weights), numpy arrays or Dask delayed objects (bias and
    weights None where not given), each chunk's row count, and the number of CVs."""

    parts: list[tuple[Any, Any, Any]]  # or a Stream: read each time it is iterated
    sizes: list[int]
    dim: int
    dask: bool

    @property
    def offsets(self) -> list[int]:
        return np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(int).tolist()

    @property
    def total(self) -> int:
        return int(sum(self.sizes))


def _per_chunk(value: Any, name: str, sizes: list[int]) -> list[Any]:
    """bias or weights as one array per chunk: a list of 1-D arrays matching the chunks, or None."""
    if value is None:
        return [None] * len(sizes)
    if not isinstance(value, (list, tuple)) or len(value) != len(sizes):
        raise InputError(f"{name}: samples come as {len(sizes)} chunks; give {name} as a list of as many 1-D arrays")
    for k, (v, n) in enumerate(zip(value, sizes)):
        if np.shape(v) != (n,):
            raise InputError(f"{name}: chunk {k} has shape {np.shape(v)}, its samples {n} rows")
    return list(value)


def _dask_vector(value: Any, name: str, row_chunks: tuple[int, ...], n: int) -> list[Any]:
    """A Dask (or numpy) vector of per-sample values, as one delayed object per chunk of the samples."""
    if value is None:
        return [None] * len(row_chunks)
    import dask.array as da  # deferred: Dask is optional (cyfes[dask])
    vec = value if is_dask(value) else da.from_array(np.asarray(value), chunks=(row_chunks,))
    if vec.ndim != 1 or vec.shape[0] != n:
        raise InputError(f"{name}: expected one value per sample ({n}), got shape {vec.shape}")
    return list(vec.rechunk((row_chunks,)).to_delayed().ravel())


def chunks_of(samples: Any, bias: Any, weights: Any) -> Chunks:
    """The chunks of chunked samples (is_chunked), with bias and weights split to match."""
    if isinstance(samples, Stream):
        if bias is not None or weights is not None:
            raise InputError("bias, weights: a Stream yields them with its samples; give them there")
        return Chunks(samples, list(samples.sizes), samples.dim, False)  # type: ignore[arg-type]
    if not is_dask(samples):
        sizes = [len(s) for s in samples]
        dims = {s.shape[1] for s in samples}
        if len(dims) != 1:
            raise InputError(f"samples: every chunk needs the same number of columns (CVs), got {sorted(dims)}")
        parts = list(zip(samples, _per_chunk(bias, "bias", sizes), _per_chunk(weights, "weights", sizes)))
        return Chunks(parts, sizes, dims.pop(), False)
    x = samples if samples.ndim == 2 else samples[:, None]
    if x.ndim != 2:
        raise InputError(f"samples: expected an (N, D) Dask array, got {x.ndim} dimensions")
    if any(np.isnan(c) for c in x.chunks[0]):
        x = x.compute_chunk_sizes()  # a first pass over the data: needed to know where each block starts
    x = x.rechunk({1: -1})  # whole rows per chunk
    rows = tuple(int(c) for c in x.chunks[0])
    n = int(sum(rows))
    parts = list(zip(x.to_delayed().ravel(), _dask_vector(bias, "bias", rows, n),
                     _dask_vector(weights, "weights", rows, n)))
    return Chunks(parts, list(rows), int(x.shape[1]), True)


def _ranges_of(results: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    lo = np.min([r[0] for r in results], axis=0)
    hi = np.max([r[1] for r in results], axis=0)
    return lo, hi


def data_range(chunks: Chunks, scan: Callable[[Any, int], tuple[np.ndarray, np.ndarray]]
               ) -> tuple[np.ndarray, np.ndarray]:
    """Per CV the lowest and highest sample over every chunk (a pass over the data, on the workers for Dask):
    scan(samples, offset) checks one chunk and returns its range."""
    pairs = list(zip(chunks.parts, chunks.offsets))
    if not chunks.dask:
        return _ranges_of([scan(s, off) for (s, _, _), off in pairs])
    import dask  # deferred: Dask is optional (cyfes[dask])
    return _ranges_of(dask.compute(*[dask.delayed(scan)(s, off) for (s, _, _), off in pairs]))


def _tree(parts: list[Any]) -> Any:
    """A Dask reduction tree of delayed Partials, MERGE_FAN_IN at a time, merged where they were computed."""
    import dask  # deferred: Dask is optional (cyfes[dask])
    while len(parts) > 1:
        parts = [dask.delayed(merge)(parts[k:k + MERGE_FAN_IN]) for k in range(0, len(parts), MERGE_FAN_IN)]
    return parts[0]


def reduce(chunks: Chunks, partial: Callable[[Any, Any, Any, int], Partial],
           progress: Callable[[int, int], None] | None = None) -> Partial:
    """Every chunk's partial sums (partial(samples, bias, weights, offset)), merged. In this process one chunk
    at a time; on Dask, on the workers, with only the merged sums coming back."""
    if chunks.dask:
        import dask  # deferred: Dask is optional (cyfes[dask])
        tasks = [dask.delayed(partial)(s, b, w, off) for (s, b, w), off in zip(chunks.parts, chunks.offsets)]
        return dask.compute(_tree(tasks))[0]
    total: Partial | None = None
    for k, ((s, b, w), off) in enumerate(zip(chunks.parts, chunks.offsets)):
        got = partial(s, b, w, off)
        total = got if total is None else merge([total, got])
        if progress is not None:
            progress(k + 1, len(chunks.parts))
    assert total is not None
    return total


def pieces(offset: int, count: int, block_ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """Where a chunk of `count` samples starting at global row `offset` meets each block: (block, lo, hi) with
    [lo, hi) rows of the chunk."""
    out = []
    for b, (lo, hi) in enumerate(block_ranges):
        a, z = max(lo, offset), min(hi, offset + count)
        if a < z:
            out.append((b, a - offset, z - offset))
    return out
