"""Running a worker in the foreground until SIGINT/SIGTERM (``lobstah-core worker start``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from ..config import WorkerSettings
from ..engines.base import WorkerEngine
from ..errors import EngineError
from ..http import RunningServer, wait_for_shutdown
from ..protocol.identity import Identity
from .app import create_app

__all__ = ["run_worker"]


async def run_worker(
    settings: WorkerSettings,
    identity: Identity,
    identity_path: Path,
    engine: WorkerEngine,
    home: Path,
    out: TextIO = sys.stdout,
) -> None:
    """Serve a worker until a shutdown signal, printing a banner first."""
    server = RunningServer(create_app(settings, identity, engine, home), settings.host, settings.port, "worker")
    await server.start()
    try:
        try:
            models = ", ".join(await engine.models()) or "none yet"
        except EngineError as exc:
            models = f"unavailable: {exc.message}"
        print(f"lobstah worker listening on {server.url}", file=out)
        print(f"  identity     {identity_path}", file=out)
        print(f"  pubkey       {identity.pubkey}", file=out)
        print(f"  engine       {engine.name} ({models})", file=out)
        print(f"  tier         {settings.tier}", file=out)
        print(f"  concurrency  {settings.concurrency} (queue up to {settings.max_queue})", file=out)
        if settings.label:
            print(f"  label        {settings.label}", file=out)
        out.flush()
        await wait_for_shutdown()
        print("shutting down", file=out)
    finally:
        await server.stop()
