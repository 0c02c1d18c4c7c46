"""A stand-in for Ollama: its documented HTTP API (GET /api/tags, POST /api/chat with JSON or
NDJSON streaming, POST /api/show, POST /api/embed, {"error": "..."} bodies), because Ollama
itself cannot be installed here.

Replies are scripted: the assistant echoes the last user message word by word; when tools are
offered and the user mentions the weather, it calls ``get_weather``. Every chat request body is
kept in ``requests`` so tests can check what the engine sent.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

MODELS = ["llama3.2:3b", "qwen2.5:7b"]
#: Models whose /api/show lists the "embedding" capability (the others say "completion").
EMBEDDING_MODELS = ["nomic-embed-text:latest"]
REQUESTS = web.AppKey("requests", list)
#: When set, requests with tools are refused as Ollama refuses them for a model without tool
#: support: 400 {"error": "... does not support tools"}.
REFUSE_TOOLS = web.AppKey("refuse_tools", bool)


def create_ollama_app() -> web.Application:
    app = web.Application()
    app[REQUESTS] = []
    app[REFUSE_TOOLS] = False
    app.router.add_get("/api/tags", tags)
    app.router.add_post("/api/chat", chat)
    app.router.add_post("/api/show", show)
    app.router.add_post("/api/embed", embed)
    return app


def _tagged(name: object) -> object:
    """A name without a tag means its ``:latest``, as in Ollama."""
    return f"{name}:latest" if isinstance(name, str) and ":" not in name else name


async def show(request: web.Request) -> web.Response:
    name = _tagged((await request.json()).get("model"))
    if name not in MODELS + EMBEDDING_MODELS:
        return web.json_response({"error": f"model '{name}' not found"}, status=404)
    capabilities = ["embedding"] if name in EMBEDDING_MODELS else ["completion", "tools"]
    return web.json_response({"modelfile": "", "details": {"family": "llama"}, "model_info": {}, "capabilities": capabilities})


async def embed(request: web.Request) -> web.Response:
    """Vectors of ``dimensions`` (default 3) values: the length of each input, then ones."""
    body = await request.json()
    request.app[REQUESTS].append(body)
    if _tagged(body.get("model")) not in EMBEDDING_MODELS:
        return web.json_response({"error": f"\"{body.get('model')}\" does not support embeddings"}, status=400)
    texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
    size = body.get("dimensions") or 3
    vectors = [[float(len(text))] + [1.0] * (size - 1) for text in texts]
    return web.json_response({"model": body["model"], "embeddings": vectors, "prompt_eval_count": 2 * len(texts)})


async def tags(request: web.Request) -> web.Response:
    models = [
        {"name": name, "model": name, "modified_at": "2026-11-01T00:00:00Z", "size": 2_000_000_000,
         "digest": "0" * 64, "details": {"format": "gguf", "family": "llama", "parameter_size": "3B"}}
        for name in MODELS + EMBEDDING_MODELS
    ]
    return web.json_response({"models": models})


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    request.app[REQUESTS].append(body)
    if body.get("model") not in MODELS:
        return web.json_response({"error": f"model \"{body.get('model')}\" not found, try pulling it first"}, status=404)
    if body.get("tools") and request.app[REFUSE_TOOLS]:
        return web.json_response({"error": f"registry.ollama.ai/library/{body['model']} does not support tools"}, status=400)
    last = next((m for m in reversed(body["messages"]) if m["role"] == "user"), {"content": ""})
    words = last["content"].split() or ["ok"]
    limit = body.get("options", {}).get("num_predict")
    if limit:
        words = words[:limit]
    tool_calls = None
    if body.get("tools") and "weather" in last["content"]:
        tool_calls = [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]
        words = []
    base = {"model": body["model"], "created_at": "2026-11-24T00:00:00Z"}
    final = {**base, "done": True, "done_reason": "length" if limit else "stop",
             "total_duration": 1000, "prompt_eval_count": 11, "eval_count": len(words) or 1}
    if not body.get("stream", True):
        message: dict[str, Any] = {"role": "assistant", "content": " ".join(words)}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return web.json_response({**final, "message": message})
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    for index, word in enumerate(words):
        piece = {**base, "message": {"role": "assistant", "content": (" " if index else "") + word}, "done": False}
        await response.write(json.dumps(piece).encode() + b"\n")
    if tool_calls:
        piece = {**base, "message": {"role": "assistant", "content": "", "tool_calls": tool_calls}, "done": False}
        await response.write(json.dumps(piece).encode() + b"\n")
    await response.write(json.dumps({**final, "message": {"role": "assistant", "content": ""}}).encode() + b"\n")
    await response.write_eof()
    return response
