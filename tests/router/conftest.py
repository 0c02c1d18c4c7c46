"""A router on a loopback port in front of real demo workers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from lobstah_core.config import RouterSettings
from lobstah_core.http import RunningServer
from lobstah_core.ledger import Ledger
from lobstah_core.protocol import Identity, SignedReceipt
from lobstah_core.router import create_app
from lobstah_core.router.peers import Peer, PeerStore

ROUTER_ID = Identity.from_seed(b"Q" * 32)  # the ROUTER identity of the worker tests

StartRouter = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
def router_home(tmp_path: Path) -> Path:
    return tmp_path / "router-home"


def add_peer(home: Path, server: RunningServer, pubkey: str, label: str | None = None) -> None:
    PeerStore(home / "peers.json").add(Peer(pubkey=pubkey, url=server.url, label=label))


@pytest.fixture
async def start_router(router_home: Path) -> AsyncIterator[StartRouter]:
    servers: list[RunningServer] = []

    async def start(**options: Any) -> RunningServer:
        clock = options.pop("clock_ms", None)
        extra = {"clock_ms": clock} if clock else {}
        app = create_app(RouterSettings(port=0, **options), ROUTER_ID, router_home, **extra)
        server = await RunningServer(app, "127.0.0.1", 0, "router").start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


async def ledgered(home: Path, expected: int, timeout: float = 5.0) -> list[SignedReceipt]:
    """The router's receipts once ``expected`` are in its ledger (they are written after the
    client has its answer)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        with Ledger(home / "ledger.sqlite3") as ledger:
            receipts = ledger.recent(10_000)
        if len(receipts) >= expected or asyncio.get_running_loop().time() > deadline:
            return receipts
        await asyncio.sleep(0.02)
