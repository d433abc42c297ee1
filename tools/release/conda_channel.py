"""Local conda channels with py-rattler (the library behind pixi): index a directory, solve, install.

rattler is async; these wrappers run one event loop per call so the rest of the tool stays synchronous.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import rattler
from rattler import BuildString, Channel, ChannelConfig, GenericVirtualPackage, PackageName, Subdir, Version
from rattler.exceptions import SolverError
from rattler.index import index_fs

from .conda_meta import SUBDIR
from .errors import Problem, VerifyError


def index_channel(channel: Path) -> Path:
    """Write repodata.json for linux-64 and noarch (an empty noarch, which every channel must have)."""
    (channel / "noarch").mkdir(parents=True, exist_ok=True)
    (channel / SUBDIR).mkdir(parents=True, exist_ok=True)
    asyncio.run(index_fs(channel, write_zst=False, write_shards=False, force=True))
    return channel / SUBDIR / "repodata.json"


def repodata(channel: Path) -> dict:
    return json.loads((channel / SUBDIR / "repodata.json").read_text())


def channel_of(path: Path) -> Channel:
    # a local directory channel: rattler maps an absolute path to a file:// URL
    return Channel(str(path.resolve()), ChannelConfig())


def virtual_packages(glibc: str, cuda: str | None) -> list[GenericVirtualPackage]:
    """The virtual packages to solve for, stated rather than detected so a host without a GPU can stand in
    for one with a driver of CUDA `cuda`."""
    stated = [("__unix", "0"), ("__linux", "5.10"), ("__glibc", glibc)] + ([("__cuda", cuda)] if cuda else [])
    return [GenericVirtualPackage(PackageName(n), Version(v), BuildString("0")) for n, v in stated]


def solve(channels: list[Path], specs: list[str], glibc: str, cuda: str | None) -> list[rattler.RepoDataRecord]:
    try:
        return asyncio.run(rattler.solve([channel_of(c) for c in channels], specs,
                                         platforms=[Subdir(SUBDIR), Subdir("noarch")],
                                         virtual_packages=virtual_packages(glibc, cuda)))
    except SolverError as exc:
        raise VerifyError([Problem(", ".join(specs), "", f"no solution from {[str(c) for c in channels]}: {exc}")]) from exc


def install(records: list[rattler.RepoDataRecord], prefix: Path, cache: Path) -> None:
    """Link the solved records into a fresh `prefix` (prefix placeholders replaced, as conda does)."""
    asyncio.run(rattler.install(records, target_prefix=prefix, cache_dir=cache, show_progress=False,
                                execute_link_scripts=False))
