"""The router as an OpenAI provider, proven with the official `openai` SDK against demo workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from lobstah_core.engines.demo import DemoEngine
from lobstah_core.ledger import Ledger
from lobstah_core.protocol import Identity

from ..conftest import StartWorker, sdk_client
from .conftest import ROUTER_ID, StartRouter, add_peer, ledgered

pytestmark = pytest.mark.usefixtures("closes_sdk_clients")  # sdk() clients closed on the test's loop

WORKERS = [Identity.from_seed(bytes([n]) * 32) for n in (0xA1, 0xA2)]


class RecordingEngine(DemoEngine):
    """The demo engine, keeping every request body it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []

    async def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(request)
        return await super().chat(request)


def sdk(router_url: str, **options: Any) -> openai.AsyncOpenAI:
    return sdk_client(f"{router_url}/v1", **options)


@pytest.fixture
async def grid(start_worker: StartWorker, start_router: StartRouter, router_home: Path) -> Any:
    for identity in WORKERS:
        add_peer(router_home, await start_worker(identity=identity), identity.pubkey, label=f"w{identity.pubkey[4:6]}")
    return await start_router()


async def test_plain_completion_and_its_receipt_in_the_ledger(grid: Any, router_home: Path) -> None:
    client = sdk(grid.url)
    completion = await client.chat.completions.create(model="demo-fast", messages=[{"role": "user", "content": "hello"}], max_tokens=6)
    assert completion.choices[0].message.content and completion.usage.completion_tokens == 6
    await ledgered(router_home, 1)
    with Ledger(router_home / "ledger.sqlite3") as ledger:
        mine = ledger.balance(ROUTER_ID.pubkey)
    assert mine.spent == completion.usage.total_tokens


@pytest.mark.parametrize("options", [None, {"include_usage": True}])
async def test_streamed_completion(grid: Any, router_home: Path, options: dict | None) -> None:
    client = sdk(grid.url)
    extra = {"stream_options": options} if options else {}
    stream = await client.chat.completions.create(model="demo-smart", messages=[{"role": "user", "content": "stream"}], max_tokens=5, stream=True, **extra)
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 5
    usage = [c.usage for c in chunks if c.usage]
    assert bool(usage) == bool(options)
    receipts = await ledgered(router_home, 1)
    assert [r.receipt.output_tokens for r in receipts] == [5]


async def test_models_list_is_the_union(grid: Any) -> None:
    models = await sdk(grid.url).models.list()
    assert [m.id for m in models.data] == ["demo-fast", "demo-smart"]
    assert models.data[0].owned_by.startswith("lobstah:")


async def test_unknown_fields_reach_the_worker(start_worker: StartWorker, start_router: StartRouter, router_home: Path) -> None:
    engine = RecordingEngine()
    add_peer(router_home, await start_worker(engine, identity=WORKERS[0]), WORKERS[0].pubkey)
    router = await start_router()
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    await sdk(router.url).chat.completions.create(
        model="demo-fast", messages=[{"role": "user", "content": "x"}], tools=tools, tool_choice="auto",
        max_completion_tokens=4, extra_body={"x_vendor": {"keep": [1, 2]}},
    )
    sent = engine.requests[-1]
    assert sent["tools"] == tools and sent["tool_choice"] == "auto"
    assert sent["max_completion_tokens"] == 4 and sent["x_vendor"] == {"keep": [1, 2]}


async def test_a_model_asked_without_its_tag_is_the_latest(start_worker: StartWorker, start_router: StartRouter, router_home: Path) -> None:
    # An Ollama worker lists tagged names; clients write them as `ollama run` takes them.
    engine = DemoEngine(models=("llama3.2:latest", "qwen2.5:7b"))
    add_peer(router_home, await start_worker(engine, identity=WORKERS[0]), WORKERS[0].pubkey)
    client = sdk((await start_router()).url)
    completion = await client.chat.completions.create(model="llama3.2", messages=[{"role": "user", "content": "x"}], max_tokens=2)
    assert completion.usage.completion_tokens == 2
    assert [r.receipt.model for r in await ledgered(router_home, 1)] == ["llama3.2"]
    with pytest.raises(openai.APIStatusError) as raised:  # only :7b is offered
        await client.chat.completions.create(model="qwen2.5", messages=[{"role": "user", "content": "x"}])
    assert raised.value.body["type"] == "model_not_found"


async def test_no_peers(start_router: StartRouter) -> None:
    router = await start_router()
    with pytest.raises(openai.APIStatusError) as raised:
        await sdk(router.url).chat.completions.create(model="demo-fast", messages=[{"role": "user", "content": "x"}])
    assert raised.value.status_code == 503
    assert raised.value.body["type"] == "no_peers" and "peers add" in raised.value.message


async def test_a_model_nobody_serves_is_not_found_and_not_retried(grid: Any) -> None:
    client = sdk(grid.url).with_options(max_retries=2)
    with pytest.raises(openai.NotFoundError) as raised:
        await client.chat.completions.create(model="llama-9000", messages=[{"role": "user", "content": "x"}])
    assert raised.value.status_code == 404
    assert raised.value.body["type"] == "model_not_found" and raised.value.body["model"] == "llama-9000"
    assert "llama-9000" in raised.value.message


async def test_all_peers_failed(start_worker: StartWorker, start_router: StartRouter, router_home: Path) -> None:
    for identity in WORKERS:
        worker = await start_worker(identity=identity)
        add_peer(router_home, worker, identity.pubkey)
    router = await start_router()
    # Both workers go away after the router has learned their capacity.
    for server in start_worker.servers:  # type: ignore[attr-defined]
        await server.stop()
    with pytest.raises(openai.APIStatusError) as raised:
        await sdk(router.url).chat.completions.create(model="demo-fast", messages=[{"role": "user", "content": "x"}])
    assert raised.value.status_code == 502
    body = raised.value.body
    assert body["type"] == "all_peers_failed" and body["attempts"] == 2
    assert len(body["errors"]) == 2 and all("cannot connect" in e["message"] for e in body["errors"])


async def test_api_key_when_required(grid_with_key: Any) -> None:
    with pytest.raises(openai.AuthenticationError):
        await sdk(grid_with_key.url, api_key="wrong").models.list()
    models = await sdk(grid_with_key.url, api_key="s3cret").models.list()
    assert models.data


@pytest.fixture
async def grid_with_key(start_worker: StartWorker, start_router: StartRouter, router_home: Path) -> Any:
    add_peer(router_home, await start_worker(identity=WORKERS[0]), WORKERS[0].pubkey)
    return await start_router(api_key="s3cret")
