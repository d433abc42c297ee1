"""recipe/recipe.yaml rendered by rattler-build itself (py-rattler-build's Stage0Recipe.render, no build) for every
variant: the default ones of recipe/conda_build_config.yaml and the opt-in recipe/cuda118.yaml. Each rendered
package must carry the build string, build number and CUDA run requirements that the release tool gives the same
variant (tools/release/conda/variants.py and depends.py), so the recipe and the tool cannot drift apart. The build
string's hash is rattler-build's: the tool's recipe_variant must be the variant rattler-build says the recipe used."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tools.release.conda.depends import cuda_specs
from tools.release.conda.variants import VARIANTS

ROOT = Path(__file__).resolve().parents[2]
PY = "3.12"


def rendered(tmp: Path) -> dict[str, tuple[dict, dict]]:
    """Build string -> (rendered recipe, used variant), for every variant of both variant files, Python 3.12."""
    from rattler_build import PlatformConfig, RenderConfig, Stage0Recipe, VariantConfig

    out = {}
    for name in ("conda_build_config.yaml", "cuda118.yaml"):
        cfg = yaml.safe_load((ROOT / "recipe" / name).read_text())
        cfg["python"] = [PY]
        path = tmp / name
        path.write_text(yaml.safe_dump(cfg))
        render = RenderConfig(platform=PlatformConfig(target_platform="linux-64", experimental=True))
        for r in Stage0Recipe.from_file(ROOT / "recipe/recipe.yaml").render(VariantConfig.from_file(path), render):
            recipe = r.recipe.to_dict()
            out[recipe["build"]["string"]] = recipe, dict(r.variant)
    return out


@pytest.fixture(scope="module")
def recipes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict, dict]]:
    pytest.importorskip("rattler_build")
    return rendered(tmp_path_factory.mktemp("render"))


def test_every_variant_renders_with_the_tools_build_string(recipes) -> None:
    expected = {v.build_string(PY, v.build_number_offset): v.build_number_offset for v in VARIANTS}
    assert {s: r["build"]["number"] for s, (r, _) in recipes.items()} == expected


@pytest.mark.parametrize("v", VARIANTS, ids=[v.name for v in VARIANTS])
def test_build_string_is_conda_forges_form_and_hashes_the_used_variant(recipes, v) -> None:
    string = v.build_string(PY, v.build_number_offset)
    assert re.fullmatch(rf"{v.tag}_py312h[0-9a-f]{{7}}_{v.build_number_offset}", string)
    assert recipes[string][1] == v.recipe_variant(PY)


@pytest.mark.parametrize("v", VARIANTS, ids=[v.name for v in VARIANTS])
def test_cuda_run_requirements_match_the_tool(recipes, v) -> None:
    recipe, _ = recipes[v.build_string(PY, v.build_number_offset)]
    run = recipe["requirements"]["run"]
    cuda_run = sorted(s for s in run if s.startswith(("__cuda", "cuda", "cudatoolkit")))
    constraints = recipe["requirements"].get("run_constraints") or []
    if v.cuda is None:
        assert cuda_run == [] and constraints == []
        return
    # the tool's depends for a package whose library links the shared runtime of this variant
    assert cuda_run == sorted(cuda_specs(v.cuda, {v.runtime_soname}))
    assert constraints == [f"__cuda >={v.cuda.split('.')[0]}"]
