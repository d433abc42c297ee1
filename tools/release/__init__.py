"""cyfes's release tool: release.yaml in, verified wheels (and, with tools.release.conda, conda packages) out.

Run from the repository root: `python -m tools.release [COMMAND]` (see cli.py). The modules follow the data flow
of a release: config -> build -> repair (auditwheel) -> rpath plan -> patch -> wheel -> verify.
"""
