"""A 30,000-deep JSON body is a 400 on every server, never a 500 (issue 15)."""

from __future__ import annotations

import httpx
import pytest

from lobstah_core.http import RunningServer
from lobstah_core.tracker import create_app as create_tracker

from .conftest import StartRouter, StartWorker

DEEP = b'{"model":"demo-fast","messages":' + b"[" * 30_000 + b"]" * 30_000 + b"}"


async def _post_deep(server: RunningServer, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        return await http.post(path, content=DEEP, headers={"content-type": "application/json"})


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/jobs"])
async def test_worker_and_router(start_worker: StartWorker, start_router: StartRouter, path: str) -> None:
    for server in (await start_worker(), await start_router()):
        response = await _post_deep(server, path)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["type"] == "invalid_json"


async def test_tracker() -> None:
    server = await RunningServer(create_tracker(), "127.0.0.1", 0, "tracker").start()
    try:
        for path in ("/announce", "/unannounce"):
            response = await _post_deep(server, path)
            assert response.status_code == 400 and response.json()["error"]["type"] == "bad_json"
    finally:
        await server.stop()
