"""The demo engine answers like a model: a natural length, capped by max tokens."""

from __future__ import annotations

from lobstah_core.engines.demo import DEMO_DIMENSIONS, DemoEngine

ASK = {"model": "demo-fast", "messages": [{"role": "user", "content": "tell me about tides"}]}


async def test_replies_have_a_natural_length_capped_by_max_tokens() -> None:
    engine = DemoEngine()
    natural = await engine.chat(ASK)
    length = natural["usage"]["completion_tokens"]
    assert 16 <= length < 64 and natural["choices"][0]["finish_reason"] == "stop"
    # openclaw sends max_completion_tokens 8192: a cap, not a length to fill.
    capped = await engine.chat({**ASK, "max_completion_tokens": 8192})
    assert capped["usage"]["completion_tokens"] == length
    short = await engine.chat({**ASK, "max_tokens": 3})
    assert short["usage"]["completion_tokens"] == 3 and short["choices"][0]["finish_reason"] == "length"
    assert (await engine.chat(ASK))["choices"][0]["message"] == natural["choices"][0]["message"]


async def test_stream_matches_plain() -> None:
    engine = DemoEngine(reply_tokens=10)
    chunks = [c async for c in engine.stream(ASK)]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == (await engine.chat(ASK))["choices"][0]["message"]["content"]
    assert chunks[-1]["usage"]["completion_tokens"] == 10


async def test_embeddings_are_deterministic_unit_vectors() -> None:
    engine = DemoEngine()
    first = await engine.embed("demo-fast", ["tide", "molt"])
    again = await engine.embed("demo-fast", ["tide"])
    assert again.vectors[0] == first.vectors[0] != first.vectors[1]
    assert all(abs(sum(x * x for x in vector) - 1.0) < 1e-9 for vector in first.vectors)
    assert len(first.vectors[0]) == DEMO_DIMENSIONS
    assert len((await engine.embed("demo-fast", ["tide"], dimensions=8)).vectors[0]) == 8
    assert first.prompt_tokens == 2  # one token each, at four characters a token
