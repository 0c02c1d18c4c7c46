"""Token usage for upstreams that report none, so every answer still gets a receipt.

How it is counted (documented in the README under "Failure semantics"):

- output tokens: the number of streamed pieces that carried text or tool-call arguments
  (OpenAI-compatible servers stream one token per piece); for a plain answer, the upstream's
  own tokenizer on the answer's text, else an estimate;
- prompt tokens: the upstream's own tokenizer on the messages' text when it offers a tokenize
  endpoint, else an estimate;
- the estimate is one token per four characters (at least one), the usual figure for English
  with BPE tokenizers. It is an estimate, so receipts made with it may be off by a little either
  way; they are never left unsigned.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from .base import Usage

__all__ = ["UsageCounter", "streamed_text", "prompt_text", "estimate_tokens"]


class _Tokenizer(Protocol):
    async def tokenize(self, text: str) -> int | None: ...


def estimate_tokens(text: str) -> int:
    """About four characters a token; at least one for any text, zero for none."""
    return math.ceil(len(text) / 4) if text else 0


def streamed_text(message: dict[str, Any]) -> str:
    """The text a message or delta carries: content, refusal, and tool-call arguments."""
    parts = []
    for key in ("content", "refusal", "reasoning_content"):
        if isinstance(message.get(key), str):
            parts.append(message[key])
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            parts.extend(str(function.get(key) or "") for key in ("name", "arguments"))
    return "".join(parts)


def prompt_text(request: dict[str, Any]) -> str:
    """The text of a chat request's messages (string contents and text parts), one per line."""
    lines = []
    for message in request.get("messages") or []:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            lines.append(content)
        elif isinstance(content, list):
            lines.extend(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
        lines.append(streamed_text({"tool_calls": message.get("tool_calls")}))
    return "\n".join(line for line in lines if line)


class UsageCounter:
    """Counts a completion's usage with an engine's tokenizer, when the upstream gave none."""

    def __init__(self, tokenizer: _Tokenizer) -> None:
        self._tokenizer = tokenizer
        #: Whether the tokenizer answered last time (``None``: not tried yet).
        self._works: bool | None = None

    async def count(self, request: dict[str, Any], answer: str, pieces: int | None) -> Usage:
        """Usage of ``request`` answered with ``answer``.

        Args:
            pieces: streamed pieces that carried text (``None`` for a plain answer).
        """
        prompt = await self.tokens(prompt_text(request))
        completion = pieces if pieces is not None else await self.tokens(answer)
        return Usage(prompt, completion)

    async def tokens(self, text: str) -> int:
        """Tokens in ``text``: the tokenizer's count when it answers, else the estimate."""
        if not text:
            return 0
        if self._works is not False:
            counted = await self._tokenizer.tokenize(text)
            self._works = counted is not None
            if counted is not None:
                return counted
        return estimate_tokens(text)
