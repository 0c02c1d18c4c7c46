"""Async jobs (persistent across restarts) and streams cut short by the client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lobstah_core.engines.demo import DemoEngine
from lobstah_core.protocol import Identity, encode_receipt_header, verify_receipt
from lobstah_core.worker.job_store import JobStore

from ..conftest import ledgered
from ..factories import signed_receipt
from .conftest import ROUTER, StartWorker

JOB = {"model": "demo-smart", "messages": [{"role": "user", "content": "summarise the tide"}], "max_tokens": 4}


async def poll(http: httpx.AsyncClient, job_id: str, until: set[str], timeout: float = 10) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        record = (await http.get(f"/v1/jobs/{job_id}")).json()
        if record["status"] in until or asyncio.get_running_loop().time() > deadline:
            return record
        await asyncio.sleep(0.05)


async def test_job_runs_and_carries_a_receipt(client: httpx.AsyncClient) -> None:
    created = await client.post("/v1/jobs", json={**JOB, "metadata": {"ticket": "42"}}, headers={"x-lobstah-requester": ROUTER.pubkey})
    assert created.status_code == 202
    accepted = created.json()
    assert accepted["status"] == "queued" and accepted["jobId"].startswith("job-")
    record = await poll(client, accepted["jobId"], {"done", "error"})
    assert record["status"] == "done", record
    assert record["metadata"] == {"ticket": "42"}
    assert record["startedAt"] <= record["completedAt"]
    receipt = verify_receipt(record["signedReceipt"]).receipt
    assert receipt.job_id == accepted["jobId"] and receipt.requester_pubkey == ROUTER.pubkey
    assert receipt.output_tokens == record["result"]["usage"]["completion_tokens"] == 4


async def test_jobs_refuse_streaming_and_unknown_ids(client: httpx.AsyncClient) -> None:
    refused = await client.post("/v1/jobs", json={**JOB, "stream": True})
    assert refused.status_code == 400
    missing = await client.get("/v1/jobs/job-nope")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"
    assert (await client.delete("/v1/jobs/job-nope")).status_code == 404


async def test_cancel_queued_but_not_running(start_worker: StartWorker) -> None:
    worker = await start_worker(DemoEngine(first_token_delay=1.0), concurrency=1)
    async with httpx.AsyncClient(base_url=worker.url) as http:
        first = (await http.post("/v1/jobs", json=JOB)).json()["jobId"]
        second = (await http.post("/v1/jobs", json=JOB)).json()["jobId"]
        await poll(http, first, {"running"})
        refused = await http.delete(f"/v1/jobs/{first}")
        assert refused.status_code == 409 and refused.json()["error"]["type"] == "not_cancellable"
        cancelled = await http.delete(f"/v1/jobs/{second}")
        assert cancelled.status_code == 200
        assert (await http.get(f"/v1/jobs/{second}")).status_code == 404
        capacity = (await http.get("/capacity")).json()
        assert capacity["jobCounts"]["running"] == 1 and capacity["jobCounts"]["queued"] == 0


async def test_queue_survives_a_restart_and_the_running_job_is_interrupted(start_worker: StartWorker, tmp_path: Path) -> None:
    home = tmp_path / "restart-home"
    worker = await start_worker(DemoEngine(first_token_delay=5.0), home=home, concurrency=1)
    async with httpx.AsyncClient(base_url=worker.url) as http:
        ids = [(await http.post("/v1/jobs", json=JOB)).json()["jobId"] for _ in range(3)]
        await poll(http, ids[0], {"running"})
    await worker.stop()  # as if the process died: the running job never finished

    restarted = await start_worker(DemoEngine(), home=home, concurrency=1)
    async with httpx.AsyncClient(base_url=restarted.url) as http:
        interrupted = (await http.get(f"/v1/jobs/{ids[0]}")).json()
        assert interrupted["status"] == "error" and interrupted["error"]["type"] == "interrupted"
        for job_id in ids[1:]:
            assert (await poll(http, job_id, {"done", "error"}))["status"] == "done"


def test_done_and_failed_jobs_expire(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite3", ttl_seconds=3600)
    done = store.create("anonymous", JOB, None, now_ms=0)
    failed = store.create("anonymous", JOB, None, now_ms=0)
    store.claim_next(0)
    store.claim_next(0)
    store.fail(failed.job_id, {"type": "engine_error", "message": "x"}, now_ms=1000)
    record = store.get(done.job_id, 0)
    assert record is not None and record.status == "running"
    worker = Identity.generate()
    store.finish(done.job_id, {"ok": True}, signed_receipt(worker, "anonymous"), now_ms=1000)
    assert store.get(failed.job_id, 1000 + 1_800_000) is not None
    assert store.get(failed.job_id, 1000 + 1_800_001) is None
    assert store.get(done.job_id, 1000 + 3_600_000) is not None
    assert store.get(done.job_id, 1000 + 3_600_001) is None
    assert store.expire(1000 + 3_600_001) == 2
    store.close()


class WatchedEngine(DemoEngine):
    """The demo engine, noting whether a stream was cut off before its end."""

    def __init__(self) -> None:
        super().__init__(tokens_per_second=20)
        self.cancelled = asyncio.Event()

    async def stream(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        try:
            async for chunk in super().stream(request):
                yield chunk
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled.set()
            raise


async def test_client_hanging_up_cancels_the_engine_and_issues_no_receipt(start_worker: StartWorker, tmp_path: Path) -> None:
    engine = WatchedEngine()
    home = tmp_path / "hangup-home"
    worker = await start_worker(engine, home=home)
    body = {**JOB, "stream": True, "max_tokens": 200}
    async with httpx.AsyncClient(base_url=worker.url) as http:
        async with http.stream("POST", "/v1/chat/completions", json=body) as response:
            async for line in response.aiter_lines():
                if '"content"' in line and "lobsters" not in line:
                    break  # a few tokens in: hang up
    await asyncio.wait_for(engine.cancelled.wait(), timeout=5)
    async with httpx.AsyncClient(base_url=worker.url) as http:
        assert (await http.get("/capacity")).json()["queueDepth"] == 0
        # Receipts are stored in batches: once a later completion's receipt is in, the
        # hung-up stream's would be too.
        finished = await http.post("/v1/chat/completions", json=JOB)
    [stored] = await ledgered(home, 2, timeout=1)
    assert encode_receipt_header(stored) == finished.headers["x-lobstah-receipt"]


async def test_client_hanging_up_on_a_plain_request_gets_no_receipt(start_worker: StartWorker, tmp_path: Path) -> None:
    home = tmp_path / "plain-hangup-home"
    worker = await start_worker(DemoEngine(first_token_delay=0.5), home=home)
    async with httpx.AsyncClient(base_url=worker.url) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post("/v1/chat/completions", json=JOB, timeout=0.1)
        finished = await http.post("/v1/chat/completions", json=JOB, timeout=5)
    [stored] = await ledgered(home, 2, timeout=1)
    assert encode_receipt_header(stored) == finished.headers["x-lobstah-receipt"]
