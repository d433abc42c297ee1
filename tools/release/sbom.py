"""A CycloneDX SBOM of the libraries a wheel vendors, written into `<dist>.dist-info/sboms/` as auditwheel does.

auditwheel (6.5+) writes `sboms/auditwheel.cdx.json` naming the system package each grafted library came from,
when the host's package manager knows it; it carries no file hashes. This SBOM lists every file under
`<name>.libs/` (what auditwheel grafted) with the SHA-256 of the bytes in the wheel, and, where the tool itself
fetched the library (Debian 11's libgomp, toolchain/openmp.py; the CUDA runtime of a toolkit fetched from Debian,
toolchain/cuda.py), the package's URL, SHA-256 and version; for a CUDA runtime taken from the build host's own
toolkit, that toolkit's version and path, and no URL. Same format (CycloneDX 1.4 JSON), same folder (PEP 770),
so SBOM readers find both. A wheel's SBOM is also where `check` and `fix` read the origins back from (the build
host's caches are not where the wheel is checked).
"""
from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from .toolchain.cuda import runtime_source
from .toolchain.openmp import LIBGOMP, debian_version

SBOM_NAME = "cyfes-release.cdx.json"
SPEC_VERSION = "1.4"
# auditwheel names a grafted copy <stem>-<8 hex of its hash><suffix>: libgomp-a34b3233.so.1.0.0
_GRAFT_HASH = re.compile(r"-[0-9a-f]{8}(?=\.so)")
_PROP = "cyfes-release:"


@dataclass(frozen=True)
class Origin:
    """Where a vendored library came from, as far as the tool knows."""

    name: str
    """The package that holds it, e.g. libgomp1."""
    version: str
    url: str
    """The package file it was taken from."""
    sha256: str
    """Of that package file (what its publisher's signed index lists)."""
    purl: str = ""
    host_path: str = ""
    """For a library the tool did not fetch (url empty): where on the build host it was taken from."""


@dataclass(frozen=True)
class VendoredFile:
    """One library a wheel vendors."""

    member: str
    """Its path in the wheel, e.g. cyfes.libs/libgomp-a34b3233.so.1.0.0."""
    original: str
    """Its file name before auditwheel renamed it (the hash suffix removed)."""
    sha256: str
    size: int
    origin: Origin | None = None


def _deb_purl(name: str, version: str, distro: str) -> str:
    return f"pkg:deb/debian/{name}@{quote(version, safe='')}?arch=amd64&distro={distro}"


def known_origins(library_dirs: Iterable[Path] = ()) -> dict[str, Origin]:
    """Original file name prefix ("libgomp.so", "libcudart.so.12") -> origin, for the libraries the tool fetches
    itself, and the CUDA runtime of the toolkit in `library_dirs` (where auditwheel grafts it from:
    toolchain/cuda.py says whence)."""
    name, version = debian_version(LIBGOMP)
    out = {LIBGOMP.soname.split(".so")[0] + ".so": Origin(name, version, LIBGOMP.url, LIBGOMP.sha256,
                                                          _deb_purl(name, version, "debian-11"))}
    for src in filter(None, map(runtime_source, library_dirs)):
        purl = _deb_purl(src.package, src.version, src.distro) if src.url else ""
        out.setdefault(src.soname, Origin(src.package, src.version, src.url, src.sha256, purl, src.host_path))
    return out


def original_name(member: str) -> str:
    return _GRAFT_HASH.sub("", posixpath.basename(member))


def vendored_files(members: dict[str, bytes], origins: dict[str, Origin] | None = None,
                   recorded: dict[tuple[str, str], Origin] | None = None) -> list[VendoredFile]:
    """Every file in a top-level `<name>.libs/` folder, sorted, with its hash and origin: a known one (by original
    name prefix), else the one an earlier SBOM recorded for the same path and bytes (recorded_origins)."""
    origins = known_origins() if origins is None else origins
    out = []
    for name in sorted(members):
        top, _, rest = name.partition("/")
        if not top.endswith(".libs") or not rest or name.endswith("/"):
            continue
        data, orig = members[name], original_name(name)
        sha = hashlib.sha256(data).hexdigest()
        origin = next((o for prefix, o in origins.items() if orig.startswith(prefix)), None)
        out.append(VendoredFile(name, orig, sha, len(data), origin or (recorded or {}).get((name, sha))))
    return out


def recorded_origins(document: dict) -> dict[tuple[str, str], Origin]:
    """(wheel path, SHA-256) -> origin, as an SBOM this tool wrote records them; {} for any other document."""
    out = {}
    for comp in document.get("components", [])[1:] if isinstance(document, dict) else []:
        props = {p.get("name"): p.get("value") for p in comp.get("properties", []) if isinstance(p, dict)}
        if f"{_PROP}origin-package" not in props or not comp.get("hashes"):
            continue
        dist = (comp.get("externalReferences") or [{}])[0]
        origin = Origin(props[f"{_PROP}origin-package"], comp.get("version", ""), dist.get("url", ""),
                        (dist.get("hashes") or [{}])[0].get("content", ""), comp.get("purl", ""),
                        props.get(f"{_PROP}origin-host-path", ""))
        out[(props.get(f"{_PROP}wheel-path"), comp["hashes"][0]["content"])] = origin
    return out


def wheel_origins(members: dict[str, bytes], dist_info: str) -> dict[tuple[str, str], Origin]:
    """The origins the wheel's own SBOM (sbom_member) records; {} without one, or for one that is not JSON of the
    shape this tool writes (a wheel is untrusted input: its SBOM must not stop `check`)."""
    data = members.get(sbom_member(dist_info))
    try:
        return recorded_origins(json.loads(data)) if data else {}
    except (ValueError, TypeError, KeyError, AttributeError, IndexError):
        return {}


def sbom(dist: str, version: str, wheel_filename: str, files: list[VendoredFile],
         tool_version: str = "") -> dict:
    """The CycloneDX document: the wheel as the metadata component, one library component per vendored file."""
    purl = (f"pkg:pypi/{quote(dist, safe='')}@{quote(version, safe='')}"
            f"?file_name={quote(wheel_filename, safe='')}")
    top = {"type": "library", "bom-ref": purl, "name": dist, "version": version, "purl": purl}
    components, depends = [top], []
    for f in files:
        ref = f"file:{f.member}"
        comp: dict = {"type": "library", "bom-ref": ref, "name": f.original,
                      "hashes": [{"alg": "SHA-256", "content": f.sha256}],
                      "properties": [{"name": f"{_PROP}wheel-path", "value": f.member},
                                     {"name": f"{_PROP}size", "value": str(f.size)}]}
        if f.origin:
            comp.update(_origin_fields(f.origin, comp["properties"]))
        components.append(comp)
        depends.append(ref)
    tool = {"name": "cyfes-release", **({"version": tool_version} if tool_version else {})}
    return {"bomFormat": "CycloneDX", "specVersion": SPEC_VERSION, "version": 1,
            "metadata": {"component": top, "tools": [tool]}, "components": components,
            "dependencies": [{"ref": purl, "dependsOn": depends}] + [{"ref": r} for r in depends]}


def _origin_fields(o: Origin, properties: list[dict]) -> dict:
    """A package the tool fetched: its version, purl and the file's URL and hash (externalReferences). One it did
    not (a build host's toolkit): the version and the host path as a property, and no URL, which it cannot vouch
    for. Either way the package's name is a property, so the tool reads origins back from the document."""
    properties.append({"name": f"{_PROP}origin-package", "value": o.name})
    if not o.url:
        properties.append({"name": f"{_PROP}origin-host-path", "value": o.host_path})
        properties.append({"name": f"{_PROP}origin", "value": _host_text(o)})
        return {"version": o.version}
    return {"version": o.version, "supplier": {"name": o.name}, **({"purl": o.purl} if o.purl else {}),
            "externalReferences": [{"type": "distribution", "url": o.url,
                                    "hashes": [{"alg": "SHA-256", "content": o.sha256}]}]}


def sbom_member(dist_info: str) -> str:
    return f"{dist_info}/sboms/{SBOM_NAME}"


def sbom_bytes(document: dict) -> bytes:
    # sorted keys, fixed separators: the same wheel gives the same bytes (reproducible releases)
    return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode("utf-8")


def origin_text(f: VendoredFile) -> str:
    if f.origin is None:
        return "origin unknown (grafted by auditwheel from the build host)"
    if not f.origin.url:
        return _host_text(f.origin)
    return f"{f.origin.name} {f.origin.version} from {f.origin.url} (sha256 {f.origin.sha256})"


def _host_text(o: Origin) -> str:
    return f"from the build host's {o.name} {o.version} at {o.host_path}, not fetched by the tool"
