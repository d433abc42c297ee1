"""What a wheel declares: the Pythons it serves (its tags) and the distributions it requires, whose libraries
(providers.py) its RPATHs may legitimately reach."""
from __future__ import annotations

import re
from collections.abc import Sequence

from ..providers import Provider, normalize, providers_of
from ..targets import python_versions, version_key
from .archive import Wheel


def wheel_pythons(wheel: Wheel, configured: Sequence[str] = ()) -> list[str]:
    """cpXY tags name their Python; py3 wheels are checked for every configured (or supported) Python, abi3
    wheels for every configured or supported one from their Limited API version on."""
    if wheel.pythons:
        return wheel.pythons
    tag = wheel.tags.split("-")[0]
    if not (tag.startswith("cp") and "abi3" in wheel.tags):
        return list(configured or python_versions())
    low = (int(tag[2]), int(tag[3:] or 0))
    candidates = sorted(set(configured) | set(python_versions()), key=version_key)
    return [v for v in candidates if version_key(v) >= low]


def wheel_providers(wheel: Wheel) -> list[Provider]:
    """Libraries the wheel's declared dependencies install (auditwheel #257/#404: RPATHs to them are legitimate)."""
    return [p for n in declared_dists(wheel) for p in providers_of(n)]


def declared_dists(wheel: Wheel) -> list[str]:
    """The PEP 503-normalised names of the wheel's unconditional Requires-Dist (an extra's are optional)."""
    names = set()
    for req in wheel.requires_dist:
        m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
        if m and "extra ==" not in req:
            names.add(normalize(m.group(1)))
    return sorted(names)
