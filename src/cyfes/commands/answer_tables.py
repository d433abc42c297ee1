"""The tables the answers are printed as (basins, Delta F traces), shared by `cyfes basins` and `cyfes fes
--basins`."""
from __future__ import annotations

import math
from typing import Any

from ..io.format_names import cv_names


def pm(value: float, err: float) -> str:
    return f"{value:.4g}" + (f" +- {err:.2g}" if math.isfinite(err) else "")


def basins_table(result: Any, found: Any) -> str:
    names = cv_names(result)
    head = f"{'basin':>5}  {'minimum (' + ', '.join(names) + ')':<28} {'F_min':>9} {'F_basin':>16} " \
           f"{'DeltaF':>16} {'population':>10} {'depth':>8}"
    lines = [head]
    for b in found:
        at = ", ".join(f"{v:.4g}" for v in b.minimum)
        lines.append(f"{b.label:>5}  {at:<28} {b.minimum_free_energy:>9.4g} {pm(b.free_energy, b.error):>16} "
                     f"{pm(b.delta_f, b.delta_f_error):>16} {b.population:>10.4g} {b.depth:>8.4g}")
    return "\n".join(lines) + f"\n(energies in {result.units}, kT = {result.kT:.6g})"


def trace_table(trace: dict[str, Any], units: str) -> str:
    keys = list(trace["delta_f"])
    lines = [f"{'samples':>10} " + " ".join(f"{'DeltaF ' + k:>12}" for k in keys) + f"   ({units}, to basin 0)"]
    for i, n in enumerate(trace["samples"]):
        lines.append(f"{n:>10} " + " ".join(f"{trace['delta_f'][k][i]:>12.4g}" for k in keys))
    return "\n".join(lines)
