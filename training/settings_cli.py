"""``gridcast settings``: list every setting with its value, variable and description.

``gridcast settings --markdown`` prints the README table; ``--update-readme`` rewrites
the block between the ``settings`` markers in README.md, so the README cannot drift
from :class:`gridcast.settings.Settings`.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from gridcast.settings import Settings

BEGIN, END = "<!-- BEGIN:settings -->", "<!-- END:settings -->"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("settings", help="list settings (GRIDCAST_* variables) with descriptions")
    p.add_argument("--markdown", action="store_true", help="print the README table")
    p.add_argument("--update-readme", type=Path, metavar="README", help="rewrite the settings block of this file")
    p.set_defaults(func=run)


def markdown_table(settings: Settings | None = None) -> str:
    """A Markdown table: variable, default, description — one row per field."""
    defaults = Settings.model_construct()
    rows = ["| variable | default | description |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        value = getattr(defaults, name, field.default)
        shown = "" if value is None else str(value)
        rows.append(f"| `GRIDCAST_{name.upper()}` | `{shown}` | {field.description or ''} |")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    if args.update_readme:
        text = args.update_readme.read_text()
        block = f"{BEGIN}\n{markdown_table()}\n{END}"
        new = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _m: block, text, flags=re.S)
        args.update_readme.write_text(new)
        print(f"updated {args.update_readme}")
        return 0
    if args.markdown:
        print(markdown_table())
        return 0
    from rich.console import Console
    from rich.table import Table

    current = Settings()
    table = Table(title="gridcast settings (env prefix GRIDCAST_)")
    for col in ("variable", "value", "description"):
        table.add_column(col)
    for name, field in Settings.model_fields.items():
        table.add_row(f"GRIDCAST_{name.upper()}", str(getattr(current, name)), field.description or "")
    Console().print(table)
    return 0
