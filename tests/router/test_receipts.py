"""Receipts a router must never ledger, and a worker that dies mid-stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from aiohttp.client_exceptions import ClientConnectionResetError

from lobstah_core.http import RunningServer
from lobstah_core.ledger import Ledger
from lobstah_core.protocol import Identity

from ..conftest import WORKER as WORKER_ID
from ..conftest import StartWorker, ledgered
from .conftest import ROUTER_ID, StartRouter, add_peer
from .rogue_worker import create_rogue_app

ROGUE = Identity.from_seed(b"\x66" * 32)
CHAT = {"model": "demo-fast", "messages": [{"role": "user", "content": "bill me"}]}


@pytest.fixture
async def rogue(request: pytest.FixtureRequest) -> AsyncIterator[RunningServer]:
    server = await RunningServer(create_rogue_app(ROGUE, request.param), "127.0.0.1", 0, "rogue").start()
    yield server
    await server.stop()


async def read_events(router_url: str, count: int, ready: asyncio.Event) -> list[dict]:
    found = []
    async with httpx.AsyncClient(base_url=router_url, timeout=10) as http:
        async with http.stream("GET", "/events") as response:
            async for line in response.aiter_lines():
                ready.set()
                if line.startswith("data: "):
                    found.append(json.loads(line[6:]))
                    if len(found) == count:
                        return found
    return found


@pytest.mark.parametrize(
    ("rogue", "reason", "requests"),
    [
        ("forged", "bad_signature", 1),
        ("stale", "stale", 1),
        ("misaddressed", "wrong_requester", 1),
        ("wrong_worker", "wrong_worker", 1),
        ("replayed", "replayed", 2),
        ("none", "missing", 1),
    ],
    indirect=["rogue"],
)
async def test_bad_receipts_never_reach_the_ledger(
    rogue: RunningServer, reason: str, requests: int, start_router: StartRouter, router_home: Path
) -> None:
    add_peer(router_home, rogue, ROGUE.pubkey, label="rogue")
    router = await start_router()
    ready = asyncio.Event()
    listener = asyncio.create_task(read_events(router.url, requests, ready))
    await asyncio.wait_for(ready.wait(), 5)
    async with httpx.AsyncClient(base_url=router.url) as http:
        for _ in range(requests):
            response = await http.post("/v1/chat/completions", json=CHAT)
            assert response.status_code == 200  # the client still gets its answer
            assert "x-lobstah-receipt" not in response.headers
    events = await asyncio.wait_for(listener, 5)
    assert events[-1]["kind"] == "receipt.rejected" and events[-1]["reason"] == reason
    assert events[-1]["peer"] == ROGUE.pubkey
    with Ledger(router_home / "ledger.sqlite3") as ledger:
        expected = 1 if reason == "replayed" else 0  # the first use of a replayed receipt was fine
        assert ledger.totals().receipts == expected


@pytest.mark.parametrize("rogue", ["die_mid_stream"], indirect=True)
async def test_a_worker_dying_mid_stream_ends_it_with_an_error_event(
    rogue: RunningServer, start_router: StartRouter, router_home: Path
) -> None:
    add_peer(router_home, rogue, ROGUE.pubkey)
    router = await start_router()
    async with httpx.AsyncClient(base_url=router.url, timeout=10) as http:
        response = await http.post("/v1/chat/completions", json={**CHAT, "stream": True})
    events = [e for e in response.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    error = json.loads(events[-2].removeprefix("data: "))["error"]
    assert error["type"] == "peer_failed" and "mid-stream" in error["message"]
    assert "one" in events[0]  # what arrived before the failure was passed on
    with Ledger(router_home / "ledger.sqlite3") as ledger:
        assert ledger.totals().receipts == 0


async def test_a_node_calling_its_own_worker_is_not_a_replay(start_worker: StartWorker, start_router: StartRouter, router_home: Path) -> None:
    # Same home, same key: the worker records the receipt before the router sees it.
    worker = await start_worker(identity=ROUTER_ID, home=router_home)
    add_peer(router_home, worker, ROUTER_ID.pubkey)
    router = await start_router()
    ready = asyncio.Event()
    listener = asyncio.create_task(read_events(router.url, 1, ready))
    await asyncio.wait_for(ready.wait(), 5)
    async with httpx.AsyncClient(base_url=router.url) as http:
        assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 200
    events = await asyncio.wait_for(listener, 5)
    assert [e["kind"] for e in events] == ["receipt.accepted"]


@pytest.mark.parametrize("rogue", ["slow_end"], indirect=True)
async def test_a_client_that_leaves_after_done_still_leaves_the_receipt_ledgered(
    rogue: RunningServer, start_router: StartRouter, router_home: Path
) -> None:
    """The openai SDK hangs up as soon as it reads ``[DONE]``. A worker's stream carries the
    receipt before ``[DONE]`` but ends its body a moment later; the router, still waiting for
    that end, was cancelled with the receipt in hand: never ledgered (until a reconciliation
    pass, if the worker serves one) and the call counted as cancelled."""
    add_peer(router_home, rogue, ROGUE.pubkey, label="rogue")
    router = await start_router()
    async with httpx.AsyncClient(base_url=router.url, timeout=10) as http:
        async with http.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as response:
            async for line in response.aiter_lines():
                if line == "data: [DONE]":
                    break  # and hang up, as the SDK does
    receipts = await ledgered(router_home, 1)
    assert [r.receipt.worker_pubkey for r in receipts] == [ROGUE.pubkey]


async def test_a_client_gone_by_the_end_of_the_body_still_leaves_the_receipt_ledgered(
    start_worker: StartWorker, start_router: StartRouter, router_home: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """The other moment a client that hangs up on ``[DONE]`` can meet: the worker's body has
    ended and the router writes the end of its own to a closing connection. That used to raise
    past the receipt (never ledgered) and log a traceback."""
    add_peer(router_home, await start_worker(home=tmp_path / "w"), WORKER_ID.pubkey)
    router = await start_router()
    router_port = int(router.url.rsplit(":", 1)[1])
    write_eof = web.StreamResponse.write_eof

    async def closing_transport(self: web.StreamResponse, data: bytes = b"") -> None:
        if self.content_type == "text/event-stream" and self._req is not None and self._req.url.port == router_port:
            raise ClientConnectionResetError("Cannot write to closing transport")
        await write_eof(self, data)

    monkeypatch.setattr(web.StreamResponse, "write_eof", closing_transport)
    async with httpx.AsyncClient(base_url=router.url, timeout=10) as http:
        async with http.stream("POST", "/v1/chat/completions", json={**CHAT, "model": "demo-fast", "stream": True}) as response:
            async for line in response.aiter_lines():
                if line == "data: [DONE]":
                    break
    assert len(await ledgered(router_home, 1)) == 1
    assert "Error handling request" not in caplog.text
