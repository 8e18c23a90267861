"""``gridcast ui``: the Gradio UI on its own, talking to a running service.

The service normally mounts the UI at ``/ui`` (``gridcast serve`` / ``make run``);
this command serves the same app separately, e.g. next to a remote or containerised
service: ``gridcast ui --service-url http://127.0.0.1:3000``.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ui", help="serve the Gradio UI against a running service", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--service-url", help="where the service answers (default: settings.service_url)")
    p.add_argument("--host", default="127.0.0.1", help="interface for the UI (default: 127.0.0.1)")
    p.add_argument("--port", type=int, help="UI port (default: settings.ui_port)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from gridcast.errors import UserInputError
    from gridcast.settings import get_settings

    settings = get_settings()
    url = args.service_url or settings.service_url
    if not url.startswith(("http://", "https://")):
        raise UserInputError(f"--service-url must start with http:// or https://, got {url!r}", field="service-url")
    port = args.port if args.port is not None else settings.ui_port
    if not 0 < port < 65536:
        raise UserInputError(f"port must be 1..65535, got {port}", field="port")

    from ui.app import launch
    from ui.client import ServiceClient

    client = ServiceClient(url)
    if not client.ready():  # not fatal: the UI shows "service unreachable" and recovers when it is up
        logging.getLogger(__name__).warning("the service at %s is not ready yet", url)
    launch(client, settings=settings, host=args.host, port=port)
    return 0
