"""The ``gridcast`` console script: a composition root that only dispatches.

The core names no adapter. Each adapter declares its subcommands as entry points in
the group ``gridcast.commands`` (``pyproject.toml``), each pointing at a
``register(subparsers)`` function of its ``cli`` module; this module discovers them
with :func:`importlib.metadata.entry_points` and adds them in name order. An adapter
left out of a build (its package not installed) simply adds no commands. Handlers
import heavy libraries lazily so that ``gridcast --help`` stays fast. A
:class:`~gridcast.errors.UserInputError` anywhere becomes one line on stderr and exit
code 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import TypeAlias

from gridcast.errors import GridcastError, UserInputError

#: the entry-point group adapters declare their subcommands in
GROUP = "gridcast.commands"

#: what an entry point names: a function that adds subcommands to the parser
Register: TypeAlias = Callable[[argparse._SubParsersAction], None]


def command_entry_points() -> list[EntryPoint]:
    """The declared ``register`` functions, in name order (one per entry, names unique)."""
    found = {ep.name: ep for ep in entry_points(group=GROUP)}
    return [found[name] for name in sorted(found)]


def _load(ep: EntryPoint) -> Register | None:
    try:
        return ep.load()
    except ModuleNotFoundError as exc:  # an adapter not installed in this build
        if exc.name and ep.module.startswith(exc.name):
            return None
        raise


def build_parser(registers: Sequence[Register] | None = None) -> argparse.ArgumentParser:
    """The parser with every discovered adapter's subcommands, or only ``registers``'s.

    ``registers`` serves a build whose code is copied rather than pip-installed, so that
    no entry points exist (an adapter run as a module inside a container image).
    """
    parser = argparse.ArgumentParser(
        prog="gridcast", description="Electricity-demand forecasting: data, models, service, streaming."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    if registers is None:
        registers = [r for r in map(_load, command_entry_points()) if r is not None]
    for register in registers:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None, registers: Sequence[Register] | None = None) -> int:
    parser = build_parser(registers)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        rc = args.func(args)
    except UserInputError as exc:
        print(f"gridcast {args.command}: error: {exc.detail}", file=sys.stderr)
        return 2
    except GridcastError as exc:
        print(f"gridcast {args.command}: {exc.detail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
