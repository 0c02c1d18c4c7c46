"""Running a tracker in the foreground until SIGINT/SIGTERM (``lobstah-core tracker start``)."""

from __future__ import annotations

import sys
from typing import TextIO

from ..http import RunningServer, serve_until_signal
from .app import create_app

__all__ = ["run_tracker"]


async def run_tracker(host: str, port: int, out: TextIO = sys.stdout, check_reachability: bool = True) -> None:
    """Serve a tracker until a shutdown signal, printing a banner first."""
    server = RunningServer(create_app(check_reachability=check_reachability), host, port, "tracker")

    async def banner() -> list[str]:
        return [
            f"lobstah tracker listening on {server.url}",
            "  workers announce with: lobstah-core worker start --announce-to "
            f"{server.url} --announce-url http://<reachable-host>:17474",
            f"  routers sync with:     lobstah-core peers sync {server.url}",
        ]

    await serve_until_signal(server, banner, out)
