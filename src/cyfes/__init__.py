"""cyfes: free energy surfaces from biased molecular dynamics by reweighted Gaussian KDE, on GPU and CPU."""
from __future__ import annotations

from ._api import FESResult, fes
from ._backends import backends
from ._errors import BackendError, CyfesError, InputError
from .hillsum import hills

try:
    from importlib.metadata import version as _version

    __version__ = _version("cyfes")
except Exception:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = ["fes", "hills", "FESResult", "backends", "CyfesError", "InputError", "BackendError", "__version__"]
