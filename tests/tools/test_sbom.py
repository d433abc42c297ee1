"""The SBOM a repaired wheel carries: every vendored file, its SHA-256 recomputed here from the wheel's bytes."""
from __future__ import annotations

import hashlib
import json
import sysconfig
import zipfile
from pathlib import Path

import wheelfactory as wf
from tools.release.pipeline import repair_wheel
from tools.release.sbom import sbom_member
from tools.release.toolchain.openmp import LIBGOMP, library_dir

OMP_C = r"""
double omp_sum(int n) { double s = 0; _Pragma("omp parallel for reduction(+:s)") for (int i = 0; i < n; i++) s += i;
  return s; }
"""


def _sbom_and_libs(wheel: Path) -> tuple[dict, dict[str, str]]:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (doc,) = [n for n in names if n.endswith(".dist-info/sboms/cyfes-release.cdx.json")]
        libs = {n: hashlib.sha256(zf.read(n)).hexdigest() for n in names if n.split("/")[0].endswith(".libs")}
        return json.loads(zf.read(doc)), libs


def _by_path(doc: dict) -> dict[str, dict]:
    out = {}
    for c in doc["components"][1:]:
        props = {p["name"]: p["value"] for p in c["properties"]}
        out[props["cyfes-release:wheel-path"]] = c
    return out


def test_repaired_wheel_sbom_lists_each_vendored_file(seed, tmp_path):
    fixed = repair_wheel(seed["raw"], tmp_path, "vendor", ["venv"], [wf.PY], library_dirs=[seed["libdir"]])
    doc, libs = _sbom_and_libs(fixed.output)
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.4"
    assert doc["metadata"]["component"]["name"] == "seedpkg"
    assert len(libs) == 1 and next(iter(libs)).startswith("seedpkg.libs/libgraft-")
    comps = _by_path(doc)
    assert set(comps) == set(libs)
    for member, sha in libs.items():
        assert comps[member]["hashes"] == [{"alg": "SHA-256", "content": sha}]
        assert comps[member]["name"] == "libgraft.so"
        assert "externalReferences" not in comps[member]  # grafted from the host: origin not claimed
    # the dependency graph names exactly the vendored components under the wheel
    assert sorted(doc["dependencies"][0]["dependsOn"]) == sorted(f"file:{m}" for m in libs)


def test_vendored_libgomp_names_debian_package_url_and_sha256(tmp_path):
    inc = sysconfig.get_paths()["include"]
    ext_c = wf.EXT_C.replace("int seed_value(void);", "double omp_sum(int);").replace(
        "PyLong_FromLong(seed_value())", "PyLong_FromLong((long)omp_sum(100))")
    ext = wf.gcc(tmp_path / "b" / f"_ext{wf.EXT_SUFFIX}", {"ext.c": ext_c, "omp.c": OMP_C}, f"-I{inc}",
                 "-fopenmp")
    raw = wf.write_raw_wheel(tmp_path / f"seedpkg-1.0-{wf.TAG}-{wf.TAG}-linux_x86_64.whl",
                             {"seedpkg/__init__.py": b"", f"seedpkg/_ext{wf.EXT_SUFFIX}": ext.read_bytes()})
    out = tmp_path / "out"
    out.mkdir()
    fixed = repair_wheel(raw, out, "vendor", ["venv"], [wf.PY], library_dirs=[library_dir()])
    doc, libs = _sbom_and_libs(fixed.output)
    (member,) = [m for m in libs if "libgomp" in m]
    comp = _by_path(doc)[member]
    assert comp["hashes"][0]["content"] == libs[member]
    assert comp["version"] == "10.2.1-6" and comp["supplier"] == {"name": "libgomp1"}
    assert comp["externalReferences"] == [{"type": "distribution", "url": LIBGOMP.url,
                                           "hashes": [{"alg": "SHA-256", "content": LIBGOMP.sha256}]}]
    assert sbom_member("seedpkg-1.0.dist-info") in zipfile.ZipFile(fixed.output).namelist()


def test_check_json_reports_vendored_files_and_sbom(seed, run_release, tmp_path):
    fixed = repair_wheel(seed["raw"], tmp_path, "vendor", ["venv"], [wf.PY], library_dirs=[seed["libdir"]])
    _, libs = _sbom_and_libs(fixed.output)
    proc = run_release("check", "--json", str(fixed.output))
    (report,) = json.loads(proc.stdout)
    assert {v["member"]: v["sha256"] for v in report["vendored"]} == libs
    assert report["sboms"] == ["seedpkg-1.0.dist-info/sboms/cyfes-release.cdx.json"]
    text = run_release("check", str(fixed.output)).stdout
    assert f"sha256 {next(iter(libs.values()))}" in text and "origin unknown" in text
