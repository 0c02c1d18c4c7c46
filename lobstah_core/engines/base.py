"""The WorkerEngine protocol: what a worker needs from an inference backend.

Engines speak OpenAI shapes on both sides: they take an OpenAI chat request (a dict, every field
as the client sent it) and return an OpenAI ``chat.completion`` or a stream of
``chat.completion.chunk`` objects. Token usage is always reported, because it is what receipts
are made of: ``chat`` returns it in ``usage``, and ``stream`` ends with a chunk whose ``usage``
is set (whatever the client asked; the worker decides whether to forward that chunk).

Streams commit late (WIRE.md "[ext] streams commit late, fail cleanly"): ``stream`` yields
nothing until the backend has accepted the request, so a refusal is raised before the first
chunk and the worker can still answer it with a plain HTTP error. Errors say who is to blame:
:class:`~lobstah_core.errors.EngineRejected` (the request's fault, a 4xx),
:class:`~lobstah_core.errors.EngineBusy` (try later or elsewhere, 503 + ``Retry-After``),
:class:`~lobstah_core.errors.ModelNotFound` (404), and
:class:`~lobstah_core.errors.EngineError` for every failure of the backend itself (502).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["WorkerEngine", "EmbeddingEngine", "Embeddings", "Usage", "usage_of", "completion_id", "now_seconds", "chat_completion", "ChunkMaker"]


@dataclass(frozen=True)
class Usage:
    """Tokens one completion used."""

    prompt_tokens: int
    completion_tokens: int

    def to_openai(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def usage_of(body: dict[str, Any]) -> Usage | None:
    """The usage of a completion or chunk, if it carries one."""
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return Usage(max(prompt, 0), max(completion, 0))


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def now_seconds() -> int:
    return int(time.time())


def chat_completion(model: str, message: dict[str, Any], finish_reason: str, usage: Usage) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` with one choice."""
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": now_seconds(),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": usage.to_openai(),
    }


class ChunkMaker:
    """Builds the ``chat.completion.chunk`` objects of one stream (same id, time and model)."""

    def __init__(self, model: str) -> None:
        self.id, self.created, self.model = completion_id(), now_seconds(), model

    def delta(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        """A chunk with one choice carrying ``delta`` (and the finish reason on the last one)."""
        return self._chunk([{"index": 0, "delta": delta, "finish_reason": finish_reason}])

    def usage(self, usage: Usage) -> dict[str, Any]:
        """The final usage-only chunk (no choices), as OpenAI sends with ``include_usage``."""
        return self._chunk([], usage=usage.to_openai())

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": choices, **extra}


@dataclass(frozen=True)
class Embeddings:
    """What an engine's :meth:`EmbeddingEngine.embed` returns: one vector per input, in input
    order, and the tokens it read (a receipt's ``inputTokens``; embeddings produce none)."""

    vectors: list[list[float]]
    prompt_tokens: int


@runtime_checkable
class WorkerEngine(Protocol):
    """An inference backend (Ollama, an OpenAI-compatible upstream, the demo engine)."""

    #: Short name shown in banners and logs, e.g. ``ollama``.
    name: str

    async def models(self) -> list[str]:
        """The model ids this engine can serve now.

        Raises:
            EngineError: the backend cannot be reached.
        """
        ...

    async def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one chat completion; returns an OpenAI ``chat.completion`` with ``usage``.

        Raises:
            EngineError: the backend failed.
        """
        ...

    def stream(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Stream one chat completion as OpenAI chunks, the last one carrying ``usage``.

        Nothing is yielded before the backend accepted the request (the first chunk is
        usually the ``role`` delta); refusals before that raise ``EngineRejected``,
        ``EngineBusy``, ``ModelNotFound`` or ``EngineError``. Closing the iterator early
        cancels the backend call.
        """
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class EmbeddingEngine(Protocol):
    """An engine that also embeds text (every built-in engine does; a worker whose engine does
    not answers ``POST /v1/embeddings`` with 404, so a router moves on to another peer)."""

    async def embedding_models(self) -> list[str]:
        """Those of :meth:`WorkerEngine.models` known to be embedding models (``[]`` when the
        backend cannot tell; ``embed`` may still work with any model)."""
        ...

    async def embed(self, model: str, texts: list[str], dimensions: int | None = None) -> Embeddings:
        """Embed each of ``texts`` with ``model``; ``dimensions`` shortens the vectors where
        the backend allows it.

        Raises:
            EngineRejected, EngineBusy, ModelNotFound, EngineError: as for ``chat``.
        """
        ...
