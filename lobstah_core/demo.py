"""The built-in demo grid: three demo workers and a router in one process, with traffic.

``python -m lobstah_core.demo`` (what ``make demo`` runs) builds a complete local grid in a
scratch directory: a fast worker, a slow one and a flaky one that drops connections now and
then, all behind a router that a gentle stream of requests goes through. Every event the router
publishes is printed as one line: receipts as they are accepted, peers failing, being excluded
and readmitted, capacity changes. Nothing outside the scratch directory is touched.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import aiohttp
from aiohttp import web

from .clock import wall_clock_ms
from .config import RouterSettings, WorkerSettings
from .engines import WorkerEngine, build_engine
from .engines.demo import DemoEngine
from .event_log import describe
from .events import Event
from .http import RunningServer, ShutdownSignals
from .identity_file import load_or_create_identity
from .node import EngineSettings, Node, NodeSettings
from .protocol.identity import Identity
from .protocol.request_signing import sign_request
from .router.app import ROUTER
from .router.peers import Peer, PeerStore
from .tasks import cancel_and_wait, run
from .worker.app import create_app as create_worker

__all__ = ["DemoGrid", "DemoWorker", "DEMO_WORKERS", "REAL_MODEL_WORKER", "main"]

CHAT_PATH = "/v1/chat/completions"
PROMPTS = [
    "Summarise the tide tables for tomorrow.",
    "Write a haiku about a lobster lending its shell.",
    "Explain signed receipts to a five-year-old.",
    "List three uses for an idle Mac mini at night.",
]


@dataclass(frozen=True)
class DemoWorker:
    """One worker of the demo grid."""

    label: str
    tier: str
    first_token_delay: float
    tokens_per_second: float
    #: Chance that a request's connection is dropped before any answer.
    drop_rate: float = 0.0
    #: ``llamacpp``: a real model (the packaged SmolLM2-135M) instead of the demo engine.
    engine: Literal["demo", "llamacpp"] = "demo"


DEMO_WORKERS = (
    DemoWorker("swift", "interactive", 0.15, 80.0),
    DemoWorker("steady", "batch", 0.6, 25.0),
    DemoWorker("flaky", "best-effort", 0.3, 40.0, drop_rate=0.5),
)
#: A worker with a real model, for ``lobstah-tui --demo --engine llamacpp``: the prompt box gets
#: real answers (the demo traffic stays on the demo models).
REAL_MODEL_WORKER = DemoWorker("llama", "interactive", 0.0, 0.0, engine="llamacpp")


def dropping_middleware(rate: float, rng: random.Random) -> Any:
    """Drop a request's connection with probability ``rate`` (a peer that crashes now and then)."""

    @web.middleware
    async def drop(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/v1/chat/completions" and rng.random() < rate and request.transport:
            request.transport.abort()
            raise web.HTTPServiceUnavailable()
        return await handler(request)

    return drop


class DemoGrid:
    """Demo workers on free loopback ports, and a :class:`Node` whose router uses them."""

    def __init__(
        self,
        root: Path,
        workers: tuple[DemoWorker, ...] = DEMO_WORKERS,
        seed: int = 7,
        exclusion_seconds: float = 30.0,
        router_port: int = 0,
    ) -> None:
        """
        Args:
            router_port: where the node's router listens (0: a free port).
        """
        self.root = root
        self.workers = workers
        self.labels: dict[str, str] = {}
        self._servers: list[RunningServer] = []
        self._rng = random.Random(seed)
        identity_path = root / "router" / "identity.json"
        #: The demo workers' identities, which also play the other nodes that send us work.
        self._peers: list[Identity] = []
        # This node lends as well as borrows: the other demo nodes send work to its worker, so
        # the dashboard's "earned" moves too (friends-only, so credit never runs out).
        self.node = Node(
            NodeSettings(
                router=RouterSettings(port=router_port, capacity_interval=5, exclusion_seconds=exclusion_seconds),
                worker=WorkerSettings(port=0, label="this node", check_credit=False),
                engine=EngineSettings(name="demo", first_token_delay=0.2, tokens_per_second=60.0),
                serve_self=False,
            ),
            load_or_create_identity(identity_path), identity_path, root / "router",
        )
        self.bus = self.node.bus
        self.router_identity = self.node.identity

    @property
    def router(self) -> RunningServer | None:
        return self.node.router

    async def start(self) -> RunningServer:
        """Start every worker, then the router over them; returns the router."""
        store = PeerStore(self.root / "router" / "peers.json")
        for spec in self.workers:
            identity = Identity.generate()
            self._peers.append(identity)
            engine: WorkerEngine = DemoEngine(first_token_delay=spec.first_token_delay, tokens_per_second=spec.tokens_per_second)
            if spec.engine == "llamacpp":
                engine = await asyncio.to_thread(build_engine, "llamacpp")
            # A friends-only grid: a demo left running for hours must not run out of credit.
            settings = WorkerSettings(port=0, tier=spec.tier, label=spec.label, concurrency=2, check_credit=False)  # type: ignore[arg-type]
            app = create_worker(settings, identity, engine, self.root / spec.label)
            if spec.drop_rate:
                app.middlewares.insert(0, dropping_middleware(spec.drop_rate, self._rng))
            server = await RunningServer(app, "127.0.0.1", 0, f"demo worker {spec.label}").start()
            self._servers.append(server)
            store.add(Peer(pubkey=identity.pubkey, url=server.url, label=spec.label))
            self.labels[identity.pubkey] = spec.label
        await self.node.start()
        assert self.node.router is not None
        return self.node.router

    def router_state(self) -> Any:
        """The running router's shared state (ledger, directory, receipts)."""
        assert self.router is not None
        return self.router.runner.app[ROUTER]

    async def stop(self) -> None:
        await self.node.stop()
        for server in reversed(self._servers):
            await server.stop()

    async def traffic(self, every: float = 0.7, served_share: float = 0.3) -> None:
        """A gentle stream of requests until cancelled: most through our router (we spend), a
        ``served_share`` from the other demo nodes to our worker, signed by them (we earn)."""
        assert self.router is not None
        in_flight: set[asyncio.Task[None]] = set()
        async with aiohttp.ClientSession() as session:
            try:
                await self._send_forever(session, in_flight, every, served_share)
            finally:  # requests still out end with the traffic, before their session closes
                await asyncio.gather(*(cancel_and_wait(task) for task in in_flight))

    async def _send_forever(self, session: aiohttp.ClientSession, in_flight: set[asyncio.Task[None]],
                            every: float, served_share: float) -> None:
        assert self.router is not None
        while True:
            body = {
                "model": self._rng.choice(["demo-fast", "demo-smart"]),
                "messages": [{"role": "user", "content": self._rng.choice(PROMPTS)}],
                "max_tokens": self._rng.randint(8, 40),
                "stream": self._rng.random() < 0.4,
            }
            raw = json.dumps(body).encode()
            headers = {"Content-Type": "application/json"}
            base = self.router.url
            if self.node.worker is not None and self._peers and self._rng.random() < served_share:
                requester = self._rng.choice(self._peers)
                headers.update(sign_request(requester, "POST", CHAT_PATH, raw, wall_clock_ms()))
                base = self.node.worker.url
            task = asyncio.create_task(self._one(session, base + CHAT_PATH, raw, headers))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            await asyncio.sleep(every * self._rng.uniform(0.5, 1.5))

    async def _one(self, session: aiohttp.ClientSession, url: str, raw: bytes, headers: dict[str, str]) -> None:
        with contextlib.suppress(aiohttp.ClientError):
            async with session.post(url, data=raw, headers=headers) as response:
                await response.read()

    def describe(self, event: Event) -> str:
        """One readable line for an event, naming workers by their demo label."""
        return describe(event, self.labels)

async def run_demo(seconds: float | None, out: TextIO, router_port: int = 0) -> None:
    """Run the demo grid with its router on ``router_port`` (0: a free one), printing its events
    to ``out``, for ``seconds`` or until SIGINT/SIGTERM.

    Raises:
        OSError: the router's port is taken.
    """
    with tempfile.TemporaryDirectory(prefix="lobstah-demo-") as scratch:
        grid = DemoGrid(Path(scratch), router_port=router_port)
        async with grid.bus.subscribe() as events:
            with ShutdownSignals() as signals:
                router = await grid.start()
                print(f"lobstah demo grid: router {router.url}/v1 over {len(grid.workers)} demo workers "
                      f"({', '.join(w.label for w in grid.workers)}); Ctrl-C to stop", file=out)
                print(f"  try: curl {router.url}/v1/chat/completions -H 'content-type: application/json' "
                      """-d '{"model":"demo-fast","messages":[{"role":"user","content":"hi"}]}'""", file=out)
                traffic = asyncio.create_task(grid.traffic())
                printer = asyncio.create_task(_print_events(grid, events, out))
                await signals.wait(seconds or None)
                traffic.cancel()
                await asyncio.sleep(0.5)
                printer.cancel()
                ledger = grid.router_state().ledger
                balance = await asyncio.to_thread(ledger.balance, grid.router_identity.pubkey)
                print(f"router balance: spent {balance.spent:,} credits, {balance.available:,} available", file=out)
        await grid.stop()


async def _print_events(grid: DemoGrid, events: asyncio.Queue[Event], out: TextIO) -> None:
    while True:
        print(grid.describe(await events.get()), file=out, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lobstah_core.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        run(run_demo(args.seconds, sys.stdout))
    return 0


if __name__ == "__main__":
    sys.exit(main())

