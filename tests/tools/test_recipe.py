"""recipe/: render meta.yaml (conda-build jinja, functions stubbed) and recipe.yaml (rattler-build v1) for every
variant of conda_build_config.yaml, and check both against pyproject.toml and against each other.

conda-build and rattler-build cannot be installed here, so the renderers below follow their documented rules:
selectors `# [expr]` drop lines before jinja (conda-build); `${{ }}` expressions and `if/then` list items (v1).
Version matching uses py-rattler's VersionSpec, the same matcher rattler-build uses."""
from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jinja2
import pytest
import rattler
import yaml

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipe"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PLATFORM = {"linux": True, "linux64": True, "x86_64": True, "win": False, "osx": False, "unix": True,
            "aarch64": False, "ppc64le": False}
PY_VERSIONS = ["3.9", "3.12"]


def apply_selectors(text: str) -> str:
    """conda-build's line selectors for linux-64: keep a line when its `# [expr]` is true."""
    kept = []
    for line in text.splitlines():
        match = re.search(r"#\s*\[(.+)\]\s*$", line)
        if match and not eval(match.group(1), {}, dict(PLATFORM)):  # noqa: S307 - our own recipe
            continue
        kept.append(line[: match.start()].rstrip() if match else line)
    return "\n".join(kept) + "\n"


VARIANT_FILES = ("conda_build_config.yaml", "cuda118.yaml")  # the default variants, then the opt-in legacy one


def variants(path: Path | None = None) -> list[dict[str, str]]:
    """The zipped variants of one variant file (every file of VARIANT_FILES when None), values as strings (as
    conda-build passes them)."""
    if path is None:
        return [v for name in VARIANT_FILES for v in variants(RECIPE / name)]
    config = yaml.safe_load(apply_selectors(path.read_text()))
    zipped = [k for group in config.get("zip_keys", []) for k in group]
    count = len(config[zipped[0]]) if zipped else 1
    assert all(len(config[k]) == count for k in zipped), "zip_keys of unequal length"
    base = {k: str(v[0]) for k, v in config.items() if k != "zip_keys" and k not in zipped}
    return [{**base, **{k: str(config[k][i]) for k in zipped}} for i in range(count)]


HASH = "0123abc"


def compiler_stub(variant: dict[str, str]) -> Any:
    # conda-build renders compiler('c') as "<c_compiler>_<target_platform> <c_compiler_version>"
    def compiler(lang: str) -> str:
        name = variant.get(f"{lang}_compiler", {"c": "gcc", "cxx": "gxx"}.get(lang, lang))
        return f"{name}_linux-64 {variant.get(f'{lang}_compiler_version', '')}".strip()
    return compiler


def stdlib_stub(variant: dict[str, str]) -> Any:
    return lambda lang: f"{variant['c_stdlib']}_linux-64 {variant['c_stdlib_version']}"


def load_toml(path: str, **_: Any) -> dict[str, Any]:
    return tomllib.loads((RECIPE / path).read_text())


def render_meta(variant: dict[str, str], python: str) -> dict[str, Any]:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    text = apply_selectors((RECIPE / "meta.yaml").read_text())
    # PKG_HASH (conda-build) and hash (rattler-build) stand in as HASH: test_conda_recipe_render checks the real one
    context = {**variant, "CONDA_PY": python.replace(".", ""), "PY_VER": python, "PKG_HASH": HASH,
               "compiler": compiler_stub(variant), "stdlib": stdlib_stub(variant),
               "load_file_data": load_toml, "pin_compatible": lambda name, **kw: name}
    return yaml.safe_load(env.from_string(text).render(**context))


class V1Renderer:
    """The subset of rattler-build's v1 rendering the recipe uses: `${{ }}` and `if/then/else` items."""

    def __init__(self, variant: dict[str, str], python: str) -> None:
        self.env = jinja2.Environment(undefined=jinja2.StrictUndefined)
        self.env.filters["version_to_buildstring"] = lambda v: "".join(str(v).split(".")[:2])
        self.env.filters["split"] = lambda s, sep=None: str(s).split(sep)
        self.ns: dict[str, Any] = {**variant, "python": python, "hash": HASH, "linux": True, "win": False, "osx": False,
                                   "compiler": compiler_stub(variant), "stdlib": stdlib_stub(variant),
                                   "load_from_file": load_toml, "match": self.match}

    @staticmethod
    def match(version: str, spec: str) -> bool:
        return rattler.VersionSpec(spec).matches(rattler.Version(str(version)))

    def value(self, text: str) -> Any:
        whole = re.fullmatch(r"\$\{\{((?:(?!\}\}).)*)\}\}", text.strip(), re.S)
        if whole:  # a lone expression keeps its type (bool, int), as in rattler-build's context
            return self.env.compile_expression(whole.group(1))(**self.ns)
        return self.env.from_string(text.replace("${{", "{{")).render(**self.ns)

    def node(self, node: Any) -> Any:
        if isinstance(node, str):
            return self.value(node) if "${{" in node else node
        if isinstance(node, dict):
            return {k: self.node(v) for k, v in node.items()}
        if isinstance(node, list):
            out: list[Any] = []
            for item in node:
                if isinstance(item, dict) and "if" in item:
                    branch = item["then"] if self.env.compile_expression(item["if"])(**self.ns) else item.get("else", [])
                    out.extend(self.node(branch if isinstance(branch, list) else [branch]))
                else:
                    out.append(self.node(item))
            return out
        return node

    def render(self) -> dict[str, Any]:
        recipe = yaml.safe_load((RECIPE / "recipe.yaml").read_text())
        for key, raw in recipe.pop("context").items():
            self.ns[key] = self.node(raw)
        return self.node(recipe)


def spec_set(specs: list[str]) -> set[str]:
    return {" ".join(str(s).split()) for s in specs}


CASES = [(v, py) for v in variants() for py in PY_VERSIONS]
IDS = [f"cuda{v['cuda_compiler_version']}-py{py}" for v, py in CASES]


def test_variants_cover_cpu_legacy_and_split_cuda() -> None:
    found = {(v["cuda_compiler"], v["cuda_compiler_version"]) for v in variants()}
    assert found == {("None", "None"), ("nvcc", "11.8"), ("cuda-nvcc", "12.9"), ("cuda-nvcc", "13.0")}
    default = {v["cuda_compiler_version"] for v in variants(RECIPE / "conda_build_config.yaml")}
    assert default == {"None", "12.9", "13.0"}  # cuda118 only through recipe/cuda118.yaml


@pytest.mark.parametrize("variant,python", CASES, ids=IDS)
def test_meta_yaml_agrees_with_pyproject(variant: dict[str, str], python: str) -> None:
    meta = render_meta(variant, python)
    project = PYPROJECT["project"]
    assert meta["package"] == {"name": project["name"], "version": project["version"]}
    scripts = [f"{k} = {v}" for k, v in project["scripts"].items()]
    assert meta["build"]["entry_points"] == scripts
    run = spec_set(meta["requirements"]["run"])
    assert {"numpy >=1.21", "python"} <= run
    assert {d.replace(">=", " >=") for d in project["dependencies"]} <= run
    assert (ROOT / meta["about"]["license_file"]).is_file()
    assert meta["about"]["summary"] == project["description"]
    assert "cyfes info" in meta["test"]["commands"]
    assert any("cyfes.fes(" in c for c in meta["test"]["commands"])
    assert meta["build"]["missing_dso_whitelist"] == ["*/libcuda.so.1"]
    assert meta["build"]["error_overlinking"] is True
    assert "libgomp" in spec_set(meta["requirements"]["host"]) and {"libgomp", "_openmp_mutex >=4.5"} <= run


@pytest.mark.parametrize("variant,python", CASES, ids=IDS)
def test_meta_yaml_cuda_requirements(variant: dict[str, str], python: str) -> None:
    meta = render_meta(variant, python)
    reqs, cuda = meta["requirements"], variant["cuda_compiler_version"]
    build, host, run = (spec_set(reqs[k]) for k in ("build", "host", "run"))
    assert {"gcc_linux-64 " + variant["c_compiler_version"], "sysroot_linux-64 " + variant["c_stdlib_version"]} <= build
    py = python.replace(".", "")
    if cuda == "None":
        assert meta["build"]["string"] == f"cpu_py{py}h{HASH}_0" and meta["build"]["number"] == 0
        assert not any("nvcc" in s or "cuda" in s for s in build | host | run)
        assert "run_constrained" not in reqs
        return
    major = int(cuda.split(".")[0])
    assert meta["build"]["string"] == f"cuda{cuda.replace('.', '')}_py{py}h{HASH}_200" and meta["build"]["number"] == 200
    assert "__cuda" in run
    assert f"{variant['cuda_compiler']}_linux-64" in {s.split()[0] for s in build}
    assert reqs["run_constrained"] == [f"__cuda >={major}"]
    if major >= 12:
        assert {f"cuda-version {cuda}.*", "cuda-cudart-dev"} <= host and f"cuda-version >={cuda},<{major + 1}" in run
        assert f"cuda-cudart >={cuda},<{major + 1}.0a0" in run and not any("cudatoolkit" in s for s in run)
    else:
        assert f"cudatoolkit {cuda}.*" in host and f"cudatoolkit >={cuda},<{major + 1}.0a0" in run
        assert not any(s.startswith("cuda-") for s in host | run)


@pytest.mark.parametrize("variant,python", CASES, ids=IDS)
def test_recipe_yaml_agrees_with_meta_yaml(variant: dict[str, str], python: str) -> None:
    meta, v1 = render_meta(variant, python), V1Renderer(variant, python).render()
    assert v1["package"] == meta["package"]
    assert v1["build"]["string"] == meta["build"]["string"]
    assert v1["build"]["python"]["entry_points"] == meta["build"]["entry_points"]
    assert v1["build"]["dynamic_linking"]["missing_dso_allowlist"] == meta["build"]["missing_dso_whitelist"]
    assert v1["build"]["dynamic_linking"]["overlinking_behavior"] == "error"
    for key in ("build", "host", "run"):
        assert spec_set(v1["requirements"][key]) == spec_set(meta["requirements"][key]), key
    assert spec_set(v1["requirements"]["run_constraints"]) == spec_set(meta["requirements"].get("run_constrained", []))
    assert v1["tests"][0]["python"]["imports"] == meta["test"]["imports"]
    assert v1["tests"][1]["script"] == [c for c in meta["test"]["commands"] if c != "pip check"]
    assert (v1["about"]["license"], v1["about"]["license_file"], v1["about"]["summary"]) == (
        meta["about"]["license"], meta["about"]["license_file"], meta["about"]["summary"])


@pytest.mark.parametrize("cuda,expected", [("None", "OFF"), ("13.0", "ON"), ("11.8", "ON")])
def test_build_sh_picks_the_backend_from_the_variant(tmp_path: Path, cuda: str, expected: str) -> None:
    """Run the real build.sh with PYTHON pointing at a recorder instead of pip."""
    recorder = tmp_path / "python"
    recorder.write_text('#!/bin/sh\necho "CYFES_CUDA=$CYFES_CUDA RUNTIME=$CYFES_CUDA_RUNTIME ARGS=$*"\n')
    recorder.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "PYTHON": str(recorder), "PREFIX": str(tmp_path),
           "cuda_compiler_version": cuda}
    out = subprocess.run(["bash", str(RECIPE / "build.sh")], cwd=tmp_path, env=env, capture_output=True,
                         text=True, check=True).stdout
    assert f"CYFES_CUDA={expected} RUNTIME=Shared" in out
    assert "--no-build-isolation" in out and "--no-deps" in out
