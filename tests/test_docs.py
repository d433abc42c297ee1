"""The documentation: the docstring examples of the public API run and print what they say, and the site builds
with every warning an error and a page for every public name."""
from __future__ import annotations

import doctest
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import cyfes

ROOT = Path(__file__).resolve().parents[1]
#: The modules whose docstrings carry the public API's examples.
EXAMPLE_MODULES = ("cyfes._api", "cyfes.hillsum")


@pytest.mark.parametrize("name", EXAMPLE_MODULES)
def test_docstring_examples_print_what_they_show(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} print something else"


def test_every_public_function_and_method_has_an_example() -> None:
    documented = [cyfes.fes, cyfes.hills, cyfes.FESResult.points, cyfes.FESResult.save, cyfes.FESResult.delta_f,
                  cyfes.FESResult.marginal]
    finder = doctest.DocTestFinder(recurse=False)
    missing = [f.__qualname__ for f in documented if not any(t.examples for t in finder.find(f))]
    assert not missing, f"no Examples section: {missing}"


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
