"""The `info/` tree of a conda package: index.json, paths.json, files, about.json, has_prefix, licenses.

Formats follow conda-build's output for non-noarch packages: paths.json v1 with sha256, size_in_bytes and
path_type per file; text files carrying the build prefix are recorded with a prefix placeholder and
file_mode "text", so the installer (conda, mamba, rattler) writes the real prefix into them at install time.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from ..archive import Member

# conda's classic build-prefix placeholder; any installer replaces it in files listed with it in paths.json.
PREFIX_PLACEHOLDER = "/opt/anaconda1anaconda2anaconda3"
SUBDIR, PLATFORM, ARCH = "linux-64", "linux", "x86_64"


@dataclass(frozen=True)
class PackageInfo:
    """What index.json and about.json say about one package."""

    name: str
    version: str
    build: str
    build_number: int
    depends: list[str]
    constrains: list[str]
    license: str
    summary: str
    home: str
    timestamp_ms: int

    @property
    def dist(self) -> str:
        return f"{self.name}-{self.version}-{self.build}"


def dumps(obj: object) -> bytes:
    """JSON as conda-build writes it: sorted keys, two-space indent (stable bytes for reproducible packages)."""
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def entry_point_script(target: str) -> bytes:
    """bin/<name> for `module:function`, as conda-build writes Python entry points for non-noarch packages."""
    module, func = target.split(":")
    return (f"#!{PREFIX_PLACEHOLDER}/bin/python\n# -*- coding: utf-8 -*-\nimport re\nimport sys\n\n"
            f"from {module} import {func}\n\nif __name__ == '__main__':\n"
            f"    sys.argv[0] = re.sub(r'(-script\\.pyw?|\\.exe)?$', '', sys.argv[0])\n"
            f"    sys.exit({func}())\n").encode()


def index_json(info: PackageInfo) -> dict:
    return {"arch": ARCH, "build": info.build, "build_number": info.build_number, "constrains": info.constrains,
            "depends": info.depends, "license": info.license, "name": info.name, "platform": PLATFORM,
            "subdir": SUBDIR, "timestamp": info.timestamp_ms, "version": info.version}


def about_json(info: PackageInfo) -> dict:
    return {"home": info.home, "license": info.license, "license_file": "LICENSE", "summary": info.summary}


def paths_entry(e: Member, placeholder: str | None) -> dict:
    if e.link is not None:
        # installers recreate the link from the archive; conda-build records no content hash for it either
        return {"_path": e.name, "path_type": "softlink"}
    entry = {"_path": e.name, "path_type": "hardlink", "sha256": sha256(e.data), "size_in_bytes": len(e.data)}
    if placeholder:
        entry.update(file_mode="text", prefix_placeholder=placeholder)
    return entry


def paths_json(pkg: list[Member], placeholders: dict[str, str]) -> dict:
    return {"paths": [paths_entry(e, placeholders.get(e.name)) for e in sorted(pkg, key=lambda e: e.name)],
            "paths_version": 1}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def info_entries(info: PackageInfo, pkg: list[Member], placeholders: dict[str, str], license_text: bytes,
                 extra: dict[str, bytes] | None = None) -> list[Member]:
    """Every file of info/ for payload `pkg`; `placeholders` maps payload paths to their prefix placeholder."""
    files = "".join(f"{e.name}\n" for e in sorted(pkg, key=lambda e: e.name)).encode()
    has_prefix = "".join(f'{ph} text {p}\n' for p, ph in sorted(placeholders.items())).encode()
    out = [Member("info/index.json", dumps(index_json(info))),
           Member("info/paths.json", dumps(paths_json(pkg, placeholders))),
           Member("info/about.json", dumps(about_json(info))),
           Member("info/files", files),
           Member("info/licenses/LICENSE", license_text)]
    if has_prefix:
        out.append(Member("info/has_prefix", has_prefix))
    out += [Member(f"info/{k}", v) for k, v in sorted((extra or {}).items())]
    return out
