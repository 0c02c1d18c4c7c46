"""A Node: any set of router, worker and tracker as background tasks in one event loop.

It owns the event bus every server publishes to, the advertise and sync switches (off by
default, remembered in ``node.json`` in the home), and a snapshot of the live state that
``lobstah-core serve`` logs and the TUI will show. Nothing here knows about a terminal.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from pydantic import BaseModel, Field

from .clock import wall_clock_ms
from .config import AdvertiseSettings, RouterSettings, WorkerSettings
from .discovery.advertiser import Advertiser, Channel, NostrChannel, TrackerChannel
from .discovery.periodic_sync import PeriodicSync
from .engines import EngineName, build_engine
from .errors import LobstahError, SwitchRefused
from .events import EventBus
from .node_view import BatchView, NodeSnapshot, PeerView, chat_stream_text
from .http import RunningServer
from .identity_file import load_or_create_nostr_secret
from .protocol.identity import Identity
from .protocol.url_safety import UrlPolicy
from .router.app import ROUTER
from .router.app import create_app as create_router
from .router.batch_api import CARGO
from .router.peers import Peer, PeerStore
from .tracker import create_app as create_tracker
from .worker.app import SERVICE
from .worker.app import create_app as create_worker

__all__ = ["NodeSettings", "EngineSettings", "SyncSettings", "Switches", "Node"]


class EngineSettings(BaseModel):
    name: EngineName = "ollama"
    upstream: str | None = None
    api_key: str | None = None
    models: list[str] | None = None
    #: Demo engine: seconds to the first token, and tokens per second (0: as fast as it can).
    first_token_delay: float = Field(default=0.2, ge=0)
    tokens_per_second: float = Field(default=40.0, ge=0)
    #: ``llamacpp``: the GGUF file (default: the packaged SmolLM2-135M).
    model_path: str | None = None


class SyncSettings(BaseModel):
    trackers: list[str] = []
    relays: list[str] = []
    interval_seconds: float = 300.0


class NodeSettings(BaseModel):
    """What a node runs. ``None`` leaves a server out."""

    router: RouterSettings | None = RouterSettings()
    worker: WorkerSettings | None = None
    engine: EngineSettings = EngineSettings()
    #: Run a tracker on this port too (``None``: no tracker).
    tracker_port: int | None = None
    #: Where the worker is advertised when the advertise switch is on.
    advertise: AdvertiseSettings | None = None
    #: Where peers come from when the sync switch is on.
    sync: SyncSettings = SyncSettings()
    #: The router uses this node's own worker, first while it has a free slot (the demo turns
    #: it off, so that its traffic shows the grid rather than the node talking to itself).
    serve_self: bool = True


class Switches(BaseModel):
    """The operator's opt-ins, remembered across restarts; both off until turned on."""

    advertise: bool = False
    sync: bool = False


class Node:
    """Servers of one identity and one home, started and stopped together."""

    def __init__(
        self, settings: NodeSettings, identity: Identity, identity_path: Path, home: Path, bus: EventBus | None = None
    ) -> None:
        self.settings, self.identity, self.identity_path, self.home = settings, identity, identity_path, home
        self.bus = bus or EventBus()
        self.router: RunningServer | None = None
        self.worker: RunningServer | None = None
        self.tracker: RunningServer | None = None
        self.advertiser: Advertiser | None = None
        self.sync = PeriodicSync(
            PeerStore(home / "peers.json"), UrlPolicy.from_env(os.environ), wall_clock_ms,
            trackers=settings.sync.trackers, relays=settings.sync.relays, interval=settings.sync.interval_seconds,
        )
        self.switches = self._load_switches()

    @property
    def pubkey(self) -> str:
        """This node's key."""
        return self.identity.pubkey

    @property
    def router_url(self) -> str | None:
        """Where this node's router listens, once started."""
        return self.router.url if self.router else None

    async def start(self) -> None:
        """Start the tracker, worker and router (those configured), then the switches that are on."""
        if self.settings.tracker_port is not None:
            self.tracker = await RunningServer(create_tracker(), "127.0.0.1", self.settings.tracker_port, "tracker").start()
        if self.settings.worker is not None:
            engine_settings = self.settings.engine
            # In a thread: llamacpp loads its model here.
            engine = await asyncio.to_thread(
                build_engine, engine_settings.name, upstream=engine_settings.upstream, api_key=engine_settings.api_key,
                models=engine_settings.models, first_token_delay=engine_settings.first_token_delay,
                tokens_per_second=engine_settings.tokens_per_second, model_path=engine_settings.model_path,
            )
            app = create_worker(self.settings.worker, self.identity, engine, self.home, bus=self.bus)
            self.worker = await RunningServer(app, self.settings.worker.host, self.settings.worker.port, "worker").start()
        if self.settings.router is not None:
            app = create_router(self.settings.router, self.identity, self.home, bus=self.bus)
            self.router = await RunningServer(app, self.settings.router.host, self.settings.router.port, "router").start()
            if self.worker is not None and self.settings.serve_self:
                # A node serves itself: its worker is always one of its router's candidates.
                own = Peer(pubkey=self.identity.pubkey, url=_loopback_url(self.worker), label="this node", source="self")
                self.router.runner.app[ROUTER].directory.serve_self(own)
        if self.switches.advertise:
            await self._start_advertising()
        if self.switches.sync:
            self.sync.start()

    async def stop(self) -> None:
        """Stop advertising first (so peers hear of it), then syncing, then every server."""
        if self.advertiser is not None:
            await self.advertiser.stop()
        await self.sync.stop()
        for server in (self.router, self.worker, self.tracker):
            if server is not None:
                await server.stop()

    async def set_advertise(self, on: bool) -> None:
        """Flip the advertise switch (remembered).

        Raises:
            SwitchRefused: no worker, or nowhere configured to advertise.
        """
        if on and (self.worker is None or self.settings.advertise is None):
            # The flags named here are the ones `serve` and `lobstah-tui` both take.
            raise SwitchRefused("advertising needs a worker and somewhere to announce it: "
                                "--announce-to TRACKER or --publish-via-nostr, with --announce-url URL")
        if on and not (self.advertiser and self.advertiser.running):
            await self._start_advertising()
        elif not on and self.advertiser is not None:
            await self.advertiser.stop()
        self._save_switches(advertise=on)

    async def set_sync(self, on: bool) -> None:
        """Flip the sync switch (remembered).

        Raises:
            SwitchRefused: no tracker or relay configured to sync from.
        """
        if on and not (self.settings.sync.trackers or self.settings.sync.relays):
            raise SwitchRefused("syncing needs a tracker or a Nostr relay to sync from: --sync-from TRACKER or --sync-relay URL")
        if on:
            self.sync.start()
        else:
            await self.sync.stop()
        self._save_switches(sync=on)

    async def snapshot(self, recent: int = 50) -> NodeSnapshot:
        """The live state, read from the servers' own bookkeeping (no second copy)."""
        peers: list[PeerView] = []
        balance, receipts, rejected = None, (), {}
        if self.router is not None:
            router = self.router.runner.app[ROUTER]
            peers = router.directory.views()
            balance = await asyncio.to_thread(router.ledger.summary, self.identity.pubkey)
            if recent:
                receipts = tuple(await asyncio.to_thread(router.ledger.recent, recent, self.identity.pubkey))
            rejected = dict(router.desk.rejected)
        queue_depth = None
        if self.worker is not None:
            queue_depth = self.worker.runner.app[SERVICE].admission.queue_depth
        advertising = self.advertiser is not None and self.advertiser.running
        return NodeSnapshot(
            pubkey=self.identity.pubkey,
            router_url=self.router.url if self.router else None,
            worker_url=self.worker.url if self.worker else None,
            tracker_url=self.tracker.url if self.tracker else None,
            peers=tuple(peers),
            worker_queue_depth=queue_depth,
            balance=balance,
            recent=receipts,
            advertise=(advertising, self.advertiser.last_result if self.advertiser else "off"),
            sync=(self.sync.running, self.sync.last_result),
            rejected=rejected,
        )

    async def batches(self, limit: int = 20) -> tuple[BatchView, ...]:
        """The router's newest ``limit`` batches, newest first, read from its batch store."""
        cargo = self.router.runner.app.get(CARGO) if self.router is not None else None
        if cargo is None:
            return ()
        found, _ = await asyncio.to_thread(cargo.store.batches, None, limit)
        return tuple(BatchView.from_wire(batch) for batch in found)

    async def chat_stream(self, model: str, prompt: str) -> AsyncIterator[str]:
        """Send a test prompt through this node's router and yield the text as it streams.

        Raises:
            LobstahError: the router refused it (no peers, no capable peer, all failed).
        """
        if self.router is None:
            raise LobstahError("this node runs no router")
        body = {"model": model, "stream": True, "messages": [{"role": "user", "content": prompt}]}
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{self.router.url}/v1/chat/completions", json=body) as response:
                if response.status != 200:
                    error = (await response.json(content_type=None)).get("error", {})
                    raise LobstahError(error.get("message") or f"router answered {response.status}")
                async for text in chat_stream_text(response.content):
                    yield text

    async def _start_advertising(self) -> None:
        advertise, worker = self.settings.advertise, self.worker
        if advertise is None or worker is None:
            return
        channels: list[Channel] = []
        if advertise.tracker_url:
            channels.append(TrackerChannel(advertise.tracker_url, self.identity, wall_clock_ms))
        if advertise.nostr_relays:
            secret = load_or_create_nostr_secret(self.identity_path)
            channels.append(NostrChannel(advertise.nostr_relays, secret, wall_clock_ms))
        service = worker.runner.app[SERVICE]
        self.advertiser = Advertiser(
            self.identity, channels, advertise.announce_url, service.models, wall_clock_ms,
            label=advertise.label or service.settings.label, tier=service.settings.tier,
            ttl_seconds=advertise.ttl_seconds,
        )
        await self.advertiser.start()

    @property
    def _switches_path(self) -> Path:
        return self.home / "node.json"

    def _load_switches(self) -> Switches:
        try:
            return Switches.model_validate_json(self._switches_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return Switches()  # missing or unreadable: both off, the safe default

    def _save_switches(self, **changes: bool) -> None:
        self.switches = self.switches.model_copy(update=changes)
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = self._switches_path.with_name(f".node.json.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(self.switches.model_dump(), indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, self._switches_path)



def _loopback_url(server: RunningServer) -> str:
    """Where this process reaches ``server``: one bound to all interfaces is on loopback too."""
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(server.host)
    if host is None:
        return server.url
    return f"http://{host}:{server.port}"
