"""layouts.py (where each wheel part lands per scheme) and config.py (release.yaml)."""
from __future__ import annotations

import pytest

from tools.release.config import ReleaseConfig, load_config, parse_config
from tools.release.errors import ConfigError
from tools.release.layouts import installed_path, layout

DATA_LIB = "seedpkg-1.0.data/data/lib/libseed.so"


@pytest.mark.parametrize("scheme, pkg, data", [
    ("venv", "lib/python3.12/site-packages/seedpkg/_ext.so", "lib/libseed.so"),
    ("user", "lib/python3.12/site-packages/seedpkg/_ext.so", "lib/libseed.so"),
    ("prefix", "lib/python3.12/site-packages/seedpkg/_ext.so", "lib/libseed.so"),
    ("debian", "local/lib/python3.12/dist-packages/seedpkg/_ext.so", "local/lib/libseed.so"),
    ("target", "seedpkg/_ext.so", None),
    ("conda", "lib/python3.12/site-packages/seedpkg/_ext.so", "lib/libseed.so"),
])
def test_members_land_per_scheme(scheme, pkg, data):
    lay = layout(scheme, "3.12")
    assert installed_path(lay, "seedpkg/_ext.so").path == pkg
    placed = installed_path(lay, DATA_LIB)
    assert placed.path == data
    if data is None:
        assert "--target" in placed.reason and ".data/data" in placed.reason


def test_target_keeps_data_outside_lib_and_scripts():
    lay = layout("target", "3.9")
    assert installed_path(lay, "seedpkg-1.0.data/data/share/x.txt").path == "share/x.txt"
    assert installed_path(lay, "seedpkg-1.0.data/scripts/tool").path == "bin/tool"
    assert installed_path(layout("venv", "3.9"), "p-1.data/headers/a.h", dist="p").path == "include/site/python3.9/p/a.h"


def test_repository_release_yaml_loads():
    cfg = load_config("release.yaml")
    assert cfg.python == ("3.9", "3.10", "3.11")  # 3.10 is not the float 3.1
    assert cfg.cuda.strategy == "vendor" and cfg.schemes == ("venv", "user", "debian", "prefix", "target")
    assert cfg.conda.channel == "dist/conda" and cfg.conda_pythons == ("3.9", "3.10", "3.11", "3.12", "3.13")


def test_empty_config_is_defaults():
    assert parse_config("") == ReleaseConfig()


def test_errors_name_key_line_and_allowed_values_all_at_once():
    text = "python: [3.11]\ncuda:\n  strategy: vendr\n  enabld: true\nschemes: [venv, conda]\nverify: {enabled: 2}\n"
    with pytest.raises(ConfigError) as exc:
        parse_config(text, "release.yaml")
    msgs = [str(p) for p in exc.value.problems]
    assert msgs == [
        "In release.yaml, cuda.strategy (line 3): 'vendr' is not allowed (allowed: vendor, pip, static)",
        "In release.yaml, cuda.enabld (line 4): unknown key; did you mean 'enabled'? "
        "(allowed: enabled, strategy, flavour, architectures, pip_requirement)",
        "In release.yaml, schemes (line 5): 'conda' is not allowed: expected one of venv, user, debian, prefix, "
        "target",
        "In release.yaml, verify.enabled (line 6): must be true or false, not '2'",
    ]


def test_not_yaml():
    with pytest.raises(ConfigError, match=r"In release.yaml, line 2: not valid YAML"):
        parse_config("python: [3.11\ncuda: {", "release.yaml")
