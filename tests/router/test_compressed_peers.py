"""A worker behind a compressing front (nginx with ``gzip on``, express's ``compression()``):
clients still get plain JSON and live SSE, and every receipt reaches the ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from lobstah_core.http import RunningServer
from lobstah_core.protocol import Identity

from ..conftest import StartWorker
from .conftest import StartRouter, add_peer, ledgered
from .fronts import GatedEngine, first_token_while_gated, gzipping_front, tokens_in

WORKER = Identity.from_seed(b"G" * 32)
StartFront = Callable[[RunningServer, bool], Awaitable[None]]
CHAT = {"model": "demo-fast", "messages": [{"role": "user", "content": "squeeze me"}], "max_tokens": 4}


@pytest.fixture
async def front_of(router_home: Path) -> AsyncIterator[StartFront]:
    """Put a gzipping front before a worker and list the front as the worker's peer URL."""
    fronts: list[RunningServer] = []

    async def start(worker: RunningServer, always: bool) -> None:
        front = await RunningServer(gzipping_front(worker.url, always), "127.0.0.1", 0, "front").start()
        fronts.append(front)
        add_peer(router_home, front, WORKER.pubkey)

    yield start
    for front in fronts:
        await front.stop()


@pytest.mark.parametrize("always", [False, True], ids=["when-accepted", "always"])
async def test_clients_get_plain_json_and_sse(
    always: bool, front_of: StartFront, start_worker: StartWorker, start_router: StartRouter, router_home: Path
) -> None:
    await front_of(await start_worker(identity=WORKER), always)
    router = await start_router()
    async with httpx.AsyncClient(base_url=router.url, timeout=20) as http:
        models = await http.get("/v1/models")
        plain = await http.post("/v1/chat/completions", json=CHAT)
        streamed = await http.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert [m["id"] for m in models.json()["data"]] == ["demo-fast", "demo-smart"]
    assert plain.status_code == 200 and plain.json()["usage"]["completion_tokens"] == 4
    assert "content-encoding" not in plain.headers
    assert len(tokens_in(streamed.text.splitlines())) == 4 and streamed.text.endswith("data: [DONE]\n\n")
    assert len(await ledgered(router_home, 2)) == 2


async def test_streams_stay_live_through_a_front_that_compresses_when_asked(
    front_of: StartFront, start_worker: StartWorker, start_router: StartRouter, router_home: Path
) -> None:
    engine = GatedEngine()
    await front_of(await start_worker(engine, identity=WORKER), False)
    router = await start_router()
    before, whole = await first_token_while_gated(router.url, engine, CHAT)
    assert len(tokens_in(before)) == 1 and len(tokens_in(whole)) == 4
