"""Router commands: router start."""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import ValidationError

from ..config import RouterSettings, Settings
from ..identity_file import load_or_create_identity
from ..router.run import run_router
from ..tasks import run
from .common import CliError, add_command, add_timeout_flags, first_line, timeouts_from


def register(commands: Any) -> None:
    router = commands.add_parser("router", help="use the grid as an OpenAI provider")
    actions = router.add_subparsers(metavar="ACTION", required=True)
    start = add_command(actions, "start", cmd_router_start, "serve the OpenAI API over your peers")
    defaults = RouterSettings()
    start.add_argument("--host", default=defaults.host, help="address to bind (default %(default)s)")
    start.add_argument("--port", type=int, default=defaults.port, help="port (default %(default)s)")
    start.add_argument("--api-key", help="require this key from OpenAI clients (default: any key)")
    start.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                       help="let browser pages from ORIGIN call the router (repeatable; '*' for any; "
                            "loopback pages always may; also $LOBSTAH_ORIGINS, comma-separated)")
    add_timeout_flags(start, "peers")


def cmd_router_start(args: argparse.Namespace, settings: Settings) -> int:
    try:
        timeouts = timeouts_from(args)
        router_settings = RouterSettings(
            host=args.host, port=args.port, api_key=args.api_key, cors_origins=args.cors_origin,
            connect_timeout=timeouts.connect_s, first_byte_timeout=timeouts.first_byte_s,
            idle_timeout=timeouts.idle_s, total_timeout=timeouts.total_s,
        )
    except ValidationError as exc:
        raise CliError(first_line(exc)) from None
    identity = load_or_create_identity(settings.identity_path)
    try:
        run(run_router(router_settings, identity, settings.identity_path, settings.home))
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return 0
