"""Running a router in the foreground until SIGINT/SIGTERM (``lobstah-core router start``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from ..config import RouterSettings
from ..http import RunningServer, wait_for_shutdown
from ..protocol.identity import Identity
from .app import ROUTER, create_app

__all__ = ["run_router"]


async def run_router(
    settings: RouterSettings, identity: Identity, identity_path: Path, home: Path, out: TextIO = sys.stdout
) -> None:
    """Serve a router until a shutdown signal, printing a banner first."""
    server = RunningServer(create_app(settings, identity, home), settings.host, settings.port, "router")
    await server.start()
    try:
        directory = server.runner.app[ROUTER].directory
        peers = directory.active()
        ready = sum(1 for p in peers if directory.health.of(p.pubkey).capacity is not None)
        print(f"lobstah router listening on {server.url}", file=out)
        print(f"  OpenAI base URL  {server.url}/v1 ({'API key required' if settings.api_key else 'any API key'})", file=out)
        print(f"  identity         {identity_path}", file=out)
        print(f"  pubkey           {identity.pubkey}", file=out)
        print(f"  peers            {len(peers)} in {home / 'peers.json'} ({ready} answering)", file=out)
        if directory.load_error:
            print(f"  warning          {directory.load_error}", file=out)
        out.flush()
        await wait_for_shutdown()
        print("shutting down", file=out)
    finally:
        await server.stop()
