"""A real worker on a loopback port with the demo engine, and a client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from lobstah_core.http import RunningServer

from ..conftest import ROUTER, WORKER, StartWorker

__all__ = ["ROUTER", "WORKER", "StartWorker"]


@pytest.fixture
async def worker(start_worker: StartWorker) -> RunningServer:
    return await start_worker()


@pytest.fixture
async def client(worker: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=worker.url, timeout=10) as http:
        yield http
