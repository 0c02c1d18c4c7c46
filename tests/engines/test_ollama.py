"""The Ollama engine through the real `ollama` client, against a server speaking Ollama's API."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from lobstah_core.engines.ollama import OllamaEngine
from lobstah_core.engines.ollama_translate import to_ollama_chat
from lobstah_core.errors import EngineError, ModelNotFound, RequestError
from lobstah_core.http import RunningServer
from lobstah_core.protocol import decode_receipt_header, verify_receipt

from ..conftest import StartWorker
from .ollama_server import REQUESTS, create_ollama_app

WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "weather now", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


@pytest.fixture
async def ollama_server() -> AsyncIterator[RunningServer]:
    server = await RunningServer(create_ollama_app(), "127.0.0.1", 0, "fake ollama").start()
    yield server
    await server.stop()


@pytest.fixture
async def engine(ollama_server: RunningServer) -> AsyncIterator[OllamaEngine]:
    engine = OllamaEngine(host=ollama_server.url)
    yield engine
    await engine.aclose()


def sent(server: RunningServer) -> dict[str, Any]:
    return server.runner.app[REQUESTS][-1]


async def test_models_come_from_tags(engine: OllamaEngine) -> None:
    assert await engine.models() == ["llama3.2:3b", "qwen2.5:7b", "nomic-embed-text:latest"]


async def test_chat_translates_both_ways(engine: OllamaEngine, ollama_server: RunningServer) -> None:
    completion = await engine.chat({
        "model": "llama3.2:3b",
        "messages": [
            {"role": "developer", "content": "x" * 50_000},
            {"role": "user", "content": [{"type": "text", "text": "tell me"}, {"type": "text", "text": "about tides"},
                                          {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
        ],
        "temperature": 0.2, "top_p": 0.9, "max_completion_tokens": 3, "stop": "END", "seed": 7,
        "response_format": {"type": "json_object"},
    })
    request = sent(ollama_server)
    assert request["stream"] is False
    assert request["messages"][0] == {"role": "system", "content": "x" * 50_000}
    assert request["messages"][1]["content"] == "tell me\nabout tides"
    assert request["messages"][1]["images"] == ["iVBORw0KGgo="]
    assert request["options"] == {"temperature": 0.2, "top_p": 0.9, "seed": 7, "num_predict": 3, "stop": ["END"]}
    assert request["format"] == "json"
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"] == {"role": "assistant", "content": "tell me about"}
    assert completion["choices"][0]["finish_reason"] == "length"
    assert completion["usage"] == {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}


async def test_tool_calls_round_trip(engine: OllamaEngine, ollama_server: RunningServer) -> None:
    completion = await engine.chat({"model": "llama3.2:3b", "tools": [WEATHER_TOOL], "tool_choice": "auto",
                                    "messages": [{"role": "user", "content": "what is the weather?"}]})
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert (call["function"]["name"], json.loads(call["function"]["arguments"])) == ("get_weather", {"city": "Paris"})
    assert sent(ollama_server)["tools"][0]["function"]["name"] == "get_weather"

    # The conversation continues with OpenAI-style history: tool_calls and a tool answer.
    await engine.chat({"model": "llama3.2:3b", "tools": [WEATHER_TOOL], "messages": [
        {"role": "user", "content": "what is the weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
    ]})
    history = sent(ollama_server)["messages"]
    assert history[1]["tool_calls"] == [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]
    assert history[2] == {"role": "tool", "content": "sunny", "tool_name": "get_weather"}


async def test_stream_yields_openai_chunks_and_usage(engine: OllamaEngine) -> None:
    chunks = [c async for c in engine.stream({"model": "qwen2.5:7b", "messages": [{"role": "user", "content": "one two three"}]})]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "one two three"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3


async def test_streamed_tool_calls_have_indices(engine: OllamaEngine) -> None:
    chunks = [c async for c in engine.stream({"model": "qwen2.5:7b", "tools": [WEATHER_TOOL],
                                              "messages": [{"role": "user", "content": "weather please"}]})]
    calls = [c["choices"][0]["delta"]["tool_calls"] for c in chunks if c["choices"] and "tool_calls" in c["choices"][0]["delta"]]
    assert calls[0][0]["index"] == 0 and calls[0][0]["function"]["name"] == "get_weather"
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_choice_mapping() -> None:
    base = {"model": "m", "messages": [], "tools": [WEATHER_TOOL, {"type": "function", "function": {"name": "other"}}]}
    assert "tools" not in to_ollama_chat({**base, "tool_choice": "none"})
    named = to_ollama_chat({**base, "tool_choice": {"type": "function", "function": {"name": "other"}}})
    assert [t["function"]["name"] for t in named["tools"]] == ["other"]
    assert to_ollama_chat({**base, "max_tokens": 9})["options"] == {"num_predict": 9}
    schema = {"type": "object"}
    assert to_ollama_chat({**base, "response_format": {"type": "json_schema", "json_schema": {"schema": schema}}})["format"] == schema
    with pytest.raises(RequestError, match="data: URL"):
        to_ollama_chat({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]})


async def test_errors_say_what_happened(engine: OllamaEngine) -> None:
    with pytest.raises(ModelNotFound, match="no model 'nope'"):
        await engine.chat({"model": "nope", "messages": [{"role": "user", "content": "hi"}]})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    offline = OllamaEngine(host=f"http://127.0.0.1:{closed_port}")
    with pytest.raises(EngineError, match=f"not running at http://127.0.0.1:{closed_port}"):
        await offline.models()
    await offline.aclose()


async def test_worker_serves_ollama_models_with_receipts(start_worker: StartWorker, engine: OllamaEngine) -> None:
    worker = await start_worker(engine)
    async with httpx.AsyncClient(base_url=worker.url) as http:
        assert [m["id"] for m in (await http.get("/v1/models")).json()["data"]] == ["llama3.2:3b", "qwen2.5:7b", "nomic-embed-text:latest"]
        response = await http.post("/v1/chat/completions", json={"model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi there"}]})
        receipt = verify_receipt(decode_receipt_header(response.headers["x-lobstah-receipt"])).receipt
        assert (receipt.input_tokens, receipt.output_tokens) == (11, 2)


async def test_worker_reports_ollama_down_in_one_sentence(start_worker: StartWorker) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    worker = await start_worker(OllamaEngine(host=f"127.0.0.1:{closed_port}"))
    async with httpx.AsyncClient(base_url=worker.url) as http:
        response = await http.post("/v1/chat/completions", json={"model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi"}]})
        assert response.status_code == 502
        error = response.json()["error"]
        assert error["type"] == "engine_error"
        assert error["message"] == f"Ollama is not running at http://127.0.0.1:{closed_port} (could not connect)"
        assert (await http.get("/capacity")).json()["models"] == []


async def test_embed_through_api_embed(engine: OllamaEngine, ollama_server: RunningServer) -> None:
    result = await engine.embed("nomic-embed-text:latest", ["tide", "low water"], dimensions=4)
    assert result.vectors == [[4.0, 1.0, 1.0, 1.0], [9.0, 1.0, 1.0, 1.0]]
    assert result.prompt_tokens == 4  # Ollama's prompt_eval_count
    assert sent(ollama_server)["dimensions"] == 4
    with pytest.raises(RequestError, match="does not support embeddings"):
        await engine.embed("llama3.2:3b", ["tide"])


async def test_embedding_models_by_show_capabilities(engine: OllamaEngine) -> None:
    assert await engine.embedding_models() == ["nomic-embed-text:latest"]


async def test_worker_capacity_lists_the_embedding_models(start_worker: StartWorker, engine: OllamaEngine) -> None:
    worker = await start_worker(engine)
    async with httpx.AsyncClient(base_url=worker.url) as http:
        capacity = (await http.get("/capacity")).json()
        response = await http.post("/v1/embeddings", json={"model": "nomic-embed-text", "input": "tide"})
    assert capacity["embeddingModels"] == ["nomic-embed-text:latest"]
    assert response.status_code == 200, response.text
    assert response.json()["data"][0]["embedding"] == [4.0, 1.0, 1.0]
    receipt = verify_receipt(decode_receipt_header(response.headers["x-lobstah-receipt"])).receipt
    assert (receipt.input_tokens, receipt.output_tokens) == (2, 0)
