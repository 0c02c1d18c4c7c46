"""Tracker commands: tracker start."""

from __future__ import annotations

import argparse
from typing import Any

from ..config import DEFAULT_HOST, TRACKER_PORT, Settings
from ..tracker.run import run_tracker
from ..tasks import run
from .common import CliError, add_command


def register(commands: Any) -> None:
    tracker = commands.add_parser("tracker", help="run an opt-in discovery tracker")
    actions = tracker.add_subparsers(metavar="ACTION", required=True)
    start = add_command(actions, "start", cmd_tracker_start, "keep a list of announced workers")
    start.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default %(default)s)")
    start.add_argument("--port", type=int, default=TRACKER_PORT, help="port (default %(default)s)")
    start.add_argument("--no-reachability-check", dest="check_reachability", action="store_false",
                       help="do not call announced URLs back to tell workers whether they are reachable")


def cmd_tracker_start(args: argparse.Namespace, settings: Settings) -> int:
    if not 0 <= args.port <= 65535:
        raise CliError(f"port must be 0-65535, not {args.port}")
    try:
        run(run_tracker(args.host, args.port, check_reachability=args.check_reachability))
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return 0
