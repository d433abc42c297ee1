"""The house rules of src/cyfes, read from the source with `ast` (docs/architecture.md states them):

* rooms import only rooms below them: engine < io < analysis < workflows < commands (the package root's
  _errors, _units and _build_info are below all);
* no command module (one with configure_parser and run) is imported by anything but commands/main.py;
* only commands print or exit;
* every import inside a function says why it is deferred (`# deferred: ...`): an optional dependency, a cycle,
  or the rooms above the engine that FESResult's methods hand a surface to;
* the compiled modules of the engine are loaded by engine/backends.py alone.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "cyfes"
ROOMS = {"engine": 1, "io": 2, "analysis": 3, "workflows": 4, "commands": 5}
COMPILED = {"_cpu", "_gpu", "_hills"}


def modules():
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield path, ["cyfes"] + parts


def room(dotted):
    """The rank of a module 'cyfes.io.tables' (0: the package root's modules)."""
    parts = dotted.split(".")
    return ROOMS.get(parts[1], 0) if len(parts) > 1 else 0


def targets(node, name, is_package):
    """Absolute names of the cyfes modules an import statement in module `name` loads."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "cyfes"]
    if node.level == 0:
        base = node.module or ""
        if base.split(".")[0] != "cyfes":
            return []
    else:
        pkg = name if is_package else name[:-1]
        pkg = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
        base = ".".join(pkg + ([node.module] if node.module else []))
    return [base] if node.module else [f"{base}.{a.name}" for a in node.names]


def imports(path, parts):
    tree = ast.parse(path.read_text())
    nested = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
              for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, id(node) in nested, targets(node, parts, path.name == "__init__.py")


ALL = list(modules())
IDS = [".".join(p) for _, p in ALL]


@pytest.mark.parametrize("path,parts", ALL, ids=IDS)
def test_rooms_import_only_rooms_below(path, parts):
    me = ".".join(parts)
    bad = [f"line {n.lineno}: {t}" for n, nested, ts in imports(path, parts) for t in ts
           if room(t) > room(me) and not (nested and me == "cyfes.engine.result") and me not in ("cyfes", "cyfes.__main__")]
    assert not bad, f"{me} imports rooms above it: {bad}"


def _is_command(path):
    names = {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)}
    return path.parent.name == "commands" and {"configure_parser", "run"} <= names


COMMANDS = {".".join(p) for path, p in ALL if _is_command(path)}


def test_the_commands_are_found():
    assert {"cyfes.commands." + c for c in ("fes", "info", "demo", "sum_hills", "reweight", "state", "basins",
                                            "path")} <= COMMANDS


@pytest.mark.parametrize("path,parts", ALL, ids=IDS)
def test_no_command_imports_another(path, parts):
    me = ".".join(parts)
    if me == "cyfes.commands.main":
        return
    bad = [f"line {n.lineno}: {t}" for n, _, ts in imports(path, parts) for t in ts if t in COMMANDS and t != me]
    assert not bad, f"{me} imports a command: {bad}"


@pytest.mark.parametrize("path,parts", ALL, ids=IDS)
def test_only_commands_print_or_exit(path, parts):
    if parts[1:2] == ["commands"] or parts[-1] == "__main__":
        return
    bad = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in ("print", "exit", "quit"):
                bad.append(f"line {node.lineno}: {f.id}()")
            if isinstance(f, ast.Attribute) and f.attr in ("exit", "_exit") and getattr(f.value, "id", "") in ("sys", "os"):
                bad.append(f"line {node.lineno}: {f.value.id}.{f.attr}()")
        if isinstance(node, ast.Raise) and isinstance(node.exc, (ast.Name, ast.Call)):
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if getattr(exc, "id", "") == "SystemExit":
                bad.append(f"line {node.lineno}: raise SystemExit")
    assert not bad, f"{'.'.join(parts)} prints or exits: {bad}"


@pytest.mark.parametrize("path,parts", ALL, ids=IDS)
def test_every_deferred_import_says_why(path, parts):
    lines = path.read_text().split("\n")
    bad = [f"line {n.lineno}: {lines[n.lineno - 1].strip()}" for n, nested, _ in imports(path, parts)
           if nested and "# deferred:" not in lines[n.lineno - 1] and "# deferred:" not in lines[n.lineno - 2]]
    assert not bad, f"{'.'.join(parts)}: imports inside functions without a reason: {bad}"


@pytest.mark.parametrize("path,parts", ALL, ids=IDS)
def test_only_backends_loads_the_compiled_engine(path, parts):
    me = ".".join(parts)
    if me == "cyfes.engine.backends":
        return
    text = path.read_text()
    bad = [t for n, _, ts in imports(path, parts) for t in ts if t.split(".")[-1] in COMPILED]
    bad += [m for m in COMPILED if f'"{m}"' in text or f"'.{m}'" in text or f'"cyfes.engine.{m}"' in text]
    assert not bad, f"{me} loads compiled engine modules itself: {bad}"
