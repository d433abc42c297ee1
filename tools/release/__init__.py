"""cyfes's release tool: release.yaml in, verified wheels and conda packages out (`python -m tools.release`, cli.py;
installed from tools/pyproject.toml as `cyfes-release`).

    cli.py        parses, calls pipeline.py, prints, exits    pipeline.py  the wheel stage and the conda stage
    config.py     release.yaml as a typed model               archive.py   the one member type and checked reader
    artifact.py   a wheel or a .conda behind one face         check.py     where each DT_NEEDED resolves once installed
    elf/  wheel/  conda/  verify/  toolchain/                 the rest: one row per module in docs/release-tool.md

The layers (what may import what) are the table of tests/tools/test_tool_imports.py.
"""
