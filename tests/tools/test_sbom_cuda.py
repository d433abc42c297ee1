"""The origin of a vendored CUDA runtime: the Debian package a fetched toolkit's libcudart came from (the manifest
toolchain/cuda.py writes at fetch time), or the build host's own toolkit, in the SBOM and in `check`."""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sysconfig
import zipfile
from pathlib import Path

import pytest

import wheelfactory as wf
from tools.release.pipeline import fix_wheel, repair_wheel
from tools.release.sbom import (
    Origin,
    VendoredFile,
    known_origins,
    origin_text,
    recorded_origins,
    sbom,
    sbom_member,
    vendored_files,
    wheel_origins,
)
from tools.release.toolchain.cuda import (
    DEBIAN_MIRROR,
    MANIFEST,
    CudaToolchain,
    nvcc_version,
    package_manifest,
    parse_print_uris,
    runtime_source,
    write_manifest,
)

CUDART_C = "int cudart_value(void) { return 41; }\n"
VERSION = "12.4.127~12.4.1-2"
PURL = "pkg:deb/debian/libcudart12@12.4.127~12.4.1-2?arch=amd64&distro=debian-13"
LIBDIR = "usr/lib/x86_64-linux-gnu"
needs_dpkg = pytest.mark.skipif(not shutil.which("dpkg-deb"), reason="needs dpkg-deb to build the .deb fixtures")


def _deb(tmp: Path, package: str, files: dict[str, bytes], links: dict[str, str]) -> Path:
    """TEST FIXTURE: a real .deb (dpkg-deb --build) of `package` at VERSION, named as Debian's pool names it."""
    root = tmp / f"{package}-root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(f"Package: {package}\nVersion: {VERSION}\nArchitecture: amd64\n"
                                             "Maintainer: test <test@example.org>\nDescription: test fixture\n")
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    for name, target in links.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).symlink_to(target)
    out = tmp / f"{package}_{VERSION}_amd64.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(out)], check=True,
                   capture_output=True)
    return out


def _fetched_toolkit(tmp: Path) -> tuple[Path, Path, str]:
    """TEST FIXTURE: a cache dir laid out as fetch_toolkit leaves it (toolkit/bin/nvcc, toolkit/lib64 with a
    gcc-built libcudart.so.12), with the manifest package_manifest makes of two real .debs: libcudart12 holding the
    library and nvidia-cuda-dev holding only the libcudart.so link. (lib64, the runtime .deb, its pool URL)."""
    lib = wf.gcc(tmp / "build" / "libcudart.so.12.4.127", {"cudart.c": CUDART_C}, "-Wl,-soname,libcudart.so.12")
    runtime = _deb(tmp, "libcudart12", {f"{LIBDIR}/libcudart.so.12.4.127": lib.read_bytes()},
                   {f"{LIBDIR}/libcudart.so.12": "libcudart.so.12.4.127"})
    dev = _deb(tmp, "nvidia-cuda-dev", {"usr/include/cuda_runtime.h": b"/* header */\n"},
               {f"{LIBDIR}/libcudart.so": "libcudart.so.12"})
    cache = tmp / "cache" / "cuda-12.4"
    lib64 = cache / "toolkit" / "lib64"
    lib64.mkdir(parents=True)
    shutil.copy(lib, lib64 / lib.name)
    (lib64 / "libcudart.so.12").symlink_to(lib.name)
    (lib64 / "libcudart.so").symlink_to("libcudart.so.12")
    (cache / "toolkit" / "bin").mkdir()
    (cache / "toolkit" / "bin" / "nvcc").write_text("")  # its presence marks a toolkit; it is not run
    pool = f"{DEBIAN_MIRROR}/pool/non-free/n/nvidia-cuda-toolkit"
    uris = {d.name: (f"{pool}/{d.name}", hashlib.sha256(d.read_bytes()).hexdigest()) for d in (runtime, dev)}
    write_manifest(cache / MANIFEST, package_manifest("trixie", [dev, runtime], uris))
    return lib64, runtime, f"{pool}/{runtime.name}"


def _structurally_valid(doc: dict) -> None:
    """What CycloneDX 1.4 requires of the parts this tool writes: unique bom-refs, dependencies naming only them,
    SHA-256 hashes of 64 hex digits, purls of the pkg: scheme, distribution references with a URL."""
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.4" and doc["version"] == 1
    refs = [c["bom-ref"] for c in doc["components"]]
    assert len(refs) == len(set(refs))
    for dep in doc["dependencies"]:
        assert dep["ref"] in refs and set(dep.get("dependsOn", [])) <= set(refs)
    for c in doc["components"]:
        assert c["type"] == "library" and c["name"]
        for h in c.get("hashes", []) + [h for r in c.get("externalReferences", []) for h in r["hashes"]]:
            assert h["alg"] == "SHA-256" and re.fullmatch(r"[0-9a-f]{64}", h["content"])
        assert c.get("purl", "pkg:").startswith("pkg:")
        assert all(r["type"] == "distribution" and r["url"].startswith("http") for r in c.get("externalReferences", []))
        assert all(set(p) == {"name", "value"} and isinstance(p["value"], str) for p in c.get("properties", []))


def _sbom_of(wheel: Path) -> dict:
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith("/sboms/cyfes-release.cdx.json")]
        return json.loads(zf.read(name))


@needs_dpkg
def test_manifest_of_a_fetched_toolkit_round_trips_into_an_origin(tmp_path):
    lib64, runtime, url = _fetched_toolkit(tmp_path)
    manifest = json.loads((lib64.parent.parent / MANIFEST).read_text())
    assert manifest["libcudart"] == "libcudart12"  # not nvidia-cuda-dev, which holds only the libcudart.so link
    assert {p["name"]: p["version"] for p in manifest["packages"]} == {"libcudart12": VERSION,
                                                                       "nvidia-cuda-dev": VERSION}
    sha = hashlib.sha256(runtime.read_bytes()).hexdigest()
    assert known_origins([lib64])["libcudart.so.12"] == Origin("libcudart12", VERSION, url, sha, PURL)


@needs_dpkg
def test_a_fetched_toolkit_without_manifest_claims_no_origin(tmp_path):
    lib64, _, _ = _fetched_toolkit(tmp_path)
    (lib64.parent.parent / MANIFEST).unlink()  # a cache fetched before manifests were written
    assert runtime_source(lib64) is None and "libcudart.so.12" not in known_origins([lib64])


@needs_dpkg
def test_grafted_libcudart_gets_the_package_origin_in_the_sbom(tmp_path):
    lib64, runtime, url = _fetched_toolkit(tmp_path)
    members = {"cyfes.libs/libcudart-1234abcd.so.12.4.127": (lib64 / "libcudart.so.12.4.127").read_bytes(),
               "cyfes/__init__.py": b""}
    (f,) = vendored_files(members, known_origins([lib64]))
    assert f.original == "libcudart.so.12.4.127" and f.origin.name == "libcudart12"
    (other,) = vendored_files({"cyfes.libs/libcudart-1234abcd.so.11.8.89": b"\x7fELF"}, known_origins([lib64]))
    assert other.origin is None  # another major's runtime did not come from this toolkit
    doc = sbom("cyfes", "1.0.0", "cyfes-1.0.0-cp311-abi3-manylinux_2_17_x86_64.whl", [f])
    _structurally_valid(doc)
    comp = doc["components"][1]
    assert comp["version"] == VERSION and comp["purl"] == PURL and comp["supplier"] == {"name": "libcudart12"}
    assert comp["externalReferences"] == [{"type": "distribution", "url": url, "hashes": [
        {"alg": "SHA-256", "content": hashlib.sha256(runtime.read_bytes()).hexdigest()}]}]
    assert recorded_origins(doc) == {(f.member, f.sha256): f.origin}


@needs_dpkg
def test_release_repair_check_and_fix_keep_the_cuda_runtime_origin(tmp_path, run_release):
    """The real auditwheel grafts libcudart from the toolkit's lib64; the SBOM names its package; `check` reads
    it back from the wheel (no toolkit given), and `fix` of the released wheel keeps it."""
    lib64, runtime, url = _fetched_toolkit(tmp_path)
    inc = sysconfig.get_paths()["include"]
    ext_c = wf.EXT_C.replace("int seed_value(void);", "int cudart_value(void);").replace(
        "seed_value()", "cudart_value()")
    ext = wf.gcc(tmp_path / "b" / f"_ext{wf.EXT_SUFFIX}", {"ext.c": ext_c}, f"-I{inc}", f"-L{lib64}", "-lcudart")
    raw = wf.write_raw_wheel(tmp_path / f"seedpkg-1.0-{wf.TAG}-{wf.TAG}-linux_x86_64.whl",
                             {"seedpkg/__init__.py": b"", f"seedpkg/_ext{wf.EXT_SUFFIX}": ext.read_bytes()})
    (tmp_path / "out").mkdir()
    fixed = repair_wheel(raw, tmp_path / "out", "vendor", ["venv"], [wf.PY], library_dirs=[lib64])
    doc = _sbom_of(fixed.output)
    _structurally_valid(doc)
    (comp,) = [c for c in doc["components"][1:] if c["name"].startswith("libcudart.so")]
    assert comp["purl"] == PURL and comp["externalReferences"][0]["url"] == url
    (report,) = json.loads(run_release("check", "--json", str(fixed.output)).stdout)
    (vendored,) = [v for v in report["vendored"] if "libcudart" in v["member"]]
    sha = hashlib.sha256(runtime.read_bytes()).hexdigest()
    assert vendored["origin"] == {"name": "libcudart12", "version": VERSION, "url": url, "sha256": sha,
                                  "purl": PURL, "host_path": ""}
    (tmp_path / "refixed").mkdir()
    again = fix_wheel(fixed.output, tmp_path / "refixed", ["venv"], [wf.PY], rewrite=True)
    (comp2,) = [c for c in _sbom_of(again.output)["components"][1:] if c["name"].startswith("libcudart.so")]
    assert comp2 == comp


def test_host_toolkit_origin_names_its_path_and_no_url():
    origin = Origin("cuda-toolkit", "13.0.88", "", "", "", "/usr/local/cuda-13.0")
    f = VendoredFile("cyfes.libs/libcudart-1234abcd.so.13", "libcudart.so.13", "ab" * 32, 700000, origin)
    assert origin_text(f) == ("from the build host's cuda-toolkit 13.0.88 at /usr/local/cuda-13.0, "
                              "not fetched by the tool")
    doc = sbom("cyfes", "1.0.0", "cyfes-1.0.0-cp311-abi3-manylinux_2_17_x86_64.whl", [f])
    _structurally_valid(doc)
    comp = doc["components"][1]
    assert comp["version"] == "13.0.88"
    assert not {"externalReferences", "purl", "supplier"} & set(comp)  # nothing the tool cannot vouch for
    props = {p["name"]: p["value"] for p in comp["properties"]}
    assert props["cyfes-release:origin-package"] == "cuda-toolkit"
    assert props["cyfes-release:origin-host-path"] == "/usr/local/cuda-13.0"
    assert props["cyfes-release:origin"] == origin_text(f)
    assert recorded_origins(doc) == {(f.member, f.sha256): origin}


@pytest.mark.skipif(not shutil.which("nvcc") or not Path("/usr/local/cuda/bin/nvcc").is_file(),
                    reason="no CUDA toolkit at /usr/local/cuda with an nvcc on PATH")
def test_host_toolkit_runtime_source_is_its_nvcc_version_and_path():
    """The nvcc on PATH (on some hosts a wrapper script elsewhere) names the toolkit it runs from."""
    nvcc = Path(shutil.which("nvcc"))
    out = subprocess.run([str(nvcc), "--version"], capture_output=True, text=True, check=True).stdout
    version = out.rsplit(", V", 1)[1].split()[0]  # "Cuda compilation tools, release 13.0, V13.0.88"
    root = Path("/usr/local/cuda").resolve()
    if nvcc_version(root / "bin" / "nvcc") != version:
        pytest.skip(f"the nvcc on PATH ({nvcc}) is not /usr/local/cuda's")
    chain = CudaToolchain(nvcc, version, None)
    src = next(filter(None, map(runtime_source, chain.library_dirs)))
    assert (src.package, src.version, src.url, src.host_path) == ("cuda-toolkit", version, "", str(root))
    assert src.soname == f"libcudart.so.{version.split('.')[0]}"


def test_a_malformed_sbom_in_a_wheel_records_no_origin():
    """TEST FIXTURE documents of the wrong shape: a wheel is untrusted, its SBOM gives no origin, and no crash."""
    good = sbom("w", "1", "w-1-py3-none-any.whl", [VendoredFile("w.libs/libx.so", "libx.so", "ab" * 32, 1,
                                                                Origin("x", "1", "", "", "", "/opt/x"))])
    assert len(wheel_origins({sbom_member("w-1.dist-info"): json.dumps(good).encode()}, "w-1.dist-info")) == 1
    for doc in (b"\xff not json", b"[]", b'{"components": {"a": 1}}', b'{"components": [{}, {"properties": 3}]}',
                b'{"components": [{}, {"properties": [{"name": "cyfes-release:origin-package", "value": "x"}], '
                b'"hashes": [7]}]}'):
        assert wheel_origins({sbom_member("w-1.dist-info"): doc}, "w-1.dist-info") == {}


def test_print_uris_parser_reads_apt_s_own_output():
    """Against the host's apt: the URL and SHA256 parsed from `apt-get download --print-uris` are the Filename
    and SHA256 fields `apt-cache show` prints for the same candidate."""
    show = subprocess.run(["apt-cache", "show", "--no-all-versions", "coreutils"], capture_output=True, text=True,
                          check=False) if shutil.which("apt-cache") else None
    if show is None or show.returncode != 0 or "Filename:" not in show.stdout:
        pytest.skip("no apt package lists on this host")
    fields = dict(line.split(": ", 1) for line in show.stdout.splitlines() if ": " in line and line[0] != " ")
    out = subprocess.run(["apt-get", "download", "--print-uris", "coreutils"], capture_output=True, text=True,
                         check=True).stdout
    ((name, (url, sha)),) = parse_print_uris(out).items()
    assert name == Path(fields["Filename"]).name.replace("%2b", "+")
    assert url.endswith(fields["Filename"].replace("+", "%2b")) and sha == fields["SHA256"]
