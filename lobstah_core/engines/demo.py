"""The demo engine: deterministic text at a chosen speed, no model needed.

It drives ``make demo`` and the tests. Its models are plainly demo models (``demo-…``), its text
is derived from the prompt so the same request always gets the same answer, and its timing
(a first-token delay, then tokens per second) makes a demo grid look and time like real
inference.
"""

from __future__ import annotations

import asyncio
import math
import hashlib
import sys
from collections.abc import AsyncIterator
from typing import Any

from .base import ChunkMaker, Embeddings, Usage, chat_completion
from .usage import estimate_tokens

__all__ = ["DemoEngine", "DEMO_MODELS", "DEMO_DIMENSIONS"]

#: Length of a demo embedding unless the request asks for another.
DEMO_DIMENSIONS = 64

DEMO_MODELS = ("demo-fast", "demo-smart")
_WORDS = (
    "lobsters molt to grow, and every molt leaves them soft for a while; the grid lends spare "
    "compute the same way: a mac mini idles at night, a neighbour borrows its cycles, a signed "
    "receipt records the tokens, and the ledger keeps both sides honest while the tide turns"
).split()


class DemoEngine:
    """A deterministic engine with configurable latency."""

    name = "demo"

    def __init__(
        self,
        models: tuple[str, ...] = DEMO_MODELS,
        *,
        first_token_delay: float = 0.0,
        tokens_per_second: float = 0.0,
        reply_tokens: int | None = None,
    ) -> None:
        """
        Args:
            models: model ids to serve.
            first_token_delay: seconds before the first token.
            tokens_per_second: generation speed; 0 means as fast as possible.
            reply_tokens: length of every reply; by default each prompt gets its own natural
                length of 16 to 63 tokens. Either way ``max_tokens`` caps it, as for a model.

        Raises:
            ValueError: a negative delay, speed or reply length.
        """
        for what, value in (("first token delay", first_token_delay), ("tokens per second", tokens_per_second),
                            ("reply tokens", reply_tokens or 0)):
            if not (0 <= value < math.inf):  # NaN fails both comparisons
                raise ValueError(f"the demo engine's {what} must be a finite number >= 0 (got {value})")
        self._models = list(models)
        self.first_token_delay = first_token_delay
        self.tokens_per_second = tokens_per_second
        self.reply_tokens = reply_tokens

    async def models(self) -> list[str]:
        return list(self._models)

    async def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        words, usage = self._plan(request)
        await self._wait(len(words))
        message = {"role": "assistant", "content": "".join(words)}
        return chat_completion(request["model"], message, self._finish_reason(request), usage)

    async def stream(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        words, usage = self._plan(request)
        chunks = ChunkMaker(request["model"])
        # Accepted at once (the role chunk), then the wait for the first token, as a real
        # engine reads the prompt before it writes.
        yield chunks.delta({"role": "assistant", "content": ""})
        if self.first_token_delay:
            await asyncio.sleep(self.first_token_delay)
        for word in words:
            if self.tokens_per_second:
                await asyncio.sleep(1 / self.tokens_per_second)
            yield chunks.delta({"content": word})
        yield chunks.delta({}, self._finish_reason(request))
        yield chunks.usage(usage)

    async def embedding_models(self) -> list[str]:
        """Every demo model embeds, as any Ollama model answers ``/api/embed``."""
        return list(self._models)

    async def embed(self, model: str, texts: list[str], dimensions: int | None = None) -> Embeddings:
        """Unit vectors derived from ``model`` and each text: the same input, the same vector."""
        size = dimensions or DEMO_DIMENSIONS
        vectors = [_unit_vector(f"{model}\0{text}".encode(), size) for text in texts]
        await self._wait(0)
        return Embeddings(vectors, sum(max(1, estimate_tokens(text)) for text in texts))

    async def aclose(self) -> None:
        return None

    def _natural_length(self, prompt: str) -> int:
        if self.reply_tokens is not None:
            return self.reply_tokens
        return 16 + int.from_bytes(hashlib.sha256(prompt.encode()).digest()[4:6], "big") % 48

    def _finish_reason(self, request: dict[str, Any]) -> str:
        cap = _max_tokens(request)
        natural = self._natural_length(_prompt_text(request.get("messages", [])))
        return "length" if cap is not None and cap < natural else "stop"

    def _plan(self, request: dict[str, Any]) -> tuple[list[str], Usage]:
        prompt = _prompt_text(request.get("messages", []))
        count = min(self._natural_length(prompt), _max_tokens(request) or sys.maxsize)
        start = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big")
        words = [
            ("" if i == 0 else " ") + _WORDS[(start + i) % len(_WORDS)] for i in range(count)
        ]
        # About four characters a token, as for English with common tokenizers.
        prompt_tokens = max(1, len(prompt) // 4)
        return words, Usage(prompt_tokens, count)

    async def _wait(self, tokens: int) -> None:
        delay = self.first_token_delay + (tokens / self.tokens_per_second if self.tokens_per_second else 0)
        if delay:
            await asyncio.sleep(delay)


def _unit_vector(seed: bytes, size: int) -> list[float]:
    """``size`` floats from SHAKE-256 of ``seed``, scaled to length 1 (as embedding models do)."""
    raw = hashlib.shake_256(seed).digest(2 * size)
    values = [int.from_bytes(raw[i : i + 2], "big") / 32767.5 - 1.0 for i in range(0, 2 * size, 2)]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [v / norm for v in values]


def _max_tokens(request: dict[str, Any]) -> int | None:
    for field in ("max_completion_tokens", "max_tokens"):
        value = request.get(field)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _prompt_text(messages: list[dict[str, Any]]) -> str:
    parts = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(p.get("text", "") for p in content if isinstance(p, dict))
    return "\n".join(parts)
