"""cyfes: free energy surfaces from biased molecular dynamics by reweighted Gaussian KDE, on GPU and CPU."""
from __future__ import annotations

from pathlib import Path as _Path
from typing import Optional as _Optional, Union as _Union

from ._api import FESResult, fes
from ._backends import backends
from ._errors import BackendError, CyfesError, InputError
from .hillsum import hills


def read_grid(path: _Union[str, _Path], temperature: _Optional[float] = None, units: _Optional[str] = None,
              fmt: _Optional[str] = None) -> FESResult:
    """A surface from a grid file (.npz, PLUMED grid, text, ...: see cyfes.formats) as an FESResult, ready for the
    analyses (minima, basins, path). The same as FESResult.read: a .npz keeps its temperature and units, other
    files take `temperature` (default 300 K) and `units` (default kJ/mol)."""
    return FESResult.read(path, temperature=temperature, units=units, fmt=fmt)


try:
    from importlib.metadata import version as _version

    __version__ = _version("cyfes")
except Exception:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = ["fes", "hills", "FESResult", "read_grid", "backends", "CyfesError", "InputError", "BackendError", "__version__"]
