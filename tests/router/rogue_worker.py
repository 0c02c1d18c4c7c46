"""A worker that misbehaves on purpose: it dies mid-stream, or hands out bad receipts.

It speaks enough of the worker API (GET /capacity, POST /v1/chat/completions) for a router to
pick it, and signs receipts with real keys so that only the misbehaviour under test is wrong.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

from aiohttp import web

from lobstah_core.protocol import Identity, encode_receipt_header, new_nonce, sign_receipt
from lobstah_core.protocol.receipts import RECEIPT_COMMENT

#: Seconds the slow_first_event worker takes to its first event.
SLOW_FIRST_EVENT_S = 3.0
#: Seconds the slow_end worker keeps its stream open after ``[DONE]``.
SLOW_END_S = 3.0
BEHAVIOUR = web.AppKey("behaviour", str)
STATE = web.AppKey("state", dict)
COMPLETION = {
    "id": "chatcmpl-rogue", "object": "chat.completion", "created": 0, "model": "demo-fast",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "trust me"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
}


def create_rogue_app(identity: Identity, behaviour: str) -> web.Application:
    """``behaviour``: die_mid_stream, slow_first_event (2xx at once, an event 3 s later),
    slow_end (a whole stream, receipt and ``[DONE]`` included, then 3 s before the end of the
    body), forged, inflated, replayed, stale, misaddressed, wrong_worker, none."""
    app = web.Application()
    app[BEHAVIOUR] = behaviour
    app[STATE] = {"identity": identity, "last": None}
    app.router.add_get("/capacity", capacity)
    app.router.add_post("/v1/chat/completions", chat)
    return app


async def capacity(request: web.Request) -> web.Response:
    identity = request.app[STATE]["identity"]
    return web.json_response({"pubkey": identity.pubkey, "models": ["demo-fast"], "queueDepth": 0})


async def chat(request: web.Request) -> web.StreamResponse:
    behaviour, state = request.app[BEHAVIOUR], request.app[STATE]
    body = await request.json()
    if behaviour == "die_mid_stream":
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for word in ("one", " two", " three"):
            chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "demo-fast",
                     "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        assert request.transport is not None
        request.transport.abort()  # the process "dies": no receipt, no [DONE]
        return response
    if behaviour == "slow_first_event":
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)  # the status line and headers go out now
        await asyncio.sleep(SLOW_FIRST_EVENT_S)
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "demo-fast",
                 "choices": [{"index": 0, "delta": {"content": "late"}, "finish_reason": "stop"}]}
        await response.write(f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode())
        await response.write_eof()
        return response
    if behaviour == "slow_end":
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "demo-fast",
                 "choices": [{"index": 0, "delta": {"content": "trust me"}, "finish_reason": "stop"}]}
        usage = {**chunk, "choices": [], "usage": COMPLETION["usage"]}
        receipt = _receipt(behaviour, state, request.headers.get("x-lobstah-requester", "anonymous"))
        await response.write(f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(usage)}\n\n"
                             f"{RECEIPT_COMMENT}{receipt}\n\ndata: [DONE]\n\n".encode())
        await asyncio.sleep(SLOW_END_S)
        await response.write_eof()
        return response
    headers = {}
    receipt = _receipt(behaviour, state, request.headers.get("x-lobstah-requester", "anonymous"))
    if receipt is not None:
        headers["x-lobstah-receipt"] = receipt
    assert body["model"] == "demo-fast"
    return web.json_response(COMPLETION, headers=headers)


def _receipt(behaviour: str, state: dict[str, Any], requester: str) -> str | None:
    if behaviour == "none":
        return None
    identity: Identity = state["identity"]
    now = int(time.time() * 1000)
    body = {
        "version": 1, "jobId": "rogue", "nonce": new_nonce(), "requesterPubkey": requester,
        "workerPubkey": identity.pubkey, "model": "demo-fast", "inputTokens": 5, "outputTokens": 2,
        "startedAt": now - 100, "completedAt": now,
    }
    signer = identity
    if behaviour == "stale":
        body["completedAt"] = body["startedAt"] = now - 301_000
    elif behaviour == "misaddressed":
        body["requesterPubkey"] = Identity.from_seed(b"\x07" * 32).pubkey
    elif behaviour == "wrong_worker":
        signer = Identity.from_seed(b"\x08" * 32)
        body["workerPubkey"] = signer.pubkey
    elif behaviour == "inflated":
        body["outputTokens"] = 2_000  # signed, but more than the answer's usage says
    elif behaviour == "replayed" and state["last"] is not None:
        return state["last"]
    signed = sign_receipt(body, signer)
    if behaviour == "forged":
        wire = signed.to_wire()
        wire["receipt"]["outputTokens"] = 20_000  # inflate the bill after signing
        return base64.b64encode(json.dumps(wire).encode()).decode()
    state["last"] = encode_receipt_header(signed)
    return state["last"]
