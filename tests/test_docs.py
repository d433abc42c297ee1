"""The documentation: the docstring examples of the public API run and print what they say, the tutorial computes
the float64 reference surface and error bars, and the site builds with every warning an error and a page for
every public name."""
from __future__ import annotations

import doctest
import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cyfes
import reference

ROOT = Path(__file__).resolve().parents[1]
#: The modules whose docstrings carry the public API's examples.
EXAMPLE_MODULES = ("cyfes.engine.fes", "cyfes.workflows.sum_hills")


@pytest.mark.parametrize("name", EXAMPLE_MODULES)
def test_docstring_examples_print_what_they_show(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} print something else"


def test_every_public_function_and_method_has_an_example() -> None:
    r = cyfes.FESResult
    documented = [cyfes.fes, cyfes.hills, r.points, r.save, r.read, r.delta_f, r.marginal, r.minima, r.basins,
                  r.delta_f_regions, r.path]
    finder = doctest.DocTestFinder(recurse=False)
    missing = [f.__qualname__ for f in documented if not any(t.examples for t in finder.find(f))]
    assert not missing, f"no Examples section: {missing}"


def tutorial_code() -> str:
    """The code of the tutorial's `.. plot::` directives, in order (what the site build runs to draw it)."""
    lines, inside = [], False
    for line in (ROOT / "docs" / "tutorial.rst").read_text().splitlines():
        if line.startswith(".. "):
            inside = line.startswith(".. plot::")
        elif inside and line.startswith("   ") and not line.lstrip().startswith(":"):
            lines.append(line[3:])
        elif inside and line.strip() and not line.startswith(" "):
            inside = False
    return "\n".join(lines)


def test_tutorial_computes_the_reference_surface_and_error_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib
    matplotlib.use("Agg")
    monkeypatch.chdir(ROOT / "docs")
    ns: dict = {}
    exec(compile(tutorial_code(), "docs/tutorial.rst", "exec"), ns)
    import matplotlib.pyplot as plt
    plt.close("all")
    table = np.loadtxt(ROOT / "tests/data/plumed/colvar2d.dat")  # time phi psi metad.bias
    period = [2 * np.pi, 2 * np.pi]
    res, res1 = ns["res"], ns["res1"]
    want = reference.free_energy(table[:, 1:3], [0.3, 0.3], reference.regular_grid(res.axes), bias=table[:, 3],
                                 period=period)
    assert np.max(np.abs(res.values.ravel() - want)) < 2e-6 * res.kT  # the truncation bound, at each of F and min F
    grid1 = res1.axes[0][:, None]
    want1 = reference.free_energy(table[:, 1:2], [0.3], grid1, bias=table[:, 3], period=period[:1])
    err1 = reference.block_error(table[:, 1:2], [0.3], grid1, 4, bias=table[:, 3], period=period[:1])
    assert np.max(np.abs(res1.values - want1)) < 2e-6 * res1.kT
    assert np.allclose(res1.error, err1, rtol=1e-5, atol=1e-5 * res1.kT)


@pytest.mark.slow
def test_site_builds_without_warnings_with_a_page_per_public_name(tmp_path: Path) -> None:
    out = tmp_path / "html"
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           "-d", str(tmp_path / "doctrees"), str(ROOT / "docs"), str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in cyfes.__all__:
        if name != "__version__":
            assert (out / "generated" / f"cyfes.{name}.html").is_file(), f"no API page for cyfes.{name}"
    reference = (out / "cli-reference.html").read_text()
    for flag in ("--sigma", "--hills", "--deltaFat", "-cmin"):  # one of each command family's own flags
        assert flag in reference, f"{flag} missing from the CLI reference"
    assert (out / "_images").is_dir() and any((out / "_images").glob("tutorial-*.png"))
