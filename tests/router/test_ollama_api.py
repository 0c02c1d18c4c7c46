"""The router's Ollama API, driven by the official `ollama` Python client against demo workers:
every call that reaches a worker leaves a receipt in both ledgers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from lobstah_core.engines.demo import DemoEngine
from lobstah_core.errors import EngineError
from lobstah_core.protocol import Identity

from ..conftest import StartWorker, ledgered
from .conftest import StartRouter, add_peer

WORKER = Identity.from_seed(b"\xd1" * 32)
HI = [{"role": "user", "content": "tell me about tides"}]


class FailsMidStream(DemoEngine):
    """Streams two words, then its backend breaks."""

    async def stream(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        words = 0
        async for chunk in super().stream(request):
            yield chunk
            words += any(choice["delta"].get("content") for choice in chunk["choices"])
            if words == 2:
                raise EngineError("the GPU caught fire")


@pytest.fixture
def worker_home(tmp_path: Path) -> Path:
    return tmp_path / "worker"


@pytest.fixture
async def router(start_worker: StartWorker, start_router: StartRouter, router_home: Path, worker_home: Path) -> Any:
    add_peer(router_home, await start_worker(identity=WORKER, home=worker_home), WORKER.pubkey, label="kitchen")
    return await start_router()


def client(router: Any) -> ollama.AsyncClient:
    return ollama.AsyncClient(host=router.url)


async def both_ledgers(router_home: Path, worker_home: Path, count: int) -> list[Any]:
    """The receipts once ``count`` are in both ledgers (the same ones)."""
    ours, theirs = await ledgered(router_home, count), await ledgered(worker_home, count)
    assert sorted(r.receipt.nonce for r in ours) == sorted(r.receipt.nonce for r in theirs)
    assert len(ours) == count
    return [r.receipt for r in ours]


async def test_list_show_ps_and_version(router: Any) -> None:
    listed = await client(router).list()
    assert [m.model for m in listed.models] == ["demo-fast", "demo-smart"]
    shown = await client(router).show("demo-fast")
    assert "embedding" in shown.capabilities and "kitchen" in shown.modelfile
    assert [m.model for m in (await client(router).ps()).models] == ["demo-fast", "demo-smart"]
    async with httpx.AsyncClient(base_url=router.url) as http:
        assert (await http.get("/api/version")).json()["version"].count(".") == 2
    with pytest.raises(ollama.ResponseError) as raised:
        await client(router).show("llama9")
    assert raised.value.status_code == 404 and raised.value.error == "model 'llama9' not found"


async def test_chat_plain_with_counters_and_receipts(router: Any, router_home: Path, worker_home: Path) -> None:
    answer = await client(router).chat(model="demo-fast", messages=HI, options={"num_predict": 5})
    plain = await DemoEngine().chat({"model": "demo-fast", "messages": HI, "max_tokens": 5})
    assert answer.message.content == plain["choices"][0]["message"]["content"]
    assert answer.done and answer.done_reason == "length"
    assert (answer.prompt_eval_count, answer.eval_count) == (plain["usage"]["prompt_tokens"], 5)
    assert answer.total_duration > 0
    [receipt] = await both_ledgers(router_home, worker_home, 1)
    assert (receipt.input_tokens, receipt.output_tokens) == (answer.prompt_eval_count, answer.eval_count)


async def test_chat_streamed_ends_with_ollama_counters(router: Any, router_home: Path, worker_home: Path) -> None:
    pieces = [piece async for piece in await client(router).chat(model="demo-smart", messages=HI, stream=True)]
    plain = await DemoEngine().chat({"model": "demo-smart", "messages": HI})
    assert "".join(p.message.content for p in pieces) == plain["choices"][0]["message"]["content"]
    assert [p.done for p in pieces] == [False] * (len(pieces) - 1) + [True]
    last = pieces[-1]
    assert last.done_reason == "stop" and last.eval_count == plain["usage"]["completion_tokens"]
    assert last.total_duration >= last.prompt_eval_duration + last.eval_duration - 1
    [receipt] = await both_ledgers(router_home, worker_home, 1)
    assert receipt.output_tokens == last.eval_count


async def test_generate_plain_and_streamed(router: Any, router_home: Path, worker_home: Path) -> None:
    plain = await client(router).generate(model="demo-fast", prompt="why is the sea salty", system="be brief")
    pieces = [p async for p in await client(router).generate(model="demo-fast", prompt="why is the sea salty", system="be brief", stream=True)]
    assert plain.response and "".join(p.response for p in pieces) == plain.response
    assert pieces[-1].done and pieces[-1].eval_count == plain.eval_count
    await both_ledgers(router_home, worker_home, 2)


async def test_embed_and_legacy_embeddings(router: Any, router_home: Path, worker_home: Path) -> None:
    expected = await DemoEngine().embed("demo-fast", ["tide", "molt"], dimensions=8)
    embedded = await client(router).embed(model="demo-fast", input=["tide", "molt"], dimensions=8)
    assert [list(v) for v in embedded.embeddings] == expected.vectors
    assert embedded.prompt_eval_count == expected.prompt_tokens
    legacy = await client(router).embeddings(model="demo-fast", prompt="tide")
    assert list(legacy.embedding) == (await DemoEngine().embed("demo-fast", ["tide"])).vectors[0]
    receipts = await both_ledgers(router_home, worker_home, 2)
    assert {r.output_tokens for r in receipts} == {0}


async def test_loading_a_model_needs_no_worker(router: Any, router_home: Path) -> None:
    loaded = await client(router).generate(model="demo-fast")
    assert loaded.done and loaded.done_reason == "load"
    with pytest.raises(ollama.ResponseError) as raised:
        await client(router).chat(model="llama9", messages=[])
    assert raised.value.status_code == 404


async def test_errors_in_ollama_shape(router: Any) -> None:
    async with httpx.AsyncClient(base_url=router.url) as http:
        bad = await http.post("/api/chat", content=b"{not json")
        no_model = await http.post("/api/chat", json={"messages": HI})
        unknown = await http.post("/api/generate", json={"model": "llama9", "prompt": "hi"})
    assert bad.status_code == 400 and isinstance(bad.json()["error"], str) and "JSON" in bad.json()["error"]
    assert no_model.status_code == 400 and "model" in no_model.json()["error"]
    assert unknown.status_code == 404 and unknown.json() == {"error": "no peer of this grid serves model 'llama9'"}


async def test_a_failure_after_the_commit_is_one_ndjson_error_line(
    start_worker: StartWorker, start_router: StartRouter, router_home: Path, tmp_path: Path
) -> None:
    add_peer(router_home, await start_worker(FailsMidStream(), identity=WORKER, home=tmp_path / "w"), WORKER.pubkey)
    router = await start_router()
    async with httpx.AsyncClient(base_url=router.url, timeout=20) as http:
        response = await http.post("/api/chat", json={"model": "demo-fast", "messages": HI})
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["message"]["content"] for line in lines[:-1]] != [] and not any(line.get("done") for line in lines)
    assert lines[-1] == {"error": lines[-1]["error"]} and "GPU caught fire" in lines[-1]["error"]
    with pytest.raises(ollama.ResponseError, match="GPU caught fire"):
        async for _ in await client(router).chat(model="demo-fast", messages=HI, stream=True):
            pass


@pytest.mark.parametrize("options", [{"stop": 5}, {"stop": {"a": 1}}, {"stop": [1, 2]}, {"num_predict": "many"},
                                     {"num_predict": 2.5}])
async def test_options_of_the_wrong_type_are_a_400_in_ollama_shape(router: Any, options: dict[str, Any]) -> None:
    """Ollama refuses options of the wrong type with a 400; ``"stop": 5`` used to crash the
    translation (500) and ``"num_predict": "many"`` to be dropped without a word."""
    async with httpx.AsyncClient(base_url=router.url, timeout=20) as http:
        response = await http.post("/api/chat", json={"model": "demo-fast", "messages": HI, "stream": False,
                                                      "options": options})
    assert response.status_code == 400, response.text
    assert next(iter(options)) in response.json()["error"]
