"""Reconciliation (WIRE.md "[ext] reconciliation"): a router ledgers the receipts a worker
issued to it that never reached it, from real workers on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx

from lobstah_core.config import RouterSettings
from lobstah_core.events import EventBus, ReceiptAccepted, ReceiptRejected, ReceiptsRecovered
from lobstah_core.http import RunningServer
from lobstah_core.ledger import Ledger
from lobstah_core.protocol import SignedReceipt, decode_receipt_header, sign_request, verify_receipt
from lobstah_core.router import create_app as create_router
from lobstah_core.router.app import ROUTER
from lobstah_core.router.receipts import ReceiptDesk

from ..conftest import WORKER, StartWorker
from ..factories import signed_receipt
from .conftest import ROUTER_ID, add_peer, ledgered

CHAT = {"model": "demo-fast", "messages": [{"role": "user", "content": "lost and found"}], "max_tokens": 4}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def behind_the_routers_back(worker: RunningServer, count: int) -> list[SignedReceipt]:
    """Completions the worker did and receipted for the router, which never saw the answers
    (as when the router was killed, or the stream broke, before their receipts reached it)."""
    receipts = []
    async with httpx.AsyncClient(base_url=worker.url, timeout=10) as http:
        for _ in range(count):
            body = json.dumps(CHAT).encode()
            headers = {"content-type": "application/json",
                       **sign_request(ROUTER_ID, "POST", "/v1/chat/completions", body, now_ms())}
            response = await http.post("/v1/chat/completions", content=body, headers=headers)
            receipts.append(verify_receipt(decode_receipt_header(response.headers["x-lobstah-receipt"])))
    return receipts


async def start_router(home: Path, bus: EventBus, **settings: object) -> RunningServer:
    app = create_router(RouterSettings(port=0, **settings), ROUTER_ID, home, bus=bus)  # type: ignore[arg-type]
    return await RunningServer(app, "127.0.0.1", 0, "router").start()


async def test_a_restarted_router_recovers_what_its_crash_lost(start_worker: StartWorker, router_home: Path) -> None:
    worker = await start_worker()
    issued = await behind_the_routers_back(worker, 4)
    with Ledger(router_home / "ledger.sqlite3") as ledger:
        ledger.add(issued[0])  # the one receipt the router ledgered before it died
    add_peer(router_home, worker, WORKER.pubkey)
    bus = EventBus()
    async with bus.subscribe() as events:
        router = await start_router(router_home, bus)
        try:
            held = await ledgered(router_home, 4)
            recovered = await _next_of(events, ReceiptsRecovered)
        finally:
            await router.stop()
    assert sorted(r.receipt.nonce for r in held) == sorted(r.receipt.nonce for r in issued)
    assert (recovered.peer, recovered.count) == (WORKER.pubkey, 3)


async def test_old_receipts_are_recovered_without_the_freshness_rule(start_worker: StartWorker, tmp_path: Path, router_home: Path) -> None:
    worker_home = tmp_path / "old-worker"
    ten_minutes_ago = now_ms() - 600_000
    old = [signed_receipt(WORKER, ROUTER_ID, completedAt=ten_minutes_ago + n) for n in range(3)]
    with Ledger(worker_home / "ledger.sqlite3") as ledger:
        ledger.add_many(old)
    with Ledger(router_home / "ledger.sqlite3") as ledger:
        ledger.add(old[2])
    worker = await start_worker(home=worker_home)
    add_peer(router_home, worker, WORKER.pubkey)
    router = await start_router(router_home, EventBus())
    try:
        assert len(await ledgered(router_home, 3)) == 3
    finally:
        await router.stop()


async def test_a_lost_stream_receipt_is_recovered_when_the_proxy_asks(start_worker: StartWorker, router_home: Path) -> None:
    worker = await start_worker()
    add_peer(router_home, worker, WORKER.pubkey)
    router = await start_router(router_home, EventBus(), reconcile_interval=3600)
    try:
        await asyncio.sleep(0.3)  # the pass at start found nothing
        [lost] = await behind_the_routers_back(worker, 1)
        router.runner.app[ROUTER].reconciler.recover_later(WORKER.pubkey)
        held = await ledgered(router_home, 1)
    finally:
        await router.stop()
    assert [r.receipt.nonce for r in held] == [lost.receipt.nonce]


async def test_a_served_page_is_judged_receipt_by_receipt(tmp_path: Path) -> None:
    # Freshness is not checked (we asked), everything else is; known nonces pass quietly.
    bus = EventBus()
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        desk = ReceiptDesk(ROUTER_ID.pubkey, ledger, bus, now_ms)
        known, honest = signed_receipt(WORKER, ROUTER_ID), signed_receipt(WORKER, ROUTER_ID)
        ledger.add(known)
        old = signed_receipt(WORKER, ROUTER_ID, completedAt=now_ms() - 3_600_000)
        misaddressed = signed_receipt(WORKER, WORKER)
        poison = json.loads(json.dumps(honest.to_wire()).replace('"outputTokens": 20', '"outputTokens": ' + "9" * 400))
        served = [known.to_wire(), honest.to_wire(), poison, "junk", misaddressed.to_wire(), old.to_wire()]
        async with bus.subscribe() as events:
            assert await desk.recover(served, WORKER.pubkey) == 2
            outcomes = [events.get_nowait() for _ in range(events.qsize())]
        assert [type(e) for e in outcomes] == [ReceiptAccepted, *[ReceiptRejected] * 3, ReceiptAccepted]
        assert [e.reason for e in outcomes[1:4]] == ["malformed", "malformed", "wrong_requester"]
        assert ledger.totals().receipts == 3 and desk.rejected == {"malformed": 2, "wrong_requester": 1}


async def _next_of(events: asyncio.Queue, kind: type, timeout: float = 5.0):  # type: ignore[type-arg]
    async with asyncio.timeout(timeout):
        while True:
            event = await events.get()
            if isinstance(event, kind):
                return event
