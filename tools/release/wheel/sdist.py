"""Source distribution: `python -m build --sdist` of the tree, so pip has something to build where no wheel fits
(Python or platform without a wheel). What it holds is pyproject's sdist.include (an explicit list)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from ..errors import BuildError
from .build import BUILD_ROOT, _run


def build_sdist(out_dir: Path, root: Path = BUILD_ROOT, log: Callable[[str], None] = lambda s: None) -> Path:
    """The sdist of the current directory, written into `out_dir` (no isolation: the release venv has the backend)."""
    log("sdist (python -m build --sdist)")
    _run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o", str(out_dir), "."], "sdist build",
         root / "logs" / "sdist.log")
    found = sorted(out_dir.glob("*.tar.gz"))
    if len(found) != 1:
        raise BuildError([f"sdist build left {len(found)} archives in {out_dir}"])
    return found[0]
