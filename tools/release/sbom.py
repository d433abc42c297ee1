"""A CycloneDX SBOM of the libraries a wheel vendors, written into `<dist>.dist-info/sboms/` as auditwheel does.

auditwheel (6.5+) writes `sboms/auditwheel.cdx.json` naming the system package each grafted library came from,
when the host's package manager knows it; it carries no file hashes. This SBOM lists every file under
`<name>.libs/` (what auditwheel grafted) with the SHA-256 of the bytes in the wheel, and, where the tool itself
fetched the library (Debian 11's libgomp, toolchain/openmp.py), the package's URL, SHA-256 and version. Same
format (CycloneDX 1.4 JSON), same folder (PEP 770), so SBOM readers find both.
"""
from __future__ import annotations

import hashlib
import json
import posixpath
import re
from dataclasses import dataclass
from urllib.parse import quote

from .toolchain.openmp import LIBGOMP, debian_version

SBOM_NAME = "cyfes-release.cdx.json"
SPEC_VERSION = "1.4"
# auditwheel names a grafted copy <stem>-<8 hex of its hash><suffix>: libgomp-a34b3233.so.1.0.0
_GRAFT_HASH = re.compile(r"-[0-9a-f]{8}(?=\.so)")


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


def known_origins() -> dict[str, Origin]:
    """Original file name prefix ("libgomp.so") -> origin, for the libraries the tool fetches itself."""
    name, version = debian_version(LIBGOMP)
    origin = Origin(name, version, LIBGOMP.url, LIBGOMP.sha256,
                    f"pkg:deb/debian/{name}@{quote(version, safe='')}?arch=amd64&distro=debian-11")
    return {LIBGOMP.soname.split(".so")[0] + ".so": origin}


def original_name(member: str) -> str:
    return _GRAFT_HASH.sub("", posixpath.basename(member))


def vendored_files(members: dict[str, bytes], origins: dict[str, Origin] | None = None) -> list[VendoredFile]:
    """Every file in a top-level `<name>.libs/` folder, sorted, with its hash and known origin."""
    origins = known_origins() if origins is None else origins
    out = []
    for name in sorted(members):
        top, _, rest = name.partition("/")
        if not top.endswith(".libs") or not rest or name.endswith("/"):
            continue
        data, orig = members[name], original_name(name)
        origin = next((o for prefix, o in origins.items() if orig.startswith(prefix)), None)
        out.append(VendoredFile(name, orig, hashlib.sha256(data).hexdigest(), len(data), origin))
    return out


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
                      "properties": [{"name": "cyfes-release:wheel-path", "value": f.member},
                                     {"name": "cyfes-release:size", "value": str(f.size)}]}
        if f.origin:
            comp["version"] = f.origin.version
            comp["supplier"] = {"name": f.origin.name}
            if f.origin.purl:
                comp["purl"] = f.origin.purl
            comp["externalReferences"] = [{"type": "distribution", "url": f.origin.url,
                                           "hashes": [{"alg": "SHA-256", "content": f.origin.sha256}]}]
        components.append(comp)
        depends.append(ref)
    tool = {"name": "cyfes-release", **({"version": tool_version} if tool_version else {})}
    return {"bomFormat": "CycloneDX", "specVersion": SPEC_VERSION, "version": 1,
            "metadata": {"component": top, "tools": [tool]}, "components": components,
            "dependencies": [{"ref": purl, "dependsOn": depends}] + [{"ref": r} for r in depends]}


def sbom_member(dist_info: str) -> str:
    return f"{dist_info}/sboms/{SBOM_NAME}"


def sbom_bytes(document: dict) -> bytes:
    # sorted keys, fixed separators: the same wheel gives the same bytes (reproducible releases)
    return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode("utf-8")


def origin_text(f: VendoredFile) -> str:
    if f.origin is None:
        return "origin unknown (grafted by auditwheel from the build host)"
    return f"{f.origin.name} {f.origin.version} from {f.origin.url} (sha256 {f.origin.sha256})"
