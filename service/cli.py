"""``gridcast serve``: start the Bento service (a thin wrapper over ``bentoml serve``).

Host and port default to the settings (``GRIDCAST_HOST`` / ``GRIDCAST_PORT``); the
flags override them for this run only. The service itself never trains: run
``gridcast train`` (or ``make run``, which trains quick models when the store is
empty) first.
"""

from __future__ import annotations

import argparse
import os
import sys

SERVICE = "service.service:Gridcast"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve forecasts over HTTP (BentoML)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", help="interface to bind (default: settings.host)")
    p.add_argument("--port", type=int, help="HTTP port (default: settings.port)")
    p.add_argument("--no-batching", action="store_true", help="switch adaptive batching off (benchmarks)")
    p.set_defaults(func=run)


def command(host: str, port: int) -> list[str]:
    """The ``bentoml serve`` command line (tests and benchmarks start the same one)."""
    return [sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", host, "--port", str(port)]


def run(args: argparse.Namespace) -> int:
    from gridcast.errors import UserInputError
    from gridcast.settings import get_settings

    settings = get_settings()
    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    if not 0 < port < 65536:
        raise UserInputError(f"port must be 1..65535, got {port}", field="port")
    env = dict(os.environ, GRIDCAST_HOST=host, GRIDCAST_PORT=str(port))
    if args.no_batching:
        env["GRIDCAST_BATCHING"] = "false"
    cmd = command(host, port)
    # exec, not a child: Ctrl-C, SIGTERM from a supervisor or `timeout` reach bentoml itself
    os.execve(cmd[0], cmd, env)
    return 0  # pragma: no cover - execve does not return
