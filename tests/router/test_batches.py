"""Cargo: the OpenAI Batch API over the grid, driven with the official `openai` SDK."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import openai
import pytest

from lobstah_core.engines.demo import DemoEngine
from lobstah_core.errors import EngineRejected
from lobstah_core.event_log import describe
from lobstah_core.events import BatchProgressed, BatchStatusChanged
from lobstah_core.config import RouterSettings
from lobstah_core.http import RunningServer
from lobstah_core.router import create_app as create_router
from lobstah_core.router.app import ROUTER
from lobstah_core.router.memory import MemoryRequest, MemoryResponse, MemoryTransport
from lobstah_core.router.peers import Peer, PeerStore
from lobstah_core.protocol import Identity

from ..conftest import StartWorker, sdk_client
from .rogue_worker import create_rogue_app
from .conftest import ROUTER_ID, StartRouter, add_peer, ledgered

pytestmark = pytest.mark.usefixtures("closes_sdk_clients")  # sdk() clients closed on the test's loop

WORKERS = [Identity.from_seed(bytes([n]) * 32) for n in (0xB1, 0xB2)]


def sdk(router_url: str) -> openai.AsyncOpenAI:
    return sdk_client(f"{router_url}/v1")


def request_line(custom_id: str, model: str = "demo-fast", **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": f"say {custom_id}"}], "max_tokens": 4, **body},
    }


def embedding_line(custom_id: str, model: str = "demo-fast", **body: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings",
            "body": {"model": model, "input": f"text of {custom_id}", "encoding_format": "float", **body}}


def jsonl(lines: list[Any]) -> bytes:
    return b"".join((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines)


async def wait_for(client: openai.AsyncOpenAI, batch_id: str, statuses: tuple[str, ...], timeout: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        batch = await client.batches.retrieve(batch_id)
        if batch.status in statuses or asyncio.get_running_loop().time() > deadline:
            return batch
        await asyncio.sleep(0.1)


async def results(client: openai.AsyncOpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    content = await client.files.content(file_id)
    return [json.loads(line) for line in content.text.splitlines()]


@pytest.fixture
async def grid(start_worker: StartWorker, start_router: StartRouter, router_home: Path) -> Any:
    for identity in WORKERS:
        add_peer(router_home, await start_worker(identity=identity), identity.pubkey)
    return await start_router()


async def test_a_batch_completes_with_every_custom_id_once(grid: Any, router_home: Path) -> None:
    client = sdk(grid.url)
    bus = grid.runner.app[ROUTER].bus
    events: list[Any] = []
    watching = asyncio.create_task(_collect(bus, events))
    await asyncio.sleep(0)
    lines = [request_line(f"item-{n}") for n in range(40)]
    upload = await client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    assert upload.purpose == "batch" and upload.bytes == len(jsonl(lines))
    batch = await client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                        completion_window="24h", metadata={"job": "nightly"})
    assert batch.status in ("in_progress", "validating") and batch.metadata == {"job": "nightly"}
    done = await wait_for(client, batch.id, ("completed",))
    assert done.status == "completed", done
    output = await results(client, done.output_file_id)
    assert sorted(line["custom_id"] for line in output) == sorted(f"item-{n}" for n in range(40))
    assert all(line["response"]["status_code"] == 200 and line["error"] is None for line in output)
    assert done.request_counts.total == 40 and done.request_counts.completed == 40
    receipts = await ledgered(router_home, 40)
    assert len(receipts) == 40
    assert {r.receipt.worker_pubkey for r in receipts} == {w.pubkey for w in WORKERS}
    watching.cancel()
    statuses = [e.status for e in events if isinstance(e, BatchStatusChanged) and e.batch_id == batch.id]
    assert statuses == ["in_progress", "finalizing", "completed"]
    progress = [e for e in events if isinstance(e, BatchProgressed)]
    assert len(progress) == 40 and progress[-1].completed == 40 and progress[-1].total == 40
    # Who served how many, as the batch object ([ext]) and the events' running totals say it.
    per_peer = (done.model_extra or {})["items_per_peer"]
    assert per_peer == {w.pubkey: sum(r.receipt.worker_pubkey == w.pubkey for r in receipts) for w in WORKERS}
    assert {e.peer: e.peer_completed for e in progress} == per_peer
    final = [e for e in events if isinstance(e, BatchStatusChanged) and e.status == "completed"]
    assert [(e.completed, e.failed, e.total) for e in final] == [(40, 0, 40)]


async def _collect(bus: Any, into: list[Any]) -> None:
    async with bus.subscribe() as queue:
        while True:
            into.append(await queue.get())


class RefusingEngine(DemoEngine):
    """The demo engine, refusing (400, the request's fault) any prompt that says 'refuse'."""

    async def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        if "refuse" in json.dumps(request["messages"]):
            raise EngineRejected("this model's maximum context length is 8 tokens")
        return await super().chat(request)


async def test_a_request_the_worker_refuses_goes_to_the_error_file_once(
    start_worker: StartWorker, start_router: StartRouter, router_home: Path
) -> None:
    add_peer(router_home, await start_worker(RefusingEngine(), identity=WORKERS[0]), WORKERS[0].pubkey)
    client = sdk((await start_router()).url)
    lines = [request_line("good-1"), request_line("refuse-me"), request_line("good-2")]
    upload = await client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    batch = await client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
    done = await wait_for(client, batch.id, ("completed",))
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 1)
    assert [line["custom_id"] for line in await results(client, done.output_file_id)] == ["good-1", "good-2"]
    [refused] = await results(client, done.error_file_id)
    assert refused["custom_id"] == "refuse-me" and refused["response"]["status_code"] == 400
    assert "context length" in refused["response"]["body"]["error"]["message"]
    assert len(await ledgered(router_home, 2)) == 2


async def test_a_bad_input_file_is_refused_with_line_numbers(grid: Any) -> None:
    client = sdk(grid.url)
    lines = [request_line("a"), request_line("a"), b"{not json", {**request_line("b"), "url": "/v1/completions"},
             request_line("c", stream=True)]
    with pytest.raises(openai.BadRequestError) as refused:
        await client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    error = refused.value.body
    assert [(e["line"], e["code"]) for e in error["errors"]] == [
        (2, "duplicate_custom_id"), (3, "invalid_json"), (4, "invalid_url"), (5, "invalid_body"),
    ]
    assert "line 2" in error["message"]
    assert (await client.batches.list()).data == []


async def test_an_embeddings_batch_answers_in_openais_embedding_lines(grid: Any, router_home: Path) -> None:
    client = sdk(grid.url)
    lines = [embedding_line(f"e{n}") for n in range(10)] + [embedding_line("short", dimensions=8)]
    upload = await client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    batch = await client.batches.create(input_file_id=upload.id, endpoint="/v1/embeddings", completion_window="24h")
    done = await wait_for(client, batch.id, ("completed",))
    assert (done.status, done.request_counts.completed, done.error_file_id) == ("completed", 11, None)
    output = {line["custom_id"]: line for line in await results(client, done.output_file_id)}
    assert sorted(output) == sorted(line["custom_id"] for line in lines)
    for line in lines:
        body = output[line["custom_id"]]["response"]["body"]
        expected = await DemoEngine().embed("demo-fast", [line["body"]["input"]], line["body"].get("dimensions"))
        assert output[line["custom_id"]]["response"]["status_code"] == 200
        assert body["object"] == "list" and body["data"][0]["object"] == "embedding"
        assert body["data"][0]["embedding"] == pytest.approx(expected.vectors[0])
    receipts = await ledgered(router_home, 11)
    assert len(receipts) == 11 and all(r.receipt.output_tokens == 0 for r in receipts)


async def test_an_embeddings_batch_file_is_checked_as_embeddings_requests(grid: Any) -> None:
    client = sdk(grid.url)
    with pytest.raises(openai.BadRequestError) as refused:
        await client.files.create(file=("in.jsonl", jsonl([embedding_line("a"), embedding_line("b", input=[[1, 2]])])),
                                  purpose="batch")
    assert [(e["line"], e["code"]) for e in refused.value.body["errors"]] == [(2, "invalid_body")]
    mixed = await client.files.create(file=("in.jsonl", jsonl([embedding_line("a"), request_line("b")])), purpose="batch")
    with pytest.raises(openai.BadRequestError) as refused:
        await client.batches.create(input_file_id=mixed.id, endpoint="/v1/embeddings", completion_window="24h")
    assert [(e["line"], e["code"]) for e in refused.value.body["errors"]] == [(2, "mismatched_url")]


async def test_unknown_ids_are_404_and_a_bad_endpoint_is_400(grid: Any) -> None:
    client = sdk(grid.url)
    with pytest.raises(openai.NotFoundError):
        await client.batches.retrieve("batch_nope")
    with pytest.raises(openai.NotFoundError):
        await client.batches.create(input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h")
    upload = await client.files.create(file=("in.jsonl", jsonl([request_line("a")])), purpose="batch")
    with pytest.raises(openai.BadRequestError):
        await client.batches.create(input_file_id=upload.id, endpoint="/v1/completions", completion_window="24h")
    with pytest.raises(openai.BadRequestError):
        await client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="soon")
    assert (await client.files.retrieve(upload.id)).filename == "in.jsonl"
    assert (await client.files.delete(upload.id)).deleted
    with pytest.raises(openai.NotFoundError):
        await client.files.retrieve(upload.id)


async def test_cancel_keeps_what_is_done_and_lists_the_rest_as_cancelled(
    start_worker: StartWorker, start_router: StartRouter, router_home: Path
) -> None:
    slow = DemoEngine(tokens_per_second=20)  # 4 tokens: 0.2 s a request, two at a time
    add_peer(router_home, await start_worker(slow, identity=WORKERS[0]), WORKERS[0].pubkey)
    client = sdk((await start_router()).url)
    upload = await client.files.create(file=("in.jsonl", jsonl([request_line(f"r{n}") for n in range(60)])), purpose="batch")
    batch = await client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
    started = await wait_for(client, batch.id, ("completed",), timeout=0.8)
    assert started.status == "in_progress"
    cancelling = await client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled")
    done = await wait_for(client, batch.id, ("cancelled",))
    assert done.status == "cancelled" and done.cancelled_at is not None
    counts = done.request_counts
    assert 0 < counts.completed < 60 and counts.completed + counts.failed == 60
    cancelled = await results(client, done.error_file_id)
    assert {line["error"]["code"] for line in cancelled} == {"batch_cancelled"}
    ids = [line["custom_id"] for line in cancelled + await results(client, done.output_file_id)]
    assert sorted(ids) == sorted(f"r{n}" for n in range(60))
    with pytest.raises(openai.ConflictError):
        await client.batches.cancel(batch.id)


async def test_a_window_that_runs_out_expires_the_rest(
    start_worker: StartWorker, start_router: StartRouter, router_home: Path
) -> None:
    add_peer(router_home, await start_worker(DemoEngine(tokens_per_second=10), identity=WORKERS[0]), WORKERS[0].pubkey)
    client = sdk((await start_router()).url)
    upload = await client.files.create(file=("in.jsonl", jsonl([request_line(f"r{n}") for n in range(40)])), purpose="batch")
    batch = await client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="2s")
    done = await wait_for(client, batch.id, ("expired",), timeout=30)
    assert done.status == "expired" and done.expired_at is not None
    assert 0 < done.request_counts.completed < 40 and done.request_counts.failed == 40 - done.request_counts.completed
    assert {line["error"]["code"] for line in await results(client, done.error_file_id)} == {"batch_expired"}


async def test_batches_list_newest_first_in_pages(grid: Any) -> None:
    client = sdk(grid.url)
    upload = await client.files.create(file=("in.jsonl", jsonl([request_line("a")])), purpose="batch")
    made = [
        (await client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")).id
        for _ in range(3)
    ]
    first = await client.batches.list(limit=2)
    assert [b.id for b in first.data] == made[::-1][:2] and first.has_more
    listed = [b.id async for b in client.batches.list(limit=2)]
    assert listed == made[::-1]


async def test_credit_refusals_pause_the_batch_with_a_reason(
    start_worker: StartWorker, start_router: StartRouter, router_home: Path
) -> None:
    add_peer(router_home, await start_worker(identity=WORKERS[0]), WORKERS[0].pubkey)
    router = await start_router()
    client = sdk(router.url)
    # The worker's ledger knows us as a requester who spent its allowance on a big request.
    big = request_line("big", max_tokens=None, messages=[{"role": "user", "content": "x" * 40_000}])
    upload = await client.files.create(file=("in.jsonl", jsonl([big, request_line("after")])), purpose="batch")
    batch = await client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        state = await client.batches.retrieve(batch.id)
        reason = (state.model_extra or {}).get("paused_reason")
        if reason or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert state.status == "in_progress" and state.request_counts.completed == 1
    assert reason and "credit" in reason


async def test_a_batch_answers_receipt_is_checked_as_a_chat_answers_is(start_router: StartRouter, router_home: Path) -> None:
    """A worker whose signed receipt claims more tokens than its answer reported is refused
    (``inflated``) for a batch request as for a chat request: the answer still counts."""
    rogue = Identity.from_seed(b"\x67" * 32)
    server = await RunningServer(create_rogue_app(rogue, "inflated"), "127.0.0.1", 0, "rogue").start()
    try:
        add_peer(router_home, server, rogue.pubkey)
        router = await start_router()
        client = sdk(router.url)
        upload = await client.files.create(file=("in.jsonl", jsonl([request_line(f"r{n}") for n in range(3)])), purpose="batch")
        batch = await client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
        done = await wait_for(client, batch.id, ("completed",))
        assert done.request_counts.completed == 3
        desk = router.runner.app[ROUTER].desk
        for _ in range(50):
            if desk.rejected.get("inflated") == 3:
                break
            await asyncio.sleep(0.1)
        assert desk.rejected == {"inflated": 3}
    finally:
        await server.stop()


async def test_requests_failing_while_their_batch_is_cancelled_still_end_in_the_error_file(router_home: Path) -> None:
    peer = Identity.from_seed(b"F" * 32)

    async def failing_slowly(request: MemoryRequest) -> MemoryResponse:
        if request.method == "GET":
            capacity = {"pubkey": peer.pubkey, "models": ["demo-fast"], "queueDepth": 0, "concurrency": 2}
            return MemoryResponse(200, json.dumps(capacity).encode())
        await asyncio.sleep(0.5)
        return MemoryResponse(500, b'{"error":{"type":"engine_error","message":"engine crashed"}}')

    PeerStore(router_home / "peers.json").add(Peer(pubkey=peer.pubkey, url="http://failing.test"))
    transport = MemoryTransport({"http://failing.test": failing_slowly})
    app = create_router(RouterSettings(port=0), ROUTER_ID, router_home, transport=transport)
    server = await RunningServer(app, "127.0.0.1", 0, "router").start()
    try:
        client = sdk(server.url)
        upload = await client.files.create(file=("in.jsonl", jsonl([request_line(f"r{n}") for n in range(4)])), purpose="batch")
        batch = await client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
        await asyncio.sleep(0.2)  # two requests are out at the failing peer
        await client.batches.cancel(batch.id)
        done = await wait_for(client, batch.id, ("cancelled",), timeout=20)
        assert done.status == "cancelled"
        assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (4, 0, 4)
        assert sorted(line["custom_id"] for line in await results(client, done.error_file_id)) == ["r0", "r1", "r2", "r3"]
    finally:
        await server.stop()


def test_serves_log_names_the_batch_its_counts_and_who_served() -> None:
    worker = WORKERS[0].pubkey
    status = describe(BatchStatusChanged(0, "batch_1", "in_progress", 3, 1, 10, "paused: no credit"), {})
    progress = describe(BatchProgressed(0, "batch_1", 4, 1, 10, worker, 4), {worker: "attic"})
    assert "batch_1 in_progress, 3/10 done, 1 failed (paused: no credit)" in status
    assert "batch_1 4/10 done, 1 failed by attic (4 so far)" in progress
