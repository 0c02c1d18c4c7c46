"""An engine that runs one call at a time (llama.cpp in-process) caps the worker's slots, so the
requests it cannot run yet wait in the worker's line, where ``/capacity`` counts them."""

from __future__ import annotations

import asyncio

import httpx

from lobstah_core.engines.demo import DemoEngine

from .conftest import StartWorker

CHAT = {"model": "demo-fast", "messages": [{"role": "user", "content": "one at a time"}]}


class SingleFileEngine(DemoEngine):
    max_concurrency = 1


async def test_the_engine_limit_caps_the_slots_and_shows_in_capacity(start_worker: StartWorker) -> None:
    worker = await start_worker(SingleFileEngine(first_token_delay=0.4), concurrency=4, max_queue=1)
    async with httpx.AsyncClient(base_url=worker.url, timeout=10) as http:
        assert (await http.get("/capacity")).json()["concurrency"] == 1
        first = asyncio.create_task(http.post("/v1/chat/completions", json=CHAT))
        second = asyncio.create_task(http.post("/v1/chat/completions", json=CHAT))
        await asyncio.sleep(0.2)
        assert (await http.get("/capacity")).json()["queueDepth"] == 2
        third = await http.post("/v1/chat/completions", json=CHAT)
        assert third.status_code == 429  # one running, one waiting: the line of one is full
        assert [r.status_code for r in await asyncio.gather(first, second)] == [200, 200]
