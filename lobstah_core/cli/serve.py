"""``lobstah-core serve``: the headless node (for launchd/systemd), one log line per event."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import Any

from pydantic import ValidationError

from ..config import Settings
from ..demo import run_demo
from ..event_log import describe
from ..http import ShutdownSignals
from ..identity_file import load_or_create_identity
from ..node import Node
from ..tasks import run
from .common import CliError, add_command, finite_positive, first_line
from .node_flags import add_node_flags, node_settings, node_warnings


def register(commands: Any) -> None:
    serve = add_command(commands, "serve", cmd_serve, "run this node headless: router, worker, switches")
    serve.add_argument("--demo", action="store_true", help="run the built-in demo grid instead (scratch directory)")
    add_node_flags(serve)
    serve.add_argument("--advertise", action=argparse.BooleanOptionalAction, default=None,
                       help="turn the advertise switch on or off (remembered; default: as last time, off at first)")
    serve.add_argument("--sync", action=argparse.BooleanOptionalAction, default=None,
                       help="turn the sync switch on or off (remembered; default: as last time, off at first)")
    serve.add_argument("--seconds", type=finite_positive, help="stop after this long (default: until SIGINT/SIGTERM)")
    serve.add_argument("--api-key", help="require this key on every route of the router but /, /pubkey and /dashboard (default: any key)")


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    if args.demo:
        try:
            with contextlib.suppress(KeyboardInterrupt):
                run(run_demo(args.seconds, sys.stdout, args.router_port or 0))
        except OSError as exc:
            raise CliError(f"cannot listen on port {args.router_port}: {exc.strerror or exc}") from None
        return 0
    try:
        settings_of_node = node_settings(args)
    except (ValidationError, ValueError) as exc:
        raise CliError(first_line(exc)) from None
    for warning in node_warnings(settings_of_node):
        print(f"warning: {warning}", file=sys.stderr)
    identity = load_or_create_identity(settings.identity_path)
    node = Node(settings_of_node, identity, settings.identity_path, settings.home)
    try:
        run(_serve(node, args))
    except OSError as exc:
        raise CliError(f"cannot listen: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return 0


async def _serve(node: Node, args: argparse.Namespace) -> None:
    async with node.bus.subscribe() as events:
        with ShutdownSignals() as signals:
            await node.start()
            try:
                if args.advertise is not None:
                    await node.set_advertise(args.advertise)
                if args.sync is not None:
                    await node.set_sync(args.sync)
                snap = await node.snapshot()
                print(f"lobstah node {snap.pubkey}", flush=True)
                if snap.router_url:
                    print(f"  router     {snap.router_url}/v1 ({len(snap.peers)} peers)")
                if snap.worker_url:
                    print(f"  worker     {snap.worker_url} ({node.settings.engine.name})")
                print(f"  advertise  {'on' if snap.advertise[0] else 'off'}: {snap.advertise[1]}")
                print(f"  sync       {'on' if snap.sync[0] else 'off'}: {snap.sync[1]}", flush=True)
                printer = asyncio.create_task(_log(events))
                await signals.wait(args.seconds)
                printer.cancel()
                print("shutting down", flush=True)
            finally:
                await node.stop()


async def _log(events: asyncio.Queue[Any]) -> None:
    while True:
        print(describe(await events.get()), flush=True)
