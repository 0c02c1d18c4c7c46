"""`lobstah-core batch ...` against a real router, as a user runs it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from lobstah_core.protocol import Identity

from ..conftest import Run, StartRouter, StartWorker, add_peer
from ..router.test_batches import embedding_line, jsonl, request_line

WORKER = Identity.from_seed(b"C" * 32)


@pytest.fixture
async def router(start_worker: StartWorker, start_router: StartRouter, router_home: Path) -> str:
    """The URL of a router with one demo worker."""
    add_peer(router_home, await start_worker(identity=WORKER), WORKER.pubkey, "cellar")
    return (await start_router()).url


async def test_submit_wait_status_list_results_cancel(
    cli: Run, tmp_path: Path, router: str
) -> None:

    async def run(*args: str):  # the CLI is a subprocess; the router runs on this loop meanwhile
        return await asyncio.to_thread(cli, "batch", *args, "--router", router)

    good = tmp_path / "good.jsonl"
    good.write_bytes(jsonl([request_line(f"q{n}") for n in range(12)]))
    submitted = await run("submit", str(good), "--wait", "--json")
    assert submitted.returncode == 0, submitted.stderr
    batch = json.loads(submitted.stdout)
    assert batch["status"] == "completed" and "12/12" in submitted.stderr

    status = await run("status", batch["id"])
    assert status.returncode == 0 and "completed" in status.stdout and "12/12 done" in status.stdout
    assert "answered by: cellar 12" in status.stdout  # items per peer, by the peer's label
    assert batch["id"] in (await run("list")).stdout

    out = tmp_path / "results.jsonl"
    results = await run("results", batch["id"], "-o", str(out))
    assert results.returncode == 0, results.stderr
    assert sorted(json.loads(line)["custom_id"] for line in out.read_text().splitlines()) == sorted(f"q{n}" for n in range(12))

    cancel = await run("cancel", batch["id"])
    assert cancel.returncode == 1 and "cannot be cancelled" in cancel.stderr and "Traceback" not in cancel.stderr


async def test_a_bad_file_is_one_line_per_bad_line_and_no_traceback(
    cli: Run, tmp_path: Path, router: str
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(jsonl([request_line("a"), request_line("a"), b"{oops"]))
    result = await asyncio.to_thread(cli, "batch", "submit", str(bad), "--router", router)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert "line 2: custom_id 'a' is already used on line 1" in result.stderr and "line 3: not valid JSON" in result.stderr
    missing = await asyncio.to_thread(cli, "batch", "submit", str(tmp_path / "nope.jsonl"), "--router", router)
    assert missing.returncode == 1 and "cannot read" in missing.stderr and "Traceback" not in missing.stderr


async def test_submit_takes_the_endpoint_from_the_file(
    cli: Run, tmp_path: Path, router: str
) -> None:
    texts = tmp_path / "texts.jsonl"
    texts.write_bytes(jsonl([embedding_line(f"t{n}") for n in range(5)]))
    submitted = await asyncio.to_thread(cli, "batch", "submit", str(texts), "--wait", "--json", "--router", router)
    assert submitted.returncode == 0, submitted.stderr
    batch = json.loads(submitted.stdout)
    assert (batch["endpoint"], batch["status"], batch["request_counts"]["completed"]) == ("/v1/embeddings", "completed", 5)


async def test_the_openai_base_url_works_as_router(cli: Run, router: str) -> None:
    """Users are told the grid is at http://127.0.0.1:17475/v1 (the OpenAI base URL); giving
    that as --router read "Not Found: GET /v1/v1/batches"."""
    result = await asyncio.to_thread(cli, "batch", "list", "--router", router + "/v1/")
    assert result.returncode == 0, result.stderr
