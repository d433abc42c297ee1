"""cyfes's release tool: release.yaml in, verified wheels and conda packages out (`python -m tools.release`, cli.py;
installed from tools/pyproject.toml as `cyfes-release`).

    cli.py        the only module that prints or exits        config.py    release.yaml as a typed model
    targets.py    Pythons, CUDA flavours, runtime providers   errors.py    one root error, problems collected
    layouts.py    install schemes and the conda prefix        archive.py   one checked reader of archive members
    artifact.py   a wheel or a .conda: members, ELF files, install places
    check.py      where each DT_NEEDED resolves once installed (nothing installed)
    providers.py  the table of libraries other wheels provide (NVIDIA's runtime wheels) and where they land
    report.py     one row type and the release table
    elf/          model, loader (search rules), rpath (plan), patchelf (the one writer), glibc (floors)
    wheel/        archive, build, sdist, auditwheel (vendor libraries), set_rpaths (`fix`)
    conda/        archive, meta, info, depends, linking, channel, variants, fixtures, package, release
    verify/       smoke (the one program, InstallResult), trace (LD_DEBUG), schemes (wheels), prefix (.conda)
    toolchain/    cuda (nvcc), openmp (Debian 11's libgomp), pythons (interpreters)
"""
