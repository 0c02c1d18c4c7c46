"""Spread, failover on each fault, exclusion and readmission, with real workers on loopback."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lobstah_core.engines.demo import DemoEngine
from lobstah_core.errors import EngineError
from lobstah_core.protocol import Identity

from ..conftest import StartWorker
from .conftest import StartRouter, add_peer, ledgered
from .fronts import GatedEngine, first_token_while_gated, tokens_in

IDS = [Identity.from_seed(bytes([n]) * 32) for n in (0xB1, 0xB2, 0xB3)]
CHAT = {"model": "demo-fast", "messages": [{"role": "user", "content": "route me"}], "max_tokens": 3}


class BrokenEngine(DemoEngine):
    """Lists its models but fails every completion (the worker answers 502)."""

    async def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        raise EngineError("the GPU caught fire")

    async def stream(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        raise EngineError("the GPU caught fire")
        yield {}  # an async generator that fails before its first chunk


class HungEngine(DemoEngine):
    """Never accepts a request (a wedged upstream): the worker never sends a status line."""

    async def stream(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        await asyncio.sleep(30)
        yield {}


async def served_by(router_home: Path, expected: int) -> Counter[str]:
    return Counter(r.receipt.worker_pubkey for r in await ledgered(router_home, expected))


async def post(router_url: str, body: dict[str, Any] = CHAT) -> httpx.Response:
    async with httpx.AsyncClient(base_url=router_url, timeout=20) as http:
        return await http.post("/v1/chat/completions", json=body)


async def test_equal_peers_share_the_work_round_robin(start_worker: StartWorker, start_router: StartRouter, router_home: Path) -> None:
    for identity in IDS:
        add_peer(router_home, await start_worker(identity=identity), identity.pubkey)
    router = await start_router()
    for _ in range(12):
        assert (await post(router.url)).status_code == 200
    assert sorted((await served_by(router_home, 12)).values()) == [4, 4, 4]


async def test_a_busy_peer_is_passed_over(start_worker: StartWorker, start_router: StartRouter, router_home: Path) -> None:
    slow = await start_worker(DemoEngine(first_token_delay=3.0), identity=IDS[0])
    fast = await start_worker(DemoEngine(first_token_delay=0, tokens_per_second=0), identity=IDS[1])
    add_peer(router_home, slow, IDS[0].pubkey, label="slow")
    add_peer(router_home, fast, IDS[1].pubkey, label="fast")
    router = await start_router()
    # Two at once: one lands on each peer (the second sees the first's load), and the slow
    # one stays busy; everything that arrives meanwhile goes to the idle peer.
    busy = [asyncio.create_task(post(router.url)) for _ in range(2)]
    async with httpx.AsyncClient(base_url=router.url) as http:
        for _ in range(250):  # until the fast one has answered (bounded: 5 s)
            load = {p["label"]: p["health"]["inFlight"] for p in (await http.get("/peers")).json()}
            if load == {"slow": 1, "fast": 0}:
                break
            await asyncio.sleep(0.02)
    assert load == {"slow": 1, "fast": 0}
    for _ in range(4):
        assert (await post(router.url)).status_code == 200
    await asyncio.gather(*busy)
    counts = await served_by(router_home, 6)
    assert counts[IDS[1].pubkey] >= 5 and counts[IDS[0].pubkey] <= 1


@pytest.mark.parametrize("fault", ["refused", "5xx", "429", "timeout"])
async def test_failover_on_each_fault(fault: str, start_worker: StartWorker, start_router: StartRouter, router_home: Path) -> None:
    # The bad peer is interactive and the requests stream, so it is always tried first,
    # whatever load the background capacity probes report.
    options: dict[str, Any] = {"identity": IDS[0], "tier": "interactive"}
    if fault == "5xx":
        bad = await start_worker(BrokenEngine(), **options)
    elif fault == "429":
        bad = await start_worker(DemoEngine(first_token_delay=2.0), concurrency=1, max_queue=0, **options)
    elif fault == "timeout":
        bad = await start_worker(HungEngine(), **options)
    else:
        bad = await start_worker(**options)
    good = await start_worker(identity=IDS[1], tier="batch")
    add_peer(router_home, bad, IDS[0].pubkey, label="bad")
    add_peer(router_home, good, IDS[1].pubkey, label="good")
    router = await start_router(first_byte_timeout=1.0, idle_timeout=1.0)
    if fault == "refused":
        await bad.stop()
    streamed = {**CHAT, "stream": True}
    if fault == "429":
        async with httpx.AsyncClient(base_url=bad.url) as http:  # occupy its only slot
            hog = asyncio.create_task(http.post("/v1/chat/completions", json=CHAT))
            await asyncio.sleep(0.2)
            responses = [await post(router.url, streamed) for _ in range(2)]
            await hog
    else:
        responses = [await post(router.url, streamed) for _ in range(2)]
    assert [r.status_code for r in responses] == [200, 200]
    assert all(r.text.rstrip().endswith("data: [DONE]") for r in responses)
    assert await served_by(router_home, 2) == Counter({IDS[1].pubkey: 2})
    async with httpx.AsyncClient(base_url=router.url) as http:
        peers = {p["label"]: p["health"] for p in (await http.get("/peers")).json()}
    if fault == "429":  # busy is not a failure (WIRE.md "[ext] who is to blame")
        assert peers["bad"]["consecutiveFailures"] == 0 and peers["bad"]["state"] == "healthy"
    else:
        assert peers["bad"]["consecutiveFailures"] == 2 and peers["bad"]["lastError"]
        assert peers["bad"]["state"] == "excluded"
    assert peers["good"]["consecutiveFailures"] == 0


async def test_exclusion_then_readmission_on_the_clock(start_worker: StartWorker, start_router: StartRouter, router_home: Path) -> None:
    now = [time.time_ns() // 1_000_000]
    engine = BrokenEngine()
    flaky = await start_worker(engine, identity=IDS[0])
    add_peer(router_home, flaky, IDS[0].pubkey, label="flaky")
    router = await start_router(clock_ms=lambda: now[0])
    async with httpx.AsyncClient(base_url=router.url, timeout=10) as http:
        first, second = await http.post("/v1/chat/completions", json=CHAT), await http.post("/v1/chat/completions", json=CHAT)
        assert (first.status_code, second.status_code) == (502, 502)
        health = (await http.get("/peers")).json()[0]["health"]
        assert health["state"] == "excluded" and health["excludedUntil"] == now[0] + 30_000
        # While excluded it is not even tried.
        third = await http.post("/v1/chat/completions", json=CHAT)
        assert third.status_code == 503 and third.json()["error"]["type"] == "no_capable_peer"

        engine.chat = DemoEngine.chat.__get__(engine)  # type: ignore[method-assign]  # the peer recovers
        now[0] += 29_999
        assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 503
        now[0] += 2
        recovered = await http.post("/v1/chat/completions", json=CHAT)
        assert recovered.status_code == 200
        health = (await http.get("/peers")).json()[0]["health"]
        assert health["state"] == "healthy" and health["consecutiveFailures"] == 0


async def test_a_stream_reaches_the_client_token_by_token(start_worker: StartWorker, start_router: StartRouter, router_home: Path) -> None:
    engine = GatedEngine()
    add_peer(router_home, await start_worker(engine, identity=IDS[0]), IDS[0].pubkey)
    router = await start_router()
    # The worker has produced one token and waits: the client must have it already.
    before, whole = await first_token_while_gated(router.url, engine, {**CHAT, "max_tokens": 5})
    assert len(tokens_in(before)) == 1 and not any("[DONE]" in line for line in before)
    assert len(tokens_in(whole)) == 5 and [line for line in whole if line][-1] == "data: [DONE]"
    assert await served_by(router_home, 1) == Counter({IDS[0].pubkey: 1})
