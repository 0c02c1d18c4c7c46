"""Jobs through the router: its own ids, persisted; the receipt taken once; cancel."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from lobstah_core.clock import wall_clock_ms
from lobstah_core.engines.demo import DemoEngine
from lobstah_core.protocol import Identity

from ..conftest import StartWorker
from .conftest import StartRouter, add_peer, ledgered

WORKER_ID = Identity.from_seed(b"\xc1" * 32)
JOB = {"model": "demo-fast", "messages": [{"role": "user", "content": "later please"}], "max_tokens": 4}


async def poll(http: httpx.AsyncClient, job_id: str, until: set[str]) -> dict[str, Any]:
    for _ in range(200):
        record = (await http.get(f"/v1/jobs/{job_id}")).json()
        if record.get("status") in until:
            return record
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {until}: {record}")


async def test_job_through_the_router_survives_a_router_restart(start_worker: StartWorker, start_router: StartRouter, router_home: Path) -> None:
    add_peer(router_home, await start_worker(DemoEngine(first_token_delay=0.5), identity=WORKER_ID), WORKER_ID.pubkey)
    router = await start_router()
    async with httpx.AsyncClient(base_url=router.url) as http:
        created = await http.post("/v1/jobs", json=JOB)
        assert created.status_code == 202
        job_id = created.json()["jobId"]
        assert job_id.startswith("rjob-")
    await router.stop()

    router = await start_router()
    async with httpx.AsyncClient(base_url=router.url) as http:
        record = await poll(http, job_id, {"done", "error"})
        assert record["status"] == "done" and record["jobId"] == job_id
        assert "signedReceipt" not in record
        assert record["result"]["usage"]["completion_tokens"] == 4
        again = (await http.get(f"/v1/jobs/{job_id}")).json()
        assert again["status"] == "done"
    receipts = await ledgered(router_home, 1)
    assert len(receipts) == 1 and receipts[0].receipt.worker_pubkey == WORKER_ID.pubkey


async def test_a_job_fetched_long_after_it_was_done_is_still_paid_for(
    start_worker: StartWorker, start_router: StartRouter, router_home: Path, tmp_path: Path
) -> None:
    # Both clocks jump ten minutes between the job's end and the poll (the client came back
    # later): the receipt is past the freshness window, but it is the receipt of a job this
    # router submitted, so it is ledgered, as reconciliation would.
    skew_ms = [0]

    def clock_ms() -> int:
        return wall_clock_ms() + skew_ms[0]

    add_peer(router_home, await start_worker(identity=WORKER_ID, clock_ms=clock_ms), WORKER_ID.pubkey)
    router = await start_router(clock_ms=clock_ms)
    async with httpx.AsyncClient(base_url=router.url) as http:
        job_id = (await http.post("/v1/jobs", json=JOB)).json()["jobId"]
        assert len(await ledgered(tmp_path / "worker-home", 1)) == 1  # done and signed
        skew_ms[0] = 10 * 60_000
        record = await poll(http, job_id, {"done", "error"})
        assert record["status"] == "done"
    receipts = await ledgered(router_home, 1)
    assert len(receipts) == 1 and receipts[0].receipt.worker_pubkey == WORKER_ID.pubkey


async def test_cancel_and_unknown_ids(start_worker: StartWorker, start_router: StartRouter, router_home: Path) -> None:
    add_peer(router_home, await start_worker(DemoEngine(first_token_delay=1.0), identity=WORKER_ID, concurrency=1), WORKER_ID.pubkey)
    router = await start_router()
    async with httpx.AsyncClient(base_url=router.url) as http:
        first = (await http.post("/v1/jobs", json=JOB)).json()["jobId"]
        second = (await http.post("/v1/jobs", json=JOB)).json()["jobId"]
        await poll(http, first, {"running"})
        assert (await http.delete(f"/v1/jobs/{first}")).status_code == 409
        cancelled = await http.delete(f"/v1/jobs/{second}")
        assert cancelled.json() == {"jobId": second, "cancelled": True}
        missing = await http.get(f"/v1/jobs/{second}")
        assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"
        assert (await http.post("/v1/jobs", json={**JOB, "stream": True})).status_code == 400


async def test_a_hostile_job_answer_is_the_peers_fault_not_a_crash(start_router: StartRouter, router_home: Path) -> None:
    from aiohttp import web as aioweb

    from lobstah_core.http import RunningServer

    from ..conftest import WORKER

    async def capacity(request: aioweb.Request) -> aioweb.Response:
        return aioweb.json_response({"pubkey": WORKER.pubkey, "models": ["demo-fast"], "queueDepth": 0})

    async def accept(request: aioweb.Request) -> aioweb.Response:
        return aioweb.json_response({"jobId": "j1", "status": "queued", "createdAt": 1}, status=202)

    async def poll(request: aioweb.Request) -> aioweb.Response:
        return aioweb.Response(body=b"[" * 30_000 + b"]" * 30_000, content_type="application/json")

    app = aioweb.Application()
    app.router.add_get("/capacity", capacity)
    app.router.add_post("/v1/jobs", accept)
    app.router.add_get("/v1/jobs/{id}", poll)
    hostile = await RunningServer(app, "127.0.0.1", 0, "hostile").start()
    try:
        add_peer(router_home, hostile, WORKER.pubkey)
        router = await start_router()
        async with httpx.AsyncClient(base_url=router.url, timeout=20) as http:
            job = (await http.post("/v1/jobs", json={"model": "demo-fast", "messages": [{"role": "user", "content": "x"}]})).json()
            polled = await http.get(f"/v1/jobs/{job['jobId']}")
        assert polled.status_code == 502 and polled.json()["error"]["type"] == "peer_unreachable"
    finally:
        await hostile.stop()
