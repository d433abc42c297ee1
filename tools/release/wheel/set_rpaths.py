"""`fix`'s wheel step: apply the RPATH plan to an already-repaired wheel (ours or anyone's) and write it
deterministically. The check of the result is the caller's (pipeline.py runs check.analyze on what this returns).

A wheel whose plan changes nothing is copied byte for byte, so fixing a right wheel is a no-op; fixing twice
gives the same bytes because the plan of a fixed wheel is empty and writing is deterministic (wheel/archive.py).
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from ..archive import Member
from ..elf.model import ElfFile
from ..elf.patchelf import Patchelf, apply_plan, find_patchelf
from ..elf.rpath import RpathPlan, plan_rpath
from ..layouts import WHEEL_SCHEMES, layouts
from ..providers import Provider
from ..sbom import Origin, sbom, sbom_bytes, sbom_member, vendored_files, wheel_origins
from .archive import Wheel, extract, load_elfs, read_wheel, with_members, write_wheel
from .declared import wheel_providers, wheel_pythons


@dataclass
class Patched:
    """What the RPATH step did to one wheel, and the wheel it made (written to `output` unless a dry run)."""

    input: str
    output: Path
    changed: bool
    plans: list[RpathPlan]
    wheel: Wheel
    elfs: dict[str, ElfFile]
    """The ELF models of `wheel` (re-read after patching)."""
    providers: list[Provider]
    """The providers the plan reached for (the check of the output must use the same)."""


def add_requirement(wheel: Wheel, requirement: str) -> Wheel:
    """Add a Requires-Dist line to METADATA (the pip CUDA strategy); a no-op when it is already there."""
    name = f"{wheel.dist_info}/METADATA"
    text = wheel.members[name].data.decode("utf-8")
    line = f"Requires-Dist: {requirement}"
    if line in text.splitlines():
        return wheel
    head, sep, body = text.partition("\n\n")
    return with_members(wheel, {name: (head.rstrip("\n") + "\n" + line + "\n" + sep.lstrip("\n") + body
                                       if sep else text.rstrip("\n") + "\n" + line + "\n").encode()})


def with_sbom(wheel: Wheel, origins: dict[str, Origin] | None = None) -> Wheel:
    """The wheel with a CycloneDX SBOM of its vendored libraries (sbom.py); unchanged when it vendors none.
    `origins` as sbom.known_origins gives them; what an SBOM already in the wheel records is kept (a `fix` of a
    released wheel, away from the toolkit it was built with, must not forget where its libcudart came from)."""
    members = {n: m.data for n, m in wheel.members.items()}
    files = vendored_files({n: d for n, d in members.items() if n.split("/", 1)[0].endswith(".libs")}, origins,
                           wheel_origins(members, wheel.dist_info))
    if not files:
        return wheel
    name = sbom_member(wheel.dist_info)
    members = dict(wheel.members)
    members[name] = Member(name, sbom_bytes(sbom(wheel.dist, wheel.version, wheel.filename, files)))
    return replace(wheel, members=members)


def _patched_members(wheel: Wheel, plans: list[RpathPlan], tool: Patchelf, workdir: Path) -> dict[str, bytes]:
    names = [p.file for p in plans]
    extract(wheel, workdir, names)
    for plan in plans:
        apply_plan(plan, workdir / plan.file, tool)
    return {n: (workdir / n).read_bytes() for n in names}


def patch_wheel(path: str | Path, out_dir: str | Path, schemes: Sequence[str] = WHEEL_SCHEMES,
                pythons: Sequence[str] = (), providers: Sequence[Provider] | None = None,
                requirements: Sequence[str] = (), dry_run: bool = False, rewrite: bool = False,
                origins: dict[str, Origin] | None = None) -> Patched:
    """Fix one wheel into `out_dir` (same file name); dry_run plans without writing; `origins` go to its SBOM.

    rewrite=True writes through the deterministic writer even when nothing changed (the release does this so
    its output does not depend on how auditwheel stamped the zip); `fix` leaves right wheels byte-identical."""
    wheel = original = read_wheel(path)
    with tempfile.TemporaryDirectory(prefix="cyfes-fix-") as tmp:
        elfs = load_elfs(wheel, Path(tmp) / "in")
        for req in requirements:
            wheel = add_requirement(wheel, req)
        provs = list(wheel_providers(wheel) if providers is None else providers)
        lays = layouts(list(schemes), wheel_pythons(wheel, pythons))
        plans = plan_rpath(elfs, lays, list(wheel.members), provs, wheel.dist)
        todo = [p for p in plans.values() if p.changed]
        out = Path(out_dir) / wheel.filename
        changed = bool(todo) or wheel is not original
        if todo:
            wheel = with_members(wheel, _patched_members(wheel, todo, find_patchelf(), Path(tmp)))
            elfs = load_elfs(wheel, Path(tmp) / "check")
        if changed or rewrite:
            wheel = with_sbom(wheel, origins)
        if not dry_run:
            write_wheel(wheel, out) if changed or rewrite else shutil.copyfile(path, out)
    return Patched(str(path), out, changed, list(plans.values()), wheel, elfs, provs)
