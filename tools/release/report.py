"""The release table: one `Row` type for every artifact, the builders that make rows from verify's results, the text.

Every artifact is a row: wheel, sdist, .conda, a failed or a skipped build; cli.py prints the text."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .verify.smoke import InstallResult

COLUMNS = (("artifact", "artifact"), ("tag", "tag"), ("size", "size"), ("vendored", "vendored libraries"),
           ("schemes", "schemes verified"), ("result", "result"))


@dataclass(frozen=True)
class Row:
    """One line of the release table."""

    artifact: str
    """The file name, or what could not be built ("cyfes (Python 3.12)")."""
    tag: str = "-"
    """A wheel's python-abi-platform tag; a .conda's subdir, build string and glibc floor; "sdist"."""
    size: str = "-"
    vendored: str = "-"
    """Libraries the artifact carries for itself, or where its runtime libraries come from instead."""
    schemes: str = "-"
    """Where it was installed and run (scheme-Python, "(status)" when not plainly ok)."""
    result: str = "ok"
    """"ok..." when everything passed, else FAILED / SKIPPED and why."""

    @property
    def ok(self) -> bool:
        return self.result.startswith("ok")


def size_of(path: Path) -> str:
    return f"{path.stat().st_size / 2**20:.1f} MiB" if path.exists() else "-"


def scheme_cells(results: Sequence[InstallResult]) -> str:
    several = len({r.python for r in results}) > 1
    return " ".join(f"{r.scheme}{'-' + r.python if several else ''}{'' if r.status == 'ok' else '(' + r.status + ')'}"
                    for r in results) or "-"


def verdict(results: Sequence[InstallResult], error: str = "") -> str:
    failed = [r for r in results if not r.ok]
    if error:
        return error
    return "FAILED: " + "; ".join(f"{r.scheme}: {r.detail}" for r in failed) if failed else "ok"


def wheel_row(path: Path, tags: str, vendored: Sequence[str], results: Sequence[InstallResult],
              error: str = "") -> Row:
    return Row(path.name, tags, size_of(path), ", ".join(vendored) or "-", scheme_cells(results),
               verdict(results, error))


def conda_row(path: Path, tag: str, dependencies: Sequence[str], result: InstallResult | None) -> Row:
    """A .conda's line: nothing vendored (its runtime libraries come from conda packages), verified in a prefix."""
    if result is None:
        text = "built (not verified)"
    elif result.ok:
        libdir = os.path.realpath(Path(result.root) / "lib")
        from_prefix = sorted(n for n, p in result.loaded.items() if os.path.dirname(p) == libdir)
        gpu = "GPU used" if "gpu_vs_cpu" in result.smoke else "no GPU here"
        fes = (f"FES vs numpy {result.smoke['cpu_vs_numpy']:.0e}; {gpu}" if "cpu_vs_numpy" in result.smoke
               else f"smoke: {result.detail}")
        text = f"ok: {', '.join(from_prefix)} from $PREFIX/lib; {fes}"
    else:
        text = "FAILED: " + result.detail
    return Row(path.name, tag, size_of(path), "none; from conda: " + ", ".join(dependencies),
               "conda prefix (py-rattler)", text)


def failed_row(what: str, error: str) -> Row:
    """A build that produced no artifact: the first and last line of why."""
    lines = [ln.strip() for ln in error.splitlines() if ln.strip()] or ["(no message)"]
    return Row(what, result="FAILED: " + lines[0] + (f" ... {lines[-1]}" if len(lines) > 1 else ""))


def table_lines(rows: Sequence[Row]) -> list[str]:
    """The table as text; the result column is last and not padded, so a long reason does not widen it."""
    if not rows:
        return []
    widths = {k: max(len(h), *(len(str(getattr(r, k))) for r in rows)) for k, h in COLUMNS[:-1]}
    lines = ["", "  ".join(h.ljust(widths.get(k, 0)) for k, h in COLUMNS),
             "  ".join("-" * widths.get(k, 6) for k, _ in COLUMNS)]
    return lines + ["  ".join(str(getattr(r, k)).ljust(widths.get(k, 0)) for k, _ in COLUMNS).rstrip() for r in rows]
