"""OPES state files (STATE_WFILE of OPES_METAD and OPES_METAD_EXPLORE in PLUMED): the compressed kernels.

A state is a PLUMED header, `#! FIELDS time cv... sigma_cv... height`, `#! SET` lines (action, biasfactor,
epsilon, kernel_cutoff, zed, sum_weights, counter, ..., and min_/max_ for periodic CVs), then one kernel per row.
With STORE_STATES a file holds one state after another, each with its own header.

OPES KERNELS files (FILE= of the same actions): every deposited kernel, `#! FIELDS time cv... sigma_cv... height
logweight`, `#! SET` action (`OPES_METAD_kernels`, `OPES_METAD_EXPLORE_kernels`), biasfactor, epsilon,
kernel_cutoff, compression_threshold and min_/max_ of periodic CVs; a restarted run appends a new header and
its kernels (one list, in order). `read_opes` tells the two apart by the FIELDS line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._errors import InputError
from .numbers import clip, parse_number
from .tables import max_input_bytes, whole_text
from .text_rows import load_rows

ACTIONS = ("OPES_METAD_state", "OPES_METAD_EXPLORE_state")
_REQUIRED = ("biasfactor", "epsilon", "kernel_cutoff", "zed")
KERNEL_ACTIONS = ("OPES_METAD_kernels", "OPES_METAD_EXPLORE_kernels")
_KERNEL_REQUIRED = ("biasfactor", "epsilon", "kernel_cutoff", "compression_threshold")


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


@dataclass
class OpesKernels:
    """The deposited kernels of a KERNELS file, in order (restarts included): centers and sigmas (N, D),
    heights, logweights and times (N,), the SET values of the last header, per CV its periodic domain."""

    names: list[str]
    centers: np.ndarray
    sigmas: np.ndarray
    heights: np.ndarray
    logweights: np.ndarray
    times: np.ndarray
    sets: dict[str, str]
    domains: list[tuple[float, float] | None]
    source: str
    segments: int

    @property
    def explore(self) -> bool:
        return self.sets["action"] == "OPES_METAD_EXPLORE_kernels"

    def number(self, key: str) -> float:
        return parse_number(self.sets[key], f"{self.source}: #! SET {key}")


def read_text(path: str) -> str:
    """The file as text, through the bounded reader every cyfes input goes through (CYFES_MAX_INPUT_BYTES)."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not an OPES state or KERNELS file")
    return whole_text(p, max_input_bytes())


def read_states(path: str) -> list[OpesState]:
    """Every state stored in the file, in order."""
    return parse_states(read_text(path), str(path))


def read_opes(path: str) -> list[OpesState] | OpesKernels:
    """A state file's states, or a KERNELS file's kernels, told apart by the first FIELDS line."""
    return parse_opes(read_text(path), str(path))


def parse_opes(text: str, source: str) -> list[OpesState] | OpesKernels:
    first = next((line for line in text.splitlines() if _is_fields(line)), "")
    if first.split()[-2:] == ["height", "logweight"]:
        return parse_kernels(text, source)
    return parse_states(text, source)


def parse_states(text: str, source: str) -> list[OpesState]:
    lines = text.splitlines()
    heads = [i for i, line in enumerate(lines) if _is_fields(line)]
    if not heads:
        raise InputError(f"{source}: no '#! FIELDS' line; not an OPES state (STATE_WFILE) or KERNELS (FILE=) file")
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
                         "('time cv... sigma_cv... height') nor of a KERNELS file ('... height logweight')")
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
    check_kernels(data, head + 2, body, fields, dim, source)
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


def check_kernels(data: np.ndarray, first_line: int, body: list[str], fields: list[str], dim: int,
                  source: str) -> None:
    """Kernels a sum can use: finite numbers, sigma > 0, height > 0 (a NaN or a negative height would turn the
    whole surface into NaN or a log of a negative number). The first bad value is named by file:line."""
    sig, height = data[:, 1 + dim:1 + 2 * dim], data[:, 1 + 2 * dim]
    bad = ~np.isfinite(data).all(axis=1) | ~(sig > 0).all(axis=1) | ~(height > 0)
    if not bad.any():
        return
    row = int(np.argmax(bad))
    numbered = [first_line + i for i, line in enumerate(body) if line.strip()]
    values = data[row]
    col = next(c for c in range(len(fields)) if not np.isfinite(values[c]) or
               (1 + dim <= c <= 2 * dim and not values[c] > 0) or (c == 1 + 2 * dim and not values[c] > 0))
    need = "a finite number" if not np.isfinite(values[col]) else "> 0"
    raise InputError(f"{source}: line {numbered[row]}, value {col + 1} ({fields[col]}): "
                     f"{clip(repr(float(values[col])))} is not {need}")


def parse_kernels(text: str, source: str) -> OpesKernels:
    """Every kernel of a KERNELS file; each `#! FIELDS` line after the first (a restart) must repeat it."""
    lines = text.splitlines()
    heads = [i for i, line in enumerate(lines) if _is_fields(line)]
    first = next((i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")), None)
    if first is not None and first < heads[0]:
        raise InputError(f"{source}: line {first + 1}: data before the first '#! FIELDS' line")
    fields = lines[heads[0]].split()[2:]
    dim = (len(fields) - 3) // 2
    names = fields[1:1 + dim]
    if dim < 1 or fields != ["time"] + names + [f"sigma_{n}" for n in names] + ["height", "logweight"]:
        raise InputError(f"{source}: line {heads[0] + 1}: FIELDS {' '.join(fields)!r} are not those of an OPES "
                         "KERNELS file ('time cv... sigma_cv... height logweight')")
    blocks, sets = [], {}
    for k, head in enumerate(heads):
        end = heads[k + 1] if k + 1 < len(heads) else len(lines)
        block, sets = _kernel_block(lines, head, end, fields, sets, source)
        blocks.append(block)
    data = np.concatenate(blocks)
    if not len(data):
        raise InputError(f"{source}: a KERNELS file with no kernels")
    domains = [_domain(sets, n, f"{source}: line {heads[-1] + 1}") for n in names]
    return OpesKernels(names, data[:, 1:1 + dim], data[:, 1 + dim:1 + 2 * dim], data[:, 1 + 2 * dim],
                       data[:, -1], data[:, 0], sets, domains, source, len(heads))


def _kernel_block(lines: list[str], head: int, end: int, fields: list[str], before: dict[str, str],
                  source: str) -> tuple[np.ndarray, dict[str, str]]:
    """One run's kernels and SET values; a restart may not change the action or the CVs' periodicity."""
    where = f"{source}: line {head + 1}"
    if lines[head].split()[2:] != fields:
        raise InputError(f"{where}: FIELDS {' '.join(lines[head].split()[2:])!r} differ from the first header's "
                         f"{' '.join(fields)!r} (a restart must keep the CVs)")
    sets: dict[str, str] = {}
    body: list[str] = []
    for line in lines[head + 1:end]:
        words = line.split()
        if line.startswith("#!") and len(words) >= 4 and words[1] == "SET":
            sets[words[2]] = words[3]
        body.append("" if line.lstrip().startswith("#") else line)
    if sets.get("action") not in KERNEL_ACTIONS:
        raise InputError(f"{where}: action {sets.get('action')!r}; cyfes reads the KERNELS files of "
                         f"{' and '.join(a[:-8] for a in KERNEL_ACTIONS)}")
    missing = [k for k in _KERNEL_REQUIRED if k not in sets]
    if missing:
        raise InputError(f"{where}: the KERNELS header has no '#! SET {missing[0]}' line")
    dim = (len(fields) - 3) // 2
    for name in fields[1:1 + dim]:
        _domain(sets, name, where)
    fixed = {k for k in set(sets) | set(before) if k == "action" or k.startswith(("min_", "max_"))}
    changed = sorted(k for k in fixed if before and before.get(k) != sets.get(k))
    if changed:
        raise InputError(f"{where}: the restart changes {changed[0]} of the first header")
    data = load_rows(body, head + 2, len(fields), source, None, fields)
    check_kernels(data, head + 2, body, fields, dim, source)
    return data, sets
