"""The WorkerEngine protocol: what a worker needs from an inference backend.

Engines speak OpenAI shapes on both sides: they take an OpenAI chat request (a dict, every field
as the client sent it) and return an OpenAI ``chat.completion`` or a stream of
``chat.completion.chunk`` objects. Token usage is always reported, because it is what receipts
are made of: ``chat`` returns it in ``usage``, and ``stream`` ends with a chunk whose ``usage``
is set (whatever the client asked; the worker decides whether to forward that chunk).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["WorkerEngine", "Usage", "usage_of", "completion_id", "now_seconds"]


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

        Closing the iterator early cancels the backend call.
        """
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
