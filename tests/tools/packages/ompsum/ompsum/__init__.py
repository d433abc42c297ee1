"""Sums of squares in C with OpenMP (libompsum, installed as data into <prefix>/lib)."""
from ._core import squares, threads

__all__ = ["squares", "threads"]
