"""The release tool's exceptions: one root, a few kinds, and problems collected before raising once.

Messages have the form "In <artifact>, <file>: <what is wrong>" (the pypa/installer habit) so a user can find the
file without a traceback. Only the CLI prints them; it maps `BadInputError` to exit code 2.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file of one artifact."""

    artifact: str
    """The wheel, .conda or config file the problem was found in (a path or file name)."""
    file: str
    """The member of the artifact (archive path, YAML key); empty when the artifact as a whole is wrong."""
    message: str
    """What is wrong, in words a user can act on."""

    def __str__(self) -> str:
        where = f"In {self.artifact}, {self.file}" if self.file else f"In {self.artifact}"
        return f"{where}: {self.message}"


class ReleaseError(Exception):
    """Root of every error the release tool raises on purpose."""

    exit_code = 1

    def __init__(self, problems: Iterable[Problem | str]) -> None:
        self.problems: tuple[Problem | str, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def one(cls, artifact: str, file: str, message: str) -> "ReleaseError":
        return cls([Problem(artifact, file, message)])


class BadInputError(ReleaseError):
    """An input (archive, ELF, config, command line) is malformed or unsafe: exit code 2, nothing written."""

    exit_code = 2


class ConfigError(BadInputError):
    """release.yaml is malformed: unknown key, wrong type, value not allowed."""


class ArchiveError(BadInputError):
    """A wheel or conda archive is not a zip, truncated, has a wrong RECORD, or an entry would leave the tree."""


class ElfError(BadInputError):
    """A file named like a shared library is not ELF, or is ELF for another machine."""


class ToolError(ReleaseError):
    """An external tool (patchelf, auditwheel, cmake, pip) is missing, too old, or failed."""


class BuildError(ReleaseError):
    """Building the CUDA library or a wheel failed."""


class VerifyError(ReleaseError):
    """An installed artifact did not import, compute, or loaded a library from outside its tree."""


def raise_if_any(problems: list[Problem], kind: type[ReleaseError] = BadInputError) -> None:
    """Validation collects every problem first, then raises once so the user sees them all."""
    if problems:
        raise kind(problems)
