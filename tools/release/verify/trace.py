"""The dynamic loader's own account of a run (LD_DEBUG=libs,files on stderr): what it loaded, from where, for whom.

Also the split of what an artifact loaded into inside and outside its install.

Why the trace: the build host has its own CUDA in ld.so.cache (/usr/local/cuda-13.0/lib); an artifact with a broken
RPATH would still import here by picking that up. The trace says where each object really came from.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

LD_DEBUG = "libs,files"
"""libs: where each object was searched and found ("calling init"); files: who needed it ("needed by")."""
INIT_RE = re.compile(r"calling init: (\S+)")
NEEDED_RE = re.compile(r"file=(\S+) \[\d+\];\s+needed by (\S+)")
LINE_RE = re.compile(r"^\s*\d+:")


@dataclass(frozen=True)
class LoaderTrace:
    """One run's trace, parsed."""

    loaded: tuple[str, ...]
    """Paths of every object the loader initialised, in order, each once."""
    needed: dict[str, list[str]] = field(hash=False)
    """Path of an object -> the library names it needed."""
    messages: tuple[str, ...] = ()
    """stderr lines that are not the loader's (the program's own errors)."""

    @classmethod
    def parse(cls, stderr: str) -> "LoaderTrace":
        needed: dict[str, list[str]] = {}
        for m in NEEDED_RE.finditer(stderr):
            needed.setdefault(m.group(2), []).append(m.group(1))
        return cls(tuple(dict.fromkeys(m.group(1) for m in INIT_RE.finditer(stderr))), needed,
                   tuple(ln for ln in stderr.splitlines() if not LINE_RE.match(ln)))

    def by_name(self) -> dict[str, str]:
        """File name -> real path of each object initialised (the first, as the loader reuses a loaded name)."""
        found: dict[str, str] = {}
        for path in self.loaded:
            found.setdefault(os.path.basename(path), os.path.realpath(path))
        return found

    def closure(self, members: set[str], root: Path) -> list[str]:
        """Every object loaded because of the artifact: its own files (by name, under root) and what they needed."""
        by_name = {os.path.basename(p): p for p in self.loaded}
        root_s = os.path.realpath(root) + "/"
        todo = [p for p in self.loaded if os.path.basename(p) in members and os.path.realpath(p).startswith(root_s)]
        seen: list[str] = []
        while todo:
            p = todo.pop(0)
            if p in seen:
                continue
            seen.append(p)
            todo += [by_name[n] for n in self.needed.get(p, []) if n in by_name]
        return seen


def inside_outside(paths: list[str], root: Path, allowed: frozenset[str]) -> tuple[list[str], list[str]]:
    """(inside the installed tree, relative to it; outside it): outside is fine only for system libraries."""
    root_s, inside, outside = os.path.realpath(root) + "/", [], []
    for p in paths:
        real = os.path.realpath(p)
        if real.startswith(root_s):
            inside.append(os.path.relpath(real, root_s))
        elif os.path.basename(p) not in allowed:
            outside.append(p)
    return inside, outside
