"""The one root of every error cyfes raises on purpose."""
from __future__ import annotations


class CyfesError(Exception):
    """Base class of cyfes's own errors."""


class InputError(CyfesError, ValueError):
    """An argument or input file is wrong; the message names it and says what is wrong."""


class BackendError(CyfesError, RuntimeError):
    """A backend could not run (no GPU, a CUDA error with CUDA's own message, ...)."""
