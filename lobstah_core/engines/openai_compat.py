"""An OpenAI-compatible upstream (llama.cpp server, vLLM, LM Studio) as a worker engine.

Requests are forwarded as sent (every unknown field included); streams always ask for
``stream_options.include_usage`` so the last chunk carries the usage a receipt needs.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from ..errors import EngineError, ModelNotFound

__all__ = ["OpenAICompatibleEngine"]


class OpenAICompatibleEngine:
    """Forwards to ``{base_url}/chat/completions`` (base URL as the openai SDK takes it)."""

    name = "openai"

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 600.0) -> None:
        """
        Args:
            base_url: e.g. ``http://127.0.0.1:8080/v1``.
            api_key: sent as a bearer token when given.
            timeout: seconds one call may take.
        """
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=10)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop.
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self._session

    async def models(self) -> list[str]:
        body = await self._request("GET", "/models")
        return [card["id"] for card in body.get("data", []) if isinstance(card, dict) and "id" in card]

    async def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self._request("POST", "/chat/completions", {**request, "stream": False})

    async def stream(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        body = {**request, "stream": True, "stream_options": {**(request.get("stream_options") or {}), "include_usage": True}}
        try:
            async with self.session.post(f"{self.base_url}/chat/completions", json=body) as response:
                await self._raise_for_status(response, request.get("model"))
                async for raw in response.content:
                    line = raw.strip()
                    if not line.startswith(b"data:"):
                        continue  # blank separators and SSE comments
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        return
                    yield json.loads(data)
        except aiohttp.ClientError as exc:
            raise EngineError(f"upstream {self.base_url} failed: {exc}") from None
        except ValueError:
            raise EngineError(f"upstream {self.base_url} sent a chunk that is not JSON") from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            async with self.session.request(method, f"{self.base_url}{path}", json=body) as response:
                await self._raise_for_status(response, (body or {}).get("model"))
                return await response.json(content_type=None)
        except aiohttp.ClientConnectorError:
            raise EngineError(f"upstream {self.base_url} is not reachable (could not connect)") from None
        except aiohttp.ClientError as exc:
            raise EngineError(f"upstream {self.base_url} failed: {exc}") from None
        except ValueError:
            raise EngineError(f"upstream {self.base_url} answered with something that is not JSON") from None

    async def _raise_for_status(self, response: aiohttp.ClientResponse, model: str | None) -> None:
        if response.status < 400:
            return
        text = await response.text()
        try:
            message = json.loads(text)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = text[:200] or response.reason
        if response.status == 404 and model:
            raise ModelNotFound(f"upstream {self.base_url} has no model {model!r}: {message}", model=model)
        raise EngineError(f"upstream {self.base_url} answered {response.status}: {message}")
