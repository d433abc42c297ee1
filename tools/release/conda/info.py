"""Read the `info/` of a conda package we did not necessarily make: index.json and paths.json, every field checked.

The tool uses index.json's name, version and build to name files (verify copies a package into a channel under
`<name>-<version>-<build>.conda`) and its `depends` to pick a Python, so they must be what conda allows:
a name of lowercase letters, digits, `_`, `-` and `.`; a version and build without `-`, `/` or spaces.
paths.json, when present, must describe the payload exactly: every file listed once, with its real SHA-256 and size (the
archive reader hashed them while streaming), symlinks as softlinks, nothing listed that is not there.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ..archive import METADATA_MAX_BYTES, Member
from ..errors import ArchiveError, Problem

NAME_RE = re.compile(r"[a-z0-9_][a-z0-9_.-]{0,127}")
VERSION_RE = re.compile(r"[A-Za-z0-9_.+!]{1,64}")
BUILD_RE = re.compile(r"[A-Za-z0-9_.+]{1,128}")
PYTHON_RE = re.compile(r"python >=(\d+\.\d+),")


@dataclass(frozen=True)
class PackageIndex:
    """What info/index.json says, checked."""

    name: str
    version: str
    build: str
    depends: tuple[str, ...]

    @property
    def dist(self) -> str:
        return f"{self.name}-{self.version}-{self.build}"


def _json(label: str, entries: dict[str, Member], name: str) -> dict:
    if name not in entries or entries[name].link is not None:
        raise ArchiveError([Problem(label, name, "missing")])
    if entries[name].blob.size > METADATA_MAX_BYTES:
        raise ArchiveError([Problem(label, name, f"larger than {METADATA_MAX_BYTES} bytes")])
    try:
        value = json.loads(entries[name].data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ArchiveError([Problem(label, name, f"not valid JSON ({str(exc)[:80]})")]) from exc
    if not isinstance(value, dict):
        raise ArchiveError([Problem(label, name, "not a JSON object")])
    return value


def read_index(label: str, entries: dict[str, Member]) -> PackageIndex:
    """info/index.json with name, version, build and depends as conda allows them."""
    index = _json(label, entries, "info/index.json")
    problems = []
    for key, rx in (("name", NAME_RE), ("version", VERSION_RE), ("build", BUILD_RE)):
        value = index.get(key)
        if not isinstance(value, str) or not rx.fullmatch(value):
            problems.append(Problem(label, "info/index.json", f"{key} {str(value)[:60]!r} is not a valid conda {key}"))
    depends = index.get("depends", [])
    if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
        problems.append(Problem(label, "info/index.json", "depends must be a list of strings"))
    if problems:
        raise ArchiveError(problems)
    return PackageIndex(index["name"], index["version"], index["build"], tuple(depends))


def python_of(label: str, index: PackageIndex) -> str:
    """The Python "X.Y" a package is built for, from its `python >=X.Y,<X.Y+1.0a0` dependency."""
    for dep in index.depends:
        m = PYTHON_RE.match(dep)
        if m:
            return m.group(1)
    raise ArchiveError([Problem(label, "info/index.json", "depends names no `python >=X.Y,...`: "
                                "not a Python package, nothing to verify it with")])


def check_paths(label: str, entries: dict[str, Member]) -> list[Problem]:
    """info/paths.json against the payload: same files, same kinds, same SHA-256 and sizes. A package without
    paths.json (conda's format before 4.3) is read through info/files by installers: nothing to compare."""
    if "info/paths.json" not in entries:
        return []
    doc = _json(label, entries, "info/paths.json")
    rows = doc.get("paths")
    if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("_path"), str) for r in rows):
        return [Problem(label, "info/paths.json", "paths must be a list of objects with a _path")]
    payload = {n: e for n, e in entries.items() if not n.startswith("info/")}
    problems, listed = [], set()
    for row in rows:
        problems += _path_problems(label, row, payload, listed)
    problems += [Problem(label, n, "in the package but not in info/paths.json") for n in sorted(payload)
                 if n not in listed]
    return problems


def _path_problems(label: str, row: dict, payload: dict[str, Member], listed: set[str]) -> list[Problem]:
    path, kind = row["_path"], row.get("path_type")
    where = f"info/paths.json: {path[:120]}"
    if path in listed:
        return [Problem(label, where, "listed twice")]
    listed.add(path)
    entry = payload.get(path)
    if entry is None:
        return [Problem(label, where, "listed but not in the package")]
    if kind == "softlink":
        return [] if entry.link is not None else [Problem(label, where, "listed as a softlink, is a file")]
    if kind != "hardlink" or entry.link is not None:
        return [Problem(label, where, f"path_type {str(kind)[:20]!r} does not match the member")]
    if row.get("sha256") != entry.blob.sha256.hex() or row.get("size_in_bytes") != entry.blob.size:
        return [Problem(label, where, "sha256 or size_in_bytes does not match the file")]
    return []


def read_package_info(label: str, entries: dict[str, Member]) -> PackageIndex:
    """index.json checked, and paths.json true to the payload; ArchiveError names every problem."""
    index = read_index(label, entries)
    problems = check_paths(label, entries)
    if problems:
        raise ArchiveError(problems)
    return index
