"""The OpenAI-compatible engine, with one of our own demo workers as the upstream."""

from __future__ import annotations

import socket

import httpx
import pytest

from lobstah_core.engines.openai_compat import OpenAICompatibleEngine
from lobstah_core.errors import EngineError, ModelNotFound
from lobstah_core.protocol import decode_receipt_header, verify_receipt

from ..conftest import StartWorker

CHAT = {"model": "demo-fast", "messages": [{"role": "user", "content": "relay this"}], "max_tokens": 4}


async def test_forwards_plain_and_streamed_with_usage(start_worker: StartWorker) -> None:
    upstream = await start_worker()
    engine = OpenAICompatibleEngine(f"{upstream.url}/v1", api_key="sk-test")
    try:
        assert await engine.models() == ["demo-fast", "demo-smart"]
        completion = await engine.chat({**CHAT, "x_vendor_field": True})
        assert completion["usage"]["completion_tokens"] == 4
        chunks = [c async for c in engine.stream(CHAT)]
        assert chunks[-1]["usage"]["completion_tokens"] == 4  # asked for even though the client did not
        with pytest.raises(ModelNotFound, match="no model 'gpt-9'"):
            await engine.chat({**CHAT, "model": "gpt-9"})
    finally:
        await engine.aclose()


async def test_a_worker_in_front_of_an_upstream(start_worker: StartWorker, tmp_path) -> None:
    upstream = await start_worker()
    front = await start_worker(OpenAICompatibleEngine(f"{upstream.url}/v1"), home=tmp_path / "front")
    async with httpx.AsyncClient(base_url=front.url) as http:
        response = await http.post("/v1/chat/completions", json={**CHAT, "stream": True})
        events = [e for e in response.text.split("\n\n") if e]
        assert events[-1] == "data: [DONE]"
        receipt_events = [e for e in events if e.startswith(":lobstah-receipt:")]
        assert len(receipt_events) == 1, "the upstream's own receipt comment is not passed on"
        receipt = verify_receipt(decode_receipt_header(receipt_events[0].removeprefix(":lobstah-receipt:"))).receipt
        assert receipt.output_tokens == 4


async def test_unreachable_upstream_is_an_engine_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = OpenAICompatibleEngine(f"http://127.0.0.1:{port}/v1")
    with pytest.raises(EngineError, match="not reachable"):
        await engine.models()
    await engine.aclose()
