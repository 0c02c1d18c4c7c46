"""The Ollama API on the router's own port, for clients that speak Ollama (Open WebUI,
Enchanted, Continue, the ``ollama`` Python and JS libraries).

A front: each handler translates (lobstah_core/protocol/ollama_api.py) and goes through the
dispatch core like the OpenAI routes, so peers, failover, blame and receipts are the same. A
chat or generate becomes an OpenAI chat request to a worker, an embed an OpenAI embeddings
request; the worker's answer (JSON, or SSE events relayed as NDJSON) comes back in Ollama's
shapes. Errors on ``/api/*`` are Ollama's ``{"error": "..."}`` with the grid's status; after a
stream's commit, one NDJSON ``{"error": ...}`` line ends it.

Models: ``/api/tags`` lists the grid's models (those of ``/v1/models``), ``/api/ps`` those some
healthy peer serves now, ``/api/show`` whether a model embeds (a peer's ``embeddingModels``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Literal

from aiohttp import web

from ..errors import ModelNotFound
from ..http import ERROR_SHAPES, parse_body, read_raw_body
from ..protocol.model_names import lists_model
from ..protocol.ollama_api import (
    OLLAMA_API_VERSION,
    Durations,
    OllamaChatRequest,
    OllamaEmbeddingsRequest,
    OllamaEmbedRequest,
    OllamaGenerateRequest,
    OllamaShowRequest,
    StreamTranslator,
    chat_request,
    chat_response,
    created_at,
    embed_request,
    embed_response,
    error_body,
    generate_request,
    generate_response,
    loaded_response,
    model_entry,
    show_response,
)
from .dispatch import Answer, Call, PeerFailedMidStream
from .relay import fetch_with_receipt, relay_events
from .state import CHAT_PATH, EMBEDDINGS_PATH, ROUTER, Router, embedding_models, model_cards

__all__ = ["add_ollama_routes", "PREFIX"]

PREFIX = "/api/"


def add_ollama_routes(app: web.Application) -> None:
    """Route Ollama's API; errors on its paths take Ollama's shape (the shared error
    middleware applies it)."""
    app.setdefault(ERROR_SHAPES, {})[PREFIX] = _ollama_error
    app.router.add_get("/api/tags", tags)
    app.router.add_get("/api/ps", running)
    app.router.add_get("/api/version", version)
    app.router.add_post("/api/show", show)
    app.router.add_post("/api/chat", chat)
    app.router.add_post("/api/generate", generate)
    app.router.add_post("/api/embed", embed)
    app.router.add_post("/api/embeddings", embeddings)


def _ollama_error(body: dict[str, Any]) -> dict[str, str]:
    error = body.get("error") or {}
    return error_body(str(error.get("message") or error.get("type") or "error"))


async def tags(request: web.Request) -> web.Response:
    """``GET /api/tags``: every model of the grid."""
    cards = await model_cards(request.app[ROUTER])
    return web.json_response({"models": [model_entry(card.id, card.created) for card in cards.values()]})


async def running(request: web.Request) -> web.Response:
    """``GET /api/ps``: the models some peer that is not excluded serves now."""
    router = request.app[ROUTER]
    cards = await model_cards(router)
    expires = created_at(router.clock_ms() + int(router.directory.interval * 1000))
    serving = [card for card in cards.values() if router.directory.capable(card.id)]
    models = [{**model_entry(card.id, card.created), "expires_at": expires, "size_vram": 0} for card in serving]
    return web.json_response({"models": models})


async def version(request: web.Request) -> web.Response:
    """``GET /api/version``: the Ollama release whose API this follows."""
    return web.json_response({"version": OLLAMA_API_VERSION})


async def show(request: web.Request) -> web.Response:
    """``POST /api/show``: a model of the grid, or 404."""
    router = request.app[ROUTER]
    wanted = parse_body(await read_raw_body(request), OllamaShowRequest).wanted
    cards = await model_cards(router)
    card = next((card for name, card in cards.items() if lists_model([name], wanted)), None)
    if card is None:
        raise ModelNotFound(f"model '{wanted}' not found", model=wanted)
    return web.json_response(show_response(card.id, card.owned_by, card.id in embedding_models(router)))


async def chat(request: web.Request) -> web.StreamResponse:
    """``POST /api/chat``, plain or NDJSON (Ollama streams unless ``"stream": false``)."""
    router = request.app[ROUTER]
    body = parse_body(await read_raw_body(request), OllamaChatRequest)
    if not body.messages:
        return _loaded(router, "chat", body.model)
    return await _complete(request, router, "chat", body.model, chat_request(body), body.streamed)


async def generate(request: web.Request) -> web.StreamResponse:
    """``POST /api/generate``, plain or NDJSON: a prompt (and ``system``) as a chat."""
    router = request.app[ROUTER]
    body = parse_body(await read_raw_body(request), OllamaGenerateRequest)
    if not body.prompt and not body.images:
        return _loaded(router, "generate", body.model)
    return await _complete(request, router, "generate", body.model, generate_request(body), body.streamed)


async def embed(request: web.Request) -> web.Response:
    """``POST /api/embed``: one text or many."""
    router = request.app[ROUTER]
    body = parse_body(await read_raw_body(request), OllamaEmbedRequest)
    texts = [body.input] if isinstance(body.input, str) else body.input
    started = time.perf_counter_ns()
    answer = await _fetch(router, Call(EMBEDDINGS_PATH, _json(embed_request(body.model, texts, body.dimensions)), body.model))
    durations = _since(started)
    return web.json_response(_translated(answer, lambda reply: embed_response(reply, body.model, durations)))


async def embeddings(request: web.Request) -> web.Response:
    """``POST /api/embeddings`` (Ollama's older route): one ``prompt``, one ``embedding``."""
    router = request.app[ROUTER]
    body = parse_body(await read_raw_body(request), OllamaEmbeddingsRequest)
    if not body.prompt:
        return web.json_response({"embedding": []})  # as Ollama answers an empty prompt
    answer = await _fetch(router, Call(EMBEDDINGS_PATH, _json(embed_request(body.model, [body.prompt])), body.model))
    vectors = _translated(answer, lambda reply: embed_response(reply, body.model, Durations(0)))["embeddings"]
    return web.json_response({"embedding": vectors[0]})


def _loaded(router: Router, kind: Literal["chat", "generate"], model: str) -> web.Response:
    """What Ollama answers a request that only loads a model, once a peer serves it.

    Raises:
        ModelNotFound, NoPeers, NoCapablePeer: as the dispatch core decides.
    """
    router.dispatcher.candidates(model, None)
    return web.json_response(loaded_response(kind, model, router.clock_ms()))


async def _complete(
    request: web.Request,
    router: Router,
    kind: Literal["chat", "generate"],
    model: str,
    openai_request: dict[str, Any],
    streamed: bool,
) -> web.StreamResponse:
    if streamed:
        call = Call(CHAT_PATH, _json(openai_request), model, "interactive")
        return await relay_events(request, router.dispatcher, router.settlement, call, NdjsonSink(kind, model, router.clock_ms))
    started = time.perf_counter_ns()
    answer = await _fetch(router, Call(CHAT_PATH, _json(openai_request), model))
    translate = chat_response if kind == "chat" else generate_response
    durations, now = _since(started), router.clock_ms()
    return web.json_response(_translated(answer, lambda reply: translate(reply, model, now, durations)))


async def _fetch(router: Router, call: Call) -> Answer:
    return await fetch_with_receipt(router.dispatcher, router.settlement, call)


def _translated(answer: Answer, translate: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """A peer's OpenAI answer (JSON) through ``translate``.

    Raises:
        PeerFailedMidStream: the answer cannot be read as one (502).
    """
    try:
        return translate(json.loads(answer.body))
    except (ValueError, TypeError, AttributeError) as exc:
        raise PeerFailedMidStream(f"peer {answer.peer.name} sent an answer that cannot be read: {exc}") from None


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _since(started_ns: int) -> Durations:
    return Durations(time.perf_counter_ns() - started_ns)


def _ndjson(pieces: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(piece, separators=(",", ":")).encode() + b"\n" for piece in pieces)


class NdjsonSink:
    """A relayed OpenAI stream as Ollama's NDJSON (an :class:`~.relay.EventSink`). Durations
    are the router's: the wait for the first piece of text counts as prompt evaluation."""

    content_type = "application/x-ndjson"

    def __init__(self, kind: Literal["chat", "generate"], model: str, clock_ms: Callable[[], int]) -> None:
        self._translator = StreamTranslator(kind, model)
        self._clock_ms = clock_ms
        self._started = time.perf_counter_ns()
        self._first: int | None = None

    def feed(self, event: dict[str, Any]) -> bytes:
        pieces = self._translator.feed(event, self._clock_ms())
        if pieces and self._first is None:
            self._first = time.perf_counter_ns()
        return _ndjson(pieces)

    def finish(self) -> bytes:
        if self._translator.failed:
            return b""
        now = time.perf_counter_ns()
        durations = Durations(now - self._started, (self._first or now) - self._started)
        return _ndjson(self._translator.finish(self._clock_ms(), durations))

    def failure(self, body: dict[str, Any]) -> bytes:
        return _ndjson([_ollama_error(body)])
