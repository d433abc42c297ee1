"""Make one linux-64 `.conda` from one raw (un-repaired) wheel, per Python and variant (variants.py).

Each raw wheel is built with its variant's CUDA compiler (cpu, cuda118, cuda130).

The steps, each a function with plain inputs and outputs:
  wheel members -> conda layout (layouts.installed_path, scheme "conda")
  -> RPATH plan for the conda layout (elf.rpath.plan_rpath; libraries of declared dependencies live in $PREFIX/lib)
  -> patch (elf.patchelf.apply_plan, the one gateway that changes ELF files)
  -> depends/constrains (depends.py) -> linking check (linking.py) -> info/ (meta.py)
  -> .conda (archive.py) -> channel index (channel.py, py-rattler).
Nothing vendored: libcudart and libgomp come from the environment's cuda-cudart / libgomp packages, so a wheel
that auditwheel already repaired (a `<pkg>.libs/` directory) is refused.
"""
from __future__ import annotations

import configparser
import dataclasses
import posixpath
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..archive import Member
from ..elf.model import ElfFile, read_elf
from ..elf.patchelf import apply_plan
from ..elf.rpath import RpathPlan, plan_rpath
from ..errors import BadInputError, Problem, ReleaseError, raise_if_any
from ..layouts import InstallLayout, installed_path, layout
from ..providers import Provider
from ..wheel.archive import Wheel, load_elfs, read_wheel, record_text, shared_objects
from .archive import package_time, write_conda
from .channel import index_channel
from .depends import ElfFacts, Target, depends_and_constrains, elf_facts
from .linking import Link, check_links, problems_of, providers
from .meta import PREFIX_PLACEHOLDER, SUBDIR, PackageInfo, entry_point_script, info_entries
from .variants import CondaVariant, conda_name, variant_of_cuda

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CondaPackage:
    """One written package and what went into it (for the report table and the tests)."""

    path: Path
    info: PackageInfo
    target: Target
    plans: dict[str, RpathPlan]
    links: list[Link]
    files: list[str]


def cuda_version(wheel: Wheel, fallback: str | None = None) -> str | None:
    """The CUDA "major.minor" the wheel was built with: the build facts CMake wrote into it; else the nvcc
    identification ("..., release 13.0, V13.0.88") when its fatbinary is stored uncompressed; else `fallback`,
    the toolkit of the build that made the wheel in this run (a wheel packaging a prebuilt libcufes does not
    enable CUDA in CMake, so CMake leaves CUDA_VERSION empty)."""
    names = [n for n in wheel.members if n.endswith("/_build_info.py")]
    text = wheel.members[names[0]].data.decode() if names else ""
    if not re.search(r'^CUDA = "ON"', text, re.M):
        return None
    m = re.search(r'^CUDA_VERSION = "(\d+)\.(\d+)', text, re.M)
    if m:
        return f"{m.group(1)}.{m.group(2)}"
    for name in shared_objects(wheel):
        found = re.search(rb"release (\d+)\.(\d+), V", wheel.members[name].data)
        if found:
            return f"{int(found.group(1))}.{int(found.group(2))}"
    if fallback:
        return fallback
    raise BadInputError([Problem(wheel.filename, names[0], "CUDA build, but neither CUDA_VERSION nor an nvcc "
                                 "identification in its libraries says which CUDA")])


def refuse_vendored(wheel: Wheel, elfs: dict[str, ElfFile]) -> None:
    """A conda package must not carry its own libcudart/libgomp: they would shadow the environment's."""
    problems = [Problem(wheel.filename, m, f"vendored copy of a library conda provides ({providers(e.soname)[0]}); "
                        "build the conda package from the raw (un-repaired) wheel")
                for m, e in elfs.items() if e.soname and providers(e.soname)]
    raise_if_any(problems, BadInputError)


def conda_providers(elfs: dict[str, ElfFile]) -> list[Provider]:
    """Every DT_NEEDED that a conda package provides lands in $PREFIX/lib: tell the planner so."""
    inside = {posixpath.basename(m) for m in elfs} | {e.soname for e in elfs.values() if e.soname}
    needed = sorted({n for e in elfs.values() for n in e.needed} - inside)
    return [Provider(n, "{libdir}", providers(n)[0]) for n in needed if providers(n)]


def entry_points(wheel: Wheel) -> dict[str, str]:
    name = f"{wheel.dist_info}/entry_points.txt"
    if name not in wheel.members:
        return {}
    parser = configparser.ConfigParser(delimiters=("=",))
    parser.optionxform = str  # script names are case-sensitive
    parser.read_string(wheel.members[name].data.decode())
    return dict(parser["console_scripts"]) if parser.has_section("console_scripts") else {}


def metadata_field(wheel: Wheel, key: str) -> str:
    for line in wheel.text("METADATA").splitlines():
        if line.startswith(f"{key}:"):
            return line.split(":", 1)[1].strip()
    return ""


def home_of(wheel: Wheel, configured: str = "") -> str:
    """index.json's home: release.yaml's conda.home, else the wheel's Home-page or first Project-URL, else none."""
    if configured:
        return configured
    if metadata_field(wheel, "Home-page"):
        return metadata_field(wheel, "Home-page")
    url = metadata_field(wheel, "Project-URL")
    return url.split(",", 1)[1].strip() if "," in url else ""


def license_of(wheel: Wheel) -> str:
    """SPDX expression (metadata 2.4 License-Expression), else the older free-text License field."""
    return metadata_field(wheel, "License-Expression") or metadata_field(wheel, "License") or "LicenseRef-unknown"


def run_requirements(wheel: Wheel) -> list[str]:
    """Requires-Dist without extras or markers: what every install needs."""
    return [r for r in wheel.requires_dist if ";" not in r]


def payload(wheel: Wheel, lay: InstallLayout, patched: dict[str, bytes]) -> tuple[list[Member], dict[str, str]]:
    """Prefix-relative files (entry-point scripts included) and which of them carry the prefix placeholder."""
    record = f"{wheel.dist_info}/RECORD"
    site = lay.site_packages
    files: dict[str, Member] = {}
    for name, member in sorted(wheel.members.items()):
        if name == record or name.endswith(".dist-info/INSTALLER"):
            continue
        path = installed_path(lay, name, wheel.dist).path
        files[path] = Member(path, patched.get(name, member.data), member.executable, member.link)
    placeholders = {}
    for script, target in sorted(entry_points(wheel).items()):
        path = posixpath.join(lay.paths["scripts"], script)
        files[path] = Member(path, entry_point_script(target), executable=True)
        placeholders[path] = PREFIX_PLACEHOLDER
    files[f"{site}/{wheel.dist_info}/INSTALLER"] = Member(f"{site}/{wheel.dist_info}/INSTALLER", b"conda\n")
    files[f"{site}/{record}"] = Member(f"{site}/{record}", _record(files, site, record))
    return list(files.values()), placeholders


def _record(files: dict[str, Member], site: str, record: str) -> bytes:
    """RECORD relative to site-packages (pip's view), so `pip list` sees the package and pip uninstall knows it."""
    members = {posixpath.relpath(p, site): Member(posixpath.relpath(p, site), e.data)
               for p, e in files.items() if e.link is None}
    return record_text(members, record)


def license_text(wheel: Wheel, root: Path) -> bytes:
    for name in sorted(wheel.members):
        if name.startswith(f"{wheel.dist_info}/") and posixpath.basename(name).startswith(("LICENSE", "COPYING")):
            return wheel.members[name].data
    try:
        return (root / "LICENSE").read_bytes()
    except OSError as exc:
        raise ReleaseError([f"In {wheel.filename}: no LICENSE or COPYING in {wheel.dist_info}/ and none at "
                            f"{root / 'LICENSE'}; a conda package carries its license"]) from exc


def patch_elfs(wheel: Wheel, work: Path, lay: InstallLayout) -> tuple[dict[str, RpathPlan], dict[str, bytes]]:
    """Plan the conda layout's RPATH of every ELF and apply it; returns the plans and the patched bytes."""
    elfs = load_elfs(wheel, work)
    refuse_vendored(wheel, elfs)
    plans = plan_rpath(elfs, [lay], members=list(wheel.members), providers=conda_providers(elfs), dist=wheel.dist)
    for member, plan in plans.items():
        apply_plan(plan, work / member)
    return plans, {m: (work / m).read_bytes() for m in plans}


def model_payload(pkg: list[Member], work: Path) -> tuple[list[ElfFile], list[ElfFacts]]:
    """Re-read every patched ELF of the payload, labelled with its prefix path (what the check reports)."""
    elves, facts = [], []
    for e in pkg:
        if e.link is None and e.data[:4] == b"\x7fELF":
            f = work / "payload" / e.name
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(e.data)
            elves.append(read_elf(f, label=e.name))
            facts.append(elf_facts(f))
    return elves, facts


def variant_problems(wheel: Wheel, elves: list[ElfFile], v: CondaVariant) -> list[Problem]:
    """A raw wheel belongs to variant `v` only if its GPU backend, the CUDA runtime its ELFs need and the CUDA
    its build facts name all agree with the variant (a mixed-up build would ship a package that lies)."""
    problems = []
    if (cuda_version(wheel, v.cuda) is None) != (v.cuda is None):
        return [Problem(wheel.filename, "", f"variant {v.tag} needs a {'CPU-only' if v.cuda is None else 'CUDA'} "
                        "build, and this wheel is not one")]
    built = cuda_version(wheel, v.cuda)
    if built is not None and built != v.cuda:
        problems.append(Problem(wheel.filename, "cyfes/_build_info.py", f"says CUDA {built}, variant {v.tag} is "
                                f"CUDA {v.cuda}"))
    for elf in elves:
        wrong = [n for n in elf.needed if n.startswith("libcudart.so") and n != v.runtime_soname]
        problems += [Problem(wheel.filename, elf.path, f"needs {n}, variant {v.tag} ships {v.runtime_soname}")
                     for n in wrong]
    return problems


def package_python(wheel: Wheel, python: str | None) -> str:
    """The one CPython a package is for: the wheel's cpXY tag, or `python` for an abi3 wheel it serves."""
    if len(wheel.pythons) == 1 and python in (None, wheel.pythons[0]):
        return wheel.pythons[0]
    abi = wheel.tags.split("-")[0]
    if python and "-abi3-" in f"-{wheel.tags}-" and abi.startswith("cp") and \
            tuple(int(x) for x in python.split(".")) >= (int(abi[2]), int(abi[3:])):
        return python
    raise BadInputError([Problem(wheel.filename, "", "expected a wheel for exactly one CPython (cpXY tag), or an "
                                 f"abi3 wheel and a Python it serves (got {python or 'none'})")])


def make_package(wheel_path: Path, out_dir: Path, build_number: int = 0, extra_depends: tuple[str, ...] = (),
                 root: Path = Path("."), progress: Progress = lambda s: None,
                 cuda_fallback: str | None = None, variant: CondaVariant | None = None,
                 python: str | None = None, home: str = "") -> CondaPackage:
    """The `.conda` of one raw wheel, written into `out_dir/linux-64/`; raises before writing on any problem.
    With `variant`, the package is that variant's (its CUDA, checked against the wheel's ELF files); `python`
    picks the Python of a package made from an abi3 wheel (conda packages are per Python). The package is named
    after the wheel's distribution the conda way (variants.conda_name); a CUDA variant's build number is
    `build_number` + CUDA_BUILD_NUMBER_OFFSET, so the solver prefers it where the driver is present."""
    wheel = read_wheel(wheel_path)
    cuda = variant.cuda if variant is not None else cuda_version(wheel, cuda_fallback)
    target = Target(package_python(wheel, python), cuda)
    lay = layout("conda", target.python)
    with tempfile.TemporaryDirectory(prefix="cyfes-conda-") as tmp:
        work = Path(tmp)
        progress(f"conda: planning and patching RPATHs of {wheel.filename} for the conda layout")
        plans, patched = patch_elfs(wheel, work / "wheel", lay)
        pkg, placeholders = payload(wheel, lay, patched)
        elves, facts = model_payload(pkg, work)
    if variant is not None:
        raise_if_any(variant_problems(wheel, elves, variant), ReleaseError)
    depends, constrains = depends_and_constrains(elves, facts, target, run_requirements(wheel))
    depends = sorted(set(depends) | set(extra_depends))
    links = check_links(elves, {e.name for e in pkg}, depends, lay.libdir or "lib")
    v = variant or variant_of_cuda(cuda)
    number = build_number + v.build_number_offset
    build = v.build_string(target.python, number)
    raise_if_any(problems_of(links, f"{wheel.dist}-{wheel.version} ({build})"), ReleaseError)
    info = PackageInfo(conda_name(wheel.dist), wheel.version, build, number,
                       depends, constrains, license_of(wheel),
                       metadata_field(wheel, "Summary"), home_of(wheel, home), package_time() * 1000)
    meta = info_entries(info, pkg, placeholders, license_text(wheel, root))
    progress(f"conda: writing {info.dist}.conda ({len(pkg)} files)")
    path = write_conda(out_dir / SUBDIR / f"{info.dist}.conda", info.dist, pkg, meta)
    return CondaPackage(path, info, target, plans, links, sorted(e.name for e in pkg))


def make_channel(wheels: list[Path], channel: Path, build_number: int = 0, extra_depends: tuple[str, ...] = (),
                 root: Path = Path("."), progress: Progress = lambda s: None,
                 cuda_fallback: str | None = None, variants: list[CondaVariant | None] | None = None,
                 pythons: list[str] | None = None, home: str = "") -> list[CondaPackage]:
    """Every package into a staging directory first; only when all succeeded are they moved into `channel`
    and the channel indexed, so a bad input leaves `channel` as it was. `variants[i]` is wheel i's variant,
    `pythons[i]` its Python (needed for abi3 wheels)."""
    channel.parent.mkdir(parents=True, exist_ok=True)
    chosen = variants or [None] * len(wheels)
    versions = pythons or [None] * len(wheels)
    with tempfile.TemporaryDirectory(prefix=".conda-staging-", dir=channel.parent) as staging:
        built = [make_package(w, Path(staging), build_number, extra_depends, root, progress, cuda_fallback, v, py,
                              home)
                 for w, v, py in zip(wheels, chosen, versions)]
        (channel / SUBDIR).mkdir(parents=True, exist_ok=True)
        moved = []
        for pkg in built:
            dest = channel / SUBDIR / pkg.path.name
            shutil.move(str(pkg.path), dest)
            moved.append(dataclasses.replace(pkg, path=dest))
    progress(f"conda: indexing {channel} with py-rattler")
    index_channel(channel)
    return moved
