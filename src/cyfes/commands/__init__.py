"""The `cyfes` command line: one module per command, each with `configure_parser` and `run`, and main.py that
dispatches to them, importing only the module of the command being parsed. The only room that prints or exits.
No command imports another; what several share is in parsing.py (the parser and its errors), flags.py (the flag
groups of `cyfes fes`, `demo`, `basins` and `path`, with no numpy), options.py (the samples the flags name),
judging.py, scanning.py and windows.py (the option groups of `cyfes fes`), answers.py and answer_tables.py (what
`cyfes basins`, `cyfes path` and `cyfes fes --basins` share), streaming.py (`cyfes fes --stream`) and
progress.py."""
