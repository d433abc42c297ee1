"""Safety rules shared by the wheel and conda archive readers (one place, so both formats agree)."""
from __future__ import annotations

import posixpath


def link_leaves_tree(member: str, target: str) -> bool:
    """Whether symlink `member` -> `target` points outside the archive's tree (absolute, or up past its root)."""
    dest = posixpath.normpath(posixpath.join(posixpath.dirname(member), target))
    return target.startswith("/") or dest == ".." or dest.startswith("../")
