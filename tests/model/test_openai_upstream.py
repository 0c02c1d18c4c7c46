"""``--engine openai`` over a real OpenAI-compatible server: llama-cpp-python's own
(``python -m llama_cpp.server``), which sends no usage in streams, whatever the client asks."""

from __future__ import annotations

from pathlib import Path

import pytest

from lobstah_core.engines.openai_compat import OpenAICompatibleEngine
from lobstah_core.http import RunningServer

from ..conftest import WORKER, StartRouter, StartWorker, add_peer, ledgered
from .conftest import GREEDY, MODEL, ask, sdk

pytestmark = [pytest.mark.model, pytest.mark.usefixtures("closes_sdk_clients")]  # sdk() clients closed


@pytest.fixture
async def upstream_grid(llama_cpp_server: str, start_worker: StartWorker, start_router: StartRouter, router_home: Path) -> RunningServer:
    worker = await start_worker(OpenAICompatibleEngine(llama_cpp_server))
    add_peer(router_home, worker, WORKER.pubkey)
    return await start_router()


async def test_plain_answers_and_their_receipts(upstream_grid: RunningServer, router_home: Path) -> None:
    completion = await sdk(upstream_grid).chat.completions.create(model=MODEL, messages=ask("What is a lobster?"), max_tokens=12, **GREEDY)
    assert completion.choices[0].message.content.strip()
    [signed] = await ledgered(router_home, 1)
    assert (signed.receipt.input_tokens, signed.receipt.output_tokens) == (
        completion.usage.prompt_tokens, completion.usage.completion_tokens)


@pytest.mark.parametrize("include_usage", [False, True])
async def test_streams_end_cleanly_with_a_receipt(upstream_grid: RunningServer, router_home: Path, include_usage: bool) -> None:
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = await sdk(upstream_grid).chat.completions.create(
        model=MODEL, messages=ask("Say hello to the grid."), max_tokens=16, stream=True, **extra, **GREEDY)
    chunks = [chunk async for chunk in stream]  # an error event ("no token usage") raises here
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    [signed] = await ledgered(router_home, 1)
    assert signed.receipt.output_tokens > 0
    if include_usage:
        [usage] = [c.usage for c in chunks if c.usage]
        assert (signed.receipt.input_tokens, signed.receipt.output_tokens) == (usage.prompt_tokens, usage.completion_tokens)
