"""Install schemes as data: where each part of a wheel lands, relative to one root, per Python X.Y.

This is the only module that knows a site-packages path. Every other module asks `installed_path` where an
archive member ends up, so adding a scheme means adding one entry to SCHEMES.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

SCHEME_KEYS = ("purelib", "platlib", "headers", "scripts", "data")


@dataclass(frozen=True)
class InstallLayout:
    """Where one install scheme puts each wheel part, relative to the scheme's root."""

    name: str
    """Short name used in release.yaml and reports: venv, user, debian, prefix, target, conda."""
    python: str
    """The Python version "X.Y" whose directories these are."""
    description: str
    """What the root is, for reports (e.g. "pip install --target T: root is T")."""
    paths: dict[str, str] = field(hash=False)
    """Scheme key -> directory relative to the root ("." is the root itself)."""
    dropped: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    """Scheme key -> first path components that the installer silently does not install."""
    dropped_reason: str = ""
    """Why `dropped` members are not installed (said plainly in reports)."""
    libdir: str | None = None
    """A directory of the root where external shared libraries live (conda's $PREFIX/lib), if the scheme has one."""

    @property
    def site_packages(self) -> str:
        return self.paths["platlib"]

    @property
    def label(self) -> str:
        """scheme-X.Y in reports ("conda" alone for a package of no particular Python)."""
        return f"{self.name}-{self.python}" if self.python else self.name


@dataclass(frozen=True)
class Placement:
    """Where one archive member lands in a layout, or why it does not."""

    member: str
    path: str | None
    """Path relative to the layout root, or None when the scheme does not install the member."""
    reason: str = ""


def _posix(site: str, headers: str) -> dict[str, str]:
    return {"purelib": site, "platlib": site, "headers": headers, "scripts": "bin", "data": "."}


def _make(name: str, python: str) -> InstallLayout:
    v = python
    if name == "venv":
        return InstallLayout(name, v, "venv (posix_venv): root is the venv",
                             _posix(f"lib/python{v}/site-packages", f"include/site/python{v}/{{dist}}"))
    if name == "user":
        return InstallLayout(name, v, "pip install --user (posix_user): root is PYTHONUSERBASE",
                             _posix(f"lib/python{v}/site-packages", f"include/python{v}/{{dist}}"))
    if name == "debian":
        # Debian's patched sysconfig: pip installs into /usr/local/lib/pythonX.Y/dist-packages, data into /usr/local.
        return InstallLayout(name, v, "Debian posix_local: root is /usr", {
            "purelib": f"local/lib/python{v}/dist-packages", "platlib": f"local/lib/python{v}/dist-packages",
            "headers": f"local/include/python{v}/{{dist}}", "scripts": "local/bin", "data": "local"})
    if name == "prefix":
        return InstallLayout(name, v, "pip install --prefix P: root is P",
                             _posix(f"lib/python{v}/site-packages", f"include/python{v}/{{dist}}"))
    if name == "target":
        # pip --target installs with the home scheme into a temp dir, then moves lib/python/* and the data dir's
        # entries that do not contain lib/python; so data files under lib/ are lost (pip's _handle_target_dir).
        return InstallLayout(name, v, "pip install --target T: root is T",
                             {"purelib": ".", "platlib": ".", "headers": "include/python/{dist}",
                              "scripts": "bin", "data": "."},
                             dropped={"data": ("lib",)},
                             dropped_reason="pip install --target does not install .data/data files under lib/ "
                                            "(it moves only the package dir out of its temporary home scheme)")
    if name == "conda":
        return InstallLayout(name, v, "conda environment: root is $PREFIX", {
            "purelib": f"lib/python{v}/site-packages", "platlib": f"lib/python{v}/site-packages",
            "headers": "include", "scripts": "bin", "data": "."}, libdir="lib")
    raise KeyError(name)


SCHEMES = ("venv", "user", "debian", "prefix", "target", "conda")
"""Every scheme this module knows."""
WHEEL_SCHEMES = ("venv", "user", "debian", "prefix", "target")
"""The schemes a wheel must work in unless release.yaml says otherwise."""


def layout(name: str, python: str) -> InstallLayout:
    """The layout of scheme `name` for Python "X.Y"."""
    return _make(name, python)


def layouts(names: tuple[str, ...] | list[str], pythons: tuple[str, ...] | list[str]) -> list[InstallLayout]:
    """Every (scheme, python) layout, schemes outer so reports group by scheme."""
    return [layout(n, p) for n in names for p in pythons]


def data_dir_key(member: str) -> tuple[str, str] | None:
    """("<key>", "<rest>") for a member `<dist>-<ver>.data/<key>/<rest>`, else None."""
    parts = member.split("/", 2)
    if len(parts) == 3 and parts[0].endswith(".data") and parts[1] in SCHEME_KEYS:
        return parts[1], parts[2]
    return None


def installed_path(lay: InstallLayout, member: str, dist: str = "", root_is_purelib: bool = False) -> Placement:
    """Where archive member `member` lands under `lay`'s root (pure path arithmetic, nothing touched)."""
    keyed = data_dir_key(member)
    if keyed is None:
        base = lay.paths["purelib" if root_is_purelib else "platlib"]
        return Placement(member, posixpath.normpath(posixpath.join(base, member)))
    key, rest = keyed
    first = rest.split("/", 1)[0]
    if first in lay.dropped.get(key, ()):
        return Placement(member, None, lay.dropped_reason)
    base = lay.paths[key].replace("{dist}", dist)
    return Placement(member, posixpath.normpath(posixpath.join(base, rest)))
