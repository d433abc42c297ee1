"""The real cyfes wheel, built for this venv's Python with each CUDA strategy, repaired, fixed and verified in a
fresh venv under the loader's trace. Slow (compiles libcufes for both runtime linkages unless build/release/
already holds them); the pip strategy needs nvidia-cuda-runtime 13.0.x (from PyPI, cached in the wheelhouse)."""
from __future__ import annotations

from pathlib import Path

import pytest

import wheelfactory as wf
from conftest import ROOT
from tools.release.config import DEFAULT_SMOKE
from tools.release.pipeline import repair_wheel
from tools.release.verify.schemes import verify_wheel
from tools.release.wheel.archive import read_wheel
from tools.release.wheel.build import BUILD_ROOT, _nvcc, build_cuda_library, build_wheel

pytestmark = [pytest.mark.slow, pytest.mark.skipif(_nvcc() is None, reason="no CUDA compiler (nvcc) on this host")]

EXPECTED = {  # strategy -> (grafted libs, Requires-Dist added, where libcufes finds libcudart)
    "vendor": ({"libcudart", "libgomp"}, None, "$ORIGIN/../cyfes.libs"),
    "pip": ({"libgomp"}, "nvidia-cuda-runtime>=13.0,<14", "$ORIGIN/../nvidia/cu13/lib"),
    "static": ({"libgomp"}, None, None),
}


@pytest.mark.parametrize("strategy", ["vendor", "pip", "static"])
def test_real_wheel_per_strategy_verifies_in_venv(strategy, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    python = wf.base_python()
    cuda = build_cuda_library(strategy, BUILD_ROOT)  # the release's build dirs: fast after `make dist`
    raw = build_wheel(python, wf.PY, cuda, strategy, BUILD_ROOT)
    fixed = repair_wheel(raw, tmp_path, strategy, ["venv", "user", "debian", "prefix", "target"], [wf.PY],
                         requirement="nvidia-cuda-runtime>=13.0,<14")
    assert fixed.report.ok, fixed.report.problems
    wheel = read_wheel(fixed.output)
    grafted = {Path(n).name.split("-")[0] for n in wheel.members if n.startswith("cyfes.libs/")}
    libs, requirement, cudart_entry = EXPECTED[strategy]
    assert grafted == libs
    assert (requirement in wheel.requires_dist) if requirement else not any("nvidia" in r for r in wheel.requires_dist)
    plan = next(p for p in fixed.plans if p.file == "cyfes/engine/libcufes.so")
    if cudart_entry:
        assert cudart_entry in plan.new_rpath
    assert not any(e.startswith("/") or e == "" for p in fixed.plans for e in p.new_rpath)
    (result,) = verify_wheel(fixed.output, ["venv"], python, DEFAULT_SMOKE)
    assert result.status == "ok", result.detail
    loaded = {Path(p).name.split("-")[0].split(".")[0] for p in result.inside}
    assert {"libcufes", "_gpu", "_cpu"} <= loaded
    assert ("libcudart" in loaded) == (strategy != "static")
    assert result.detail.startswith("fes ok cpu")
