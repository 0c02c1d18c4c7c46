"""The llamacpp engine on its own, with the real model: template, tokenizer, stop, hang-up."""

from __future__ import annotations

import time
from contextlib import aclosing
from typing import Any

import pytest

from lobstah_core.engines.llamacpp import LlamaCppEngine
from lobstah_core.errors import EngineRejected

from .conftest import GREEDY, MODEL, ask

pytestmark = pytest.mark.model


@pytest.fixture
async def engine() -> Any:
    engine = LlamaCppEngine()
    yield engine
    await engine.aclose()


async def test_usage_counts_the_templated_prompt_in_the_models_own_tokens(engine: LlamaCppEngine) -> None:
    completion = await engine.chat({"model": MODEL, "messages": ask("Name a colour."), "max_tokens": 8, **GREEDY})
    llama = engine._llama
    # The GGUF's own template (ChatML for SmolLM2) around the message, in the model's tokens.
    template = llama.metadata["tokenizer.chat_template"]
    assert "<|im_start|>" in template
    prompt = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n" \
             "<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n"
    assert completion["usage"]["prompt_tokens"] == len(llama.tokenize(prompt.encode(), add_bos=False, special=True))
    assert 0 < completion["usage"]["completion_tokens"] <= 8
    assert completion["choices"][0]["message"]["content"].strip()


async def test_streamed_and_plain_answers_agree(engine: LlamaCppEngine) -> None:
    request = {"model": MODEL, "messages": ask("What do lobsters eat?"), "max_tokens": 16, **GREEDY}
    plain = await engine.chat(request)
    chunks = [chunk async for chunk in engine.stream(request)]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == plain["choices"][0]["message"]["content"]
    assert len([c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]) > 1  # token by token
    assert chunks[-1]["usage"] == plain["usage"]


async def test_a_reader_that_falls_behind_gets_the_tokens_it_missed_in_one_piece(engine: LlamaCppEngine) -> None:
    request = {"model": MODEL, "messages": ask("What do lobsters eat?"), "max_tokens": 24, **GREEDY}
    plain = await engine.chat(request)
    pieces = []
    async for chunk in engine.stream(request):
        if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
            pieces.append(chunk["choices"][0]["delta"]["content"])
            if len(pieces) == 1:
                time.sleep(1.0)  # the event loop busy elsewhere while the model goes on sampling
    assert "".join(pieces) == plain["choices"][0]["message"]["content"]
    # The tokens sampled meanwhile came as one delta, not as a backlog of one event each.
    assert len(pieces) <= plain["usage"]["completion_tokens"] - 2


async def test_a_stop_string_ends_the_answer_before_it(engine: LlamaCppEngine) -> None:
    request = {"model": MODEL, "messages": ask("Count from 1 to 20, separated by commas."), "max_tokens": 60, **GREEDY}
    full = (await engine.chat(request))["choices"][0]["message"]["content"]
    assert "5" in full
    cut = await engine.chat({**request, "stop": ["5"]})
    assert cut["choices"][0]["finish_reason"] == "stop"
    assert cut["choices"][0]["message"]["content"] == full[: full.index("5")]


async def test_closing_the_stream_stops_generation_at_the_next_token(engine: LlamaCppEngine) -> None:
    request = {"model": MODEL, "messages": ask("Write a long story about a lobster."), "max_tokens": 1000, **GREEDY}
    prompt_tokens = (await engine.chat({**request, "max_tokens": 1}))["usage"]["prompt_tokens"]
    async with aclosing(engine.stream(request)) as chunks:
        async for chunk in chunks:
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                break
    # Evaluated tokens: the prompt and a token or two, not the thousand asked for.
    assert engine._llama.n_tokens - prompt_tokens <= 3


async def test_a_prompt_longer_than_the_context_is_the_requests_fault(engine: LlamaCppEngine) -> None:
    request = {"model": MODEL, "messages": ask("lobster " * 3000), "stream": True}
    with pytest.raises(EngineRejected, match="tokens of context") as refused:
        async for _ in engine.stream(request):
            pytest.fail("nothing may be yielded before the request is accepted")
    assert refused.value.status == 400 and refused.value.details["code"] == "context_length_exceeded"


@pytest.mark.parametrize("extra, message", [
    ({"n": 2}, "n must be 1"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "does not support tools"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
])
async def test_what_the_model_cannot_do_is_refused_not_ignored(engine: LlamaCppEngine, extra: dict, message: str) -> None:
    with pytest.raises(EngineRejected, match=message):
        await engine.chat({"model": MODEL, "messages": ask("hi"), **extra})
