"""The names of cyfes.io's file formats, the default chunk of a streamed table and the CV names a surface's files
use: plain data and one small function, with no numpy, so that the parsers of `cyfes fes`, `basins` and `path`
(their --format and --input-format choices, the --chunk-rows default) and the tables those commands print can be
built without loading numpy. writers.py, input_formats.py and tables.py take these from here."""
from __future__ import annotations

from typing import Any

#: Output (grid) formats and the file extensions that select them.
FORMATS: dict[str, tuple[str, ...]] = {
    "plumed": (".grid", ".fes"),
    "dat": (".dat", ".txt"),
    "csv": (".csv",),
    "cube": (".cube", ".cub"),
    "npz": (".npz",),
    "colvars": (".pmf",),
    "dx": (".dx",),
}

#: Sample-file formats, in the order input_formats.detect tries them on a file's content.
INPUT_FORMATS = ("plumed", "colvars", "xvg", "csv", "text", "npy")

#: Rows per chunk of a ChunkedTable when none is asked for (1e6 rows of 3 columns: 24 MB).
CHUNK_ROWS_DEFAULT = 1_000_000


def cv_names(result: Any) -> list[str]:
    """The CV names of a surface as its files and tables give them: its own, else cv1, cv2, ..."""
    return list(result.names) if result.names else [f"cv{d + 1}" for d in range(result.dim)]
