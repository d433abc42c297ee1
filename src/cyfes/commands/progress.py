"""A progress bar on stderr for long runs: tqdm when stderr is a terminal and tqdm is installed, else nothing.

Used by the CLI only. The bar is fed by a callback `update(done, total)`, which cyfes.fes calls through its
`progress=` argument.
"""
from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Callable, TextIO

ProgressCallback = Callable[[int, int], None]


def wanted(stream: TextIO | None = None) -> bool:
    """True when `stream` (default stderr) is a terminal and tqdm can be imported."""
    stream = sys.stderr if stream is None else stream
    try:
        if not stream.isatty():
            return False
    except (AttributeError, ValueError):
        return False
    try:
        import tqdm  # noqa: F401  # deferred: tqdm is optional
    except ImportError:
        return False
    return True


@contextmanager
def bar(description: str, enabled: bool | None = None) -> Iterator[ProgressCallback | None]:
    """Yield an `update(done, total)` callback drawing a tqdm bar, or None when no bar is wanted."""
    if not (wanted() if enabled is None else enabled):
        yield None
        return
    from tqdm import tqdm  # deferred: tqdm is optional

    progress = tqdm(total=0, desc=description, file=sys.stderr, leave=False, dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        if progress.total != total:
            progress.total = total
        progress.n = done
        progress.refresh()

    try:
        yield update
    finally:
        progress.close()
