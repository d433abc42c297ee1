"""The release pipeline: a wheel stage and a conda stage side by side, and the work behind check, fix and verify.

Every function takes plain inputs (paths, release.yaml's model, "X.Y" -> interpreter, a progress callback) and
returns plain outputs (rows of the release table, reports, paths); nothing here prints or exits (cli.py does).

    wheel stage   per Python: build, auditwheel repair, RPATH fix, check, verify; publish what passed
    sdist         next to the wheels
    conda stage   per buildable variant and Python: reuse or build the raw wheel, package, index, verify in a prefix

The conda stage imports conda/package.py and verify/prefix.py when it runs: they need py-rattler
(cyfes-release[conda]), which checking or fixing a wheel must not.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .artifact import Artifact, WheelArtifact, open_artifact, open_conda, open_wheel
from .check import CheckReport, analyze
from .conda.meta import SUBDIR
from .conda.variants import Availability, CondaVariant, availability
from .config import LibraryStep, ReleaseConfig, smoke_program
from .elf.loader import SystemLibraries
from .elf.rpath import RpathPlan
from .errors import BadInputError, ReleaseError, raise_if_any
from .layouts import WHEEL_SCHEMES
from .program import SmokeProgram
from .providers import CURRENT, Provider, ProviderWheel, normalize, rows_from_record, table
from .report import Row, conda_row, failed_row, size_of, wheel_row
from .sbom import Origin, known_origins, sbom_member, vendored_files, wheel_origins
from .targets import python_versions, version_key
from .toolchain.openmp import library_dir
from .toolchain.pythons import default_pythons, find_pythons, which_python
from .verify.schemes import verify_wheel
from .verify.smoke import InstallResult
from .wheel.archive import Wheel, read_wheel
from .wheel.auditwheel import auditwheel_repair, excludes_for, providers_for
from .wheel.build import CudaLibrary, build_cuda_library, build_wheel, raw_wheels
from .wheel.declared import wheel_pythons
from .wheel.sdist import build_sdist
from .wheel.set_rpaths import patch_wheel

Progress = Callable[[str], None]

# The abi3 wheel is verified in every scheme with the Python that built it, and in a venv with each later one.
ABI3_EXTRA_SCHEMES = ("venv",)
# What a conda package is built from: a raw wheel older than any of these is rebuilt.
SOURCES = ("pyproject.toml", "CMakeLists.txt", "cmake", "cuda", "src")


# --- inputs ------------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def provider_table(config: ReleaseConfig, wheels: Sequence[str]) -> Iterator[None]:
    """The provider table for one command: the built-in one, release.yaml's rows, then the rows read from
    --provider-wheel (each replaces the rows of its distribution)."""
    rows = [ProviderWheel(p.dist, p.path, p.libraries) for p in config.providers]
    problems: list = []
    for path in wheels:
        try:
            w = read_wheel(path)
        except BadInputError as exc:
            problems += _named(exc, f"--provider-wheel {path}")
            continue
        found = rows_from_record(normalize(w.dist), list(w.members))
        if not found:
            problems.append(f"In --provider-wheel {path}: installs no shared library into site-packages")
        rows += found
    raise_if_any(problems, BadInputError)
    token = CURRENT.set(table(extra=rows))
    try:
        yield
    finally:
        CURRENT.reset(token)


def _named(exc: BadInputError, artifact: str) -> list:
    """The problems of `exc`, each naming the input it came from as the user gave it."""
    return [dataclasses.replace(q, artifact=artifact) if hasattr(q, "artifact") else q for q in exc.problems]


def check_schemes(chosen: Sequence[str]) -> list[str]:
    bad = [s for s in chosen if s not in WHEEL_SCHEMES]
    if bad:
        raise BadInputError([f"unknown scheme {', '.join(bad)} (allowed: {', '.join(WHEEL_SCHEMES)})"])
    return list(chosen)


def open_all(paths: Sequence[str], conda: bool = True) -> list[Artifact]:
    """Open every input (artifact.py) before doing anything, collecting every problem (exit 2 names them all)."""
    opened, problems = [], []
    for p in paths:
        try:
            if p.endswith(".conda") and not conda:
                raise BadInputError([f"In {p}: a conda package; this command takes wheels"])
            opened.append(open_artifact(p))
        except BadInputError as exc:
            problems += _named(exc, p)
    raise_if_any(problems, BadInputError)
    return opened


def choose_pythons(requested: Sequence[str] | None, config: ReleaseConfig, strict: bool,
                   progress: Progress) -> dict[str, str]:
    """"X.Y" -> interpreter for the Pythons asked for (else release.yaml's, else every supported one found)."""
    found = find_pythons()
    wanted = list(requested or config.python or default_pythons(found))
    missing = [v for v in wanted if v not in found]
    if missing and strict:
        raise BadInputError([f"Python {', '.join(missing)} not found on PATH or in pyenv (--strict)"])
    for v in missing:
        progress(f"warning: Python {v} not found on PATH or in pyenv; skipped")
    return {v: found[v] for v in wanted if v in found}


# --- where results go --------------------------------------------------------------------------------------------

def output_dir(out: Path, option: str) -> Path:
    """`out` must be a directory or not exist yet, in a directory that exists and that we may write to."""
    parent = out.resolve().parent
    if out.exists() and not out.is_dir():
        raise BadInputError([f"In {option} {out}: exists and is not a directory"])
    if not parent.is_dir():
        raise BadInputError([f"In {option} {out}: {parent} is not a directory"])
    if not os.access(out if out.exists() else parent, os.W_OK | os.X_OK):
        raise BadInputError([f"In {option} {out}: not writable"])
    return out


def staging(out: Path, option: str) -> Path:
    """A temp dir next to the output, so the final move is a rename and a failure leaves `out` untouched."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".release-staging-", dir=out.parent))
    except OSError as exc:
        raise BadInputError([f"In {option} {out}: cannot create a staging directory next to it "
                             f"({exc.strerror or exc})"]) from exc


def name_clashes(paths: Sequence[str]) -> list[str]:
    """Outputs take their input's file name: two inputs of one name would overwrite each other."""
    by_name: dict[str, list[str]] = {}
    for p in paths:
        by_name.setdefault(Path(p).name, []).append(p)
    return [f"In {' and '.join(ps)}: the same file name twice; outputs are named after their input, so one would "
            "overwrite the other" for ps in by_name.values() if len(ps) > 1]


def not_onto_inputs(paths: Sequence[str], out: Path) -> None:
    for p in paths:
        dest = out / Path(p).name
        if dest.exists() and Path(p).exists() and os.path.samefile(dest, p):
            raise BadInputError([f"In -o {out}: would overwrite the input {p}"])


def publish(files: Sequence[Path], out: Path) -> list[Path]:
    moved = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for f in files:
            dest = out / f.name
            os.replace(f, dest)
            moved.append(dest)
    except OSError as exc:
        raise ReleaseError([f"In {out}: cannot move the results in ({exc.strerror or exc})"]) from exc
    return moved


# --- check and fix -----------------------------------------------------------------------------------------------

def vendored_report(artifact: Artifact) -> dict:
    """The libraries a wheel vendors, with SHA-256 and origin (sbom.py), and the SBOMs it carries."""
    if not isinstance(artifact, WheelArtifact):
        return {"vendored": [], "sboms": []}
    members = artifact.wheel.members
    sbom_name = sbom_member(artifact.wheel.dist_info)  # only this member is read: others may be spooled GiBs
    recorded = wheel_origins({sbom_name: members[sbom_name].data} if sbom_name in members else {},
                             artifact.wheel.dist_info)
    files = vendored_files({n: m.data for n, m in members.items() if n.split("/", 1)[0].endswith(".libs")},
                           recorded=recorded)
    sboms = sorted(n for n in members if n.startswith(f"{artifact.wheel.dist_info}/sboms/"))
    return {"vendored": [dataclasses.asdict(f) for f in files], "sboms": sboms}


@dataclass
class FixResult:
    """What `fix` did to one wheel."""

    input: str
    output: Path
    changed: bool
    plans: list[RpathPlan]
    report: CheckReport
    """The check of the output: limitations (e.g. pip --target) are listed here, plainly."""


def fix_wheel(path: str | Path, out_dir: str | Path, schemes: Sequence[str] = WHEEL_SCHEMES,
              pythons: Sequence[str] = (), providers: Sequence[Provider] | None = None,
              requirements: Sequence[str] = (), system: SystemLibraries | None = None,
              dry_run: bool = False, rewrite: bool = False, origins: dict[str, Origin] | None = None) -> FixResult:
    """The RPATH step (wheel/set_rpaths.py), then the check of what it made."""
    p = patch_wheel(path, out_dir, schemes, pythons, providers, requirements, dry_run, rewrite, origins)
    report = analyze(WheelArtifact(Path(p.wheel.path), p.elfs, p.wheel), schemes, pythons, system, p.providers)
    return FixResult(p.input, p.output, p.changed, p.plans, report)


def fix_wheels(paths: Sequence[str], out: Path, schemes: Sequence[str], pythons: Sequence[str], dry_run: bool,
               allow_problems: bool) -> tuple[list[FixResult], list[Path | None]]:
    """`fix`: every wheel planned and checked in a staging dir; published into `out` only when every one passed
    (or allow_problems), never on a dry run. Returns the results and where each was written (None: not)."""
    output_dir(out, "-o")
    not_onto_inputs(paths, out)
    clashes = name_clashes(paths)
    try:
        opened = open_all(paths, conda=False)
    except BadInputError as exc:  # every problem in one run: the inputs' own, then the clashes
        raise BadInputError(list(exc.problems) + clashes) from exc
    raise_if_any(clashes, BadInputError)
    stage: Path | None = None
    try:
        # a dry run plans in the system's temp dir: nothing appears next to the output
        stage = Path(tempfile.mkdtemp(prefix="cyfes-fix-dry-run-")) if dry_run else staging(out.resolve(), "-o")
        results = [fix_wheel(a.path, stage, schemes, pythons, dry_run=dry_run) for a in opened]
        # a wheel that would still fail to load is not a release: nothing is written unless asked for
        write = not dry_run and (all(r.report.ok for r in results) or allow_problems)
        return results, publish([r.output for r in results], out) if write else [None] * len(results)
    finally:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)


def repair_wheel(raw: Path, out_dir: Path, strategy: str, schemes: Sequence[str], pythons: Sequence[str] = (),
                 excludes: Sequence[str] = (), policy: str = "auto", requirement: str = "",
                 library_dirs: Sequence[Path] = ()) -> FixResult:
    """auditwheel repair + RPATH fix + check; the fixed wheel lands in out_dir."""
    with tempfile.TemporaryDirectory(prefix="cyfes-repair-", dir=out_dir.parent) as tmp:
        repaired = auditwheel_repair(raw, Path(tmp), excludes_for(strategy, excludes), policy, library_dirs)
        reqs = [requirement] if strategy == "pip" and requirement else []
        return fix_wheel(repaired, out_dir, schemes, pythons, providers_for(strategy, requirement), reqs, rewrite=True,
                         origins=known_origins(library_dirs))  # what auditwheel grafted came from these dirs


# --- verify ------------------------------------------------------------------------------------------------------

def installed_pythons_for(wheel: Wheel) -> list[str]:
    """An abi3 or py3 wheel is verified with every Python it serves that is installed here (else this one)."""
    found = find_pythons()
    return [v for v in wheel_pythons(wheel) if v in found] or [f"{sys.version_info[0]}.{sys.version_info[1]}"]


def verify_wheel_with(artifact: WheelArtifact, v: str, schemes: Sequence[str], code: SmokeProgram,
                      progress: Progress) -> list[InstallResult]:
    """Install the wheel with Python `v` in each scheme and run the smoke program there."""
    python = which_python(v)
    if python is None:
        raise BadInputError([f"In {artifact.filename}: no Python {v} interpreter found to verify it with"])
    progress(f"verify {artifact.filename} with Python {v}: {', '.join(schemes)}")
    return verify_wheel(artifact.path, schemes, python, code)


def verify_conda(path: Path, progress: Progress, code: SmokeProgram) -> tuple[InstallResult, Row]:
    """Install the .conda into a fresh prefix (py-rattler) and run the smoke program; its result and row."""
    from .verify.prefix import verify_artifact  # py-rattler: cyfes-release[conda]
    result = verify_artifact(path, progress, code)
    return result, package_row(path, result)


def vendored_names(wheel: Wheel) -> list[str]:
    return sorted(Path(n).name for n in wheel.members if ".libs/" in n)


# --- the wheel stage ---------------------------------------------------------------------------------------------

def _abi3_verifiers(wheel_name: str, built_with: str, floor: str = "3.11") -> dict[str, str]:
    """For an abi3 wheel: the other supported Pythons it serves that are installed here ("X.Y" -> interpreter)."""
    if "-abi3-" not in wheel_name or not floor:
        return {}
    found = find_pythons()
    return {v: found[v] for v in python_versions()
            if version_key(v) >= version_key(floor) and v != built_with and v in found}


def package_name(config: ReleaseConfig, source: Path = Path(".")) -> str:
    """release.yaml's name, else [project] name of the source's pyproject.toml, else the directory's name."""
    if config.name:
        return config.name
    try:
        text = (source / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        text = ""
    project = text.split("[project]", 1)[1] if "[project]" in text else ""
    m = re.search(r'^name\s*=\s*["\']([^"\']+)["\']', project, re.M)
    return m.group(1) if m else source.resolve().name


def needs_openmp(raw: Path) -> bool:
    """Whether an ELF of the built wheel needs libgomp.so.1 (release.yaml openmp: auto vendors it only then)."""
    return any("libgomp.so.1" in elf.needed for elf in open_wheel(raw).elfs.values())


def library_step(config: ReleaseConfig) -> LibraryStep | None:
    """The library built once before the wheels, when release.yaml has one that applies to this release."""
    step = config.build.library
    if not (step.source or step.command) or (step.cuda_only and not config.cuda.enabled):
        return None
    return step


@dataclass
class WheelJob:
    """What every Python's wheel of one release shares."""

    config: ReleaseConfig
    strategy: str
    verify: bool
    stage: Path
    """The staging directory the fixed wheels are written to before publishing."""
    progress: Progress
    cuda: CudaLibrary | None = None
    """The library built once before the wheels (release.yaml build.library), or None."""
    gomp: Path | None = None
    """The directory of the libgomp to vendor, once a wheel needed it."""


def _verify_fixed(job: WheelJob, fixed: Path, python: str, extra: dict[str, str]) -> list[InstallResult]:
    """Every configured scheme with the building Python; a venv with each later Python an abi3 wheel serves."""
    config, progress = job.config, job.progress
    progress(f"verify {fixed.name}: {', '.join(config.schemes)}")
    results = verify_wheel(fixed, config.schemes, python, smoke_program(config))
    for other, exe in extra.items():
        progress(f"verify {fixed.name} with Python {other}: {ABI3_EXTRA_SCHEMES[0]}")
        results += verify_wheel(fixed, ABI3_EXTRA_SCHEMES, exe, smoke_program(config))
    return results


def wheel_for(job: WheelJob, v: str, python: str) -> tuple[Row, Path]:
    """One Python's wheel: build, repair (vendoring libgomp when it needs it), fix, check, verify."""
    config, progress = job.config, job.progress
    raw = build_wheel(python, v, job.cuda, job.strategy, log=progress, build=config.build)
    if job.gomp is None and config.openmp == "auto" and needs_openmp(raw):
        job.gomp = library_dir()
        progress(f"OpenMP runtime to vendor: {job.gomp}/libgomp.so.1 (Debian 11's, glibc >= 2.17)")
    progress(f"auditwheel repair + RPATH plan for {raw.name}")
    extra = _abi3_verifiers(raw.name, v, config.abi3)
    dirs = [*([job.gomp] if job.gomp else []), *(job.cuda.library_dirs if job.cuda else ())]
    fixed = repair_wheel(raw, job.stage, job.strategy, config.schemes, [v, *extra], config.exclude,
                         config.manylinux, config.cuda.requirement, dirs)
    for d in (d for plan in fixed.plans for d in plan.decisions if d.action != "kept"):
        progress(f"  rpath {d}")
    results = _verify_fixed(job, fixed.output, python, extra) if job.verify else []
    wheel = read_wheel(fixed.output)
    problems = "" if fixed.report.ok else "check: " + "; ".join(f.message for f in fixed.report.problems)
    return wheel_row(fixed.output, wheel.tags, vendored_names(wheel), results, problems), fixed.output


def wheel_stage(pythons: dict[str, str], config: ReleaseConfig, strategy: str, verify: bool,
                progress: Progress) -> tuple[list[Row], bool]:
    """Build the CUDA library once, then a wheel per Python ("X.Y" -> interpreter); publish what passed into
    release.yaml's output. A Python that fails gets a FAILED row; the others go on."""
    out = output_dir(Path(config.output), "release.yaml output")
    rows, good = [], []
    job = WheelJob(config, strategy, verify, staging(out.resolve(), "output"), progress)
    try:
        step = library_step(config)
        job.cuda = (build_cuda_library(strategy, log=progress, flavour=config.cuda.flavour, step=step,
                                       cuda=config.cuda) if step else None)
        for v, python in pythons.items():
            try:
                row, path = wheel_for(job, v, python)
            except BadInputError:
                raise
            except ReleaseError as exc:
                rows.append(failed_row(f"{package_name(config)} (Python {v})", str(exc)))
                progress(f"Python {v} failed: {exc}")
                continue
            rows.append(row)
            good += [path] if row.ok else []
        for p in publish(good, out):
            progress(f"wrote {p}")
    finally:
        shutil.rmtree(job.stage, ignore_errors=True)
    return rows, all(r.ok for r in rows)


def sdist_stage(config: ReleaseConfig, progress: Progress) -> list[Row]:
    """The sdist next to the wheels (built in a staging dir, then moved)."""
    out = Path(config.output)
    stage = staging(out.resolve(), "output")
    try:
        path = build_sdist(stage, log=progress)
        (published,) = publish([path], out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    progress(f"wrote {published}")
    return [Row(published.name, "sdist", size_of(published), result="ok (install tests: pytest -m release)")]


# --- the conda stage ---------------------------------------------------------------------------------------------

def shared_runtime_strategy(strategy: str) -> str:
    """Conda packages link the environment's libcudart, so they come from a shared-runtime build: the wheel
    strategies vendor and pip build one (they differ only after the raw wheel); static does not, so use vendor's."""
    return "vendor" if strategy == "static" else strategy


def newest_source(root: Path) -> float:
    paths = [root / s for s in SOURCES]
    files = [f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()]
    return max((f.stat().st_mtime for f in files), default=0.0)


def built_with_cuda(wheel: Path) -> bool:
    """Whether a raw wheel has the GPU backend (a CPU-only build of the same Python must not be reused)."""
    return any(n.endswith("/_build_info.py") and b'CUDA = "ON"' in m.data for n, m in read_wheel(wheel).members.items())


def _abi3_for(have: dict[str, Path], version: str) -> Path | None:
    """A raw abi3 wheel built with an older Python serves `version` too (no rebuild per Python)."""
    key = tuple(int(x) for x in version.split("."))
    return next((w for v, w in sorted(have.items()) if "-abi3-" in w.name
                 and tuple(int(x) for x in v.split(".")) <= key), None)


def conda_wheels(pythons: dict[str, str], avail: Availability, strategy: str, root: Path,
                 log: Progress, config: ReleaseConfig) -> dict[str, Path]:
    """Python -> raw wheel of variant `avail`: the one the wheel stage just built when it is of this variant's
    CUDA flavour (raw wheels are kept per flavour, build.raw_wheel_dir) and newer than every source file, else
    built now with the build step's functions (libcufes compiled once per variant)."""
    v = avail.variant
    strategy = shared_runtime_strategy(strategy)
    newest = newest_source(root)
    flavour = v.flavour.name if v.flavour else "cpu"
    have = {ver: w for ver, w in raw_wheels(strategy, flavour=flavour).items()
            if w.stat().st_mtime > newest and built_with_cuda(w) == (v.flavour is not None)}
    cuda_lib = None
    for version, exe in pythons.items():
        if version not in have and _abi3_for(have, version):
            have[version] = _abi3_for(have, version)
        if version in have:
            log(f"conda [{v.tag}]: reusing the raw wheel of this build: {have[version]}")
            continue
        if v.flavour is not None and cuda_lib is None:
            cuda_lib = build_cuda_library(strategy, log=log, flavour=v.flavour.name, step=config.build.library,
                                          cuda=config.cuda)
        by, by_exe = _raw_wheel_python(version, exe, config.abi3)
        have[by] = build_wheel(by_exe, by, cuda_lib, strategy, log=log, build=config.build)
        have[version] = have[by]
    return {ver: have[ver] for ver in pythons}


def _raw_wheel_python(version: str, exe: str, floor: str) -> tuple[str, str]:
    """The Python that builds the raw wheel a conda package of `version` is made from: for Pythons an abi3 wheel
    serves, the floor's interpreter when it is installed, so a package is the same bytes whichever other Pythons
    the release builds (an abi3 extension compiled with 3.12's headers differs from one compiled with 3.11's)."""
    if floor and version_key(version) >= version_key(floor):
        floor_exe = find_pythons().get(floor)
        if floor_exe:
            return floor, floor_exe
    return version, exe


def package_row(path: Path, result: InstallResult | None) -> Row:
    """A .conda's line of the release table, read from the package itself (the release and `verify` alike):
    its build and glibc floor, and the conda packages its libraries come from."""
    pkg = open_conda(path)
    index = json.loads(pkg.data("info/index.json"))
    glibc = next((c.split(">=")[1] for c in index.get("constrains", []) if c.startswith("__glibc")), "?")
    deps = sorted({link.detail for link in pkg.links() if link.kind == "dependency"})
    return conda_row(path, f"{SUBDIR} {index['build']} glibc>={glibc}", deps, result)


def skipped_row(avail: Availability, result: str = "") -> Row:
    """The visible line for a variant this machine cannot build (or whose build failed: `result`)."""
    return Row(f"cyfes conda variant {avail.variant.tag}", f"{SUBDIR} {avail.variant.tag}_py*",
               result=result or f"SKIPPED: {avail.reason}")


def chosen_variants(config: ReleaseConfig) -> list[Availability]:
    """release.yaml's conda.variants (each must be buildable here), else every variant this machine can build
    (cpu always; CUDA ones when cuda.enabled and their nvcc is found), the others listed as skipped."""
    explicit = tuple(config.conda.variants)
    avail = availability(explicit, fetch=True)
    if not config.cuda.enabled and not explicit:
        avail = [a if a.variant.cuda is None else Availability(a.variant, None, "cuda.enabled is false in "
                                                               "release.yaml") for a in avail]
    missing = [a for a in avail if explicit and not a.buildable]
    raise_if_any([f"conda variant {a.variant.tag} (listed in conda.variants): {a.reason}" for a in missing],
                 ReleaseError)
    return avail


@dataclass
class CondaInputs:
    """The raw wheels to package, one per (variant, Python), and the rows of variants whose build failed."""

    wheels: list[Path] = dataclasses.field(default_factory=list)
    variants: list[CondaVariant | None] = dataclasses.field(default_factory=list)
    pythons: list[str] = dataclasses.field(default_factory=list)
    failed: list[Row] = dataclasses.field(default_factory=list)


def _compiler_text(a: Availability) -> str:
    if not a.compiler:
        return "CPU only (CYFES_CUDA=OFF)"
    return f"nvcc {a.compiler.nvcc}" + (f", host compiler {a.compiler.host_cxx}" if a.compiler.host_cxx else "")


def conda_inputs(config: ReleaseConfig, pythons: dict[str, str], avail: list[Availability], root: Path,
                 progress: Progress) -> CondaInputs:
    """The raw wheel of every buildable variant and Python; one variant's compiler failing does not hide others."""
    got = CondaInputs()
    for a in avail:
        if not a.buildable:
            progress(f"conda [{a.variant.tag}]: SKIPPED: {a.reason}")
            continue
        progress(f"conda [{a.variant.tag}]: {_compiler_text(a)}")
        try:
            built = conda_wheels(pythons, a, config.cuda.strategy, root, progress, config)
        except BadInputError:
            raise
        except ReleaseError as exc:
            progress(f"conda [{a.variant.tag}] failed: {exc}")
            got.failed.append(skipped_row(a, "FAILED: " + str(exc).strip().splitlines()[0]))
            continue
        got.wheels += built.values()
        got.pythons += built.keys()
        got.variants += [a.variant] * len(built)
    return got


def conda_stage(config: ReleaseConfig, pythons: dict[str, str], progress: Progress) -> tuple[list[Row], bool]:
    """One package per Python ("X.Y" -> interpreter) and buildable variant in release.yaml's conda.channel,
    indexed, each verified in a fresh prefix when verify.enabled; variants this machine cannot build get a
    SKIPPED row naming why."""
    # py-rattler (cyfes-release[conda]): imported only when conda packages are made
    from .conda.package import make_channel
    from .verify.prefix import FIXTURE_CHANNEL, NUMPY_CACHE, prepare_fixtures, verify_packages

    root = Path(".")
    avail = chosen_variants(config)
    got = conda_inputs(config, pythons, avail, root, progress)
    channel = Path(config.conda.channel)
    built = make_channel(got.wheels, channel, config.conda.build_number, tuple(config.conda.depends), root, progress,
                         variants=got.variants, pythons=got.pythons, home=config.conda.home)
    results = {}
    if config.verify.enabled and built:
        progress(f"conda: fixture channel (TEST FIXTURES, never published) in {FIXTURE_CHANNEL}")
        fixtures = prepare_fixtures([p.path for p in built], FIXTURE_CHANNEL)
        for pkg in built:
            progress(f"conda: verify {pkg.path.name}: py-rattler install into a fresh prefix, smoke under LD_DEBUG")
            (results[pkg.path.name],) = verify_packages([pkg.path], channel, fixtures, NUMPY_CACHE,
                                                        code=smoke_program(config))
    rows = [package_row(p.path, results.get(p.path.name)) for p in built] + got.failed
    rows += [skipped_row(a) for a in avail if not a.buildable]
    return rows, not got.failed and all(r.ok for r in results.values())


# --- the whole release -------------------------------------------------------------------------------------------

def release(config: ReleaseConfig, progress: Progress) -> tuple[list[Row], bool]:
    """Wheels for every configured Python, the sdist, then conda packages (when conda.enabled): one table."""
    pythons = choose_pythons(None, config, False, progress)
    rows, ok = wheel_stage(pythons, config, config.cuda.strategy, config.verify.enabled, progress)
    rows += sdist_stage(config, progress)
    if config.conda.enabled:
        conda_pythons = choose_pythons(list(config.conda_pythons) or None, config, False, progress)
        crow, cok = conda_stage(config, conda_pythons, progress)
        rows, ok = rows + crow, ok and cok
    return rows, ok
