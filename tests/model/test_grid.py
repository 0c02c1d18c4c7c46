"""Real answers through worker → router → the openai SDK, and the receipts they earn."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import openai
import pytest

from lobstah_core.http import RunningServer

from ..conftest import ledgered
from .conftest import GREEDY, MODEL, ask, sdk

pytestmark = [pytest.mark.model, pytest.mark.usefixtures("closes_sdk_clients")]  # sdk() clients closed


async def test_a_plain_answer_and_a_receipt_for_exactly_its_usage(grid: RunningServer, router_home: Path) -> None:
    completion = await sdk(grid).chat.completions.create(model=MODEL, messages=ask("What is a lobster?"), max_tokens=12, **GREEDY)
    assert completion.choices[0].message.content.strip()
    [signed] = await ledgered(router_home, 1)
    receipt = signed.receipt
    assert (receipt.model, receipt.input_tokens, receipt.output_tokens) == (
        MODEL, completion.usage.prompt_tokens, completion.usage.completion_tokens)
    assert 0 < receipt.output_tokens <= 12


async def test_a_streamed_answer_arrives_token_by_token_with_its_receipt(grid: RunningServer, router_home: Path) -> None:
    stream = await sdk(grid).chat.completions.create(
        model=MODEL, messages=ask("Say hello to the grid."), max_tokens=16, stream=True,
        stream_options={"include_usage": True}, **GREEDY)
    chunks = [chunk async for chunk in stream]  # an error event would raise here
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 1 and "".join(pieces).strip()
    [usage] = [c.usage for c in chunks if c.usage]
    [signed] = await ledgered(router_home, 1)
    assert (signed.receipt.input_tokens, signed.receipt.output_tokens) == (usage.prompt_tokens, usage.completion_tokens)


async def test_a_client_that_abandons_a_stream_frees_the_model_for_the_next(grid: RunningServer, router_home: Path) -> None:
    client = sdk(grid)
    stream = await client.chat.completions.create(
        model=MODEL, messages=ask("Write a long story about a lobster."), max_tokens=1000, stream=True, **GREEDY)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    await stream.close()
    # A thousand tokens take half a minute here; the model is free again within moments.
    async with httpx.AsyncClient(base_url=grid.url) as http:
        worker_url = (await http.get("/peers")).json()[0]["url"]
    async with asyncio.timeout(5), httpx.AsyncClient(base_url=worker_url) as http:
        while (await http.get("/capacity")).json()["queueDepth"]:
            await asyncio.sleep(0.05)
    completion = await client.chat.completions.create(model=MODEL, messages=ask("Hi!"), max_tokens=4, **GREEDY)
    assert completion.choices[0].message.content
    receipts = await ledgered(router_home, 2, timeout=1.0)
    assert [r.receipt.output_tokens for r in receipts] == [completion.usage.completion_tokens]  # none for the abandoned


async def test_a_prompt_beyond_the_context_is_a_400_for_the_client(grid: RunningServer) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk(grid).chat.completions.create(model=MODEL, messages=ask("lobster " * 3000), max_tokens=4)
    assert "tokens of context" in refused.value.message
