"""The Ollama engine, through the official ``ollama`` ``AsyncClient``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import ollama

from ..errors import EngineError, ModelNotFound
from .base import ChunkMaker, chat_completion
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

    def __init__(self, host: str | None = None, timeout: float = 600.0) -> None:
        """
        Args:
            host: Ollama's address; default ``$OLLAMA_HOST`` or ``http://127.0.0.1:11434``.
            timeout: seconds one call may take (long generations on a small machine).
        """
        self.host = host or os.environ.get("OLLAMA_HOST") or DEFAULT_OLLAMA_HOST
        if "://" not in self.host:
            self.host = f"http://{self.host}"
        self._client = ollama.AsyncClient(host=self.host, timeout=timeout)

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
            parts = await self._client.chat(**kwargs, stream=True)
            yield chunks.delta({"role": "assistant", "content": ""})
            tool_calls = 0
            async for part in parts:
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

    async def aclose(self) -> None:
        await self._client.close()

    def _error(self, exc: Exception, model: str | None = None) -> EngineError:
        if isinstance(exc, ConnectionError | httpx.ConnectError):
            return EngineError(f"Ollama is not running at {self.host} (could not connect)")
        if isinstance(exc, ollama.ResponseError):
            if exc.status_code == 404 and model is not None:
                return ModelNotFound(f"Ollama at {self.host} has no model {model!r}: {exc.error}", model=model)
            return EngineError(f"Ollama at {self.host} answered {exc.status_code}: {exc.error}")
        if isinstance(exc, httpx.TimeoutException):
            return EngineError(f"Ollama at {self.host} did not answer in time")
        return EngineError(f"Ollama at {self.host} failed: {exc}")
