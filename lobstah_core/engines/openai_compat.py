"""An OpenAI-compatible upstream (llama.cpp server, vLLM, LM Studio) as a worker engine.

Requests are forwarded as sent (every unknown field included), with two adjustments for older
servers: ``max_tokens`` is sent alongside ``max_completion_tokens`` (many servers know only the
former), and streams ask for ``stream_options.include_usage`` so the last chunk carries usage.

Who is to blame (engines/base.py): an upstream 4xx other than 401/403/404/408/429 is the
request's fault (:class:`EngineRejected`, status kept); 429, and 503 with ``Retry-After``, are
busy (:class:`EngineBusy`); 404 for the model is :class:`ModelNotFound`; anything else,
unreachable or timed out is :class:`EngineError`.

Upstreams that report no usage (llama.cpp's server and llama-cpp-python in streams, some Ollama
``/v1`` and LM Studio builds) still get a receipt, counted here (:mod:`.usage`):
output tokens are the streamed pieces that carried text (servers stream one token per piece),
or the upstream's own count of the answer's text; the prompt is counted by the upstream's
tokenize endpoint when it has one (llama.cpp ``/tokenize``, llama-cpp-python
``/extras/tokenize``), else estimated at four characters a token.

SSE is parsed from raw chunks, so one event may be of any size (a whole tool call in one delta).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from ..errors import EngineBusy, EngineError, EngineRejected, LobstahError, ModelNotFound
from ..protocol.sse import SseDecoder
from ..timeouts import PhaseTimeout, Timeouts, first_byte, idle_chunks
from .base import Embeddings, Usage, usage_of
from .usage import UsageCounter, streamed_text

__all__ = ["OpenAICompatibleEngine"]

#: Statuses that say nothing about the request itself (see the module docstring).
_NOT_THE_REQUEST = {401, 403, 404, 408, 429}


class OpenAICompatibleEngine:
    """Forwards to ``{base_url}/chat/completions`` (base URL as the openai SDK takes it)."""

    name = "openai"
    #: The upstream decides how many choices it serves (``n``).
    serves_n = True

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 120.0,
        *,
        timeouts: Timeouts | None = None,
    ) -> None:
        """
        Args:
            base_url: e.g. ``http://127.0.0.1:8080/v1``.
            api_key: sent as a bearer token when given.
            timeout: seconds the upstream may stay silent: before its status line, and between
                two pieces of a stream; never a limit on a whole, steadily flowing answer.
            timeouts: every phase's limit, instead of ``timeout`` (lobstah_core/timeouts.py).
        """
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeouts or Timeouts(connect_s=10.0, first_byte_s=timeout, idle_s=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._usage = UsageCounter(self)

    @property
    def session(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop.
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout.client_timeout())
        return self._session

    async def models(self) -> list[str]:
        body = await self._request("GET", "/models")
        data = body.get("data") if isinstance(body, dict) else None
        return [card["id"] for card in data or [] if isinstance(card, dict) and isinstance(card.get("id"), str)]

    async def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        completion = await self._request("POST", "/chat/completions", {**_with_max_tokens(request), "stream": False})
        if not isinstance(completion, dict):
            raise EngineError(f"upstream {self.base_url} answered with something that is not a completion")
        if usage_of(completion) is None:
            texts = [streamed_text(choice.get("message") or {}) for choice in completion.get("choices") or []]
            usage = await self._usage.count(request, "".join(texts), pieces=None)
            completion["usage"] = usage.to_openai()
        return completion

    async def stream(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        body = {
            **_with_max_tokens(request),
            "stream": True,
            "stream_options": {**(request.get("stream_options") or {}), "include_usage": True},
        }
        usage: Usage | None = None
        text: list[str] = []
        pieces = 0
        last: dict[str, Any] | None = None
        async with await self._post_stream(body, request.get("model")) as response:
            async for chunk in self._events(response):
                usage = usage_of(chunk) or usage
                for choice in chunk.get("choices") or []:
                    piece = streamed_text(choice.get("delta") or {})
                    if piece:
                        text.append(piece)
                        pieces += 1
                last = chunk
                if usage_of(chunk) is not None and not chunk.get("choices"):
                    continue  # the usage chunk: sent last, below, whatever the upstream did
                yield chunk
        if usage is None:
            usage = await self._usage.count(request, "".join(text), pieces=pieces)
        yield _usage_chunk(last, request.get("model"), usage)

    async def embedding_models(self) -> list[str]:
        """Unknown: OpenAI's model list does not say which models embed."""
        return []

    async def embed(self, model: str, texts: list[str], dimensions: int | None = None) -> Embeddings:
        """``{base_url}/embeddings`` in the float format; tokens as the upstream reports them,
        else counted as for a prompt (module docstring)."""
        request: dict[str, Any] = {"model": model, "input": texts, "encoding_format": "float"}
        if dimensions is not None:
            request["dimensions"] = dimensions
        body = await self._request("POST", "/embeddings", request)
        try:
            data = sorted(body["data"], key=lambda item: item["index"])
            vectors = [[float(x) for x in item["embedding"]] for item in data]
        except (KeyError, TypeError, ValueError):
            raise EngineError(f"upstream {self.base_url} answered with something that is not an embeddings list") from None
        if len(vectors) != len(texts):
            raise EngineError(f"upstream {self.base_url} gave {len(vectors)} embeddings for {len(texts)} inputs")
        usage = body.get("usage")
        tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        if not isinstance(tokens, int) or tokens < 0:
            tokens = sum([await self._usage.tokens(text) for text in texts])
        return Embeddings(vectors, tokens)

    async def tokenize(self, text: str) -> int | None:
        """Tokens in ``text`` by the upstream's own tokenizer, or ``None`` if it offers none
        (tries llama.cpp's ``/tokenize``, then llama-cpp-python's ``/v1/extras/tokenize``)."""
        root = self.base_url.removesuffix("/v1")
        for url, payload in (
            (f"{root}/tokenize", {"content": text}),
            (f"{self.base_url}/extras/tokenize", {"input": text}),
        ):
            try:
                async with self.session.post(url, json=payload, timeout=aiohttp.ClientTimeout(total=5)) as response:
                    if response.status != 200:
                        continue
                    tokens = (await response.json(content_type=None)).get("tokens")
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, AttributeError):
                continue
            if isinstance(tokens, list):
                return len(tokens)
        return None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _post_stream(self, body: dict[str, Any], model: Any) -> aiohttp.ClientResponse:
        """POST a streamed request; returns the response once the upstream accepted it (2xx)."""
        try:
            response = await first_byte(self.session.post(f"{self.base_url}/chat/completions", json=body), self._timeout)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise self._unreachable(exc) from None
        try:
            await self._raise_for_status(response, model)
        except BaseException:
            response.release()
            raise
        return response

    async def _events(self, response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
        decoder = SseDecoder()
        try:
            async for piece in idle_chunks(response.content.readany, self._timeout):
                for data in decoder.feed(piece):
                    if data == "[DONE]":
                        return
                    yield _json_object(data, self.base_url)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise self._unreachable(exc) from None

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = await first_byte(self.session.request(method, f"{self.base_url}{path}", json=body), self._timeout)
            async with response:
                await self._raise_for_status(response, (body or {}).get("model"))
                raw = b"".join([piece async for piece in idle_chunks(response.content.readany, self._timeout)])
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise self._unreachable(exc) from None
        try:
            return json.loads(raw)
        except ValueError:
            raise EngineError(f"upstream {self.base_url} answered with something that is not JSON") from None

    def _unreachable(self, exc: BaseException) -> EngineError:
        if isinstance(exc, aiohttp.ClientConnectorError):
            return EngineError(f"upstream {self.base_url} is not reachable (could not connect)")
        if isinstance(exc, PhaseTimeout):
            return EngineError(f"upstream {self.base_url}: {exc}")
        if isinstance(exc, asyncio.TimeoutError):
            return EngineError(f"upstream {self.base_url} timed out")
        return EngineError(f"upstream {self.base_url} failed: {exc}")

    async def _raise_for_status(self, response: aiohttp.ClientResponse, model: Any) -> None:
        if response.status < 400:
            return
        text = await response.text(errors="replace")
        raise _blame(self.base_url, response.status, text, response.headers.get("Retry-After"), model)


def _blame(base_url: str, status: int, text: str, retry_after: str | None, model: Any) -> LobstahError:
    """The engine error for an upstream's non-2xx answer (module docstring)."""
    try:
        message = json.loads(text)["error"]
        message = message["message"] if isinstance(message, dict) else str(message)
    except (ValueError, KeyError, TypeError):
        message = text[:200] or f"HTTP {status}"
    wait = int(retry_after) if retry_after and retry_after.strip().isdigit() else None
    if status == 429 or (status == 503 and wait is not None):
        busy = EngineBusy(f"upstream {base_url} is busy: {message}", retry_after=max(1, min(wait or 1, 3600)))
        busy.status = status
        return busy
    if status == 404 and isinstance(model, str):
        return ModelNotFound(f"upstream {base_url} has no model {model!r}: {message}", model=model)
    if 400 <= status < 500 and status not in _NOT_THE_REQUEST:
        return EngineRejected(f"upstream {base_url} refused the request: {message}", status=status)
    return EngineError(f"upstream {base_url} answered {status}: {message}")


def _with_max_tokens(request: dict[str, Any]) -> dict[str, Any]:
    """``max_completion_tokens`` also as ``max_tokens``, the name most servers still read."""
    limit = request.get("max_completion_tokens")
    if limit is not None and request.get("max_tokens") is None:
        return {**request, "max_tokens": limit}
    return request


def _json_object(data: str, base_url: str) -> dict[str, Any]:
    try:
        chunk = json.loads(data)
    except ValueError:
        raise EngineError(f"upstream {base_url} sent a chunk that is not JSON") from None
    if not isinstance(chunk, dict):
        raise EngineError(f"upstream {base_url} sent a chunk that is not a JSON object")
    if isinstance(chunk.get("error"), dict):
        message = chunk["error"].get("message") or "an error"
        raise EngineError(f"upstream {base_url} reported mid-stream: {message}")
    return chunk


def _usage_chunk(last: dict[str, Any] | None, model: Any, usage: Usage) -> dict[str, Any]:
    """The final usage-only chunk, with the stream's id, time and model."""
    last = last or {}
    return {
        "id": last.get("id", "chatcmpl-usage"),
        "object": "chat.completion.chunk",
        "created": last.get("created", 0),
        "model": last.get("model", model),
        "choices": [],
        "usage": usage.to_openai(),
    }
