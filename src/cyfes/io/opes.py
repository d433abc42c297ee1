"""OPES state files (STATE_WFILE of OPES_METAD and OPES_METAD_EXPLORE in PLUMED): the compressed kernels.

A state is a PLUMED header, `#! FIELDS time cv... sigma_cv... height`, `#! SET` lines (action, biasfactor,
epsilon, kernel_cutoff, zed, sum_weights, counter, ..., and min_/max_ for periodic CVs), then one kernel per row.
With STORE_STATES a file holds one state after another, each with its own header.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._errors import InputError
from .numbers import parse_number
from .text_rows import load_rows

ACTIONS = ("OPES_METAD_state", "OPES_METAD_EXPLORE_state")
_REQUIRED = ("biasfactor", "epsilon", "kernel_cutoff", "zed")


@dataclass
class OpesState:
    """One stored state: CV names, kernels (centers and sigmas (K, D), heights (K,)), the SET values, and
    per CV its periodic domain (None when not periodic)."""

    names: list[str]
    centers: np.ndarray
    sigmas: np.ndarray
    heights: np.ndarray
    sets: dict[str, str]
    domains: list[tuple[float, float] | None]
    line: int
    source: str
    times: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def explore(self) -> bool:
        return self.sets["action"] == "OPES_METAD_EXPLORE_state"

    def number(self, key: str) -> float:
        return parse_number(self.sets[key], f"{self.source}: #! SET {key}")


def read_states(path: str) -> list[OpesState]:
    """Every state stored in the file, in order."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not an OPES state file")
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise InputError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{p}: not a text file (byte {exc.start} is not UTF-8)") from None
    return parse_states(text, str(p))


def parse_states(text: str, source: str) -> list[OpesState]:
    lines = text.splitlines()
    heads = [i for i, line in enumerate(lines) if _is_fields(line)]
    if not heads:
        raise InputError(f"{source}: no '#! FIELDS' line; not an OPES state file (STATE_WFILE)")
    first = next((i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")), None)
    if first is not None and first < heads[0]:
        raise InputError(f"{source}: line {first + 1}: data before the first '#! FIELDS' line")
    return [_state(lines, head, heads[k + 1] if k + 1 < len(heads) else len(lines), source)
            for k, head in enumerate(heads)]


def _is_fields(line: str) -> bool:
    return line.startswith("#!") and line[2:].split()[:1] == ["FIELDS"]


def _state(lines: list[str], head: int, end: int, source: str) -> OpesState:
    fields = lines[head].split()[2:]
    where = f"{source}: line {head + 1}"
    dim = (len(fields) - 2) // 2
    names = fields[1:1 + dim]
    expected = ["time"] + names + [f"sigma_{n}" for n in names] + ["height"]
    if dim < 1 or fields != expected:
        raise InputError(f"{where}: FIELDS {' '.join(fields)!r} are not those of an OPES state "
                         "('time cv... sigma_cv... height')")
    sets: dict[str, str] = {}
    body: list[str] = []
    for line in lines[head + 1:end]:
        words = line.split()
        if line.startswith("#!") and len(words) >= 4 and words[1] == "SET":
            sets[words[2]] = words[3]
        body.append("" if line.lstrip().startswith("#") else line)
    _check_sets(sets, where)
    data = load_rows(body, head + 2, len(fields), source, None, fields)
    if not len(data):
        raise InputError(f"{where}: a state with no kernels")
    domains = [_domain(sets, n, where) for n in names]
    return OpesState(names, data[:, 1:1 + dim], data[:, 1 + dim:1 + 2 * dim], data[:, -1], sets, domains,
                     head + 1, source, data[:, 0])


def _check_sets(sets: dict[str, str], where: str) -> None:
    action = sets.get("action")
    if action not in ACTIONS:
        raise InputError(f"{where}: action {action!r}; cyfes state reads the states of "
                         f"{' and '.join(a[:-6] for a in ACTIONS)}")
    needed = _REQUIRED + (("counter",) if action == "OPES_METAD_EXPLORE_state" else ("sum_weights",))
    missing = [k for k in needed if k not in sets]
    if missing:
        raise InputError(f"{where}: the state has no '#! SET {missing[0]}' line")


def _domain(sets: dict[str, str], name: str, where: str) -> tuple[float, float] | None:
    lo, hi = sets.get(f"min_{name}"), sets.get(f"max_{name}")
    if lo is None and hi is None:
        return None
    if lo is None or hi is None:
        raise InputError(f"{where}: min_{name} and max_{name} must come together")
    low, high = parse_number(lo, f"{where}: min_{name}"), parse_number(hi, f"{where}: max_{name}")
    if not high > low:
        raise InputError(f"{where}: max_{name} {hi} is not above min_{name} {lo}")
    return low, high
