"""`cyfes info`: the version, how this cyfes was built, and the backends and GPUs this machine can run."""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
from typing import Any


def info_report(check: bool = False) -> dict[str, Any]:
    """The report `cyfes info` prints; `check` lists the GPUs through the CUDA runtime (initialising CUDA) rather
    than NVML (engine/nvml.py)."""
    # deferred: the version lookup (importlib.metadata) costs more than `cyfes --help`, the engine more still
    from .. import __version__, _build_info  # deferred: see above
    from ..engine.backends import backends  # deferred: see above

    report: dict[str, Any] = {
        "version": __version__, "python": platform.python_version(), "platform": platform.platform(),
        "build": {"cuda": bool(_build_info.CUDA), "cuda_version": _build_info.CUDA_VERSION,
                  "cuda_runtime": _build_info.CUDA_RUNTIME if _build_info.CUDA else None,
                  "openmp": _build_info.OPENMP, "compiler": _build_info.COMPILER},
        "backends": backends(check), "extras": {}}
    for module in ("matplotlib", "tqdm"):  # from their metadata: importing matplotlib costs more than the report
        try:
            report["extras"][module] = importlib.metadata.version(module)
        except importlib.metadata.PackageNotFoundError:
            report["extras"][module] = None
    return report


def _info_text(r: dict[str, Any]) -> str:
    b, cpu, cuda = r["build"], r["backends"]["cpu"], r["backends"]["cuda"]
    lines = [f"cyfes {r['version']} (Python {r['python']}, {r['platform']})",
             f"build:   CUDA {'on' if b['cuda'] else 'off'}"
             + (f" (CUDA {b['cuda_version']}, {b['cuda_runtime']} runtime"
                + (f"; needs a driver for CUDA >= {cuda['needs_driver_cuda']}, driver >= {cuda['needs_driver']})"
                   if cuda.get("needs_driver") else ")") if b["cuda"] else "")
             + f", OpenMP {b['openmp'] or 'off'}, compiler {b['compiler']}",
             f"cpu:     usable, {cpu['threads']} threads",
             "cuda:    " + ("usable" if cuda["usable"] else f"not usable: {cuda['reason']}")]
    if cuda.get("runtime_version"):
        driver = cuda.get("driver") or cuda.get("driver_version")
        lines.append(f"         runtime {cuda['runtime_version']}, driver {driver}"
                     + ("; GPUs listed by NVML (--check: by CUDA itself)" if cuda.get("listed_by") == "nvml" else ""))
    elif cuda.get("driver_cuda"):
        lines.append(f"         driver supports CUDA {cuda['driver_cuda']}")
    for dev in cuda["devices"]:
        lines.append("gpu:     " + ", ".join(f"{k} {v}" for k, v in dev.items()))
    lines.append("extras:  " + ", ".join(f"{k} {v or 'missing'}" for k, v in r["extras"].items())
                 + ("" if r["extras"].get("matplotlib") else "  (plots: pip install 'cyfes[plot]')"))
    return "\n".join(lines)


def configure_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", description="Report the cyfes version, how it was built (CUDA, OpenMP), which "
                                           "backends can run here and the GPUs found.")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--check", action="store_true",
                   help="list the GPUs through the CUDA runtime, which initialises CUDA on them (about 0.2 s "
                        "more); by default NVML lists them where it numbers them as CUDA does")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    report = info_report(args.check)
    print(json.dumps(report, indent=2, default=str) if args.json else _info_text(report))
    return 0
