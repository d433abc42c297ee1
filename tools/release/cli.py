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
import dataclasses
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from . import pipeline
from .archive import LIMITS
from .artifact import WheelArtifact
from .check import analyze
from .config import CONFIG_NAME, ReleaseConfig, load_config, smoke_program
from .errors import BadInputError, ReleaseError
from .report import table_lines, wheel_row
from .sbom import Origin, VendoredFile, origin_text

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
            with pipeline.provider_table(config, getattr(args, "provider_wheel", [])):
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

def _schemes(args, config: ReleaseConfig) -> list[str]:
    return pipeline.check_schemes(args.scheme or list(config.schemes))


def cmd_check(args, config: ReleaseConfig, progress: Progress) -> int:
    schemes = _schemes(args, config)
    artifacts = pipeline.open_all(args.artifacts)
    reports = [analyze(artifact, schemes, config.python) for artifact in artifacts]
    vendored = [pipeline.vendored_report(a) for a in artifacts]
    if args.json:
        print(json.dumps([dict(_report_json(r), **v) for r, v in zip(reports, vendored)], indent=2))
    else:
        for r, v in zip(reports, vendored):
            _print_report(r)
            _print_vendored(v)
    return EXIT_OK if all(r.ok for r in reports) else EXIT_PROBLEMS


def _print_vendored(v: dict) -> None:
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


def cmd_fix(args, config: ReleaseConfig, progress: Progress) -> int:
    schemes = _schemes(args, config)
    results, published = pipeline.fix_wheels(args.wheels, Path(args.output), schemes, config.python, args.dry_run,
                                             args.allow_problems)
    ok = all(r.report.ok for r in results)
    written = any(p is not None for p in published)
    if args.json:
        print(json.dumps([_fix_json(r, p) for r, p in zip(results, published)], indent=2))
    else:
        for r in results:
            _print_fix(r, args.dry_run, written)
        if not ok and not args.dry_run and not written:
            n = sum(len(r.report.problems) for r in results)
            print(f"wrote nothing: {n} problem(s) remain (--allow-problems writes the wheels anyway)", file=sys.stderr)
    return EXIT_OK if ok else EXIT_PROBLEMS


def cmd_verify(args, config: ReleaseConfig, progress: Progress) -> int:
    schemes = _schemes(args, config)
    code = smoke_program(config, args.smoke)
    rows, ok = [], True
    for artifact in pipeline.open_all(args.artifacts):
        if not isinstance(artifact, WheelArtifact):
            result, row = pipeline.verify_conda(artifact.path, progress, code)
            _print_conda_verify(result)
            rows.append(row)
            ok &= result.ok
            continue
        for v in artifact.wheel.pythons or pipeline.installed_pythons_for(artifact.wheel):
            results = pipeline.verify_wheel_with(artifact, v, schemes, code, progress)
            _print_verify(results)
            ok &= all(r.ok for r in results)
            rows.append(wheel_row(artifact.path, artifact.wheel.tags, pipeline.vendored_names(artifact.wheel),
                                           results))
    _print_table(rows)
    return EXIT_OK if ok else EXIT_PROBLEMS


def _print_conda_verify(result) -> None:
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


def _print_verify(results) -> None:
    for r in results:
        extra = f" loaded from the install: {', '.join(Path(p).name for p in r.inside)}" if r.inside else ""
        print(f"  {r.artifact} [{r.scheme} {r.python}] {r.status.upper()} ({r.seconds:.1f}s) {r.detail}{extra}")


def _print_table(rows) -> None:
    for line in table_lines(rows):
        print(line)


# --- the release ---------------------------------------------------------------------------------------------

def cmd_wheel(args, config: ReleaseConfig, progress: Progress) -> int:
    pythons = pipeline.choose_pythons(args.python, config, args.strict, progress)
    strategy = args.strategy or config.cuda.strategy
    rows, ok = pipeline.wheel_stage(pythons, config, strategy, not args.no_verify and config.verify.enabled, progress)
    _print_table(rows)
    return EXIT_OK if ok else EXIT_PROBLEMS


def cmd_conda(args, config: ReleaseConfig, progress: Progress) -> int:
    wanted = args.python or list(config.conda_pythons) or None
    pythons = pipeline.choose_pythons(wanted, config, args.strict, progress)
    rows, ok = pipeline.conda_stage(config, pythons, progress)
    _print_table(rows)
    return EXIT_OK if ok else EXIT_PROBLEMS


def cmd_all(args, config: ReleaseConfig, progress: Progress) -> int:
    rows, ok = pipeline.release(config, progress)
    _print_table(rows)
    progress(f"release {'done' if ok else 'FAILED'}")
    return EXIT_OK if ok else EXIT_PROBLEMS


COMMANDS: dict[str, Callable[..., int]] = {"check": cmd_check, "fix": cmd_fix, "verify": cmd_verify,
                                            "wheel": cmd_wheel, "conda": cmd_conda, "all": cmd_all}
