"""``GET /ledger?limit=N`` (as the JS grid's router) and the page at ``/dashboard``."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from lobstah_core.protocol import Identity, verify_receipt

from ..conftest import StartWorker, ledgered
from .conftest import StartRouter, add_peer

WORKER = Identity.from_seed(b"\xa8" * 32)


async def test_ledger_newest_first_and_limited(start_worker: StartWorker, start_router: StartRouter, router_home: Path) -> None:
    add_peer(router_home, await start_worker(identity=WORKER), WORKER.pubkey)
    router = await start_router()
    async with httpx.AsyncClient(base_url=router.url, timeout=20) as http:
        for word in ("one", "two", "three"):
            chat = {"model": "demo-fast", "messages": [{"role": "user", "content": word}]}
            assert (await http.post("/v1/chat/completions", json=chat)).status_code == 200
        await ledgered(router_home, 3)
        everything = (await http.get("/ledger")).json()["receipts"]
        two = (await http.get("/ledger", params={"limit": 2})).json()["receipts"]
        bad = [await http.get("/ledger", params={"limit": value}) for value in ("0", "x", "1001", "-1")]
    times = [verify_receipt(signed).receipt.completed_at for signed in everything]
    assert len(everything) == 3 and times == sorted(times, reverse=True)
    assert two == everything[:2]
    for response in bad:
        assert response.status_code == 400 and "limit" in response.json()["error"]["message"]


async def test_dashboard_is_one_self_contained_page(start_router: StartRouter) -> None:
    router = await start_router()
    async with httpx.AsyncClient(base_url=router.url) as http:
        page = await http.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text), "no external assets"
    for route in ("/balance", "/peers", "/ledger", "/events"):
        assert route in page.text
