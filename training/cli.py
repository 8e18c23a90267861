"""``python -m training.cli`` and ``from training.cli import main``: the ``gridcast`` command.

The command is the composition root :mod:`gridcast.cli`, which discovers every adapter's
subcommands from entry points; this name is kept for callers that ran it from here.
"""

from __future__ import annotations

import sys

from gridcast.cli import main

__all__ = ["main"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
