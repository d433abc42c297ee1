"""How much `cyfes` loads before it knows the command: `cyfes --help`, `--version`, no arguments and every
command's help load neither numpy nor matplotlib nor the engine (each is run in a fresh interpreter and its
sys.modules read back); every command's help, built only when its name is parsed, is the text the parser built
with all commands at once prints."""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys

import pytest

from cyfes.commands import main as cli
from cyfes.io import formats
from cyfes.io.input_formats import INPUT_FORMATS

#: Modules a start-up that only prints help must not load: numpy, matplotlib, the engine (the compiled modules
#: among them) and the modules of cyfes.io and cyfes.workflows that import numpy. A command's parser takes its
#: choices and defaults from the light modules of those rooms (io.format_names, io.numbers, io.output,
#: workflows.metad_flags, workflows.opes_defaults).
HEAVY = ("numpy", "matplotlib", "cyfes.engine", "cyfes.io.formats", "cyfes.io.tables", "cyfes.io.writers",
         "cyfes.io.input_formats", "cyfes.io.opes", "cyfes.io.hills", "cyfes.io.plot", "cyfes.analysis",
         "cyfes.workflows.metad_reweight", "cyfes.workflows.reweight", "cyfes.workflows.state",
         "cyfes.workflows.sum_hills", "cyfes.workflows.umbrella", "cyfes.workflows.kernels")

#: Every command of `cyfes`: the help of each loads nothing of HEAVY.
COMMAND_NAMES = [name for name, _, _ in cli.COMMANDS]

#: Runs `cyfes ARGV` as `python -m cyfes` does, then prints its exit status and the cyfes/heavy modules loaded.
PROBE = """\
import json, runpy, sys
sys.argv = ["cyfes"] + json.loads(sys.argv[1])
try:
    runpy.run_module("cyfes", run_name="__main__", alter_sys=True)
    code = 0
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def _start(argv: list[str]) -> tuple[int, list[str], str]:
    """(exit status, modules loaded, stdout) of `cyfes ARGV` in a fresh interpreter."""
    env = dict(os.environ, COLUMNS="100")
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], capture_output=True, text=True,
                          env=env, timeout=60)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return report["code"], report["modules"], done.stdout


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


@pytest.mark.parametrize("argv,code", [(["--help"], 0), (["--version"], 0), ([], 2), (["-h"], 0)],
                         ids=["help", "version", "no-args", "h"])
def test_the_start_up_loads_no_numpy(argv: list[str], code: int) -> None:
    got, modules, _ = _start(argv)
    assert got == code
    assert _heavy(modules) == []
    assert not [m for m in modules if m.startswith("cyfes.commands.") and m.split(".")[-1] in cli._MODULES]


#: The light modules the parsers build on: each imports no numpy.
LIGHT = ("cyfes.commands.flags", "cyfes.commands.parsing", "cyfes.io.format_names", "cyfes.io.numbers",
         "cyfes.io.output", "cyfes.workflows.metad_flags", "cyfes.workflows.opes_defaults")


def _loads_numpy(module: str) -> bool:
    """Whether importing `module` alone, in a fresh interpreter, loads numpy."""
    probe = "import importlib, sys; importlib.import_module(sys.argv[1]); print('numpy' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe, module], capture_output=True, text=True, check=True,
                          timeout=60)
    return done.stdout.strip() == "True"


@pytest.mark.parametrize("module", [m for m in HEAVY if m.startswith("cyfes.") and m != "cyfes.engine"]
                         + ["cyfes.engine.fes"])
def test_the_heavy_modules_load_numpy(module: str) -> None:
    """What HEAVY names does load numpy, so that a help loading none of them is the claim it seems."""
    assert _loads_numpy(module)


@pytest.mark.parametrize("module", LIGHT)
def test_the_parsers_modules_load_no_numpy(module: str) -> None:
    assert not _loads_numpy(module)


@pytest.mark.parametrize("command", COMMAND_NAMES)
def test_command_help_loads_no_numpy(command: str) -> None:
    code, modules, out = _start([command, "--help"])
    assert code == 0
    assert out.startswith(f"usage: cyfes {command} ")
    assert _heavy(modules) == []
    assert not [m for m in modules if m.endswith(("._cpu", "._gpu", "._hills", "._tableparse"))]
    others = {m for m in cli._MODULES if m != command}
    assert not [m for m in modules if m.startswith("cyfes.commands.") and m.split(".")[-1] in others]


def test_main_help_lists_every_command_from_the_table() -> None:
    code, _, out = _start(["--help"])
    assert code == 0
    assert cli.MAIN_EPILOG in out
    for name, _, line in cli.COMMANDS:
        assert f"    {name}" in out and line in out


def _eager_help(command: str) -> str:
    """The help of `command` from the parser with every command built (what the docs render)."""
    parser = cli.build_parser()
    return next(a for a in parser._actions if a.dest == "command").choices[command].format_help()


@pytest.mark.parametrize("command", [name for name, _, _ in cli.COMMANDS])
def test_command_help_is_the_eagerly_built_one(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    code, _, out = _start([command, "--help"])
    assert code == 0
    assert out == _eager_help(command)


def test_fes_help_names_its_flags() -> None:
    code, _, out = _start(["fes", "--help"])
    assert code == 0
    for flag in ("--cv", "--bias", "--weights", "--sigma", "--periodic", "--bins", "--range", "--device",
                 "--precision", "--blocks", "--hills", "--output", "--format", "--plot", "--input-format",
                 "--stream", "--chunk-rows", "--basins", "--running", "--windows", "--scheduler"):
        assert f" {flag}" in out, flag
    flat = "".join(out.split())  # argparse wraps long choice lists
    assert "--format{" + ",".join(formats.FORMATS) + "}" in flat
    assert "--input-format{" + ",".join(INPUT_FORMATS) + "}" in flat


def test_lazy_and_eager_parsers_read_a_command_line_alike() -> None:
    argv = ["sum_hills", "--hills", "HILLS", "--min", "-pi,-1.5", "--max", "pi,2", "--bin", "10,10", "-q"]
    lazy, eager = cli.build_parser(lazy=True).parse_args(argv), cli.build_parser().parse_args(argv)
    assert vars(lazy) == vars(eager)
    assert lazy.min == "-pi,-1.5" and lazy.run.__module__ == "cyfes.commands.sum_hills"


@pytest.mark.parametrize("argv,message", [
    (["bogus"], "cyfes: error: argument COMMAND: invalid choice: 'bogus' (choose from 'fes', 'info', 'demo', "
                "'sum_hills', 'reweight', 'state', 'basins', 'path') (see `cyfes --help`)"),
    (["state"], "cyfes: error: one of the arguments --kt --temp is required (see `cyfes state --help`)"),
    (["--bogus"], "cyfes: error: unrecognized arguments: --bogus (see `cyfes --help`)"),
])
def test_errors_read_as_before(argv: list[str], message: str) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert cli.main(argv) == 2
    assert err.getvalue().strip() == message


def test_info_reports_the_backends_without_numpy() -> None:
    """`cyfes info` loads the engine's backends (the extensions' thread count, the GPU probe) but not numpy."""
    code, modules, out = _start(["info", "--json"])
    assert code == 0
    report = json.loads(out)
    from cyfes.engine import backends
    assert report["backends"]["cpu"]["threads"] == backends.cpu_module().max_threads()
    assert "numpy" not in modules and "matplotlib" not in modules
