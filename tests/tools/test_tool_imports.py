"""The release tool's layering, read from its source with `ast` (nothing is imported to check it).

LAYERS is the one table of layers: a unit (a top-level module or a subpackage of tools/release) may import only
units of a lower layer, and its own package's modules. An import inside a function is allowed only where it
defers an optional dependency: the imported module is one of OPTIONAL, or imports one at its top (directly or
through the tool's own modules).
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "release"
PACKAGE = "tools.release"

LAYERS: dict[str, int] = {
    # 0: the vocabulary every other module speaks; imports nothing from the tool but errors
    "errors": 0, "targets": 0, "layouts": 0, "program": 0,
    # 1: tables and release.yaml's model
    "providers": 1, "config": 1, "toolchain": 1,
    # 2: readers of archives and ELF files; the SBOM of vendored libraries
    "archive": 2, "elf": 2, "sbom": 2,
    # 3, 4: the two formats, each with its steps (a .conda is made from a wheel, so conda sits above wheel)
    "wheel": 3, "conda": 4,
    # 5: either artifact behind one face; installing and running one
    "artifact": 5, "verify": 5,
    # 6: what check and the release table make of them
    "check": 6, "report": 6,
    # 7: the release pipeline (wheel stage, conda stage) and the work behind check, fix, verify
    "pipeline": 7,
    # 8: the command line; 9: `python -m tools.release`
    "cli": 8, "__main__": 9,
}

OPTIONAL: dict[str, str] = {
    "rattler": "py-rattler, the conda extra (cyfes-release[conda]): checking or fixing a wheel must run without it",
    "compression": "compression.zstd, in the standard library only from Python 3.14",
    "backports": "backports.zstd, the conda extra's zstd before Python 3.14",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(TOOL).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """What an import statement names, relative imports resolved to names inside tools.release ("" = the package
    itself); an absolute import keeps its full name, prefixed "/" so it never matches one of the tool's."""
    if isinstance(node, ast.Import):
        return ["/" + a.name for a in node.names]
    if not node.level:
        return ["/" + (node.module or "")]
    base = module.split(".") if module else []
    base = base if is_package else base[:-1]
    base = base[:len(base) - (node.level - 1)]
    if node.module:
        return [".".join(base + [node.module])]
    return [".".join(base + [a.name]) for a in node.names]  # from . import pipeline


def _imports(path: Path) -> tuple[set[str], list[tuple[int, str]]]:
    """(module-level imports, [(line, name)] of imports inside a function) of one source file."""
    module, tree = _module_name(path), ast.parse(path.read_text(encoding="utf-8"), str(path))
    top: set[str] = set()
    inner: list[tuple[int, str]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                names = _targets(child, module, path.name == "__init__.py")
                if in_function:
                    inner.extend((child.lineno, n) for n in names)
                else:
                    top.update(names)
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
    return top, inner


SOURCES = sorted(TOOL.rglob("*.py"))
GRAPH = {_module_name(p): _imports(p) for p in SOURCES}


def _unit(module: str) -> str:
    return module.split(".", 1)[0]


def _optional_reached(module: str, seen: set[str] | None = None) -> str | None:
    """The optional dependency `module` imports at its top, directly or through the tool's modules; else None."""
    if module.startswith("/"):
        top = module[1:].split(".", 1)[0]
        return top if top in OPTIONAL else None
    seen = seen if seen is not None else set()
    if module in seen or module not in GRAPH:
        return None
    seen.add(module)
    return next((found for m in sorted(GRAPH[module][0]) if (found := _optional_reached(m, seen))), None)


def test_the_graph_was_read() -> None:
    """The reader sees what it should (an empty graph would make every other test pass)."""
    assert {"cli", "pipeline", "wheel.set_rpaths", "conda.package", "verify.prefix"} <= set(GRAPH)
    assert "pipeline" in GRAPH["cli"][0] and "wheel.archive" in GRAPH["conda.package"][0]
    assert _optional_reached("conda.channel") == "rattler" and _optional_reached("verify.prefix") == "rattler"
    assert _optional_reached("check") is None


def test_every_module_has_a_layer() -> None:
    units = {_unit(m) for m in GRAPH if m}
    assert units - set(LAYERS) == set(), "add the new module to LAYERS"
    assert set(LAYERS) - units == set(), "LAYERS names a module that is gone"


def test_no_upward_import() -> None:
    """A unit imports only lower layers and its own package (in-function imports included)."""
    bad = []
    for module, (top, inner) in GRAPH.items():
        if not module:
            continue
        for target in sorted(top | {n for _, n in inner}):
            if target.startswith("/") or not target:
                continue
            unit, own = _unit(target), _unit(module)
            if unit != own and LAYERS[unit] >= LAYERS[own]:
                bad.append(f"{module} (layer {LAYERS[own]}) imports {target} (layer {LAYERS[unit]})")
    assert bad == []


def test_imports_inside_functions_only_defer_optional_dependencies() -> None:
    bad = [f"{module}:{line} imports {target[1:] if target.startswith('/') else target} inside a function"
           for module, (_, inner) in GRAPH.items() for line, target in inner if _optional_reached(target) is None]
    assert bad == []


def test_the_command_line_imports_no_optional_dependency() -> None:
    """What the rule protects, observed: the CLI loaded in a fresh interpreter has loaded no optional module."""
    loaded = "{m.split('.')[0] for m in sys.modules}"
    probe = f"import sys, tools.release.cli; print(sorted({loaded} & {set(OPTIONAL)!r}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_architecture_table_of_the_docs_matches() -> None:
    """docs/release-tool.md has one row per module; its layer column is LAYERS's."""
    text = (ROOT / "docs" / "release-tool.md").read_text(encoding="utf-8")
    section = text.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `([\w./]+)` \| (\d) \|", section, re.M))
    modules = {str(p.relative_to(TOOL)) for p in SOURCES if p.name != "__init__.py"}
    assert set(rows) == modules
    assert {m: int(layer) for m, layer in rows.items()} == {m: LAYERS[m.split("/")[0].removesuffix(".py")]
                                                             for m in modules}
