"""Local conda channels with py-rattler (the library behind pixi): index a directory, solve, install.

rattler is async; these wrappers run one event loop per call so the rest of the tool stays synchronous.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import rattler
from rattler import (
    BuildString,
    Channel,
    ChannelConfig,
    GenericVirtualPackage,
    PackageName,
    Subdir,
    Version,
    VirtualPackage,
)
from rattler.exceptions import SolverError
from rattler.index import index_fs

from ..errors import Problem, VerifyError
from .meta import SUBDIR


def index_channel(channel: Path) -> Path:
    """Write repodata.json for linux-64 and noarch (an empty noarch, which every channel must have)."""
    (channel / "noarch").mkdir(parents=True, exist_ok=True)
    (channel / SUBDIR).mkdir(parents=True, exist_ok=True)
    asyncio.run(index_fs(channel, write_zst=False, write_shards=False, force=True))
    scratch = channel / ".tmp"  # rattler's indexer leaves its empty scratch directory behind
    if scratch.is_dir() and not any(scratch.iterdir()):
        scratch.rmdir()
    return channel / SUBDIR / "repodata.json"


def repodata(channel: Path) -> dict:
    return json.loads((channel / SUBDIR / "repodata.json").read_text())


def channel_of(path: Path) -> Channel:
    # a local directory channel: rattler maps an absolute path to a file:// URL
    return Channel(str(path.resolve()), ChannelConfig())


def virtual_packages(cuda: str | None = None) -> list:
    """The host's detected virtual packages (__glibc, and __cuda where an NVIDIA driver is installed). With
    `cuda` ("major.minor") and no driver found, `__cuda` of that version is added, as conda-forge's CPU-only test
    runners set CONDA_OVERRIDE_CUDA: a CUDA package then installs to be tested (its CPU path runs)."""
    found = [v.into_generic() for v in VirtualPackage.detect()]
    if cuda is None or any(v.name.normalized == "__cuda" for v in found):
        return found
    return found + [GenericVirtualPackage(PackageName("__cuda"), Version(cuda), BuildString("0"))]


def solve(channels: list[Path], specs: list[str], cuda: str | None = None) -> list[rattler.RepoDataRecord]:
    """Solve against virtual_packages(cuda): a CUDA package's `__cuda` dependency and `__cuda >=N` constraint
    hold on a GPU host, and on a host without a driver when `cuda` says which CUDA to stand in for."""
    try:
        return asyncio.run(rattler.solve([channel_of(c) for c in channels], specs,
                                         platforms=[Subdir(SUBDIR), Subdir("noarch")],
                                         virtual_packages=virtual_packages(cuda)))
    except SolverError as exc:
        raise VerifyError([Problem(", ".join(specs), "", f"no solution from {[str(c) for c in channels]}: {exc}")]) from exc


def install(records: list[rattler.RepoDataRecord], prefix: Path, cache: Path) -> None:
    """Link the solved records into a fresh `prefix` (prefix placeholders replaced, as conda does)."""
    asyncio.run(rattler.install(records, target_prefix=prefix, cache_dir=cache, show_progress=False,
                                execute_link_scripts=False))
