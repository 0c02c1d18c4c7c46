"""Running a router in the foreground until SIGINT/SIGTERM (``lobstah-core router start``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from ..config import RouterSettings
from ..http import RunningServer, serve_until_signal
from ..protocol.identity import Identity
from .app import ROUTER, create_app

__all__ = ["run_router"]


async def run_router(
    settings: RouterSettings, identity: Identity, identity_path: Path, home: Path, out: TextIO = sys.stdout
) -> None:
    """Serve a router until a shutdown signal, printing a banner first."""
    server = RunningServer(create_app(settings, identity, home), settings.host, settings.port, "router")

    async def banner() -> list[str]:
        directory = server.runner.app[ROUTER].directory
        peers = directory.active()
        answering = sum(1 for p in peers if directory.health.of(p.pubkey).capacity is not None)
        key = "API key required" if settings.api_key else "any API key"
        lines = [
            f"lobstah router listening on {server.url}",
            f"  OpenAI base URL  {server.url}/v1 ({key})",
            f"  identity         {identity_path}",
            f"  pubkey           {identity.pubkey}",
            f"  peers            {len(peers)} in {home / 'peers.json'} ({answering} answering)",
        ]
        if directory.load_error:
            lines.append(f"  warning          {directory.load_error}")
        return lines

    await serve_until_signal(server, banner, out)
