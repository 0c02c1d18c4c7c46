"""Running a worker in the foreground until SIGINT/SIGTERM (``lobstah-core worker start``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from ..config import WorkerSettings
from ..engines.base import WorkerEngine
from ..errors import EngineError
from ..http import RunningServer, serve_until_signal
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

    async def banner() -> list[str]:
        try:
            models = ", ".join(await engine.models()) or "none yet"
        except EngineError as exc:
            models = f"unavailable: {exc.message}"
        lines = [
            f"lobstah worker listening on {server.url}",
            f"  identity     {identity_path}",
            f"  pubkey       {identity.pubkey}",
            f"  engine       {engine.name} ({models})",
            f"  tier         {settings.tier}",
            f"  concurrency  {settings.concurrency} (queue up to {settings.max_queue})",
        ]
        if settings.label:
            lines.append(f"  label        {settings.label}")
        return lines

    await serve_until_signal(server, banner, out)
