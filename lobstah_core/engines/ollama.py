"""The Ollama engine, through the official ``ollama`` ``AsyncClient``.

A stream yields nothing before Ollama has accepted the request (its first streamed part has
arrived), so a refusal ("model does not support tools", 400) is raised before the worker
commits its own stream. Who is to blame (engines/base.py): Ollama's 4xx other than
401/403/404/408/429 is the request's fault (``EngineRejected``); 429, and 503 ("server busy,
maximum pending requests exceeded"), are busy (``EngineBusy``); 404 for the model is
``ModelNotFound``; anything else is ``EngineError``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import ollama

from ..errors import EngineBusy, EngineError, EngineRejected, LobstahError, ModelNotFound
from ..timeouts import Timeouts
from .base import ChunkMaker, Embeddings, chat_completion
from .usage import estimate_tokens
from .ollama_translate import (
    finish_reason,
    to_ollama_chat,
    to_openai_message,
    to_openai_tool_calls,
    usage_from,
)

__all__ = ["OllamaEngine", "DEFAULT_OLLAMA_HOST"]

DEFAULT_OLLAMA_HOST = "http://127.0.0.1:11434"
#: What the ollama client raises: its own ResponseError, ConnectionError, httpx errors.
_CLIENT_ERRORS = (ollama.ResponseError, ConnectionError, httpx.HTTPError)


class OllamaEngine:
    """Serves the models of a local Ollama."""

    name = "ollama"

    def __init__(self, host: str | None = None, timeouts: Timeouts | None = None) -> None:
        """
        Args:
            host: Ollama's address; default ``$OLLAMA_HOST`` or ``http://127.0.0.1:11434``.
            timeouts: connect; silence before the first part (loading a model can take a
                while) and between parts; never a limit on a whole, steadily flowing answer.
        """
        self.host = host or os.environ.get("OLLAMA_HOST") or DEFAULT_OLLAMA_HOST
        if "://" not in self.host:
            self.host = f"http://{self.host}"
        limits = timeouts or Timeouts(connect_s=10.0, first_byte_s=300.0, idle_s=300.0)
        read = max(limits.first_byte_s, limits.idle_s)  # httpx has one read limit for both
        self._client = ollama.AsyncClient(
            host=self.host, timeout=httpx.Timeout(read, connect=limits.connect_s, pool=limits.connect_s)
        )
        #: Whether each model embeds, by name (Ollama's ``/api/show`` capabilities).
        self._embeds: dict[str, bool] = {}

    async def models(self) -> list[str]:
        try:
            listing = await self._client.list()
        except _CLIENT_ERRORS as exc:
            raise self._error(exc) from None
        return [model.model for model in listing.models if model.model]

    async def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        kwargs = to_ollama_chat(request)
        try:
            response = (await self._client.chat(**kwargs, stream=False)).model_dump()
        except _CLIENT_ERRORS as exc:
            raise self._error(exc, request["model"]) from None
        message = to_openai_message(response.get("message") or {})
        reason = finish_reason(response.get("done_reason"), "tool_calls" in message)
        return chat_completion(request["model"], message, reason, usage_from(response))

    async def stream(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        kwargs = to_ollama_chat(request)
        chunks = ChunkMaker(request["model"])
        try:
            parts = aiter(await self._client.chat(**kwargs, stream=True))
            # The ollama client sends the request on the first read: wait for Ollama's answer.
            first = await anext(parts, None)
        except _CLIENT_ERRORS as exc:
            raise self._error(exc, request["model"]) from None
        yield chunks.delta({"role": "assistant", "content": ""})
        try:
            tool_calls = 0
            async for part in _chain(first, parts):
                response = part.model_dump()
                message = response.get("message") or {}
                delta: dict[str, Any] = {}
                if message.get("content"):
                    delta["content"] = message["content"]
                calls = to_openai_tool_calls(message.get("tool_calls"))
                if calls:
                    delta["tool_calls"] = [{"index": tool_calls + i, **call} for i, call in enumerate(calls)]
                    tool_calls += len(calls)
                if delta:
                    yield chunks.delta(delta)
                if response.get("done"):
                    yield chunks.delta({}, finish_reason(response.get("done_reason"), tool_calls > 0))
                    yield chunks.usage(usage_from(response))
        except _CLIENT_ERRORS as exc:
            raise self._error(exc, request["model"]) from None

    async def embedding_models(self) -> list[str]:
        """Models whose ``/api/show`` lists the ``embedding`` capability (asked once a name)."""
        names = await self.models()
        for name in names:
            if name not in self._embeds:
                try:
                    shown = await self._client.show(name)
                except _CLIENT_ERRORS:
                    continue  # asked again next time
                self._embeds[name] = "embedding" in (shown.capabilities or [])
        return [name for name in names if self._embeds.get(name)]

    async def embed(self, model: str, texts: list[str], dimensions: int | None = None) -> Embeddings:
        """``/api/embed``; the tokens read are Ollama's ``prompt_eval_count`` (else estimated)."""
        try:
            response = await self._client.embed(model=model, input=texts, dimensions=dimensions)
        except _CLIENT_ERRORS as exc:
            raise self._error(exc, model) from None
        vectors = [list(vector) for vector in response.embeddings]
        if len(vectors) != len(texts):
            raise EngineError(f"Ollama at {self.host} gave {len(vectors)} embeddings for {len(texts)} inputs")
        tokens = response.prompt_eval_count or sum(estimate_tokens(text) for text in texts)
        return Embeddings(vectors, tokens)

    async def aclose(self) -> None:
        await self._client.close()

    def _error(self, exc: Exception, model: str | None = None) -> LobstahError:
        if isinstance(exc, ConnectionError | httpx.ConnectError):
            return EngineError(f"Ollama is not running at {self.host} (could not connect)")
        if isinstance(exc, ollama.ResponseError):
            status = exc.status_code
            if status == 404 and model is not None:
                return ModelNotFound(f"Ollama at {self.host} has no model {model!r}: {exc.error}", model=model)
            if status in (429, 503):
                busy = EngineBusy(f"Ollama at {self.host} is busy: {exc.error}", retry_after=1)
                busy.status = status
                return busy
            if 400 <= status < 500 and status not in (401, 403, 408):
                return EngineRejected(f"Ollama refused the request: {exc.error}", status=status)
            return EngineError(f"Ollama at {self.host} answered {status}: {exc.error}")
        if isinstance(exc, httpx.TimeoutException):
            return EngineError(f"Ollama at {self.host} did not answer in time")
        return EngineError(f"Ollama at {self.host} failed: {exc}")


async def _chain(first: Any, rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
    if first is not None:
        yield first
    async for item in rest:
        yield item
