"""One auth rule: a router with ``--api-key`` wants the key on every route but ``/``,
``/pubkey`` and the ``/dashboard`` page; CORS preflights stay open (browsers send them without
credentials)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from lobstah_core.errors import LobstahError
from lobstah_core.protocol import Identity
from lobstah_core.remote import RemoteNode
from lobstah_core.router.app import OPEN_PATHS

from ..conftest import StartWorker
from .conftest import StartRouter, add_peer

KEY = "s3cret"
WORKER = Identity.from_seed(b"\xb1" * 32)


@pytest.fixture
async def router(start_worker: StartWorker, start_router: StartRouter, router_home: Path) -> Any:
    add_peer(router_home, await start_worker(identity=WORKER), WORKER.pubkey)
    return await start_router(api_key=KEY)


def every_route(router: Any) -> list[tuple[str, str]]:
    """(method, a concrete path) for every route the app has, whoever added it."""
    routes = []
    for route in router.runner.app.router.routes():
        if route.method in ("HEAD", "OPTIONS", "*"):
            continue
        path = re.sub(r"\{[^}]+\}", "x", route.resource.canonical)
        routes.append((route.method, path))
    return routes


async def test_every_route_but_the_open_ones_wants_the_key(router: Any) -> None:
    routes = every_route(router)
    paths = {path for _, path in routes}
    assert {"/balance", "/peers", "/events", "/metrics", "/v1/models", "/api/tags", "/api/chat"} <= paths
    async with httpx.AsyncClient(base_url=router.url, timeout=20) as http:
        for method, path in routes:
            without = await http.request(method, path, json={})
            wrong = await http.request(method, path, json={}, headers={"Authorization": "Bearer nope"})
            if path in OPEN_PATHS:
                assert without.status_code == 200, path
                continue
            for response in (without, wrong):
                assert response.status_code == 401, (method, path, response.status_code)
                error = response.json()["error"]
                message = error if path.startswith("/api/") else error["message"]  # Ollama's shape there
                assert "API key" in message, (method, path)
        for path in ("/balance", "/peers", "/metrics", "/api/tags", "/v1/models"):
            assert (await http.get(path, headers={"Authorization": f"Bearer {KEY}"})).status_code == 200, path


async def test_preflights_stay_open(router: Any) -> None:
    async with httpx.AsyncClient(base_url=router.url) as http:
        response = await http.options("/api/chat", headers={
            "Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"


async def test_ollama_clients_send_the_key(router: Any) -> None:
    with pytest.raises(ollama.ResponseError) as raised:
        await ollama.AsyncClient(host=router.url).list()
    assert raised.value.status_code == 401
    listed = await ollama.AsyncClient(host=router.url, headers={"Authorization": f"Bearer {KEY}"}).list()
    assert [m.model for m in listed.models] == ["demo-fast", "demo-smart"]


async def test_attach_with_the_key(router: Any) -> None:
    with pytest.raises(LobstahError, match="wants its API key"):
        await RemoteNode(router.url).start()
    node = RemoteNode(router.url, api_key=KEY)
    await node.start()
    try:
        snapshot = await node.snapshot()
        assert [peer.pubkey for peer in snapshot.peers] == [WORKER.pubkey]
    finally:
        await node.stop()


async def test_a_key_that_is_not_utf8_is_refused_not_a_crash(router: Any) -> None:
    """Header bytes are the client's to choose: a key in Latin-1 (or any bytes) is a wrong key,
    a 401, not a 500 from comparing it."""
    async with httpx.AsyncClient(base_url=router.url) as http:
        response = await http.get("/v1/models", headers={"Authorization": b"Bearer s3cr\xe9t\xff"})
    assert response.status_code == 401
    assert "API key" in response.json()["error"]["message"]


async def test_the_dashboard_page_opens_in_a_browser_and_asks_for_data_with_the_key(router: Any) -> None:
    """README: with --api-key, open /dashboard#key=K. A browser's navigation cannot send an
    Authorization header, so the page itself (static, no data in it) is open; everything it
    reads (/balance, /peers, /ledger, /events) still wants the key."""
    async with httpx.AsyncClient(base_url=router.url) as http:
        page = await http.get("/dashboard")
        data = await http.get("/ledger")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'Authorization: "Bearer " + key' in page.text
    assert data.status_code == 401
