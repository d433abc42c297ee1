"""cyfes: free energy surfaces from biased molecular dynamics by reweighted Gaussian KDE, on GPU and CPU."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from ._errors import BackendError, CyfesError, InputError

#: The public names that live in the engine, each imported on first use (PEP 562): a command line such as
#: `cyfes --help`, or a script that only reads files, loads no engine and no compiled module it does not call.
_LAZY = {"fes": ".engine.fes", "FESResult": ".engine.result", "hills": ".workflows.sum_hills",
         "backends": ".engine.backends"}

__all__ = ["fes", "hills", "FESResult", "read_grid", "backends", "CyfesError", "InputError", "BackendError",
           "__version__"]


def read_grid(path: str | Path, temperature: float | None = None, units: str | None = None,
              fmt: str | None = None) -> Any:
    """A surface from a grid file (.npz, PLUMED grid, text, ...: see cyfes.formats) as an FESResult, ready for the
    analyses (minima, basins, path). The same as FESResult.read: a .npz keeps its temperature and units, other
    files take `temperature` (default 300 K) and `units` (default kJ/mol)."""
    from .engine.result import FESResult  # deferred: the engine loads on first use (see _LAZY)
    return FESResult.read(path, temperature=temperature, units=units, fmt=fmt)


def _version() -> str:
    try:
        from importlib.metadata import version  # deferred: its import costs more than the rest of `import cyfes`
        return version("cyfes")
    except Exception:  # pragma: no cover - running from a source tree
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    elif name == "__version__":
        value = _version()
    else:
        raise AttributeError(f"module 'cyfes' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
