"""Local conda channels with py-rattler (the library behind pixi): index a directory, solve, install.

rattler is async; these wrappers run one event loop per call so the rest of the tool stays synchronous.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import rattler
from rattler import Channel, ChannelConfig, Subdir, VirtualPackage
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


def solve(channels: list[Path], specs: list[str]) -> list[rattler.RepoDataRecord]:
    """Solve against the host's detected virtual packages (__glibc, and __cuda where an NVIDIA driver is
    installed): the package's `__cuda >=N` constraint then holds on a GPU host and does not apply elsewhere."""
    try:
        return asyncio.run(rattler.solve([channel_of(c) for c in channels], specs,
                                         platforms=[Subdir(SUBDIR), Subdir("noarch")],
                                         virtual_packages=VirtualPackage.detect()))
    except SolverError as exc:
        raise VerifyError([Problem(", ".join(specs), "", f"no solution from {[str(c) for c in channels]}: {exc}")]) from exc


def install(records: list[rattler.RepoDataRecord], prefix: Path, cache: Path) -> None:
    """Link the solved records into a fresh `prefix` (prefix placeholders replaced, as conda does)."""
    asyncio.run(rattler.install(records, target_prefix=prefix, cache_dir=cache, show_progress=False,
                                execute_link_scripts=False))
