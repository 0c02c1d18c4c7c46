"""Embeddings across the grid, driven with the official `openai` SDK: receipts on both sides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from lobstah_core.engines.demo import DEMO_DIMENSIONS, DemoEngine
from lobstah_core.engines.openai_compat import OpenAICompatibleEngine
from lobstah_core.protocol import Identity
from lobstah_core.protocol.embeddings import decode_base64

from ..conftest import StartWorker, ledgered, sdk_client
from .conftest import ROUTER_ID, StartRouter, add_peer

pytestmark = pytest.mark.usefixtures("closes_sdk_clients")  # sdk() clients closed on the test's loop

WORKER = Identity.from_seed(b"\xe1" * 32)
TEXTS = ["tides come in", "lobsters molt"]


class ChatOnlyEngine(DemoEngine):
    """An engine without ``embed`` (as a third-party engine may be)."""

    embed = None  # type: ignore[assignment]


def sdk(router_url: str) -> openai.AsyncOpenAI:
    return sdk_client(f"{router_url}/v1")


@pytest.fixture
async def grid(start_worker: StartWorker, start_router: StartRouter, router_home: Path, tmp_path: Path) -> Any:
    worker = await start_worker(identity=WORKER, home=tmp_path / "worker")
    add_peer(router_home, worker, WORKER.pubkey, label="embedder")
    return await start_router()


@pytest.mark.parametrize("encoding_format", ["float", "base64", None])
async def test_sdk_embeddings_leave_receipts_on_both_sides(
    grid: Any, router_home: Path, tmp_path: Path, encoding_format: str | None
) -> None:
    extra = {"encoding_format": encoding_format} if encoding_format else {}  # the SDK's default is base64
    result = await sdk(grid.url).embeddings.create(model="demo-fast", input=TEXTS, **extra)
    expected = await DemoEngine().embed("demo-fast", TEXTS)
    assert [item.index for item in result.data] == [0, 1]
    for item, vector in zip(result.data, expected.vectors, strict=True):
        # Asked for explicitly, base64 comes back as sent; by default the SDK decodes it.
        got = decode_base64(item.embedding) if encoding_format == "base64" else item.embedding
        assert len(got) == DEMO_DIMENSIONS
        assert got == pytest.approx(vector, abs=1e-6)  # base64 carries float32
    assert result.usage.prompt_tokens == expected.prompt_tokens
    ours, theirs = await ledgered(router_home, 1), await ledgered(tmp_path / "worker", 1)
    assert [r.receipt.nonce for r in ours] == [r.receipt.nonce for r in theirs]
    receipt = ours[0].receipt
    assert (receipt.requester_pubkey, receipt.worker_pubkey) == (ROUTER_ID.pubkey, WORKER.pubkey)
    assert (receipt.input_tokens, receipt.output_tokens) == (expected.prompt_tokens, 0)


async def test_one_text_and_fewer_dimensions(grid: Any) -> None:
    result = await sdk(grid.url).embeddings.create(model="demo-smart", input="tide", dimensions=16, encoding_format="float")
    assert len(result.data) == 1 and len(result.data[0].embedding) == 16


async def test_bad_input_is_a_400_and_unknown_model_a_404(grid: Any) -> None:
    client = sdk(grid.url)
    with pytest.raises(openai.BadRequestError, match="token arrays"):
        await client.embeddings.create(model="demo-fast", input=[[1, 2, 3]])
    with pytest.raises(openai.NotFoundError, match="model_not_found|no peer"):
        await client.embeddings.create(model="no-such-model", input="x")


async def test_a_peer_that_cannot_embed_is_passed_over(
    start_worker: StartWorker, start_router: StartRouter, router_home: Path, tmp_path: Path
) -> None:
    chat_only = Identity.from_seed(b"\xe2" * 32)
    add_peer(router_home, await start_worker(ChatOnlyEngine(), identity=chat_only, home=tmp_path / "c"), chat_only.pubkey)
    add_peer(router_home, await start_worker(identity=WORKER, home=tmp_path / "e"), WORKER.pubkey)
    router = await start_router()
    for _ in range(3):  # whichever the rotation tries first, the answer comes from the embedder
        result = await sdk(router.url).embeddings.create(model="demo-fast", input="x", encoding_format="float")
        assert len(result.data[0].embedding) == DEMO_DIMENSIONS
    receipts = await ledgered(router_home, 3)
    assert {r.receipt.worker_pubkey for r in receipts} == {WORKER.pubkey}
    async with httpx.AsyncClient(base_url=router.url) as http:
        peers = {p["pubkey"]: p["health"] for p in (await http.get("/peers")).json()}
    assert peers[chat_only.pubkey]["consecutiveFailures"] == 0  # a 404 is no penalty
    # GET /peers says which peer embeds what (the chat-only engine names none)
    assert peers[WORKER.pubkey]["embeddingModels"] == ["demo-fast", "demo-smart"] and peers[chat_only.pubkey]["embeddingModels"] == []


async def test_openai_compatible_engine_embeds_through_its_upstream(start_worker: StartWorker, tmp_path: Path) -> None:
    upstream = await start_worker()
    front = await start_worker(OpenAICompatibleEngine(f"{upstream.url}/v1"), home=tmp_path / "front")
    async with httpx.AsyncClient(base_url=front.url) as http:
        response = await http.post("/v1/embeddings", json={"model": "demo-fast", "input": TEXTS, "dimensions": 5})
    assert response.status_code == 200, response.text
    expected = await DemoEngine().embed("demo-fast", TEXTS, dimensions=5)
    assert [item["embedding"] for item in response.json()["data"]] == expected.vectors
    assert response.json()["usage"]["prompt_tokens"] == expected.prompt_tokens
