"""``POST /v1/chat/completions`` on a worker: plain (receipt in a header) or SSE stream.

A stream is committed (200 and headers sent) only once the engine has accepted the request,
which it shows by yielding its first chunk (engines/base.py): an engine's refusal before that
is a plain HTTP error with the engine's status (400 for the request's fault, 503 + Retry-After
when busy, 502 when the engine failed), so the router can tell whom to blame. After the commit
an error ends the stream with one error event and ``[DONE]`` (lobstah_core/http.py).

The stream forwards the engine's chunks as they come, then a ``:lobstah-receipt:`` comment,
then ``data: [DONE]``. The receipt is signed only after the last chunk has been written and is
committed to our ledger before the bytes carrying it leave (durable before delivered); a
router that missed it recovers it by reconciliation (``GET /v1/receipts``).
"""

from __future__ import annotations

import json
from contextlib import aclosing
from typing import Any

from aiohttp import web

from ..engines.base import Usage, completion_id, usage_of
from ..errors import EngineError
from ..http import open_event_stream
from ..protocol.receipts import RECEIPT_COMMENT, RECEIPT_HEADER, SignedReceipt, encode_receipt_header
from ..protocol.schemas import ChatCompletionRequest
from .service import WorkerService

__all__ = ["plain_completion", "streamed_completion", "answer_with_receipt"]


async def plain_completion(
    service: WorkerService,
    http_request: web.Request,
    request: ChatCompletionRequest,
    requester: str,
) -> web.Response:
    body = request.to_body()
    started = service.clock_ms()
    async with service.admission.slot():
        completion = await service.engine.chat(body)
    usage = _require_usage(usage_of(completion))
    job_id = str(completion.get("id") or completion_id())
    signed = service.sign_receipt(job_id, requester, request.model, usage, started)
    return await answer_with_receipt(service, http_request, completion, signed)


async def answer_with_receipt(
    service: WorkerService, http_request: web.Request, body: dict[str, Any], signed: SignedReceipt
) -> web.Response:
    """Send ``body`` as JSON with ``signed`` in the ``x-lobstah-receipt`` header (WIRE.md
    "Receipt", non-streaming), the receipt committed to our ledger first (durable before
    delivered)."""
    await service.commit_receipt(signed)
    response = web.json_response(body, headers={RECEIPT_HEADER: encode_receipt_header(signed)})
    await response.prepare(http_request)
    await response.write_eof()
    return response


async def streamed_completion(
    service: WorkerService,
    http_request: web.Request,
    request: ChatCompletionRequest,
    requester: str,
) -> web.StreamResponse:
    body = request.to_body()
    wants_usage = bool(request.stream_options and request.stream_options.include_usage)
    started = service.clock_ms()
    usage: Usage | None = None
    job_id = completion_id()
    async with service.admission.slot(), aclosing(service.engine.stream(body)) as chunks:
        # Nothing is sent until the engine accepted: a refusal raised here is a plain error.
        first = await anext(chunks, None)
        response = await open_event_stream(http_request, headers_now=False)  # with the first event
        if first is not None:
            async for chunk in _chain(first, chunks):
                usage = usage_of(chunk) or usage
                job_id = str(chunk.get("id") or job_id)
                if not wants_usage and not chunk.get("choices"):
                    continue  # the usage-only chunk, which this client did not ask for
                await response.write(_event(chunk))
        usage = _require_usage(usage)
    signed = service.sign_receipt(job_id, requester, request.model, usage, started)
    await service.commit_receipt(signed)
    await response.write(f"{RECEIPT_COMMENT}{encode_receipt_header(signed)}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def _chain(first: dict[str, Any], rest: Any) -> Any:
    yield first
    async for chunk in rest:
        yield chunk


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _require_usage(usage: Usage | None) -> Usage:
    if usage is None:
        raise EngineError("the engine reported no token usage, so no receipt can be signed")
    return usage
