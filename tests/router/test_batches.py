"""Cargo: the OpenAI Batch API over the grid, driven with the official `openai` SDK."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import openai
import pytest

from lobstah_core.protocol import Identity

from ..conftest import StartWorker
from .conftest import StartRouter, add_peer, ledgered

WORKERS = [Identity.from_seed(bytes([n]) * 32) for n in (0xB1, 0xB2)]


def sdk(router_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{router_url}/v1", api_key="x", max_retries=0)


def request_line(custom_id: str, model: str = "demo-fast", **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": f"say {custom_id}"}], "max_tokens": 4, **body},
    }


def jsonl(lines: list[Any]) -> bytes:
    return b"".join((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines)


async def wait_for(client: openai.AsyncOpenAI, batch_id: str, statuses: tuple[str, ...], timeout: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        batch = await client.batches.retrieve(batch_id)
        if batch.status in statuses or asyncio.get_running_loop().time() > deadline:
            return batch
        await asyncio.sleep(0.1)


async def results(client: openai.AsyncOpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    content = await client.files.content(file_id)
    return [json.loads(line) for line in content.text.splitlines()]


@pytest.fixture
async def grid(start_worker: StartWorker, start_router: StartRouter, router_home: Path) -> Any:
    for identity in WORKERS:
        add_peer(router_home, await start_worker(identity=identity), identity.pubkey)
    return await start_router()


async def test_a_batch_completes_with_every_custom_id_once(grid: Any, router_home: Path) -> None:
    client = sdk(grid.url)
    lines = [request_line(f"item-{n}") for n in range(40)]
    upload = await client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    assert upload.purpose == "batch" and upload.bytes == len(jsonl(lines))
    batch = await client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                        completion_window="24h", metadata={"job": "nightly"})
    assert batch.status in ("in_progress", "validating") and batch.metadata == {"job": "nightly"}
    done = await wait_for(client, batch.id, ("completed",))
    assert done.status == "completed", done
    output = await results(client, done.output_file_id)
    assert sorted(line["custom_id"] for line in output) == sorted(f"item-{n}" for n in range(40))
    assert all(line["response"]["status_code"] == 200 and line["error"] is None for line in output)
    assert done.request_counts.total == 40 and done.request_counts.completed == 40
    receipts = await ledgered(router_home, 40)
    assert len(receipts) == 40
    assert {r.receipt.worker_pubkey for r in receipts} == {w.pubkey for w in WORKERS}
