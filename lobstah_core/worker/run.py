"""Running a worker in the foreground until SIGINT/SIGTERM (``lobstah-core worker start``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from ..clock import wall_clock_ms
from ..config import AdvertiseSettings, WorkerSettings
from ..discovery.advertiser import Advertiser, Channel, NostrChannel, TrackerChannel
from ..engines.base import WorkerEngine
from ..errors import EngineError
from ..http import RunningServer, serve_until_signal
from ..identity_file import load_or_create_nostr_secret
from ..protocol.identity import Identity
from .app import SERVICE, create_app

__all__ = ["run_worker"]


async def run_worker(
    settings: WorkerSettings,
    identity: Identity,
    identity_path: Path,
    engine: WorkerEngine,
    home: Path,
    out: TextIO = sys.stdout,
    advertise: AdvertiseSettings | None = None,
) -> None:
    """Serve a worker until a shutdown signal, printing a banner first; advertise it on a
    tracker if asked (announced once listening, withdrawn before the server stops)."""
    server = RunningServer(create_app(settings, identity, engine, home), settings.host, settings.port, "worker")
    advertiser: Advertiser | None = None

    async def start_advertising() -> None:
        nonlocal advertiser
        if advertise is None:
            return
        service = server.runner.app[SERVICE]
        channels: list[Channel] = []
        if advertise.tracker_url:
            channels.append(TrackerChannel(advertise.tracker_url, identity, wall_clock_ms))
        if advertise.nostr_relays:
            channels.append(NostrChannel(advertise.nostr_relays, load_or_create_nostr_secret(identity_path), wall_clock_ms))
        advertiser = Advertiser(
            identity, channels, advertise.announce_url, service.models, wall_clock_ms,
            label=advertise.label or settings.label, tier=settings.tier, ttl_seconds=advertise.ttl_seconds,
        )
        await advertiser.start()

    async def stop_advertising() -> None:
        if advertiser is not None:
            await advertiser.stop()
            print(f"  {advertiser.last_result}", file=out)

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
            f"  concurrency  {server.runner.app[SERVICE].admission.concurrency} (queue up to {settings.max_queue})",
        ]
        if settings.label:
            lines.append(f"  label        {settings.label}")
        if advertiser is not None:
            lines.append(f"  advertising  {advertise.announce_url if advertise else ''}: {advertiser.last_result}")
            if settings.host in ("127.0.0.1", "localhost", "::1"):
                lines.append("  warning      bound to loopback: peers on other machines cannot reach this worker")
        return lines

    await serve_until_signal(server, banner, out, after_start=start_advertising, before_stop=stop_advertising)
