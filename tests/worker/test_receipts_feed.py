"""GET /v1/receipts on a worker (WIRE.md "[ext] reconciliation"): a requester's own receipts,
to that requester only, proven by its signature, oldest first, in pages."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from lobstah_core.ledger import Ledger
from lobstah_core.protocol import Identity, sign_request, verify_receipt
from lobstah_core.protocol.reconciliation import receipts_path

from ..factories import signed_receipt
from .conftest import ROUTER, WORKER, StartWorker

OTHER = Identity.from_seed(b"O" * 32)


def signed_get(identity: Identity, path: str) -> dict[str, str]:
    return sign_request(identity, "GET", path, b"", time.time_ns() // 1_000_000)


async def test_pages_of_the_requesters_own_receipts(start_worker: StartWorker, tmp_path: Path) -> None:
    home = tmp_path / "feed-home"
    mine = [signed_receipt(WORKER, ROUTER, completedAt=1_795_000_000_000 + n) for n in (5, 1, 3, 3, 9)]
    with Ledger(home / "ledger.sqlite3") as ledger:
        ledger.add_many(mine)
        ledger.add(signed_receipt(WORKER, OTHER, completedAt=1_795_000_000_004))  # someone else's
        ledger.add(signed_receipt(OTHER, ROUTER, completedAt=1_795_000_000_006))  # another worker's
    worker = await start_worker(home=home)
    async with httpx.AsyncClient(base_url=worker.url) as http:
        pages, since = [], 1_795_000_000_002
        while since is not None:
            path = receipts_path(since, limit=2)
            body = (await http.get(path, headers=signed_get(ROUTER, path))).json()
            pages.append([verify_receipt(r).receipt.completed_at - 1_795_000_000_000 for r in body["receipts"]])
            since = body["next"]
    # Oldest first from since on; a full page's last millisecond comes again at the start of
    # the next page (a page of one millisecond moves on past it); the last page is not full.
    assert pages == [[3, 3], [3, 3], [5, 9], [9]]


async def test_only_to_the_requester_who_signs(start_worker: StartWorker) -> None:
    worker = await start_worker()
    path = receipts_path(0)
    async with httpx.AsyncClient(base_url=worker.url) as http:
        unsigned = await http.get(path, headers={"x-lobstah-requester": ROUTER.pubkey})
        assert unsigned.status_code == 401 and unsigned.json()["error"]["type"] == "unauthorized"
        other_path = await http.get(path, headers=signed_get(ROUTER, receipts_path(1)))  # query not as signed
        assert other_path.status_code == 401
        for bad in ("/v1/receipts?since=-1", "/v1/receipts?limit=1001", "/v1/receipts?since=" + "9" * 400, "/v1/receipts?since=x"):
            refused = await http.get(bad, headers=signed_get(ROUTER, bad))
            assert refused.status_code == 400 and refused.json()["error"]["type"] == "invalid_request", bad
