"""What may stand between a router and a worker: a compressing front, and an engine that holds
its stream open so a test can see what reached the client meanwhile."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
from aiohttp import web

from lobstah_core.engines.demo import DemoEngine

#: What a front passes on each way (the receipt header back, the signed-request headers on).
PASSED = ("content-type", "x-lobstah-")


def gzipping_front(worker_url: str, always: bool) -> web.Application:
    """A pass-through to ``worker_url`` that gzips every answer to a request that accepts gzip
    (as nginx with ``gzip on`` or express's ``compression()`` do), or every answer (``always``).
    Like them, it holds compressed output back until it has enough to send."""
    session = web.AppKey("session", aiohttp.ClientSession)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as app[session]:
            yield

    async def forward(request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower().startswith(PASSED)}
        async with request.app[session].request(
            request.method, worker_url + request.path, data=await request.read(), headers=headers
        ) as upstream:
            response = web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower().startswith(PASSED)},
            )
            if always or "gzip" in request.headers.get("Accept-Encoding", ""):
                response.enable_compression(web.ContentCoding.gzip)
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    app = web.Application()
    app.cleanup_ctx.append(lifecycle)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


class GatedEngine(DemoEngine):
    """The demo engine, whose streams stop after their first token until ``gate`` opens."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def stream(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        tokens = 0
        async for chunk in super().stream(request):
            yield chunk
            tokens += any(choice["delta"].get("content") for choice in chunk["choices"])
            if tokens == 1:
                await self.gate.wait()


async def first_token_while_gated(router_url: str, engine: GatedEngine, chat: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Stream ``chat`` through the router. Returns the SSE lines the client had when the first
    token arrived (before the gate opened), and all of them. Fails after 5 s if the router, or
    anything on the way, held that token back."""
    async with httpx.AsyncClient(base_url=router_url, timeout=20) as http:
        async with http.stream("POST", "/v1/chat/completions", json={**chat, "stream": True}) as response:
            lines = response.aiter_lines()
            received = [await asyncio.wait_for(anext(lines), 5)]
            while not tokens_in(received):
                received.append(await asyncio.wait_for(anext(lines), 5))
            before = list(received)
            engine.gate.set()
            received += [line async for line in lines]
    return before, received


def tokens_in(lines: list[str]) -> list[str]:
    """The content tokens in these SSE lines."""
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: {")]
    return [c["delta"]["content"] for chunk in chunks for c in chunk.get("choices", []) if c["delta"].get("content")]
