"""The ``gridcast`` console script: it only dispatches.

Each package owns its commands in a ``cli`` module exposing
``register(subparsers)``; handlers import heavy libraries lazily so that
``gridcast --help`` stays fast. A :class:`~gridcast.errors.UserInputError`
anywhere becomes one line on stderr and exit code 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from gridcast.errors import GridcastError, UserInputError

#: modules that add subcommands, in help order
COMMAND_MODULES = (
    "training.settings_cli",  # settings
    "training.data_cli",  # data sample|import|check|plot
    "training.train_cli",  # train
    "training.backtest_cli",  # backtest
    "training.collect.cli",  # collect
    "service.cli",  # serve
    "streaming.cli",  # stream, replay
    "ui.cli",  # ui
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gridcast", description="Electricity-demand forecasting: data, models, service, streaming."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a package not installed in this build
            if exc.name and name.startswith(exc.name):
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
