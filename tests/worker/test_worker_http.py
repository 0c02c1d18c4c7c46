"""The worker over real HTTP on loopback: endpoints, receipts, bad input, backpressure, credit."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from lobstah_core.engines.demo import DemoEngine
from lobstah_core.ledger import Ledger
from lobstah_core.protocol import decode_receipt_header, sign_request, verify_receipt
from lobstah_core.worker.app import SERVICE

from ..factories import signed_receipt
from ..conftest import ledgered
from .conftest import ROUTER, WORKER, StartWorker

CHAT = {"model": "demo-fast", "messages": [{"role": "user", "content": "hello grid"}]}


async def test_identity_endpoints(client: httpx.AsyncClient) -> None:
    assert (await client.get("/")).text == "lobstah-worker"
    assert (await client.get("/pubkey")).json() == {"pubkey": WORKER.pubkey}
    capacity = (await client.get("/capacity")).json()
    assert capacity["pubkey"] == WORKER.pubkey
    assert capacity["models"] == ["demo-fast", "demo-smart"]
    assert capacity["queueDepth"] == 0 and capacity["tier"] == "best-effort"
    assert capacity["jobCounts"] == {"queued": 0, "running": 0, "done": 0, "error": 0}
    models = (await client.get("/v1/models")).json()
    assert models["object"] == "list"
    first = models["data"][0]
    assert first == {"id": "demo-fast", "object": "model", "created": first["created"], "owned_by": f"lobstah:{WORKER.pubkey[:12]}"}
    assert isinstance(first["created"], int) and abs(first["created"] - time.time()) < 600
    assert (await client.get("/v1/models/demo-fast")).json() == first


async def test_plain_completion_carries_a_receipt_for_its_usage(client: httpx.AsyncClient, tmp_path) -> None:
    response = await client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 7}, headers={"x-lobstah-requester": ROUTER.pubkey})
    assert response.status_code == 200
    completion = response.json()
    assert completion["object"] == "chat.completion"
    assert len(completion["choices"][0]["message"]["content"].split()) == 7
    signed = verify_receipt(decode_receipt_header(response.headers["x-lobstah-receipt"]))
    receipt = signed.receipt
    assert (receipt.worker_pubkey, receipt.requester_pubkey, receipt.model) == (WORKER.pubkey, ROUTER.pubkey, "demo-fast")
    usage = completion["usage"]
    assert (receipt.input_tokens, receipt.output_tokens) == (usage["prompt_tokens"], usage["completion_tokens"])
    [stored] = await ledgered(tmp_path / "worker-home", 1)
    assert stored.receipt == receipt
    with Ledger(tmp_path / "worker-home" / "ledger.sqlite3") as ledger:
        assert ledger.balance(WORKER.pubkey).earned == usage["total_tokens"]


async def test_a_worker_stopped_at_once_has_stored_every_receipt(start_worker: StartWorker, tmp_path) -> None:
    worker = await start_worker()
    async with httpx.AsyncClient(base_url=worker.url, timeout=10) as http:
        responses = await asyncio.gather(
            *(http.post("/v1/chat/completions", json={**CHAT, "stream": n % 2 == 1}) for n in range(20))
        )
    await worker.stop()  # within the batch window of the last receipts
    sent = {_receipt_of(response) for response in responses}
    with Ledger(tmp_path / "worker-home" / "ledger.sqlite3") as ledger:
        assert {signed.receipt.nonce for signed in ledger.recent(100)} == sent


def _receipt_of(response: httpx.Response) -> str:
    if "x-lobstah-receipt" in response.headers:
        value = response.headers["x-lobstah-receipt"]
    else:
        [value] = [line.split(":", 2)[2] for line in response.text.splitlines() if line.startswith(":lobstah-receipt:")]
    return decode_receipt_header(value)["receipt"]["nonce"]


@pytest.mark.parametrize("claimed", [b"\xff\xfe", b"not-a-key", ("lob1" + "ab" * 32 + "00").encode()])
async def test_a_claimed_requester_that_is_no_public_key_is_refused(client: httpx.AsyncClient, claimed: bytes) -> None:
    """An unsigned request's requester is taken on trust (WIRE.md), but it must be a public key:
    its credit is looked up and it is signed into the receipt. Bytes that are not UTF-8 were a
    500 from the ledger lookup, and any other text ended up as the receipt's requesterPubkey."""
    response = await client.post("/v1/chat/completions", json=CHAT, headers={"x-lobstah-requester": claimed})
    assert response.status_code == 401
    assert "x-lobstah-requester" in response.json()["error"]["message"]
    assert "x-lobstah-receipt" not in response.headers


async def test_requester_defaults_to_anonymous(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json=CHAT)
    assert decode_receipt_header(response.headers["x-lobstah-receipt"])["receipt"]["requesterPubkey"] == "anonymous"


async def test_signed_requests(start_worker: StartWorker) -> None:
    worker = await start_worker(require_signed_requests=True)
    body = json.dumps(CHAT).encode()
    async with httpx.AsyncClient(base_url=worker.url) as http:
        unsigned = await http.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
        assert unsigned.status_code == 401 and unsigned.json()["error"]["type"] == "unauthorized"
        now = time.time_ns() // 1_000_000
        headers = {"content-type": "application/json", **sign_request(ROUTER, "POST", "/v1/chat/completions", body, now)}
        signed = await http.post("/v1/chat/completions", content=body, headers=headers)
        assert signed.status_code == 200
        assert decode_receipt_header(signed.headers["x-lobstah-receipt"])["receipt"]["requesterPubkey"] == ROUTER.pubkey
        forged = await http.post("/v1/chat/completions", content=body.replace(b"hello", b"HELLO"), headers=headers)
        assert forged.status_code == 401 and "signature" in forged.json()["error"]["message"]


def sse_events(text: str) -> list[str]:
    return [event for event in text.split("\n\n") if event]


async def test_stream_forwards_chunks_then_receipt_then_done(client: httpx.AsyncClient) -> None:
    body = {**CHAT, "stream": True, "max_tokens": 5}
    response = await client.post("/v1/chat/completions", json=body, headers={"x-lobstah-requester": ROUTER.pubkey})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == "data: [DONE]"
    assert events[-2].startswith(":lobstah-receipt:")
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all(c["choices"] for c in chunks), "no usage chunk unless asked for"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert len(text.split()) == 5
    receipt = verify_receipt(decode_receipt_header(events[-2].removeprefix(":lobstah-receipt:"))).receipt
    assert receipt.output_tokens == 5


async def test_stream_usage_chunk_when_asked(client: httpx.AsyncClient) -> None:
    body = {**CHAT, "stream": True, "max_tokens": 3, "stream_options": {"include_usage": True}}
    events = sse_events((await client.post("/v1/chat/completions", json=body)).text)
    usage_chunk = json.loads(events[-3].removeprefix("data: "))
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] == 3
    receipt = decode_receipt_header(events[-2].removeprefix(":lobstah-receipt:"))["receipt"]
    assert receipt["outputTokens"] == 3 and receipt["inputTokens"] == usage_chunk["usage"]["prompt_tokens"]


@pytest.mark.parametrize(
    ("kwargs", "status", "kind"),
    [
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "invalid_json"),
        ({"json": {"model": "demo-fast"}}, 400, "invalid_request"),
        ({"json": {"model": "demo-fast", "messages": [{"role": "user", "content": 42}]}}, 400, "invalid_request"),
        ({"json": {**CHAT, "model": "gpt-9"}}, 404, "model_not_found"),
        ({"content": json.dumps(CHAT).encode(), "headers": {"content-type": "text/plain"}}, 415, "unsupported_media_type"),
        ({"json": {**CHAT, "messages": [{"role": "user", "content": "x" * 70_000}]}}, 413, "payload_too_large"),
    ],
)
async def test_bad_input_gets_a_json_4xx_and_the_worker_carries_on(
    start_worker: StartWorker, kwargs: dict[str, Any], status: int, kind: str
) -> None:
    worker = await start_worker(max_body_bytes=64 * 1024)
    async with httpx.AsyncClient(base_url=worker.url) as http:
        response = await http.post("/v1/chat/completions", **kwargs)
        assert response.status_code == status
        error = response.json()["error"]
        assert error["type"] == kind and error["message"]
        if kind == "model_not_found":
            assert error["model"] == "gpt-9" and "gpt-9" in error["message"]
        assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 200


async def test_unknown_routes_and_methods_are_json(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v2/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"
    wrong = await client.get("/v1/chat/completions")
    assert wrong.status_code == 405 and wrong.json()["error"]["type"] == "method_not_allowed"


async def test_credit_is_refused_when_used_up(start_worker: StartWorker, tmp_path) -> None:
    home = tmp_path / "credit-home"
    with Ledger(home / "ledger.sqlite3") as ledger:
        ledger.add(signed_receipt(WORKER, ROUTER, inputTokens=6_000, outputTokens=4_000))
    worker = await start_worker(home=home)
    async with httpx.AsyncClient(base_url=worker.url) as http:
        refused = await http.post("/v1/chat/completions", json=CHAT, headers={"x-lobstah-requester": ROUTER.pubkey})
        assert refused.status_code == 402
        assert refused.json()["error"] | {"message": ""} == {"type": "insufficient_credit", "message": "", "available": 0}
        other = await http.post("/v1/chat/completions", json=CHAT, headers={"x-lobstah-requester": WORKER.pubkey})
        assert other.status_code == 200


async def test_credit_counts_receipts_not_yet_stored(start_worker: StartWorker, tmp_path) -> None:
    home = tmp_path / "edge-home"
    with Ledger(home / "ledger.sqlite3") as ledger:
        ledger.add(signed_receipt(WORKER, ROUTER, inputTokens=9_999, outputTokens=0))  # 1 credit left
    worker = await start_worker(home=home)
    worker.runner.app[SERVICE].issued.window = 1.0  # the first receipt waits in its batch meanwhile
    as_router = {"x-lobstah-requester": ROUTER.pubkey}
    async with httpx.AsyncClient(base_url=worker.url, timeout=10) as http:
        first = asyncio.create_task(http.post("/v1/chat/completions", json=CHAT, headers=as_router))
        await asyncio.sleep(0.5)  # the demo engine has answered; its receipt is not stored yet
        refused = await http.post("/v1/chat/completions", json=CHAT, headers=as_router)
        assert (await first).status_code == 200
        spent = verify_receipt(decode_receipt_header((await first).headers["x-lobstah-receipt"])).receipt.credit
        assert refused.status_code == 402 and refused.json()["error"]["available"] == 1 - spent
        assert len(await ledgered(home, 2)) == 2  # once stored, the receipt counts once, not twice
        again = await http.post("/v1/chat/completions", json=CHAT, headers=as_router)
        assert again.status_code == 402 and again.json()["error"]["available"] == 1 - spent


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_a_receipt_is_in_the_ledger_before_the_client_has_it(
    start_worker: StartWorker, tmp_path, stream: bool
) -> None:
    home = tmp_path / "durable-home"
    worker = await start_worker(home=home)
    async with httpx.AsyncClient(base_url=worker.url, timeout=10) as http:
        response = await http.post("/v1/chat/completions", json={**CHAT, "stream": stream})
    if stream:
        comment = next(e for e in sse_events(response.text) if e.startswith(":lobstah-receipt:"))
        header = comment.removeprefix(":lobstah-receipt:")
    else:
        header = response.headers["x-lobstah-receipt"]
    nonce = verify_receipt(decode_receipt_header(header)).receipt.nonce
    with Ledger(home / "ledger.sqlite3") as ledger:  # no waiting: it was committed first
        assert ledger.has_nonce(nonce)


async def test_credit_check_can_be_turned_off(start_worker: StartWorker, tmp_path) -> None:
    home = tmp_path / "friends-home"
    with Ledger(home / "ledger.sqlite3") as ledger:
        ledger.add(signed_receipt(WORKER, ROUTER, inputTokens=20_000))
    worker = await start_worker(home=home, check_credit=False)
    async with httpx.AsyncClient(base_url=worker.url) as http:
        ok = await http.post("/v1/chat/completions", json=CHAT, headers={"x-lobstah-requester": ROUTER.pubkey})
        assert ok.status_code == 200


async def test_backpressure_queues_then_refuses_with_retry_after(start_worker: StartWorker) -> None:
    worker = await start_worker(DemoEngine(first_token_delay=0.6), concurrency=1, max_queue=1)
    async with httpx.AsyncClient(base_url=worker.url, timeout=10) as http:
        first = asyncio.create_task(http.post("/v1/chat/completions", json=CHAT))
        second = asyncio.create_task(http.post("/v1/chat/completions", json=CHAT))
        await asyncio.sleep(0.3)
        assert (await http.get("/capacity")).json()["queueDepth"] == 2
        third = await http.post("/v1/chat/completions", json=CHAT)
        assert third.status_code == 429
        assert third.json()["error"]["type"] == "overloaded" and int(third.headers["Retry-After"]) >= 1
        assert [r.status_code for r in await asyncio.gather(first, second)] == [200, 200]
        assert (await http.get("/capacity")).json()["queueDepth"] == 0


async def test_model_names_without_a_tag_mean_latest(start_worker: StartWorker) -> None:
    # As `ollama list` shows them; the operator lends two of the three, written as `ollama run` takes them.
    engine = DemoEngine(models=("llama3.2:latest", "qwen2.5:7b", "phi3:latest"))
    worker = await start_worker(engine, models=["llama3.2", "qwen2.5:7b"])
    async with httpx.AsyncClient(base_url=worker.url) as http:
        assert (await http.get("/capacity")).json()["models"] == ["llama3.2:latest", "qwen2.5:7b"]
        asked = {name: (await http.post("/v1/chat/completions", json={**CHAT, "model": name})).status_code
                 for name in ("llama3.2", "llama3.2:latest", "qwen2.5", "phi3")}
    assert asked == {"llama3.2": 200, "llama3.2:latest": 200, "qwen2.5": 404, "phi3": 404}
