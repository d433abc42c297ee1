"""Command line of the release tool: the only module that prints or exits.

    python -m tools.release                      wheels + conda packages for every target, verified, one table
    python -m tools.release wheel [--python X.Y ...] [--strict]
    python -m tools.release check ARTIFACT... [--json] [--provider-wheel W]
    python -m tools.release fix WHEEL... -o DIR [--json] [--allow-problems] [--provider-wheel W]
    python -m tools.release verify ARTIFACT...
    python -m tools.release conda [--python X.Y ...]

Installed from tools/ (tools/pyproject.toml) the same commands run as `cyfes-release ...`.

Exit codes: 0 ok; 1 check problems, a failed build or verification, `fix` with a problem left (nothing written
unless --allow-problems); 2 bad input (malformed archive, ELF or release.yaml; unknown Python with --strict): one
line per problem, nothing written to the output directory.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import re
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

from .archive import LIMITS
from .config import CONFIG_NAME, ReleaseConfig, load_config, smoke_program
from .errors import BadInputError, ReleaseError

EXIT_OK, EXIT_PROBLEMS, EXIT_BAD_INPUT = 0, 1, 2


class Progress:
    """One line per step with the elapsed time, on stderr (stdout stays for tables and --json)."""

    def __init__(self, quiet: bool = False) -> None:
        self.start, self.quiet = time.monotonic(), quiet

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[{time.monotonic() - self.start:7.1f}s] {message}", file=sys.stderr, flush=True)


# Installed (tools/pyproject.toml) the package is cyfes_release and runs as `cyfes-release`; in a checkout it is
# tools.release and runs as `python -m tools.release`.
PROG = "python -m tools.release" if __package__ == "tools.release" else "cyfes-release"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Build, repair, check and verify wheels and conda "
                                "packages whose libraries must resolve after install (configured by release.yaml).")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    p.add_argument("--config", help=f"the release config (default: ./{CONFIG_NAME} when there is one)")
    sub = p.add_subparsers(dest="command")
    w = sub.add_parser("wheel", help="build, repair, fix and verify a wheel per Python")
    w.add_argument("--python", action="append", metavar="X.Y", help="only these Pythons (repeatable)")
    w.add_argument("--strict", action="store_true", help="a configured Python that is not found is an error")
    w.add_argument("--strategy", choices=("vendor", "pip", "static"), help="override cuda.strategy")
    w.add_argument("--no-verify", action="store_true", help="skip the install tests")
    c = sub.add_parser("check", help="where every library of every ELF resolves after install, per scheme")
    c.add_argument("artifacts", nargs="+", metavar="ARTIFACT")
    c.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    c.add_argument("--scheme", action="append", help="schemes to check (default: release.yaml's)")
    c.add_argument("--provider-wheel", action="append", default=[], metavar="WHEEL",
                   help="a wheel that provides libraries (its RECORD says where they land); repeatable")
    f = sub.add_parser("fix", help="apply the RPATH plan to already-repaired wheels")
    f.add_argument("wheels", nargs="+", metavar="WHEEL")
    f.add_argument("-o", "--output", required=True, help="directory for the fixed wheels")
    f.add_argument("--dry-run", action="store_true", help="plan and report, write nothing")
    f.add_argument("--scheme", action="append", help="schemes to plan for (default: release.yaml's)")
    f.add_argument("--provider-wheel", action="append", default=[], metavar="WHEEL",
                   help="a wheel that provides libraries (its RECORD says where they land); repeatable")
    f.add_argument("--allow-problems", action="store_true",
                   help="write the fixed wheels even when a problem remains (the exit code is still 1)")
    f.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    v = sub.add_parser("verify", help="install into fresh environments and run the smoke test under LD_DEBUG")
    v.add_argument("artifacts", nargs="+", metavar="ARTIFACT")
    v.add_argument("--scheme", action="append", help="schemes to verify (default: release.yaml's)")
    v.add_argument("--smoke", help="Python code to run (default: release.yaml verify.smoke)")
    k = sub.add_parser("conda", help="conda packages for every configured Python into the local channel")
    k.add_argument("--python", action="append", metavar="X.Y")
    k.add_argument("--strict", action="store_true")
    return p


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("cyfes-release")
    except PackageNotFoundError:  # run from a checkout without installing tools/
        return "(not installed)"


def console_main() -> None:
    """The `cyfes-release` entry point (and `python -m tools.release`)."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader of stdout went away (`cyfes-release check X | head`): Python's documented way out, no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_PROBLEMS
    sys.exit(code)


class Interrupted(BaseException):
    """SIGTERM or SIGINT, raised where the program is so that every `finally` removes its staging files."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum: int, frame) -> None:
    for s in (signal.SIGTERM, signal.SIGINT):  # a second signal must not cut the cleanup short
        signal.signal(s, signal.SIG_IGN)
    raise Interrupted(signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    progress = Progress(quiet=getattr(args, "json", False))
    in_main_thread = threading.current_thread() is threading.main_thread()  # signal.signal works only there
    previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGTERM, signal.SIGINT)} if in_main_thread else {}
    try:
        config = load_config(args.config)
        token = LIMITS.set(config.limits)
        try:
            with _provider_table(config, getattr(args, "provider_wheel", [])):
                return COMMANDS[args.command or "all"](args, config, progress)
        finally:
            LIMITS.reset(token)
    except Interrupted as exc:
        print(f"interrupted by {exc}; temporary files removed", file=sys.stderr)
        return 128 + exc.signum
    except BadInputError as exc:
        for problem in exc.problems:  # one line each, whatever a library put into its message
            print(f"error: {' '.join(str(problem).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ReleaseError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_PROBLEMS
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# --- check / fix / verify ------------------------------------------------------------------------------------

@contextlib.contextmanager
def _provider_table(config: ReleaseConfig, wheels: Sequence[str]):
    """The provider table for one command: the built-in one, release.yaml's rows, then the rows read from
    --provider-wheel (each replaces the rows of its distribution)."""
    from .providers import CURRENT, ProviderWheel, normalize, rows_from_record, table
    from .wheel.archive import read_wheel
    rows = [ProviderWheel(p.dist, p.path, p.libraries) for p in config.providers]
    problems: list = []
    for path in wheels:
        try:
            w = read_wheel(path)
        except BadInputError as exc:
            problems += [dataclasses.replace(q, artifact=f"--provider-wheel {path}") if hasattr(q, "artifact") else q
                         for q in exc.problems]
            continue
        found = rows_from_record(normalize(w.dist), list(w.members))
        if not found:
            problems.append(f"In --provider-wheel {path}: installs no shared library into site-packages")
        rows += found
    if problems:
        raise BadInputError(problems)
    token = CURRENT.set(table(extra=rows))
    try:
        yield
    finally:
        CURRENT.reset(token)


def _schemes(args, config: ReleaseConfig) -> list[str]:
    from .layouts import WHEEL_SCHEMES
    chosen = args.scheme or list(config.schemes)
    bad = [s for s in chosen if s not in WHEEL_SCHEMES]
    if bad:
        raise BadInputError([f"unknown scheme {', '.join(bad)} (allowed: {', '.join(WHEEL_SCHEMES)})"])
    return chosen


def _open_all(paths: Sequence[str], conda: bool = True) -> list:
    """Open every input (artifact.py) before doing anything, collecting every problem (exit 2 names them all)."""
    from .artifact import open_artifact
    opened, problems = [], []
    for p in paths:
        try:
            if p.endswith(".conda") and not conda:
                raise BadInputError([f"In {p}: a conda package; this command takes wheels"])
            opened.append(open_artifact(p))
        except BadInputError as exc:
            problems += [dataclasses.replace(q, artifact=p) if hasattr(q, "artifact") else q for q in exc.problems]
    if problems:
        raise BadInputError(problems)
    return opened


def cmd_check(args, config: ReleaseConfig, progress: Progress) -> int:
    from .check import analyze
    schemes = _schemes(args, config)
    artifacts = _open_all(args.artifacts)
    reports = [analyze(artifact, schemes, config.python) for artifact in artifacts]
    vendored = [_vendored_json(a) for a in artifacts]
    if args.json:
        print(json.dumps([dict(_report_json(r), **v) for r, v in zip(reports, vendored)], indent=2))
    else:
        for r, v in zip(reports, vendored):
            _print_report(r)
            _print_vendored(v)
    return EXIT_OK if all(r.ok for r in reports) else EXIT_PROBLEMS


def _vendored_json(artifact) -> dict:
    """The libraries a wheel vendors, with SHA-256 and origin (sbom.py), and the SBOMs it carries."""
    from .sbom import vendored_files
    if artifact.kind != "wheel":
        return {"vendored": [], "sboms": []}
    members = artifact.wheel.members
    files = vendored_files({n: m.data for n, m in members.items() if n.split("/", 1)[0].endswith(".libs")})
    sboms = sorted(n for n in members if n.startswith(f"{artifact.wheel.dist_info}/sboms/"))
    return {"vendored": [dataclasses.asdict(f) for f in files], "sboms": sboms}


def _print_vendored(v: dict) -> None:
    from .sbom import Origin, VendoredFile, origin_text
    for f in v["vendored"]:
        origin = Origin(**f["origin"]) if f["origin"] else None
        vf = VendoredFile(f["member"], f["original"], f["sha256"], f["size"], origin)
        print(f"  vendored {f['member']} sha256 {f['sha256']}: {origin_text(vf)}")
    if v["vendored"]:
        print(f"  SBOM: {', '.join(v['sboms']) or 'none in the wheel (fix or the release writes one)'}")


def _glibc_json(floor) -> dict:
    return {"glibc": floor.text, "manylinux": floor.manylinux, "symbol": floor.symbol, "library": floor.library}


def _report_json(report) -> dict:
    floor = report.glibc_floor
    return {"artifact": report.artifact, "kind": report.kind, "ok": report.ok, "layouts": report.layouts,
            "glibc": {**_glibc_json(floor), "file": floor.file},
            "glibc_per_file": {m: _glibc_json(f) for m, f in sorted(report.glibc.items())},
            "libraries": [dataclasses.asdict(line) for line in report.libraries],
            "findings": [dataclasses.asdict(f) for f in report.findings],
            "resolutions": {k: [dataclasses.asdict(r) for r in v] for k, v in report.resolutions.items()}}


def _print_report(report) -> None:
    head = "OK" if report.ok else f"{len(report.problems)} problem(s)"
    print(f"{report.artifact}: {head} ({len(report.layouts)} layouts: {', '.join(report.layouts)})")
    floor = report.glibc_floor
    print(f"  loads on glibc >= {floor.text} ({floor.manylinux}), set by {_set_by(floor)}")
    width = max((len(m) for m in report.glibc), default=0)
    for member, f in sorted(report.glibc.items()):
        print(f"    {member.ljust(width)}  glibc >= {f.text:6s} {_set_by(f, with_file=False)}")
    _print_libraries(report.libraries)
    for f in report.findings:
        print(f"  {f.severity.upper()}: In {report.artifact}, {f.file} [{f.scheme}]: {f.message}")


def _print_libraries(lines) -> None:
    """Per ELF, each DT_NEEDED: the loader's answer, where (relative to the install's root), in how many layouts."""
    print("  libraries (DT_NEEDED: status, where found once installed, layouts where it resolves):")
    width = max((len(line.needed) for line in lines), default=0)
    current = None
    for line in lines:
        if line.file != current:
            current = line.file
            print(f"    {line.file}")
        if line.status == "provided":
            where = f"provided by {line.provider}"
        elif line.status == "preloaded":
            where = f"provided only if preloaded: {line.provider} (no RPATH entry reaches it)"
        else:
            where = line.found
        print(f"      {line.needed.ljust(width)}  {line.status:9s} {where}  [{line.resolved}]")


def _set_by(floor, with_file: bool = True) -> str:
    if not floor.symbol:
        return "no versioned glibc symbol"
    where = f" in {floor.file}" if with_file and floor.file else ""
    return f"{floor.symbol} from {floor.library}{where}"


def _output_dir(out: Path, option: str) -> Path:
    """`out` must be a directory or not exist yet, in a directory that exists and that we may write to."""
    parent = out.resolve().parent
    if out.exists() and not out.is_dir():
        raise BadInputError([f"In {option} {out}: exists and is not a directory"])
    if not parent.is_dir():
        raise BadInputError([f"In {option} {out}: {parent} is not a directory"])
    if not os.access(out if out.exists() else parent, os.W_OK | os.X_OK):
        raise BadInputError([f"In {option} {out}: not writable"])
    return out


def _staging(out: Path, option: str) -> Path:
    """A temp dir next to the output, so the final move is a rename and a failure leaves `out` untouched."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".release-staging-", dir=out.parent))
    except OSError as exc:
        raise BadInputError([f"In {option} {out}: cannot create a staging directory next to it "
                             f"({exc.strerror or exc})"]) from exc


def _name_clashes(paths: Sequence[str]) -> list[str]:
    """Outputs take their input's file name: two inputs of one name would overwrite each other."""
    by_name: dict[str, list[str]] = {}
    for p in paths:
        by_name.setdefault(Path(p).name, []).append(p)
    return [f"In {' and '.join(ps)}: the same file name twice; outputs are named after their input, so one would "
            "overwrite the other" for ps in by_name.values() if len(ps) > 1]


def _not_onto_inputs(paths: Sequence[str], out: Path) -> None:
    for p in paths:
        dest = out / Path(p).name
        if dest.exists() and Path(p).exists() and os.path.samefile(dest, p):
            raise BadInputError([f"In -o {out}: would overwrite the input {p}"])


def _publish(files: Sequence[Path], out: Path) -> list[Path]:
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


def cmd_fix(args, config: ReleaseConfig, progress: Progress) -> int:
    from .wheel.set_rpaths import fix_wheel
    schemes = _schemes(args, config)
    out = _output_dir(Path(args.output), "-o")
    _not_onto_inputs(args.wheels, out)
    clashes = _name_clashes(args.wheels)
    try:
        opened = _open_all(args.wheels, conda=False)
    except BadInputError as exc:  # every problem in one run: the inputs' own, then the clashes
        raise BadInputError(list(exc.problems) + clashes) from exc
    if clashes:
        raise BadInputError(clashes)
    staging: Path | None = None
    try:
        # a dry run plans in the system's temp dir: nothing appears next to the output
        staging = Path(tempfile.mkdtemp(prefix="cyfes-fix-dry-run-")) if args.dry_run else _staging(out.resolve(), "-o")
        results = [fix_wheel(a.path, staging, schemes, config.python, dry_run=args.dry_run) for a in opened]
        ok = all(r.report.ok for r in results)
        # a wheel that would still fail to load is not a release: nothing is written unless asked for
        write = not args.dry_run and (ok or args.allow_problems)
        published = _publish([r.output for r in results], out) if write else [None] * len(results)
        if args.json:
            print(json.dumps([_fix_json(r, p) for r, p in zip(results, published)], indent=2))
        else:
            for r in results:
                _print_fix(r, args.dry_run, write)
            if not ok and not args.dry_run and not write:
                n = sum(len(r.report.problems) for r in results)
                print(f"wrote nothing: {n} problem(s) remain (--allow-problems writes the wheels anyway)",
                      file=sys.stderr)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return EXIT_OK if ok else EXIT_PROBLEMS


def _fix_json(result, published: Path | None) -> dict:
    return {"input": result.input, "output": str(published) if published else None, "written": bool(published),
            "changed": result.changed, "ok": result.report.ok,
            "rpath": {p.file: {"old_rpath": list(p.old_rpath), "old_runpath": list(p.old_runpath),
                               "new_rpath": list(p.new_rpath), "changed": p.changed,
                               "decisions": [dataclasses.asdict(d) for d in p.decisions]} for p in result.plans},
            "findings": [dataclasses.asdict(f) for f in result.report.findings],
            "libraries": [dataclasses.asdict(line) for line in result.report.libraries]}


def _print_fix(result, dry_run: bool, written: bool) -> None:
    verb = "would write" if dry_run else "wrote" if written else "did not write"
    state = "patched" if result.changed else "already right, copied unchanged"
    print(f"{Path(result.input).name}: {state}; {verb} {result.output.name}")
    for plan in result.plans:
        for d in plan.decisions:
            print(f"  {d}")
    for f in result.report.findings:
        print(f"  {f.severity.upper()}: {f.file} [{f.scheme}]: {f.message}")


def cmd_verify(args, config: ReleaseConfig, progress: Progress) -> int:
    from .report import wheel_row
    from .toolchain.pythons import which_python
    from .verify.schemes import verify_wheel
    schemes = _schemes(args, config)
    code = smoke_program(config, args.smoke)
    rows, ok = [], True
    for artifact in _open_all(args.artifacts):
        if artifact.kind == "conda":
            row, good = _verify_conda(artifact.path, progress, code)
            rows.append(row)
            ok &= good
            continue
        for v in artifact.wheel.pythons or _installed_pythons_for(artifact.wheel):
            python = which_python(v)
            if python is None:
                raise BadInputError([f"In {artifact.filename}: no Python {v} interpreter found to verify it with"])
            progress(f"verify {artifact.filename} with Python {v}: {', '.join(schemes)}")
            results = verify_wheel(artifact.path, schemes, python, code)
            _print_verify(results)
            ok &= all(r.ok for r in results)
            rows.append(wheel_row(artifact.path, artifact.wheel.tags, _vendored(artifact.wheel), results))
    _print_table(rows)
    return EXIT_OK if ok else EXIT_PROBLEMS


def _installed_pythons_for(wheel) -> list[str]:
    """An abi3 or py3 wheel is verified with every Python it serves that is installed here (else this one)."""
    from .artifact import wheel_pythons
    from .toolchain.pythons import find_pythons
    found = find_pythons()
    return [v for v in wheel_pythons(wheel) if v in found] or [f"{sys.version_info[0]}.{sys.version_info[1]}"]


def _verify_conda(path: Path, progress: Progress, code: str):
    from .conda.release import package_row
    from .verify.prefix import verify_artifact
    result = verify_artifact(path, progress, code)
    _print_verify([result])
    root = os.path.realpath(result.root) + "/" if result.root else None
    for name, where in sorted(result.loaded.items()):
        if root and os.path.realpath(where).startswith(root):  # what the prefix provided, whatever the package
            print(f"    loaded {name} from {where}")
    if "backends" in result.smoke and "cpu_vs_numpy" in result.smoke:  # cyfes's own report
        cuda = result.smoke["backends"]["cuda"]
        print(f"    cuda usable: {cuda['usable']} ({cuda.get('reason') or cuda['devices']}); CPU FES vs numpy "
              f"{result.smoke['cpu_vs_numpy']:.1e}; GPU vs CPU {result.smoke.get('gpu_vs_cpu', 'not run')}")
    for problem in result.problems:
        print(f"    {problem}")
    return package_row(path, result), result.ok


def _print_verify(results) -> None:
    for r in results:
        extra = f" loaded from the install: {', '.join(Path(p).name for p in r.inside)}" if r.inside else ""
        print(f"  {r.artifact} [{r.scheme} {r.python}] {r.status.upper()} ({r.seconds:.1f}s) {r.detail}{extra}")


# --- the release ---------------------------------------------------------------------------------------------

def _pythons(requested: Sequence[str] | None, config: ReleaseConfig, strict: bool, progress: Progress) -> dict:
    from .toolchain.pythons import default_pythons, find_pythons
    found = find_pythons()
    wanted = list(requested or config.python or default_pythons(found))
    missing = [v for v in wanted if v not in found]
    if missing and strict:
        raise BadInputError([f"Python {', '.join(missing)} not found on PATH or in pyenv (--strict)"])
    for v in missing:
        progress(f"warning: Python {v} not found on PATH or in pyenv; skipped")
    return {v: found[v] for v in wanted if v in found}


def _vendored(wheel) -> list[str]:
    return sorted(Path(n).name for n in wheel.members if ".libs/" in n)


def _print_table(rows) -> None:
    from .report import table_lines
    for line in table_lines(rows):
        print(line)


# The abi3 wheel is verified in every scheme with the Python that built it, and in a venv with each later one.
ABI3_EXTRA_SCHEMES = ("venv",)


def _abi3_verifiers(wheel_name: str, built_with: str, floor: str = "3.11") -> dict[str, str]:
    """For an abi3 wheel: the other supported Pythons it serves that are installed here ("X.Y" -> interpreter)."""
    from .targets import python_versions, version_key
    from .toolchain.pythons import find_pythons
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
    from .artifact import open_wheel
    return any("libgomp.so.1" in elf.needed for elf in open_wheel(raw).elfs.values())


def _library_step(config: ReleaseConfig):
    step = config.build.library
    if not (step.source or step.command) or (step.cuda_only and not config.cuda.enabled):
        return None
    return step


def release_wheels(pythons: dict[str, str], config: ReleaseConfig, strategy: str, verify: bool,
                   progress: Progress) -> tuple[list, bool]:
    """Build the CUDA library once, then per Python: build, repair, fix, verify; publish what passed."""
    from .report import failed_row, wheel_row
    from .toolchain.openmp import library_dir
    from .verify.schemes import verify_wheel
    from .wheel.archive import read_wheel
    from .wheel.auditwheel import repair_wheel
    from .wheel.build import build_cuda_library, build_wheel
    out = _output_dir(Path(config.output), "release.yaml output")
    rows, good, ok = [], [], True
    staging: Path | None = None
    gomp: Path | None = None
    try:
        staging = _staging(out.resolve(), "output")
        step = _library_step(config)
        cuda = (build_cuda_library(strategy, log=progress, flavour=config.cuda.flavour, step=step,
                                   cuda=config.cuda) if step else None)
        for v, python in pythons.items():
            try:
                raw = build_wheel(python, v, cuda, strategy, log=progress, build=config.build)
                if gomp is None and config.openmp == "auto" and needs_openmp(raw):
                    gomp = library_dir()
                    progress(f"OpenMP runtime to vendor: {gomp}/libgomp.so.1 (Debian 11's, glibc >= 2.17)")
                progress(f"auditwheel repair + RPATH plan for {raw.name}")
                extra = _abi3_verifiers(raw.name, v, config.abi3)
                fixed = repair_wheel(raw, staging, strategy, config.schemes, [v, *extra], config.exclude,
                                     config.manylinux, config.cuda.requirement,
                                     [*([gomp] if gomp else []), *(cuda.library_dirs if cuda else ())])
                for plan in fixed.plans:
                    for d in plan.decisions:
                        if d.action != "kept":
                            progress(f"  rpath {d}")
                results = []
                if verify:
                    progress(f"verify {fixed.output.name}: {', '.join(config.schemes)}")
                    results = verify_wheel(fixed.output, config.schemes, python, smoke_program(config))
                    for other, exe in extra.items():  # the abi3 wheel on the later Pythons it serves
                        progress(f"verify {fixed.output.name} with Python {other}: {ABI3_EXTRA_SCHEMES[0]}")
                        results += verify_wheel(fixed.output, ABI3_EXTRA_SCHEMES, exe, smoke_program(config))
                wheel = read_wheel(fixed.output)
                row = wheel_row(fixed.output, wheel.tags, _vendored(wheel), results,
                                "" if fixed.report.ok else "check: " + "; ".join(f.message for f in fixed.report.problems))
                ok &= row.ok
                if row.ok:
                    good.append(fixed.output)
                rows.append(row)
            except BadInputError:
                raise
            except ReleaseError as exc:
                ok = False
                rows.append(failed_row(f"{package_name(config)} (Python {v})", str(exc)))
                progress(f"Python {v} failed: {exc}")
        for p in _publish(good, out):
            progress(f"wrote {p}")
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return rows, ok


def cmd_wheel(args, config: ReleaseConfig, progress: Progress) -> int:
    pythons = _pythons(args.python, config, args.strict, progress)
    strategy = args.strategy or config.cuda.strategy
    rows, ok = release_wheels(pythons, config, strategy, not args.no_verify and config.verify.enabled, progress)
    _print_table(rows)
    return EXIT_OK if ok else EXIT_PROBLEMS


def conda_release(pythons: dict[str, str], config: ReleaseConfig, progress: Progress) -> tuple[list, bool]:
    """The conda half (tools.release.conda), imported only when conda packages are made."""
    from .conda.release import release
    return release(config, pythons, progress)


def cmd_conda(args, config: ReleaseConfig, progress: Progress) -> int:
    wanted = args.python or list(config.conda_pythons) or None
    pythons = _pythons(wanted, config, args.strict, progress)
    rows, ok = conda_release(pythons, config, progress)
    _print_table(rows)
    return EXIT_OK if ok else EXIT_PROBLEMS


def release_sdist(config: ReleaseConfig, progress: Progress) -> list:
    """The sdist next to the wheels (built in a staging dir, then moved)."""
    from .report import Row, size_of
    from .wheel.sdist import build_sdist
    out = Path(config.output)
    staging = _staging(out.resolve(), "output")
    try:
        path = build_sdist(staging, log=progress)
        (published,) = _publish([path], out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    progress(f"wrote {published}")
    return [Row(published.name, "sdist", size_of(published), result="ok (install tests: pytest -m release)")]


def cmd_all(args, config: ReleaseConfig, progress: Progress) -> int:
    pythons = _pythons(None, config, False, progress)
    rows, ok = release_wheels(pythons, config, config.cuda.strategy, config.verify.enabled, progress)
    rows += release_sdist(config, progress)
    if config.conda.enabled:
        conda_pythons = _pythons(list(config.conda_pythons) or None, config, False, progress)
        crow, cok = conda_release(conda_pythons, config, progress)
        rows, ok = rows + crow, ok and cok
    _print_table(rows)
    progress(f"release {'done' if ok else 'FAILED'}")
    return EXIT_OK if ok else EXIT_PROBLEMS


COMMANDS: dict[str, Callable[..., int]] = {"check": cmd_check, "fix": cmd_fix, "verify": cmd_verify,
                                            "wheel": cmd_wheel, "conda": cmd_conda, "all": cmd_all}
