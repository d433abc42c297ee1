"""What a release is built for, as tables: the one source the tool, release.yaml, pyproject.toml and the README's
"Runs on" agree with (tests/tools/test_targets.py holds them to it)."""
from __future__ import annotations

from dataclasses import dataclass

# ==== PYTHONS ======================================================================================================


@dataclass(frozen=True)
class PythonTarget:
    """One supported CPython and the wheel that serves it."""

    version: str
    """"X.Y"."""
    abi3: bool
    """Served by the cp311-abi3 wheel (Limited API) instead of a wheel of its own."""

    @property
    def key(self) -> tuple[int, int]:
        major, minor = self.version.split(".")
        return int(major), int(minor)

    @property
    def wheel_tag(self) -> str:
        """The python-abi part of the wheel that installs on it."""
        return f"cp{ABI3_FROM.replace('.', '')}-abi3" if self.abi3 else f"cp{self.key[0]}{self.key[1]}-" \
            f"cp{self.key[0]}{self.key[1]}"


ABI3_FROM = "3.11"
"""The Limited API version of the abi3 wheel (pyproject's wheel.py-api): the buffer protocol behind Cython's
memoryviews is in the Limited API from 3.11 on."""

PYTHONS: tuple[PythonTarget, ...] = (
    PythonTarget("3.9", abi3=False),
    PythonTarget("3.10", abi3=False),
    PythonTarget("3.11", abi3=True),
    PythonTarget("3.12", abi3=True),
    PythonTarget("3.13", abi3=True),
    PythonTarget("3.14", abi3=True),
)

REQUIRES_PYTHON = f">={PYTHONS[0].version}"
"""pyproject.toml's requires-python."""


def python_versions() -> list[str]:
    """Every supported CPython, oldest first."""
    return [p.version for p in PYTHONS]


def build_pythons() -> list[str]:
    """The interpreters a release builds wheels with: one per version-specific wheel, one for the abi3 wheel."""
    return [p.version for p in PYTHONS if not p.abi3 or p.version == ABI3_FROM]


def abi3_pythons() -> list[str]:
    """The CPythons the abi3 wheel serves (the release verifies it with each one it finds)."""
    return [p.version for p in PYTHONS if p.abi3]


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split("."))

# ==== end PYTHONS ==================================================================================================
