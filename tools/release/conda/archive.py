"""Write and read `.conda` archives (format v2) byte for byte reproducibly.

A `.conda` is an uncompressed zip of three members: `metadata.json`, `pkg-<dist>.tar.zst` (the payload) and
`info-<dist>.tar.zst` (the `info/` tree). conda-package-handling 2.x stamps zip members with the current time
(ZipFile.open(name, "w")) and keeps file mtimes in the tars, so two runs differ; we write the archive ourselves
with sorted members, one fixed mtime (SOURCE_DATE_EPOCH), uid/gid 0 and empty owner names.
"""
from __future__ import annotations

import io
import json
import os
import stat
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any

from ..archive import (LIMITS, ZIP_EPOCH_MIN, Budget, Listing, Member, link_leaves_tree, open_zip, source_date_epoch,
                       tar_members, tree_problems)
from ..errors import ArchiveError, Problem

def zstd_module() -> Any:
    """zstd, imported on first use so that checking a wheel needs no conda extra (cyfes-release[conda])."""
    try:  # PEP 784's compression.zstd from Python 3.14; the backport that conda-package-handling 2.6 uses before
        from compression import zstd
    except ImportError:  # pragma: no cover - depends on the Python version
        from backports import zstd
    return zstd


# conda-package-handling's default level; 19 keeps packages small, and one-shot compression is deterministic.
ZSTD_LEVEL = 19
# The zip format cannot store dates before 1980.
CONDA_FORMAT_VERSION = 2


def package_time() -> int:
    """The packages' timestamp: SOURCE_DATE_EPOCH when set (reproducible builds), else now."""
    epoch = source_date_epoch()
    return int(time.time()) if epoch is None else epoch


def safe_member(path: str) -> str | None:
    """Why `path` may not be an archive member (absolute, `..`, empty), or None when it is fine."""
    if not path or path.startswith("/") or "\\" in path:
        return "absolute or non-POSIX path"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return "path with an empty, '.' or '..' component would leave the package tree"
    return None


def check_entries(entries: list[Member], artifact: str) -> list[Problem]:
    """Every path safe, no duplicates, and no symlink resolving outside the package tree (through other links)."""
    problems, seen = [], set()
    for e in entries:
        why = safe_member(e.name)
        if why:
            problems.append(Problem(artifact, e.name, why))
        if e.name in seen:
            problems.append(Problem(artifact, e.name, "listed twice"))
        seen.add(e.name)
    links = {e.name: e.link for e in entries if e.link is not None}
    problems += [Problem(artifact, e.name, f"symlink to {e.link} leaves the package tree")
                 for e in entries if e.link is not None and link_leaves_tree(e.name, e.link, links)]
    return problems


def _tar_zst(entries: list[Member], mtime: int) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in sorted(entries, key=lambda e: e.name):
            info = tarfile.TarInfo(e.name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "", ""
            if e.link is not None:
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, e.link, 0o777
                tar.addfile(info)
            else:
                info.size, info.mode = len(e.data), 0o755 if e.executable else 0o644
                tar.addfile(info, io.BytesIO(e.data))
    return zstd_module().compress(raw.getvalue(), level=ZSTD_LEVEL)


def _zip_member(name: str, mtime: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=time.gmtime(max(mtime, ZIP_EPOCH_MIN))[:6])
    info.compress_type, info.create_system, info.external_attr = zipfile.ZIP_STORED, 3, (0o644 | stat.S_IFREG) << 16
    return info


def conda_bytes(dist: str, pkg: list[Member], info: list[Member], mtime: int) -> bytes:
    """The complete `.conda` for `dist` (name-version-build) as bytes."""
    members = [("metadata.json", json.dumps({"conda_pkg_format_version": CONDA_FORMAT_VERSION}).encode()),
               (f"pkg-{dist}.tar.zst", _tar_zst(pkg, mtime)),
               (f"info-{dist}.tar.zst", _tar_zst(info, mtime))]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members:
            zf.writestr(_zip_member(name, mtime), data)
    return out.getvalue()


def write_conda(path: Path, dist: str, pkg: list[Member], info: list[Member], mtime: int | None = None) -> Path:
    """Write the archive atomically: a temp file in the same directory, renamed once complete."""
    problems = check_entries(pkg + info, path.name)
    if problems:
        raise ArchiveError(problems)
    data = conda_bytes(dist, pkg, info, package_time() if mtime is None else mtime)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:  # an interrupt or a full disk leaves no hidden partial file
        tmp.unlink(missing_ok=True)
    return path


def read_conda(path: Path) -> dict[str, Member]:
    """Every member of both tars of a `.conda`, through archive.py's streaming reader (limits, names, links,
    duplicates across both tars); raises ArchiveError on a bad archive."""
    label = str(path)
    budget = Budget(label, LIMITS.get())
    seen: set[str] = set()
    raw = Listing()
    try:
        zf = open_zip(path, label, budget.limits)
    except ArchiveError as exc:
        raise ArchiveError([Problem(label, "", f"not a readable .conda archive ({p.message})")
                            for p in exc.problems if isinstance(p, Problem)]) from exc
    with zf:
        names = zf.namelist()
        tars = sorted(n for n in names if n.endswith(".tar.zst"))
        if "metadata.json" not in names or len(tars) != 2 or len(names) != 3:
            raise ArchiveError([Problem(label, "", "not a .conda: needs metadata.json, pkg-*.tar.zst, info-*.tar.zst")])
        zstd = zstd_module()
        for name in tars:
            try:
                with zf.open(name) as member, zstd.ZstdFile(member) as stream:
                    raw.add(tar_members(stream, budget, name, seen))
            except (zipfile.BadZipFile, zstd.ZstdError, tarfile.TarError, EOFError, OSError, RuntimeError) as exc:
                raise ArchiveError([Problem(label, name, f"not a readable .conda archive ({exc})")]) from exc
    problems = tree_problems(label, raw)
    if problems:
        raise ArchiveError(problems)
    return {m.name: m for m in raw.members}
