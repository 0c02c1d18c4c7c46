"""``POST /v1/embeddings`` on a worker: OpenAI's embeddings API over the engine's ``embed``.

The answer carries a receipt in the ``x-lobstah-receipt`` header, as a plain chat answer does:
``inputTokens`` are the tokens embedded, ``outputTokens`` 0 (an embedding generates no tokens).
An engine that cannot embed answers 404, so a router moves on to a peer whose engine can
(WIRE.md "[ext] who is to blame": 404 is no penalty).
"""

from __future__ import annotations

import uuid

from aiohttp import web

from ..engines.base import EmbeddingEngine, Usage
from ..errors import NotFound
from ..protocol.embeddings import embedding_response
from ..protocol.schemas import EmbeddingRequest
from .chat import answer_with_receipt
from .service import WorkerService

__all__ = ["embed"]


async def embed(
    service: WorkerService, http_request: web.Request, request: EmbeddingRequest, requester: str
) -> web.Response:
    """Embed ``request``'s input and answer with the OpenAI list and its receipt.

    Raises:
        NotFound: this worker's engine does not embed (404).
        EngineRejected, EngineBusy, ModelNotFound, EngineError: from the engine.
    """
    engine = service.engine
    if not isinstance(engine, EmbeddingEngine):
        raise NotFound(f"this worker's engine ({engine.name}) does not embed")
    started = service.clock_ms()
    async with service.admission.slot():
        result = await engine.embed(request.model, request.texts, request.dimensions)
    body = embedding_response(request.model, result.vectors, result.prompt_tokens, request.encoding_format or "float")
    job_id = f"embd-{uuid.uuid4().hex[:24]}"
    signed = service.sign_receipt(job_id, requester, request.model, Usage(result.prompt_tokens, 0), started)
    return await answer_with_receipt(service, http_request, body, signed)
