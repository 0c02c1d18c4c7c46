"""A real worker on a loopback port, with the demo engine unless a test says otherwise."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from lobstah_core.config import WorkerSettings
from lobstah_core.engines.base import WorkerEngine
from lobstah_core.engines.demo import DemoEngine
from lobstah_core.http import RunningServer
from lobstah_core.protocol import Identity
from lobstah_core.worker import create_app

WORKER = Identity.from_seed(b"W" * 32)
ROUTER = Identity.from_seed(b"Q" * 32)

StartWorker = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def start_worker(tmp_path: Path) -> AsyncIterator[StartWorker]:
    servers: list[RunningServer] = []

    async def start(
        engine: WorkerEngine | None = None, home: Path | None = None, **settings: Any
    ) -> RunningServer:
        app = create_app(
            WorkerSettings(port=0, **settings),
            WORKER,
            engine or DemoEngine(),
            home or tmp_path / "worker-home",
        )
        server = await RunningServer(app, "127.0.0.1", 0, "worker").start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def worker(start_worker: StartWorker) -> RunningServer:
    return await start_worker()


@pytest.fixture
async def client(worker: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=worker.url, timeout=10) as http:
        yield http
