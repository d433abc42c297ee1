"""A Sphinx directive that renders the help of every `cyfes` command from its argparse parser.

`.. cyfes-cli-help::` writes one section per command with the text `cyfes COMMAND --help` prints, so the
reference cannot drift from the parsers. The help is shown verbatim (not parsed as reStructuredText: its
`fes_N.dat`-style names would be read as markup).
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Iterator

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

#: Columns the help is wrapped at (argparse reads $COLUMNS): what the page's full-width code blocks show, and a
#: stable page whatever the terminal.
WIDTH = 100


def commands() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(title, parser) for `cyfes`, each of its subcommands, and the CyFES 4.5 command line."""
    from cyfes.commands import cyfes45 as compat
    from cyfes.commands import main as cli

    parser = cli.build_parser()
    yield "cyfes", parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from ((f"cyfes {name}", sub) for name, sub in action.choices.items())
    yield "python -m cyfes (CyFES 4.5 command line)", compat.legacy_parser()


def help_text(parser: argparse.ArgumentParser) -> str:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(WIDTH)
    try:
        return parser.format_help()
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


class CliHelp(SphinxDirective):
    has_content = False

    def run(self) -> list[nodes.Node]:
        lines = StringList()
        for title, parser in commands():
            for line in (title, "-" * len(title), "", ".. code-block:: text", ""):
                lines.append(line, "<cyfes-cli-help>")
            for line in help_text(parser).rstrip().splitlines():
                lines.append(f"   {line}" if line.strip() else "", "<cyfes-cli-help>")
            lines.append("", "<cyfes-cli-help>")
        section = nodes.container()
        nested_parse_with_titles(self.state, lines, section)
        return section.children


def setup(app: Sphinx) -> dict[str, object]:
    app.add_directive("cyfes-cli-help", CliHelp)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
